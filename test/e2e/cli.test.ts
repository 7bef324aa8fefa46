// End to end: the built `cairn` CLI (bin/cairn.js) against three `cairn daemon` processes, as a user runs them.
// Needs the build (dist/) in place: `npm test` builds first.
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdir, symlink, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { childEnv, freePorts, runProgram, tempDir, waitFor, type Run } from '../util.js'
import type { GlobalPinInfo, IDInfo, Pin } from '../../src/components.js'

/** The repo root: this file runs as dist/test/e2e/cli.test.js. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const CAIRN = join(ROOT, 'bin', 'cairn.js')
const PEERS = 3

interface Daemon {
  name: string
  dir: string
  rest: string
  swarm: string
  id: string
  child?: ChildProcess
  exit?: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  output: string
}

/** Runs `node bin/cairn.js <args>`; resolves with its exit code and output (never rejects on a non-zero exit). */
async function cairn (...args: string[]): Promise<Run> {
  return await runProgram(process.execPath, [CAIRN, ...args], { cwd: ROOT, env: childEnv(), timeoutMs: 30_000 })
}

/** `cairn` that must succeed; the failure message carries its stderr. */
async function cairnOk (...args: string[]): Promise<string> {
  const run = await cairn(...args)
  assert.equal(run.code, 0, `cairn ${args.join(' ')} exited ${run.code}: ${run.stderr}`)
  return run.stdout
}

const ndjson = <T>(text: string): T[] => text.split('\n').filter(l => l.trim() !== '').map(l => JSON.parse(l) as T)

describe('cairn CLI against three daemon processes', { timeout: 120_000 }, () => {
  let tmp: { path: string, cleanup: () => Promise<void> }
  const daemons: Daemon[] = []
  let cid = ''

  const statusesOn = async (d: Daemon, c: string): Promise<GlobalPinInfo> =>
    JSON.parse(await cairnOk('--api', d.rest, 'status', c, '--json')) as GlobalPinInfo

  /** The daemons' own output, for failure messages. */
  const logs = (): string => daemons.map(d => `--- ${d.name}\n${d.output.split('\n').slice(-15).join('\n')}`).join('\n')

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
        id: '',
        output: ''
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

    for (const d of daemons) {
      const child = spawn(process.execPath, [CAIRN, 'daemon', '--path', d.dir], {
        cwd: ROOT,
        // three peers on one host: the pinning API, gateway and metrics take any free port
        env: childEnv({
          CAIRN_LOG_LEVEL: process.env.CAIRN_TEST_LOG_LEVEL ?? 'warn',
          CAIRN_PINSVC_LISTEN: '127.0.0.1:0',
          CAIRN_GATEWAY_LISTEN: '127.0.0.1:0',
          CAIRN_METRICS_LISTEN: '127.0.0.1:0'
        }),
        stdio: ['ignore', 'pipe', 'pipe']
      })
      d.child = child
      d.exit = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
      const keep = (chunk: Buffer): void => { d.output = (d.output + chunk.toString()).slice(-20_000) }
      child.stdout.on('data', keep)
      child.stderr.on('data', keep)
    }
    await until(async () => {
      const ids = await Promise.all(daemons.map(async d => {
        if (d.child?.exitCode != null) throw new Error(`${d.name} exited with code ${d.child.exitCode}`)
        const res = await fetch(`http://${d.rest}/id`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined)
        return res?.ok === true ? (await res.json() as IDInfo).id : undefined
      }))
      return ids.every((id, k) => id === daemons[k].id)
    }, 'every daemon answers GET /id with its own id')
  })

  after(async () => {
    for (const d of daemons) {
      if (d.child != null && d.child.exitCode == null && d.child.signalCode == null) d.child.kill('SIGKILL')
    }
    await Promise.all(daemons.map(async d => { await d.exit }))
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
    for (const d of daemons) d.child?.kill('SIGTERM')
    const results = await Promise.all(daemons.map(async d => await Promise.race([
      d.exit!,
      new Promise<'timeout'>(resolve => setTimeout(resolve, 10_000, 'timeout').unref())
    ])))
    for (const [k, r] of results.entries()) {
      assert.deepEqual(r, { code: 0, signal: null }, `${daemons[k].name} did not exit cleanly:\n${logs()}`)
    }
  })
})
