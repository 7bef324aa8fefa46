// End to end: the built `cairn` CLI (bin/cairn.js) against three `cairn daemon` processes, as a user runs them.
// Needs the build (dist/) in place: `npm test` builds first.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { tempDir, waitFor } from '../util.js'
import { cairn, cairnOk, freePorts, ndjson, spawnNode, type Spawned } from './processes.js'
import type { GlobalPinInfo, IDInfo, Pin } from '../../src/types/wire.js'

const PEERS = 3

interface Daemon {
  name: string
  dir: string
  rest: string
  swarm: string
  id: string
  process?: Spawned
}

/** Metric TTL of the test daemons (30 s by default): a stopped peer is lost within TTL + TTL/2. */
const METRIC_TTL_MS = 6000

describe('cairn CLI against three daemon processes', { timeout: 240_000 }, () => {
  let tmp: { path: string, cleanup: () => Promise<void> }
  const daemons: Daemon[] = []
  let cid = ''

  const statusesOn = async (d: Daemon, c: string): Promise<GlobalPinInfo> =>
    JSON.parse(await cairnOk('--api', d.rest, 'status', c, '--json')) as GlobalPinInfo

  /** The daemons' own output, for failure messages. */
  const logs = (): string => daemons.map(d => `--- ${d.name}\n${(d.process?.output() ?? '').split('\n').slice(-15).join('\n')}`).join('\n')

  /** waitFor, with the daemons' recent output in the failure. */
  async function until<T> (check: () => Promise<T>, message: string, timeoutMs = 30_000): Promise<NonNullable<T>> {
    try {
      return await waitFor(check, { timeoutMs, intervalMs: 250, message })
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${logs()}`)
    }
  }

  before(async () => {
    tmp = await tempDir('cairn-e2e-')
    const clusterConfig = join(tmp.path, 'cluster.config.json')
    // init validates the cluster config it joins: start from a minimal one, then list the peers once they exist
    await writeFile(clusterConfig, JSON.stringify({ name: 'cairn-e2e', dht: { profile: 'lan', protocol: '/cairn-e2e/kad/1.0.0' } }))
    const ports = await freePorts(2 * PEERS)
    for (let k = 0; k < PEERS; k++) {
      const d: Daemon = {
        name: `p${k + 1}`,
        dir: join(tmp.path, `p${k + 1}`),
        rest: `127.0.0.1:${ports[2 * k]}`,
        swarm: `/ip4/127.0.0.1/tcp/${ports[2 * k + 1]}`,
        id: ''
      }
      const out = await cairnOk('init', '--json', '--path', d.dir, '--peername', d.name, '--cluster-config', clusterConfig,
        '--rest-listen', d.rest, '--swarm-listen', d.swarm)
      d.id = (JSON.parse(out) as { id: string }).id
      daemons.push(d)
    }
    const bootstrap = daemons.map(d => `${d.swarm}/p2p/${d.id}`)
    await writeFile(clusterConfig, JSON.stringify({
      name: 'cairn-e2e',
      trusted_peers: daemons.map(d => d.id),
      bootstrap,
      replication_factor_min: -1,
      replication_factor_max: -1,
      dht: { profile: 'lan', protocol: '/cairn-e2e/kad/1.0.0', bootstrap }
    }, null, 2))

    await startDaemons(daemons)
  })

  /** Starts `cairn daemon` for each, and waits until each answers GET /id with its own id. */
  async function startDaemons (which: Daemon[]): Promise<void> {
    for (const d of which) {
      // three peers on one host: the pinning API, gateway and metrics take any free port
      d.process = spawnNode(['daemon', '--path', d.dir], {
        CAIRN_LOG_LEVEL: process.env.CAIRN_TEST_LOG_LEVEL ?? 'warn',
        CAIRN_PINSVC_LISTEN: '127.0.0.1:0',
        CAIRN_GATEWAY_LISTEN: '127.0.0.1:0',
        CAIRN_METRICS_LISTEN: '127.0.0.1:0',
        CAIRN_MONITOR_METRIC_TTL_MS: String(METRIC_TTL_MS),
        // no 128 MiB reserve file per daemon (test/e2e/disk-full.test.ts has it)
        CAIRN_DISK_RESERVE_BYTES: '0'
      })
    }
    await until(async () => {
      const ids = await Promise.all(which.map(async d => {
        if (d.process?.child.exitCode != null) throw new Error(`${d.name} exited with code ${d.process.child.exitCode}`)
        const res = await fetch(`http://${d.rest}/id`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined)
        return res?.ok === true ? (await res.json() as IDInfo).id : undefined
      }))
      return ids.every((id, k) => id === which[k].id)
    }, `${which.map(d => d.name).join(', ')} answer GET /id with their own id`)
  }

  /** SIGTERM, and a clean exit. */
  async function stopDaemon (d: Daemon): Promise<void> {
    d.process?.child.kill('SIGTERM')
    assert.deepEqual(await d.process?.exit, { code: 0, signal: null }, `${d.name} did not stop cleanly:\n${logs()}`)
  }

  after(async () => {
    for (const d of daemons) {
      const child = d.process?.child
      if (child != null && child.exitCode == null && child.signalCode == null) child.kill('SIGKILL')
    }
    await Promise.all(daemons.map(async d => { await d.process?.exit }))
    await tmp?.cleanup()
  })

  it('adds a file on peer 1 and it is pinned on all three peers', async () => {
    const file = join(tmp.path, 'hello.txt')
    await writeFile(file, `hello from the e2e test ${randomBytes(8).toString('hex')}\n`)
    const out = await cairnOk('--api', daemons[0].rest, 'add', file, '--json')
    const added = ndjson<{ cid: string, name: string }>(out)
    assert.equal(added.length, 1, `one AddedOutput line expected, got ${out}`)
    assert.equal(added[0].name, 'hello.txt')
    cid = added[0].cid
    assert.ok(cid !== '', 'add printed no CID')

    const status = await until(async () => {
      const g = await statusesOn(daemons[2], cid)
      const ids = Object.keys(g.peer_map)
      return ids.length === PEERS && ids.every(id => g.peer_map[id].status === 'pinned') ? g : undefined
    }, `${cid} pinned on all ${PEERS} peers, as seen from peer 3`)
    assert.deepEqual(Object.keys(status.peer_map).sort(), daemons.map(d => d.id).sort())
  })

  it('adds a tree with symlinks as links, as ipfs add does: Kubo\'s own symlink test tree gives Kubo\'s CID', async () => {
    // Kubo's test/sharness/t0044-add-symlink.sh
    const files = join(tmp.path, 'files')
    await mkdir(join(files, 'foo'), { recursive: true })
    await mkdir(join(files, 'bar'))
    await writeFile(join(files, 'foo', 'baz'), 'some text\n')
    await symlink('files/foo/baz', join(files, 'bar', 'baz'))
    await symlink('files/does/not/exist', join(files, 'bad'))
    const out = await cairnOk('--api', daemons[0].rest, 'add', '-r', '--cid-version', '1', '--no-pin', files)
    assert.equal(out.trim().split('\n').at(-1), 'added bafybeibyhlx64cklod6isy3h7tsmr4qvam3ae3b74n3hfes5bythjrwyua files')
    assert.match(out, /^added \S+ files\/bad$/m)
    const followed = await cairn('--api', daemons[0].rest, 'add', '-r', '--dereference-symlinks', files)
    assert.equal(followed.code, 1)
    assert.equal(followed.stderr, `error: cannot follow the symlink ${join(files, 'bad')}: it points to "files/does/not/exist", which does not exist\n`)
  })

  it('lists the pin on peer 2', async () => {
    const pins = ndjson<Pin>(await cairnOk('--api', daemons[1].rest, 'pin', 'ls', '--json'))
    const pin = pins.find(p => p.cid === cid)
    assert.ok(pin != null, `pin ls on peer 2 lacks ${cid}: ${JSON.stringify(pins)}`)
    assert.equal(pin.name, 'hello.txt')
    assert.equal(pin.replication_factor_min, -1)
  })

  it('removes the pin on peer 2 and every peer unpins it', async () => {
    const out = await cairnOk('--api', daemons[1].rest, 'pin', 'rm', cid, '--json')
    // the REST API echoes the CID as given, as IPFS Cluster does
    assert.equal((JSON.parse(out) as GlobalPinInfo).cid, cid)
    for (const d of daemons) {
      await until(async () => {
        const g = await statusesOn(d, cid)
        const peers = Object.values(g.peer_map)
        return peers.length === PEERS && peers.every(p => p.status === 'unpinned')
      }, `${cid} unpinned on all peers, as seen from ${d.name}`)
    }
    const pins = ndjson<Pin>(await cairnOk('--api', daemons[2].rest, 'pin', 'ls', '--json'))
    assert.ok(!pins.some(p => p.cid === cid), `pin ls on peer 3 still lists ${cid}`)
  })

  it('lists the three peers', async () => {
    const peers = ndjson<IDInfo>(await cairnOk('--api', daemons[0].rest, 'peers', 'ls', '--json'))
    assert.deepEqual(peers.map(p => p.id).sort(), daemons.map(d => d.id).sort())
    assert.deepEqual(peers.map(p => p.peername).sort(), daemons.map(d => d.name))
    for (const p of peers) assert.equal(p.error, '', `${p.peername}: ${p.error}`)
  })

  it('shows a stopped peer as lost (since when, the pins allocated to it) in peers ls, status and health alerts, until it is back', async () => {
    const [p1, p2, p3] = daemons
    const file = join(tmp.path, 'kept.txt')
    await writeFile(file, `kept while a peer is down ${randomBytes(8).toString('hex')}\n`)
    const kept = ndjson<{ cid: string }>(await cairnOk('--api', p1.rest, 'add', file, '--json'))[0].cid
    await until(async () => Object.values((await statusesOn(p2, kept)).peer_map).filter(p => p.status === 'pinned').length === PEERS, `${kept} pinned on all peers`)

    await stopDaemon(p3)
    // lost, on every peer still running: an ID with the error, its name and addresses kept from its last ping
    const lostOn = async (d: Daemon): Promise<IDInfo | undefined> =>
      ndjson<IDInfo>(await cairnOk('--api', d.rest, 'peers', 'ls', '--json')).find(p => p.id === p3.id && p.error.startsWith('peer lost since '))
    const lost = await until(async () => await lostOn(p1), 'p1 lists p3 as lost', 3 * METRIC_TTL_MS)
    await until(async () => await lostOn(p2), 'p2 lists p3 as lost', 3 * METRIC_TTL_MS)
    const since = /^peer lost since (\S+); 1 pin allocated to it$/.exec(lost.error)?.[1]
    assert.ok(since != null && !Number.isNaN(Date.parse(since)), lost.error)
    assert.equal(lost.peername, 'p3')
    assert.ok(lost.addresses.some(a => a.startsWith(p3.swarm)), lost.addresses.join(' '))
    const text = await cairnOk('--api', p1.rest, 'peers', 'ls')
    assert.match(text, new RegExp(`^${p3.id} \\| p3 \\| ERROR: peer lost since ${since}; 1 pin allocated to it \\| Trust: trusted$`, 'm'))
    assert.equal(ndjson<IDInfo>(await cairnOk('--api', p1.rest, 'peers', 'ls', '--json')).filter(p => p.error === '').length, 2)

    // its pins: cluster_error, since when
    const g = await statusesOn(p1, kept)
    assert.deepEqual(g.peer_map[p3.id], {
      peername: 'p3', ipfs_peer_id: p3.id, status: 'cluster_error', timestamp: since, error: `peer lost since ${since}`, attempt_count: 0, priority_pin: false
    })
    assert.equal(g.peer_map[p1.id].status, 'pinned')
    // (each peer says since when it has seen p3 lost)
    assert.match(await cairnOk('--api', p1.rest, 'status', kept), new RegExp(`> p3 +: CLUSTER_ERROR: peer lost since ${since} \\| ${since} \\|`))
    const errors = ndjson<GlobalPinInfo>(await cairnOk('--api', p2.rest, 'status', '--filter', 'cluster_error', '--json'))
    assert.deepEqual(errors.map(e => e.cid), [kept])

    // the alert it came from, and the metrics of the peers left
    const alerts = JSON.parse(`[${(await cairnOk('--api', p1.rest, 'health', 'alerts', '--json')).trim().split('\n').join(',')}]`) as Array<{ peer: string, name: string, triggered_at: string }>
    assert.ok(alerts.some(a => a.peer === p3.id && a.name === 'ping' && a.triggered_at === since), JSON.stringify(alerts))
    assert.match(await cairnOk('--api', p1.rest, 'health', 'alerts'), new RegExp(`^${p3.id}: ping\\. Expired at: \\d+ seconds? ago\\. Triggered at: (now|\\d+ seconds? ago)$`, 'm'))
    const free = (await cairnOk('--api', p1.rest, 'health', 'metrics', 'freespace')).trim().split('\n')
    assert.deepEqual(free.map(l => l.split(' | ')[0]).sort(), [p1.id, p2.id].sort())
    for (const line of free) assert.match(line, /^\S+ \| freespace: [\d.]+ (B|KiB|MiB|GiB|TiB) \| Weight: \d+ \| Expires in: (now|\d+ seconds? from now)$/)
    const freeJson = ndjson<{ peer: string, name: string, weight: number, expire: number }>(await cairnOk('--api', p1.rest, 'health', 'metrics', 'freespace', '--json'))
    assert.ok(freeJson.every(m => m.name === 'freespace' && m.weight > 0 && m.expire > Date.now() * 1e6), JSON.stringify(freeJson))

    // back: listed as a peer again, pinned
    await startDaemons([p3])
    await until(async () => {
      const peers = ndjson<IDInfo>(await cairnOk('--api', p1.rest, 'peers', 'ls', '--json'))
      return peers.length === PEERS && peers.every(p => p.error === '')
    }, 'p3 is back in p1\'s peers ls')
    await until(async () => (await statusesOn(p1, kept)).peer_map[p3.id]?.status === 'pinned', 'p3 pinned again in p1\'s status')
  })

  it('peers rm of a lost peer stops every peer listing it; it is a peer again when it comes back', async () => {
    const [p1, p2, p3] = daemons
    await stopDaemon(p3)
    const lostOn = async (d: Daemon): Promise<boolean> =>
      ndjson<IDInfo>(await cairnOk('--api', d.rest, 'peers', 'ls', '--json')).some(p => p.id === p3.id && p.error.startsWith('peer lost since '))
    await until(async () => await lostOn(p1) && await lostOn(p2), 'p1 and p2 list p3 as lost', 3 * METRIC_TTL_MS)
    assert.match(await cairnOk('--api', p1.rest, 'peers', 'rm', p3.id), new RegExp(`^0 pins re-allocated away from ${p3.id}\n$`))
    for (const d of [p1, p2]) {
      const peers = ndjson<IDInfo>(await cairnOk('--api', d.rest, 'peers', 'ls', '--json'))
      assert.deepEqual(peers.map(p => p.id).sort(), [p1.id, p2.id].sort(), `${d.name} still lists p3`)
      for (const g of ndjson<GlobalPinInfo>(await cairnOk('--api', d.rest, 'status', '--json'))) assert.equal(g.peer_map[p3.id], undefined)
    }
    await startDaemons([p3])
    await until(async () => ndjson<IDInfo>(await cairnOk('--api', p2.rest, 'peers', 'ls', '--json')).filter(p => p.error === '').length === PEERS, 'p3 is back in p2\'s peers ls')
  })

  it('rejects an invalid CID with exit code 1 and a message naming it and saying what is wrong', async () => {
    const run = await cairn('--api', daemons[0].rest, 'pin', 'add', 'notacid')
    assert.equal(run.code, 1, `stdout: ${run.stdout} stderr: ${run.stderr}`)
    assert.match(run.stderr, /^error: invalid CID "notacid": "n" is not a multibase prefix: a CID is either a CIDv0 \(46 base58btc characters starting "Qm"\) or a CIDv1/)
    assert.equal(run.stdout, '')
    const short = await cairn('--api', daemons[0].rest, 'status', 'QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPb')
    assert.equal(short.code, 1)
    assert.equal(short.stderr, 'error: invalid CID "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPb": a CIDv0 is 46 base58btc characters starting "Qm", this one has 44\n')
  })

  it('says it cannot reach an API nobody listens on, with exit code 1', async () => {
    const [port] = await freePorts(1)
    const run = await cairn('--api', `127.0.0.1:${port}`, 'status')
    assert.equal(run.code, 1, `stdout: ${run.stdout} stderr: ${run.stderr}`)
    assert.match(run.stderr, /cannot reach the cairn API at http:\/\/127\.0\.0\.1:\d+/)
  })

  it('stops every daemon cleanly on SIGTERM, with exit code 0 within 10 s', async () => {
    for (const d of daemons) d.process?.child.kill('SIGTERM')
    const results = await Promise.all(daemons.map(async d => await Promise.race([
      d.process!.exit,
      new Promise<'timeout'>(resolve => setTimeout(resolve, 10_000, 'timeout').unref())
    ])))
    for (const [k, r] of results.entries()) {
      assert.deepEqual(r, { code: 0, signal: null }, `${daemons[k].name} did not exit cleanly:\n${logs()}`)
    }
  })
})
