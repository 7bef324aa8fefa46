import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runCli } from '../../src/cli/program.js'
import {
  DEFAULT_GATEWAY_LISTEN, DEFAULT_METRICS_LISTEN, DEFAULT_PINSVC_LISTEN, DEFAULT_REST_LISTEN, DEFAULT_SWARM_LISTEN, FOLLOWER_PORT_STEP, followerListen
} from '../../src/config/index.js'
import { readMultipart, samplePin, sampleStatus, sendJson, sendNdjson, startFakeApi, type FakeApi } from '../client/fake-api.js'
import { freePort, tempDir } from '../util.js'

const CID = 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'
const SLOW = 'bafkreislowslowslowslowslowslowslowslowslowslowslowslowslow'
const FAIL = 'bafkreifailfailfailfailfailfailfailfailfailfailfailfailfail'
const LOST = 'bafkreilostlostlostlostlostlostlostlostlostlostlostlostlost'
const TS = '2024-05-06T10:00:00Z'

interface Run { code: number, out: string, err: string }

describe('cairn CLI against a fake REST API', () => {
  let api: FakeApi
  let dir: string
  let slowPolls = 0

  async function cairn (...args: string[]): Promise<Run> {
    let out = ''
    let err = ''
    const code = await runCli(args, { out: s => { out += s }, err: s => { err += s }, env: { CAIRN_API: api.url } })
    return { code, out, err }
  }

  before(async () => {
    dir = (await tempDir('cairn-cli-')).path
    await mkdir(join(dir, 'tree', 'sub'), { recursive: true })
    await writeFile(join(dir, 'tree', 'a.txt'), 'a')
    await writeFile(join(dir, 'tree', 'sub', 'b.txt'), 'bb')

    const twoPeers = { peerA: { peername: 'one', status: 'pinned' }, peerB: { peername: 'two', status: 'pin_error', error: 'context deadline exceeded' } }
    api = await startFakeApi({
      'GET /id': (_req, res) => {
        sendJson(res, 200, {
          id: 'peerA',
          peername: 'one',
          addresses: ['/ip4/127.0.0.1/tcp/9096/p2p/peerA', '/ip4/10.0.0.1/tcp/9096/p2p/peerA'],
          cluster_peers: ['peerA', 'peerB'],
          cluster_peers_addresses: [],
          version: '0.1.0',
          commit: '',
          rpc_protocol_version: '/cairn/1.0',
          error: '',
          ipfs: { id: 'peerA', addresses: ['/ip4/127.0.0.1/tcp/4001'], error: '' }
        })
      },
      'GET /version': (_req, res) => { sendJson(res, 200, { version: '0.1.0' }) },
      'GET /peers': (_req, res) => {
        sendNdjson(res, [
          { id: 'peerA', peername: 'one', addresses: ['/ip4/127.0.0.1/tcp/9096'], cluster_peers: ['peerA', 'peerB', 'peerC'], error: '', ipfs: { id: '', addresses: [], error: '' }, trust: 'trusted' },
          { id: 'peerC', peername: '', addresses: [], cluster_peers: [], error: 'context deadline exceeded', ipfs: { id: '', addresses: [], error: '' }, trust: 'failed', audits: { passed: 0, failed: 1, last: '2024-01-01T00:00:00.000Z', error: 'block bafyx is not held' } }
        ])
      },
      'GET /monitor/metrics': (_req, res) => { sendJson(res, 200, ['freespace', 'ping']) },
      'GET /monitor/metrics/freespace': (_req, res) => {
        const expire = (Date.now() + 25_000) * 1e6
        sendJson(res, 200, [
          { name: 'freespace', peer: 'peerA', value: '5368709120', expire, valid: true, weight: 5368709120, partitionable: false, received_at: 0 },
          { name: 'freespace', peer: 'peerB', value: '0', expire, valid: true, weight: 0, partitionable: false, received_at: 0 }
        ])
      },
      'GET /monitor/metrics/tag%3Agroup': (_req, res) => { sendJson(res, 200, []) },
      'GET /health/alerts': (_req, res) => {
        const now = Date.now()
        sendJson(res, 200, [{
        // 20.5 s ago: nanoseconds past 2^53 lose ~256 ns to the float, which made an exact 20 s print as 19
          name: 'ping', peer: 'peerC', value: '{}', expire: (now - 20_500) * 1e6, valid: false, weight: 0, partitionable: false, received_at: 0,
          triggered_at: new Date(now - 3 * 3600_000).toISOString()
        }])
      },
      [`POST /pins/ipfs/${LOST}`]: (_req, res) => { sendJson(res, 200, samplePin(LOST)) },
      [`GET /pins/${LOST}`]: (_req, res) => {
        sendJson(res, 200, sampleStatus(LOST, {
          peerA: { peername: 'one', status: 'pinned' },
          peerC: { peername: 'three', status: 'cluster_error', error: 'peer lost since 2024-05-06T09:00:00.000Z' },
          peerD: { peername: 'four', status: 'remote' }
        }))
      },
      [`GET /pins/${CID}`]: (_req, res) => { sendJson(res, 200, sampleStatus(CID, twoPeers)) },
      'GET /pins': (_req, res, url) => {
        const cids = url.searchParams.get('cids')?.split(',') ?? [CID, 'bafyother']
        sendNdjson(res, cids.map(c => sampleStatus(c, { peerA: { peername: 'one', status: 'pinned' } }, '')))
      },
      [`POST /pins/ipfs/${CID}`]: (_req, res) => {
        sendJson(res, 200, samplePin(CID, { replication_factor_min: 2, replication_factor_max: 2, allocations: ['peerB', 'peerA'], mode: 'direct', max_depth: 0, metadata: { a: '1' } }))
      },
      'POST /pins/ipfs/not-a-cid': (_req, res) => { sendJson(res, 400, { code: 400, message: 'error decoding Cid: selected encoding not supported' }) },
      [`POST /pins/ipfs/${SLOW}`]: (_req, res) => { slowPolls = 0; sendJson(res, 200, samplePin(SLOW, { allocations: ['peerA', 'peerB'] })) },
      [`GET /pins/${SLOW}`]: (_req, res) => {
        slowPolls++
        sendJson(res, 200, sampleStatus(SLOW, {
          peerA: { peername: 'one', status: 'pinned' },
          peerB: { peername: 'two', status: slowPolls > 1 ? 'pinned' : 'pinning' },
          peerC: { peername: 'three', status: 'remote' }
        }))
      },
      [`POST /pins/ipfs/${FAIL}`]: (_req, res) => { sendJson(res, 200, samplePin(FAIL)) },
      [`GET /pins/${FAIL}`]: (_req, res) => { sendJson(res, 200, sampleStatus(FAIL, twoPeers)) },
      'GET /allocations': (_req, res) => {
        sendNdjson(res, [samplePin(CID), samplePin('bafyother', { name: 'x', expire_at: '2030-01-02T03:04:05Z', metadata: { k: 'v' } })])
      },
      'POST /pins/recover': (_req, res) => { sendNdjson(res, [sampleStatus(FAIL, { peerB: { peername: 'two', status: 'pin_queued' } })]) },
      [`DELETE /pins/${FAIL}`]: (_req, res) => { sendJson(res, 200, samplePin(FAIL)) },
      'POST /ipfs/gc': (req, res) => {
        const one = { peer: 'peerA', peername: 'one', keys: [{ key: 'bafkqaaa' }, { key: 'bafkqaab' }] }
        sendJson(res, 200, { peer_map: new URL(req.url ?? '/', 'http://x').searchParams.get('local') === 'true' ? { peerA: one } : { peerA: one, peerB: { peer: 'peerB', peername: 'two', keys: [], error: 'this peer is a follower: its repo GC runs only from its own API' } } })
      },
      'POST /add': async (req, res) => {
        const parts = await readMultipart(req)
        sendNdjson(res, parts.map((p, i) => ({ name: decodeURIComponent(p.filename), cid: `bafk${i}`, size: p.content.length })))
      }
    })
  })

  after(async () => {
    await api.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('prints status in ipfs-cluster-ctl format, errors appended', async () => {
    const { code, out } = await cairn('status', CID)
    assert.equal(code, 0)
    assert.equal(out, [
      `${CID} | site:`,
      `    > one                  : PINNED | ${TS} | Attempts: 0 | Priority: false`,
      `    > two                  : PIN_ERROR: context deadline exceeded | ${TS} | Attempts: 0 | Priority: false`,
      ''
    ].join('\n'))
  })

  it('prints NDJSON for lists and one JSON document for single objects with --json', async () => {
    const status = await cairn('--json', 'status')
    const lines = status.out.trim().split('\n')
    assert.deepEqual(lines.map(l => (JSON.parse(l) as { cid: string }).cid), [CID, 'bafyother'])
    const id = await cairn('id', '--json')
    assert.equal((JSON.parse(id.out) as { peername: string }).peername, 'one')
    assert.deepEqual(JSON.parse((await cairn('--json', 'version')).out), { version: '0.1.0' })
  })

  it('asks for several CIDs in one request', async () => {
    const { out } = await cairn('status', CID, 'bafyother', '--local')
    assert.deepEqual(out.split('\n').filter(l => !l.startsWith(' ') && l !== ''), [`${CID}:`, 'bafyother:'])
    assert.equal(api.requests.at(-1)?.query.get('cids'), `${CID},bafyother`)
    assert.equal(api.requests.at(-1)?.query.get('local'), 'true')
  })

  it('lists peers like ipfs-cluster-ctl', async () => {
    const { out } = await cairn('peers', 'ls')
    assert.equal(out, [
      'peerA | one | Sees 2 other peers | Trust: trusted',
      '  > Addresses:',
      '    - /ip4/127.0.0.1/tcp/9096',
      'peerC | ERROR: context deadline exceeded | Trust: failed (block bafyx is not held)',
      ''
    ].join('\n'))
    const id = await cairn('id')
    assert.match(id.out, /^peerA \| one \| Sees 1 other peer\n {2}> Addresses:\n {4}- \/ip4\/10\.0\.0\.1.*\n {4}- \/ip4\/127\.0\.0\.1.*\n {2}> IPFS: peerA\n/)
  })

  it('pins with the given options and prints the status', async () => {
    const before = Date.now()
    const { code, out } = await cairn('pin', 'add', CID, '--name', 'debian', '-r', '2', '--allocations', 'peerA, peerB',
      '--metadata', 'a=1', '--metadata', 'url=http://x/?q=1', '--expire-in', '1h', '--mode', 'direct',
      '--origins', '/ip4/1.2.3.4/tcp/4001/p2p/peerC')
    assert.equal(code, 0)
    const q = api.requests.find(r => r.method === 'POST')?.query
    assert.ok(q != null)
    assert.equal(q.get('name'), 'debian')
    assert.equal(q.get('replication-min'), '2')
    assert.equal(q.get('replication-max'), '2')
    assert.equal(q.get('user-allocations'), 'peerA,peerB')
    assert.equal(q.get('meta-a'), '1')
    assert.equal(q.get('meta-url'), 'http://x/?q=1')
    assert.equal(q.get('mode'), 'direct')
    assert.equal(q.get('origins'), '/ip4/1.2.3.4/tcp/4001/p2p/peerC')
    const expires = Date.parse(q.get('expire-at') ?? '')
    assert.ok(expires >= before + 3_600_000 && expires <= Date.now() + 3_600_000, 'expire-at is now + 1h')
    assert.match(out, new RegExp(`^${CID} \\| site:\\n {4}> one`))
  })

  it('prints the pin itself with --no-status, and the pinset with pin ls', async () => {
    const { out } = await cairn('pin', 'add', CID, '--no-status')
    assert.equal(out, `${CID} | site | PIN-DIRECT | Repl. Factor: 2--2 | Allocations: [peerA peerB] | Direct | Metadata: yes | Exp: ∞ | Added: 2024-05-06 10:00:00\n`)
    const ls = await cairn('pin', 'ls', '--filter', 'pin,meta-pin')
    assert.equal(ls.out, [
      `${CID} | site | PIN | Repl. Factor: -1 | Allocations: [everywhere] | Recursive | Metadata: no | Exp: ∞ | Added: 2024-05-06 10:00:00`,
      'bafyother | x | PIN | Repl. Factor: -1 | Allocations: [everywhere] | Recursive | Metadata: yes | Exp: 2030-01-02 03:04:05 | Added: 2024-05-06 10:00:00',
      ''
    ].join('\n'))
    assert.equal(api.requests.at(-1)?.query.get('filter'), 'pin,meta-pin')
  })

  it('--wait polls until every allocated peer has pinned', { timeout: 10_000 }, async () => {
    const { code, out, err } = await cairn('pin', 'add', SLOW, '--wait', '--wait-timeout', '20s')
    assert.equal(code, 0, err)
    assert.equal(err, `waiting for ${SLOW}: 1/2 peers pinned\nwaiting for ${SLOW}: 2/2 peers pinned\n`)
    assert.match(out, /> two {18}: PINNED/)
    assert.equal(slowPolls, 2)
  })

  it('--wait on a pin everywhere does not wait for a lost peer', { timeout: 10_000 }, async () => {
    const { code, out, err } = await cairn('pin', 'add', LOST, '--wait', '--wait-timeout', '5s')
    assert.equal(code, 0, err)
    assert.equal(err, `waiting for ${LOST}: 1/1 peers pinned\n`)
    assert.match(out, /> three {16}: CLUSTER_ERROR: peer lost since 2024-05-06T09:00:00\.000Z \|/)
  })

  it('prints health alerts and a metric per peer as ipfs-cluster-ctl does, or NDJSON', async () => {
    assert.equal((await cairn('health', 'alerts')).out, 'peerC: ping. Expired at: 20 seconds ago. Triggered at: 3 hours ago\n')
    const alerts = (await cairn('health', 'alerts', '--json')).out.trim().split('\n').map(l => JSON.parse(l))
    assert.deepEqual(alerts.map(a => [a.peer, a.name]), [['peerC', 'ping']])
    const free = await cairn('health', 'metrics', 'freespace')
    assert.equal(free.code, 0, free.err)
    assert.match(free.out, /^peerA \| freespace: 5\.0 GiB \| Weight: 5368709120 \| Expires in: 2\d seconds from now\npeerB \| freespace: 0 \| Weight: 0 \| Expires in: 2\d seconds from now\n$/)
    assert.equal(api.requests.at(-1)?.path, '/monitor/metrics/freespace')
    const json = (await cairn('health', 'metrics', 'freespace', '--json')).out.trim().split('\n').map(l => JSON.parse(l))
    assert.deepEqual(json.map(m => [m.peer, m.weight]), [['peerA', 5368709120], ['peerB', 0]])
    // a name no peer publishes: nothing on stdout, a note on stderr; a name with a colon goes in the path as it is
    const none = await cairn('health', 'metrics', 'tag:group')
    assert.deepEqual([none.code, none.out], [0, ''])
    assert.match(none.err, /no peer has a live "tag:group" metric/)
    assert.equal(api.requests.at(-1)?.path, '/monitor/metrics/tag%3Agroup')
  })

  it('--wait stops with exit 1 on pin_error', async () => {
    const { code, err } = await cairn('pin', 'add', FAIL, '--wait')
    assert.equal(code, 1)
    assert.match(err, new RegExp(`error: two could not pin ${FAIL}: context deadline exceeded\\n$`))
  })

  it('passes the server error message through, with exit 1 and no stack trace', async () => {
    const { code, out, err } = await cairn('pin', 'add', 'not-a-cid')
    assert.equal(code, 1)
    assert.equal(out, '')
    assert.equal(err, 'error: error decoding Cid: selected encoding not supported\n')
    const debug = await cairn('--debug', 'pin', 'add', 'not-a-cid')
    assert.match(debug.err, /^debug: POST http:\/\/127\.0\.0\.1:\d+\/pins\/ipfs\/not-a-cid -> 400/)
    assert.match(debug.err, /\n {4}at /, '--debug prints the stack')
  })

  it('runs a repo GC: counts per peer, the CIDs with --keys, exit 1 when a peer failed', async () => {
    const local = await cairn('ipfs', 'gc', '--local', '--keys')
    assert.equal(local.code, 0)
    assert.equal(local.out, 'one (peerA): 2 blocks deleted\n  bafkqaaa\n  bafkqaab\n')
    const all = await cairn('ipfs', 'gc')
    assert.equal(all.code, 1)
    assert.equal(all.out, 'one (peerA): 2 blocks deleted\ntwo (peerB): error: this peer is a follower: its repo GC runs only from its own API\n')
    assert.equal(all.err, 'error: repo GC failed on 1 of 2 peers\n')
    const json = await cairn('--json', 'ipfs', 'gc', '--local')
    assert.deepEqual(JSON.parse(json.out).peer_map.peerA.keys, [{ key: 'bafkqaaa' }, { key: 'bafkqaab' }])
  })

  it('recovers everything and unpins, printing statuses', async () => {
    const recover = await cairn('recover', '--local')
    assert.equal(recover.out, `${FAIL} | site:\n    > two                  : PIN_QUEUED | ${TS} | Attempts: 0 | Priority: false\n`)
    assert.equal(api.requests.at(-1)?.query.get('local'), 'true')
    const rm = await cairn('pin', 'rm', FAIL)
    assert.equal(rm.code, 0)
    assert.deepEqual(api.requests.slice(-2).map(r => `${r.method} ${r.path}`), [`DELETE /pins/${FAIL}`, `GET /pins/${FAIL}`])
    assert.match(rm.out, new RegExp(`^${FAIL} \\| site:\\n`))
  })

  it('says when the daemon cannot be reached', async () => {
    const port = await freePort()
    const { code, err } = await cairn('--api', `/ip4/127.0.0.1/tcp/${port}`, 'id')
    assert.equal(code, 1)
    assert.equal(err, `error: cannot reach the cairn API at http://127.0.0.1:${port}: connect ECONNREFUSED (is the daemon running?)\n`)
  })

  it('refuses a directory without -r', async () => {
    const before = api.requests.length
    const { code, err } = await cairn('add', join(dir, 'tree'))
    assert.equal(code, 1)
    assert.equal(err, `error: ${join(dir, 'tree')} is a directory: add it recursively (-r)\n`)
    assert.equal(api.requests.length, before)
  })

  it('adds a tree and prints ipfs-cluster-ctl lines, CIDs only, or NDJSON', async () => {
    const tree = join(dir, 'tree')
    const { code, out } = await cairn('add', '-r', tree, '--name', 'tree', '--cid-version', '1', '--upload', 'files')
    assert.equal(code, 0)
    assert.equal(out, 'added bafk0 tree\nadded bafk1 tree/a.txt\nadded bafk2 tree/sub\nadded bafk3 tree/sub/b.txt\n')
    assert.equal(api.requests.at(-1)?.query.get('cid-version'), '1')
    assert.equal((await cairn('add', '-r', '-q', tree, '--upload', 'files')).out, 'bafk0\nbafk1\nbafk2\nbafk3\n')
    assert.equal((await cairn('add', '-rQ', tree, '--upload', 'files')).out, 'bafk3\n')
    const json = await cairn('--json', 'add', '-r', tree, '--upload', 'files')
    assert.deepEqual(json.out.trim().split('\n').map(l => (JSON.parse(l) as { name: string }).name), ['tree', 'tree/a.txt', 'tree/sub', 'tree/sub/b.txt'])
    await cairn('add', join(tree, 'a.txt'), join(tree, 'sub', 'b.txt'), '--upload', 'files')
    assert.equal(api.requests.at(-1)?.query.get('wrap-with-directory'), 'true', 'several paths are wrapped')
    // by default the DAG is built here, its blocks sent as a CAR, then its root pinned (a route this fake lacks)
    await cairn('add', '-r', tree, '--name', 'tree')
    const [upload, pin] = api.requests.slice(-2)
    assert.deepEqual([upload.method, upload.path, upload.query.get('format'), upload.query.get('no-pin')], ['POST', '/add', 'car', 'true'])
    assert.match(pin.path, /^\/pins\/ipfs\/Qm\w{44}$/)
    assert.equal(pin.query.get('name'), 'tree')
  })

  it('adds symlinks as links; --dereference-symlinks follows them and refuses a dangling one before sending anything', async () => {
    const links = join(dir, 'links')
    await mkdir(join(links, 'sub'), { recursive: true })
    await writeFile(join(links, 'sub', 'f'), 'f')
    await symlink('sub', join(links, 'to-sub'))
    await symlink('gone', join(links, 'dangling'))
    const stored = await cairn('add', '-r', links, '--upload', 'files')
    assert.equal(stored.code, 0, stored.err)
    assert.equal(stored.out, 'added bafk0 links\nadded bafk1 links/dangling\nadded bafk2 links/sub\nadded bafk3 links/sub/f\nadded bafk4 links/to-sub\n')
    const before = api.requests.length
    const refused = await cairn('add', '-r', links, '--dereference-symlinks')
    assert.equal(refused.code, 1)
    assert.equal(refused.err, `error: cannot follow the symlink ${join(links, 'dangling')}: it points to "gone", which does not exist\n`)
    assert.equal(api.requests.length, before)
    await rm(join(links, 'dangling'))
    const followed = await cairn('add', '-r', links, '--dereference-symlinks', '--upload', 'files')
    assert.equal(followed.out, 'added bafk0 links\nadded bafk1 links/sub\nadded bafk2 links/sub/f\nadded bafk3 links/to-sub\nadded bafk4 links/to-sub/f\n')
    const args = await cairn('add', '-r', join(links, 'to-sub'), '--dereference-args', '--upload', 'files')
    assert.equal(args.out, 'added bafk0 sub\nadded bafk1 sub/f\n', 'a followed path is named after its target, as Kubo names it')
    const help = (await cairn('add', '--help')).out.replace(/\s+/g, ' ')
    assert.match(help, /--dereference-symlinks follow symlinks \(given paths and inside directories\)/)
  })

  it('lists metric names', async () => {
    assert.equal((await cairn('health', 'metrics')).out, 'freespace\nping\n')
    assert.equal((await cairn('health', 'metrics', '--json')).out, '"freespace"\n"ping"\n')
  })

  it('initialises a peer through the config module', async () => {
    const path = join(dir, 'peer')
    const first = await cairn('--json', 'init', '--path', path, '--peername', 'alpha', '--rest-listen', '127.0.0.1:9194')
    assert.equal(first.code, 0, first.err)
    const made = JSON.parse(first.out) as { id: string, path: string }
    assert.equal(made.path, path)
    assert.match(made.id, /^12D3KooW/)
    const again = await cairn('init', '--path', path)
    assert.equal(again.code, 1, 'an existing peer is not overwritten without --force')
    assert.match(again.err, /^error: /)
    const forced = await cairn('init', '--path', path, '--force')
    assert.match(forced.out, new RegExp(`^initialized peer 12D3KooW\\w+ in ${path}\\n$`))
    assert.notEqual(forced.out.split(' ')[2], made.id, '--force makes a new identity')
  })

  it('init takes a flag for every listener and writes it to peer.json', async () => {
    const path = join(dir, 'peer-ports')
    const run = await cairn('init', '--path', path, '--swarm-listen', '/ip4/127.0.0.1/tcp/9396', '--rest-listen', '127.0.0.1:9394',
      '--pinsvc-listen', '127.0.0.1:9397', '--gateway-listen', '127.0.0.1:8380', '--metrics-listen', '127.0.0.1:9188')
    assert.equal(run.code, 0, run.err)
    const peer = JSON.parse(await readFile(join(path, 'peer.json'), 'utf8'))
    assert.deepEqual([peer.swarm.listen, peer.rest.listen, peer.pinsvc.listen, peer.gateway.listen, peer.metrics.listen],
      [['/ip4/127.0.0.1/tcp/9396'], '127.0.0.1:9394', '127.0.0.1:9397', '127.0.0.1:8380', '127.0.0.1:9188'])
    const bad = await cairn('init', '--path', join(dir, 'peer-bad'), '--pinsvc-listen', 'localhost')
    assert.equal(bad.code, 1)
    assert.match(bad.err, /peer\.json: pinsvc\.listen: expected host:port, got "localhost"/)
  })

  it('shows in --help the listener defaults the config really uses', async () => {
    // commander wraps the help to the terminal's width
    const help = async (...args: string[]): Promise<string> => (await cairn(...args, '--help')).out.replace(/\s+/g, ' ')
    const peer = await help('init')
    for (const value of [...DEFAULT_SWARM_LISTEN, DEFAULT_REST_LISTEN, DEFAULT_PINSVC_LISTEN, DEFAULT_GATEWAY_LISTEN, DEFAULT_METRICS_LISTEN]) {
      assert.ok(peer.includes(`(default: ${value})`), `init --help lacks ${value}`)
    }
    const follower = await help('follow', 'init')
    const first = followerListen(0)
    for (const value of [...first.swarm_listen, first.rest_listen, first.pinsvc_listen, first.gateway_listen, first.metrics_listen]) {
      assert.ok(follower.includes(`(default: ${value}, +${FOLLOWER_PORT_STEP} for each other follower)`), `follow init --help lacks ${value}`)
    }
  })

  it('exits 2 on usage errors', async () => {
    for (const args of [['pin', 'add'], ['pin', 'add', CID, '--replication', 'two'], ['status', CID, '--filter', 'error'],
      ['--bogus'], ['pin'], ['pin', 'add', CID, '--mode', 'sideways'], ['pin', 'add', CID, '--metadata', 'novalue'],
      ['pin', 'add', CID, '--wait-timeout', 'soon'], ['add', '--format', 'car', 'a.car', 'b.car']]) {
      const { code, err } = await cairn(...args)
      assert.equal(code, 2, `cairn ${args.join(' ')}: ${err}`)
      assert.notEqual(err, '', `cairn ${args.join(' ')} says why`)
    }
    assert.equal((await cairn('--help')).code, 0)
  })

  it('status --help lists the filter values; a status it does not know is a usage error naming it', async () => {
    const help = await cairn('status', '--help')
    assert.equal(help.code, 0)
    const text = help.out.replace(/\s+/g, ' ')
    for (const name of ['error', 'queued', 'pin_queued', 'pinning', 'pinned', 'pin_error', 'unpin_queued', 'unpinning', 'unpinned', 'unpin_error',
      'remote', 'sharded', 'unexpectedly_unpinned', 'cluster_error']) assert.match(text, new RegExp(`[:,] ${name}[,) ]`), name)
    assert.match(text, /\(error: cluster_error, pin_error, unpin_error; queued: pin_queued, unpin_queued\)/)
    const before = api.requests.length
    const typo = await cairn('status', '--filter', 'pinned,pinnned')
    assert.equal(typo.code, 2)
    assert.match(typo.err, /"pinnned" is not a status: give one of error, queued, pin_queued, /)
    assert.equal(api.requests.length, before, 'nothing was sent')
    const ok = await cairn('status', '--filter', 'pinned,error')
    assert.equal(ok.code, 0)
    assert.equal(api.requests.at(-1)?.query.get('filter'), 'pinned,error')
  })

  it('refuses durations no date or timer can hold, naming them, instead of failing or timing out at once', async () => {
    const before = api.requests.length
    const expire = await cairn('pin', 'add', CID, '--expire-in', '99999999999h')
    assert.equal(expire.code, 2)
    assert.match(expire.err, /^error: option '--expire-in <duration>' argument '99999999999h' is invalid\. "99999999999h" is too long: the expiry would be past year 275760\./)
    const timeout = await cairn('--timeout', '600h', 'id')
    assert.equal(timeout.code, 2)
    assert.match(timeout.err, /"600h" is longer than the longest timeout, 596h\./)
    const wait = await cairn('pin', 'add', CID, '-w', '--wait-timeout', '30d')
    assert.equal(wait.code, 2, 'not a duration at all')
    const waitLong = await cairn('pin', 'add', CID, '-w', '--wait-timeout', '9999h')
    assert.match(waitLong.err, /"9999h" is longer than the longest timeout/)
    assert.equal(api.requests.length, before, 'nothing was sent')
    assert.equal((await cairn('--timeout', '596h', 'id')).code, 0, 'the longest timeout still works')
  })
})
