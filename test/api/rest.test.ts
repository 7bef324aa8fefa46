import assert from 'node:assert/strict'
import { request } from 'node:http'
import { connect } from 'node:net'
import { after, before, beforeEach, describe, it } from 'node:test'
import { base64 as base64Base } from 'multiformats/bases/base64'
import { CID } from 'multiformats/cid'
import { listen } from '../../src/api/common.js'
import { createRestApi, createRestApp } from '../../src/api/rest/index.js'
import { VERSION } from '../../src/version.js'
import { FakeCluster, PEER } from './fake-cluster.js'
import { sleep, waitFor } from '../util.js'
import type { Listener } from '../../src/api/common.js'

const V0 = 'QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG'
const V1 = CID.parse(V0).toV1().toString()
const OTHER = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

interface RawResponse { status: number, headers: Record<string, string | string[] | undefined>, body: string, trailers: Record<string, string | undefined> }

/** node:http rather than fetch where trailers matter (fetch does not expose them). */
async function raw (base: string, path: string, init: { method?: string, headers?: Record<string, string>, body?: string | Buffer } = {}): Promise<RawResponse> {
  return await new Promise((resolve, reject) => {
    const req = request(base + path, { method: init.method ?? 'GET', headers: init.headers }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), trailers: res.trailers }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(init.body)
  })
}

const ndjson = (body: string): any[] => body.split('\n').filter(l => l !== '').map(l => JSON.parse(l))

interface Part { path: string, dir?: boolean, content?: string | Buffer, extraHeaders?: string[], rawDisposition?: string, type?: string }

/** A Kubo-style add body: one part per file or directory, url-escaped relative paths as filenames. */
function kuboBody (parts: Part[], boundary = 'kubo-boundary-1234'): { body: Buffer, contentType: string } {
  const chunks: Buffer[] = []
  for (const p of parts) {
    const disposition = p.rawDisposition ?? `form-data; name="file"; filename="${encodeURIComponent(p.path)}"`
    const headers = [`Content-Disposition: ${disposition}`, `Content-Type: ${p.type ?? (p.dir === true ? 'application/x-directory' : 'application/octet-stream')}`, ...(p.extraHeaders ?? [])]
    chunks.push(Buffer.from(`--${boundary}\r\n${headers.join('\r\n')}\r\n\r\n`))
    if (p.content !== undefined) chunks.push(Buffer.from(p.content))
    chunks.push(Buffer.from('\r\n'))
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` }
}

const TREE: Part[] = [
  { path: 'dir', dir: true },
  { path: 'dir/sub', dir: true },
  { path: 'dir/sub/a.txt', content: 'hello a', extraHeaders: ['Abspath: /home/me/dir/sub/a.txt'] },
  { path: 'dir/b c.txt', content: 'hello b' }
]

describe('REST API', () => {
  const cluster = new FakeCluster()
  let server: Listener
  let base: string
  const get = async (path: string, init?: RequestInit): Promise<Response> => await fetch(base + path, { redirect: 'manual', ...init })
  const json = async (res: Response): Promise<any> => await res.json()

  before(async () => {
    server = await listen(createRestApp({}, { cluster }), '127.0.0.1', 0)
    base = `http://127.0.0.1:${server.address.port}`
  })
  after(async () => { await server.close() })
  beforeEach(() => {
    cluster.pins.clear()
    cluster.calls = []
    cluster.writable = true
    cluster.addFailure = undefined
  })

  describe('plain routes', () => {
    it('GET /id answers the peer ID as JSON', async () => {
      const res = await get('/id')
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('content-type'), 'application/json')
      const body = await json(res)
      assert.equal(body.id, PEER)
      assert.equal(body.rpc_protocol_version, '/ipfscluster/1.0/rpc')
    })

    it('GET /version answers cairn\'s version', async () => {
      assert.deepEqual(await json(await get('/version')), { version: VERSION })
    })

    it('GET /monitor/metrics answers the metric names', async () => {
      assert.deepEqual(await json(await get('/monitor/metrics')), ['ping', 'freespace'])
    })

    it('GET /health is 204 with no body', async () => {
      const res = await get('/health')
      assert.equal(res.status, 204)
      assert.equal(await res.text(), '')
    })

    it('POST /token is 401 when no credentials are configured', async () => {
      const res = await get('/token', { method: 'POST' })
      assert.equal(res.status, 401)
      assert.deepEqual(await json(res), { code: 401, message: 'unauthorized' })
    })

    it('unknown routes are 404 {code, message}', async () => {
      const res = await get('/nope')
      assert.equal(res.status, 404)
      assert.equal(res.headers.get('content-type'), 'application/json')
      assert.deepEqual(await json(res), { code: 404, message: 'not found' })
    })

    it('a trailing slash is a 307 to the path without it, query kept', async () => {
      const res = await get('/pins/?local=true', { method: 'POST' })
      assert.equal(res.status, 307)
      assert.equal(res.headers.get('location'), '/pins?local=true')
      const evil = await get('//evil.example/')
      assert.equal(evil.status, 307)
      assert.equal(evil.headers.get('location'), '/evil.example')
    })
  })

  describe('streaming (NDJSON)', () => {
    it('GET /peers streams one ID per line with an empty X-Stream-Error trailer', async () => {
      const res = await raw(base, '/peers')
      assert.equal(res.status, 200)
      assert.equal(res.headers['content-type'], 'application/json')
      assert.equal(res.headers.trailer, 'X-Stream-Error')
      const lines = ndjson(res.body)
      assert.equal(lines.length, 2)
      assert.equal(lines[0].id, PEER)
      assert.equal(res.trailers['x-stream-error'], '')
    })

    it('GET /pins is 204 with no body when nothing matches', async () => {
      const res = await raw(base, '/pins')
      assert.equal(res.status, 204)
      assert.equal(res.body, '')
    })

    it('GET /pins streams every GlobalPinInfo', async () => {
      await cluster.pin(CID.parse(V1), {})
      await cluster.pin(CID.parse(OTHER), {})
      const res = await raw(base, '/pins')
      assert.equal(res.status, 200)
      assert.deepEqual(ndjson(res.body).map(l => l.cid), [V1, OTHER])
      assert.equal(ndjson(res.body)[0].peer_map[PEER].status, 'pinned')
    })

    it('an error after the first item goes in the X-Stream-Error trailer', async () => {
      await cluster.pin(CID.parse(V1), {})
      await cluster.pin(CID.parse(OTHER), {})
      cluster.streamFailure = { after: 1, error: new Error('peer exploded') }
      const res = await raw(base, '/pins')
      assert.equal(res.status, 200)
      assert.equal(ndjson(res.body).length, 1)
      assert.equal(res.trailers['x-stream-error'], 'peer exploded')
    })

    it('an error before the first item is a 500 with a JSON body', async () => {
      cluster.streamFailure = { after: 0, error: new Error('no state') }
      const res = await raw(base, '/peers')
      assert.equal(res.status, 500)
      assert.deepEqual(JSON.parse(res.body), { code: 500, message: 'no state' })
    })

    it('HEAD and HTTP/1.0 requests on a stream get no trailer (Node would throw) and the server lives', async () => {
      await cluster.pin(CID.parse(V1), {})
      assert.equal((await raw(base, '/pins', { method: 'HEAD' })).status, 200)
      const old = await new Promise<{ status: number, body: string }>((resolve, reject) => {
        const socket = connect(server.address.port, '127.0.0.1', () => { socket.end('GET /pins HTTP/1.0\r\n\r\n') })
        let text = ''
        socket.on('data', d => { text += d.toString() }).on('end', () => {
          resolve({ status: Number(text.split(' ')[1]), body: text.split('\r\n\r\n')[1] })
        }).on('error', reject)
      })
      assert.equal(old.status, 200)
      assert.equal(ndjson(old.body)[0].cid, V1)
      assert.equal((await get('/version')).status, 200)
    })

    it('a client that goes away stops the producer', async () => {
      cluster.endless = true
      cluster.endlessStopped = false
      try {
        const controller = new AbortController()
        const res = await get('/pins', { signal: controller.signal })
        const reader = res.body!.getReader()
        await reader.read()
        controller.abort()
        await waitFor(() => cluster.endlessStopped, { timeoutMs: 5000, intervalMs: 10, message: 'the status generator to stop' })
      } finally {
        cluster.endless = false
      }
    })
  })

  describe('GET /pins filters', () => {
    it('passes the statuses of a filter list, composites expanded and unknown names ignored', async () => {
      await cluster.pin(CID.parse(V1), {})
      const res = await get('/pins?filter=error,%20queued,bogus&local=true')
      assert.equal(res.status, 200)
      await res.text()
      const [opts] = cluster.lastCall('statusAll') as [{ filter: Set<string>, local: boolean }]
      assert.deepEqual([...opts.filter].sort(), ['cluster_error', 'pin_error', 'pin_queued', 'unpin_error', 'unpin_queued'])
      assert.equal(opts.local, true)
    })

    it('a filter that resolves to nothing is a 400', async () => {
      const res = await get('/pins?filter=bogus,nothing')
      assert.equal(res.status, 400)
      assert.match((await json(res)).message, /^invalid filter value/)
    })

    it('cids are validated, passed on as given, and replace the filter', async () => {
      const res = await get(`/pins?cids=${V0},${OTHER}&filter=pinned`)
      assert.equal(res.status, 200)
      assert.deepEqual(ndjson(await res.text()).map(l => l.cid), [V0, OTHER])
      const [opts] = cluster.lastCall('statusAll') as [{ filter?: Set<string>, cids: string[] }]
      assert.equal(opts.filter, undefined)
    })

    it('an invalid CID in cids is a 400 naming it', async () => {
      const res = await get(`/pins?cids=${OTHER},notacid`)
      assert.equal(res.status, 400)
      assert.match((await json(res)).message, /invalid CID "notacid"/)
    })

    it('a bad local value is a 400 naming the parameter', async () => {
      const res = await get('/pins?local=maybe')
      assert.equal(res.status, 400)
      assert.equal((await json(res)).message, 'invalid value for "local": "maybe" is not a boolean')
    })
  })

  describe('pins', () => {
    it('POST /pins/{cid} pins the CID as given with the parsed options, ignoring unknown parameters', async () => {
      const q = 'name=site&mode=direct&replication-min=2&replication-max=3&meta-owner=me&meta-k=v&expire-in=1h' +
        `&user-allocations=${PEER}&origins=/ip4/1.2.3.4/tcp/4001/p2p/${PEER}&whatever=1`
      const res = await get(`/pins/${V0}?${q}`, { method: 'POST' })
      assert.equal(res.status, 200)
      const pin = await json(res)
      assert.equal(pin.cid, V0)
      assert.equal(pin.name, 'site')
      const [cid, opts] = cluster.lastCall('pin') as [string, any]
      assert.equal(cid, V0)
      assert.equal(opts.mode, 'direct')
      assert.equal(opts.replication_factor_min, 2)
      assert.equal(opts.replication_factor_max, 3)
      assert.deepEqual(opts.metadata, { owner: 'me', k: 'v' })
      assert.deepEqual(opts.user_allocations, [PEER])
      assert.deepEqual(opts.origins, [`/ip4/1.2.3.4/tcp/4001/p2p/${PEER}`])
      const inMs = Date.parse(opts.expire_at) - Date.now()
      assert.ok(inMs > 3_500_000 && inMs <= 3_600_000, `expire_at ${opts.expire_at as string}`)
    })

    it('POST /pins/ipfs/{cid} is the same pin; a sub-path is a 400', async () => {
      const res = await get(`/pins/ipfs/${OTHER}?replication=-1`, { method: 'POST' })
      assert.equal(res.status, 200)
      assert.equal((cluster.lastCall('pin') as [string, any])[1].replication_factor_max, -1)
      const sub = await get(`/pins/ipfs/${OTHER}/a/b`, { method: 'POST' })
      assert.equal(sub.status, 400)
      assert.match((await json(sub)).message, /paths are not supported/)
    })

    for (const [query, message] of [
      ['replication-min=abc', 'invalid value for "replication-min": "abc" is not an integer'],
      ['replication=1.5', 'invalid value for "replication": "1.5" is not an integer'],
      ['mode=shallow', 'invalid value for "mode": "shallow" must be "recursive" or "direct"'],
      ['expire-in=10ms', 'invalid value for "expire-in": "10ms" is shorter than 1s'],
      ['expire-in=tomorrow', 'invalid value for "expire-in": "tomorrow" is not a duration (e.g. 24h, 1h30m, 90s)'],
      ['expire-in=99999999999h', 'invalid value for "expire-in": "99999999999h" is too long (the expiry would be past year 275760)'],
      ['expire-at=2024-02-30T00:00:00Z', 'invalid value for "expire-at": "2024-02-30T00:00:00Z" is not an RFC3339 timestamp'],
      // validated here, at the edge: the cluster is never asked
      ['expire-at=2001-01-01T00:00:00Z', 'expire-at 2001-01-01T00:00:00.000Z is in the past'],
      ['user-allocations=bob', 'invalid value for "user-allocations": "bob" is not a valid peer ID'],
      ['origins=/ip4/1.2.3.4/tcp/4001', 'invalid value for "origins": "/ip4/1.2.3.4/tcp/4001" must include /p2p/<peer ID>'],
      ['shard-size=-1', 'invalid value for "shard-size": "-1" is not a non-negative integer'],
      ['meta-a=1&meta-__proto__=x', 'invalid value for "meta-__proto__": "x" is not allowed: "__proto__" cannot be a metadata key']
    ]) {
      it(`a bad option is a 400 naming it: ${query}`, async () => {
        const res = await get(`/pins/${OTHER}?${query}`, { method: 'POST' })
        assert.equal(res.status, 400)
        assert.deepEqual(await json(res), { code: 400, message })
        assert.equal(cluster.lastCall('pin'), undefined)
      })
    }

    it('an invalid CID in the path is a 400 naming it', async () => {
      const res = await get('/pins/bafyNOPE', { method: 'POST' })
      assert.equal(res.status, 400)
      assert.match((await json(res)).message, /^invalid CID "bafyNOPE": /)
    })

    for (const [bad, why] of [
      ['xyz', '"x" is not a multibase prefix: a CID is either a CIDv0 (46 base58btc characters starting "Qm") or a CIDv1 starting with its multibase prefix (most often "b", base32, as in "bafy...", or "k", base36)'],
      [V0.slice(0, 40), 'a CIDv0 is 46 base58btc characters starting "Qm", this one has 40'],
      [`${OTHER.slice(0, 10)}1${OTHER.slice(11)}`, '"1" (character 11) is not a base32 character (the base its prefix "b" names)']
    ]) {
      it(`an invalid CID says in words what is wrong with it: ${bad}`, async () => {
        const message = `invalid CID "${bad}": ${why}`
        for (const [method, path] of [['POST', `/pins/${bad}`], ['GET', `/pins/${bad}`], ['DELETE', `/pins/ipfs/${bad}`], ['GET', `/pins?cids=${bad}`]]) {
          const res = await get(path, { method })
          assert.equal(res.status, 400, `${method} ${path}`)
          assert.deepEqual(await json(res), { code: 400, message }, `${method} ${path}`)
        }
      })
    }

    it('DELETE /pins/{cid} returns the pin as it was; an unknown CID is 404 with IPFS Cluster\'s message', async () => {
      await cluster.pin(CID.parse(V1), { name: 'gone' })
      const res = await get(`/pins/${V0}`, { method: 'DELETE' })
      assert.equal(res.status, 200)
      assert.equal((await json(res)).name, 'gone')
      const again = await get(`/pins/ipfs/${V1}`, { method: 'DELETE' })
      assert.equal(again.status, 404)
      assert.deepEqual(await json(again), { code: 404, message: 'pin is not part of the pinset' })
    })

    it('GET /pins/{cid} answers a GlobalPinInfo, 200 even when not pinned', async () => {
      const res = await get(`/pins/${OTHER}?local=1`)
      assert.equal(res.status, 200)
      assert.equal((await json(res)).peer_map[PEER].status, 'unpinned')
      assert.deepEqual(cluster.lastCall('status'), [OTHER, { local: true }])
    })

    it('GET /pins/{cid} echoes the CID as IPFS Cluster does: CIDv0 as given, CIDv1 in base32', async () => {
      const v0 = await json(await get(`/pins/${V0}`))
      assert.equal(v0.cid, V0)
      assert.equal(v0.peer_map[PEER].status, 'unpinned')
      const base64 = CID.parse(V1).toString(base64Base)
      assert.equal((await json(await get(`/pins/${base64}`))).cid, V1)
    })

    it('POST /pins/recover streams what was re-queued and is never read as a CID', async () => {
      await cluster.pin(CID.parse(V1), {})
      const res = await raw(base, '/pins/recover?local=true', { method: 'POST' })
      assert.equal(res.status, 200)
      assert.deepEqual(ndjson(res.body).map(l => l.peer_map[PEER].status), ['pin_queued'])
      assert.deepEqual(cluster.lastCall('recoverAll'), [{ local: true }])
    })

    it('POST /pins/{cid}/recover answers one GlobalPinInfo', async () => {
      const res = await get(`/pins/${V0}/recover`, { method: 'POST' })
      assert.equal(res.status, 200)
      assert.equal((await json(res)).cid, V0)
    })

    it('POST /ipfs/gc answers a GlobalRepoGC, local=true passed on', async () => {
      const res = await get('/ipfs/gc?local=true', { method: 'POST' })
      assert.equal(res.status, 200)
      assert.deepEqual((await json(res)).peer_map[PEER].keys, [{ key: 'bafkqaaa' }])
      assert.deepEqual(cluster.lastCall('repoGC'), [{ local: true }])
      assert.equal((await get('/ipfs/gc?local=maybe', { method: 'POST' })).status, 400)
    })
  })

  describe('allocations', () => {
    it('GET /allocations streams the pinset, filtered by type', async () => {
      cluster.pins.set(V1, cluster.makePin(V1))
      cluster.pins.set(OTHER, cluster.makePin(OTHER, {}, 'meta-pin'))
      assert.equal(ndjson((await raw(base, '/allocations')).body).length, 2)
      const res = await raw(base, '/allocations?filter=meta-pin,bogus')
      assert.deepEqual(ndjson(res.body).map(p => p.cid), [OTHER])
      assert.equal((await raw(base, '/allocations?filter=bogus')).status, 400)
    })

    it('GET /allocations/{cid} answers the pin or 404', async () => {
      cluster.pins.set(V1, cluster.makePin(V1))
      assert.equal((await json(await get(`/allocations/${V0}`))).cid, V1)
      const res = await get(`/allocations/${OTHER}`)
      assert.equal(res.status, 404)
      assert.deepEqual(await json(res), { code: 404, message: 'pin is not part of the pinset' })
    })
  })

  describe('POST /add', () => {
    const expected = [
      { path: 'dir', content: undefined },
      { path: 'dir/sub', content: undefined },
      { path: 'dir/sub/a.txt', content: 'hello a' },
      { path: 'dir/b c.txt', content: 'hello b' }
    ]

    it('streams AddedOutput lines for a nested Kubo-style directory', async () => {
      const { body, contentType } = kuboBody(TREE)
      const res = await raw(base, '/add?cid-version=1&chunker=size-1024&wrap-with-directory=true&name=tree&hidden=true', {
        method: 'POST', headers: { 'content-type': contentType }, body
      })
      assert.equal(res.status, 200)
      assert.equal(res.headers['x-chunked-output'], '1')
      assert.equal(res.headers['content-type'], 'application/json')
      assert.deepEqual(cluster.added, expected)
      assert.deepEqual(ndjson(res.body).map(l => l.name), expected.map(e => e.path))
      assert.equal(res.trailers['x-stream-error'], '')
      const [params] = cluster.lastCall('add') as [any]
      assert.equal(params.cid_version, 1)
      assert.equal(params.raw_leaves, true)
      assert.equal(params.chunk_size, 1024)
      assert.equal(params.wrap_with_directory, true)
      assert.equal(params.name, 'tree')
    })

    it('stream-channels=false answers one JSON array', async () => {
      const { body, contentType } = kuboBody(TREE)
      const res = await get('/add?stream-channels=false', { method: 'POST', headers: { 'content-type': contentType }, body })
      assert.equal(res.status, 200)
      const out = await json(res)
      assert.ok(Array.isArray(out))
      assert.deepEqual(out.map((o: any) => o.name), expected.map(e => e.path))
    })

    it('stream-channels=false turns an add error into its status and {code, message}', async () => {
      cluster.writable = false
      const { body, contentType } = kuboBody(TREE)
      const res = await get('/add?stream-channels=false', { method: 'POST', headers: { 'content-type': contentType }, body })
      assert.equal(res.status, 403)
      assert.deepEqual(await json(res), { code: 403, message: 'follower mode: write operations are disabled' })
    })

    it('an error half-way through a streaming add goes in the trailer', async () => {
      cluster.addFailure = { afterEntries: 2, error: new Error('disk full') }
      const { body, contentType } = kuboBody(TREE)
      const res = await raw(base, '/add', { method: 'POST', headers: { 'content-type': contentType }, body })
      assert.equal(res.status, 200)
      assert.equal(ndjson(res.body).length, 2)
      assert.equal(res.trailers['x-stream-error'], 'disk full')
    })

    it('accepts the filename* form and reads a large file through', async () => {
      const big = Buffer.alloc(3 * 1024 * 1024, 'x')
      const { body, contentType } = kuboBody([
        { path: '', rawDisposition: 'form-data; name="file"; filename*=utf-8\'\'caf%C3%A9.txt', content: 'coffee' },
        { path: 'big.bin', content: big }
      ])
      const res = await raw(base, '/add', { method: 'POST', headers: { 'content-type': contentType }, body })
      assert.equal(res.status, 200)
      assert.equal(cluster.added[0].path, 'café.txt')
      assert.equal(cluster.added[1].content?.length, big.length)
    })

    it('reads a part\'s filename whatever its disposition type (file, attachment), as Kubo and IPFS Cluster do', async () => {
      // by hand, as an older go-ipfs-files client (ipfs-cluster-ctl before boxo) wrote it: `file; filename=...`,
      // and as Kubo's RPC client writes it (`attachment`), with a preamble, transport padding after a boundary,
      // a folded header, a quoted boundary and no Content-Type on one file
      const body = [
        'a preamble, ignored',
        '--old-client \t',
        'Content-Disposition: file; filename="dir"',
        'Content-Type: application/x-directory',
        '',
        '',
        '--old-client',
        'Content-Disposition: file; filename="dir%2Fa.txt"',
        'Content-Type: application/octet-stream',
        '',
        'hello a',
        '--old-client',
        'Content-Disposition: attachment;',
        ' filename="dir%2Fb+c.txt"',
        '',
        'hello b\r\n--old-clientX is not a boundary',
        '--old-client',
        'Content-Disposition: FILE; filename*=UTF-8\'\'dir%2Fcaf%C3%A9.txt; filename="ignored.txt"',
        'Content-Type: text/plain; charset=utf-8',
        '',
        'coffee',
        '--old-client--',
        'an epilogue, ignored'
      ].join('\r\n')
      const res = await raw(base, '/add', { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary="old-client"' }, body })
      assert.equal(res.status, 200, res.body)
      assert.deepEqual(cluster.added, [
        { path: 'dir', content: undefined },
        { path: 'dir/a.txt', content: 'hello a' },
        { path: 'dir/b c.txt', content: 'hello b\r\n--old-clientX is not a boundary' },
        { path: 'dir/café.txt', content: 'coffee' }
      ])
      assert.deepEqual(ndjson(res.body).map(l => l.name), ['dir', 'dir/a.txt', 'dir/b c.txt', 'dir/café.txt'])
    })

    it('reads an application/symlink part as a symlink whose body is its target, as Kubo sends links', async () => {
      const { body, contentType } = kuboBody([
        { path: 'dir', dir: true },
        { path: 'dir/a.txt', content: 'hello a' },
        { path: 'dir/link', content: 'a.txt', type: 'application/symlink' },
        { path: 'dir/dangling', content: '../nowhere/at all', type: 'application/symlink' }
      ])
      const res = await raw(base, '/add', { method: 'POST', headers: { 'content-type': contentType }, body })
      assert.equal(res.status, 200, res.body)
      assert.deepEqual(cluster.added, [
        { path: 'dir', content: undefined },
        { path: 'dir/a.txt', content: 'hello a' },
        { path: 'dir/link', link: 'a.txt' },
        { path: 'dir/dangling', link: '../nowhere/at all' }
      ])
    })

    it('a body without its closing boundary is an error after the parts it holds', async () => {
      const body = '--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nhal\r\n--b'
      const res = await raw(base, '/add?stream-channels=false', { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=b' }, body })
      assert.equal(res.status, 400)
      assert.equal(JSON.parse(res.body).message, 'malformed multipart body: the body ended without its closing boundary "--b--"')
    })

    it('skips a form field (a part with neither filename nor file type)', async () => {
      const body = '--b\r\nContent-Disposition: form-data; name="comment"\r\n\r\njust text\r\n' +
        '--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nA\r\n--b--\r\n'
      const res = await raw(base, '/add', { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=b' }, body })
      assert.equal(res.status, 200, res.body)
      assert.deepEqual(cluster.added, [{ path: 'a.txt', content: 'A' }])
    })

    it('format=car hands over the single file part, and refuses several', async () => {
      const one = kuboBody([{ path: 'x.car', content: 'CARBYTES' }])
      const ok = await get('/add?format=car&stream-channels=false', { method: 'POST', headers: { 'content-type': one.contentType }, body: one.body })
      assert.equal(ok.status, 200)
      assert.deepEqual(cluster.added, [{ path: 'x.car', content: 'CARBYTES' }])
      assert.equal((cluster.lastCall('add') as [any])[0].format, 'car')
      const two = kuboBody([{ path: 'a.car', content: 'A' }, { path: 'b.car', content: 'B' }])
      const res = await get('/add?format=car&stream-channels=false', { method: 'POST', headers: { 'content-type': two.contentType }, body: two.body })
      assert.equal(res.status, 400)
      assert.match((await json(res)).message, /format=car expects exactly one file part/)
    })

    it('an error found early in a big upload is answered once the body is read: the client gets it, not a broken pipe', async () => {
      // the second part is refused as soon as its headers arrive, with 4 MiB of it still to send, sent slowly
      const { body, contentType } = kuboBody([{ path: 'a.car', content: 'A' }, { path: 'b.car', content: Buffer.alloc(4 * 1024 * 1024, 'b') }])
      const res = await new Promise<{ status: number, body: string }>((resolve, reject) => {
        const req = request(`${base}/add?format=car&stream-channels=false`, { method: 'POST', headers: { 'content-type': contentType } }, res => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }) })
          res.on('error', reject)
        })
        req.on('error', reject)
        void (async () => {
          for (let at = 0; at < body.byteLength; at += 128 * 1024) {
            if (req.destroyed) return
            req.write(body.subarray(at, at + 128 * 1024))
            await sleep(10)
          }
          req.end()
        })()
      })
      assert.equal(res.status, 400)
      assert.match(JSON.parse(res.body).message, /format=car expects exactly one file part/)
    })

    it('a client that disconnects mid-upload ends the add, and the server still answers', async () => {
      const { body, contentType } = kuboBody([{ path: 'a.txt', content: Buffer.alloc(1024 * 1024, 'a') }])
      const req = request(`${base}/add`, { method: 'POST', headers: { 'content-type': contentType } })
      req.on('error', () => {})
      req.write(body.subarray(0, 200_000))
      await waitFor(() => cluster.lastCall('add') !== undefined, { timeoutMs: 5000, intervalMs: 10, message: 'the add to start' })
      req.destroy()
      await waitFor(() => cluster.calls.some(c => c.method === 'add-ended'), { timeoutMs: 5000, intervalMs: 10, message: 'the add to end' })
      assert.equal(cluster.added.length, 0)
      assert.equal((await get('/version')).status, 200)
    })

    it('an add\'s pin options are validated before the cluster gets it, unless it pins nothing', async () => {
      const refused = kuboBody(TREE)
      const res = await get('/add?expire-at=2001-01-01T00:00:00Z', { method: 'POST', headers: { 'content-type': refused.contentType }, body: refused.body })
      assert.equal(res.status, 400)
      assert.deepEqual(await json(res), { code: 400, message: 'expire-at 2001-01-01T00:00:00.000Z is in the past' })
      assert.equal(cluster.lastCall('add'), undefined)
      // an upload of blocks only (no-pin, as `cairn add` sends first): its pin options mean nothing
      const upload = kuboBody(TREE)
      const ok = await get('/add?no-pin=true&expire-at=2001-01-01T00:00:00Z', { method: 'POST', headers: { 'content-type': upload.contentType }, body: upload.body })
      assert.equal(ok.status, 200, await ok.clone().text())
      assert.equal((cluster.lastCall('add')?.[0] as { no_pin?: boolean }).no_pin, true)
    })

    it('a bad add parameter is a 400 naming it', async () => {
      const { body, contentType } = kuboBody(TREE)
      const res = await get('/add?chunker=rabin', { method: 'POST', headers: { 'content-type': contentType }, body })
      assert.equal(res.status, 400)
      assert.match((await json(res)).message, /^invalid value for "chunker": "rabin"/)
    })

    for (const [name, headers, body, pattern] of [
      ['not multipart', { 'content-type': 'application/json' }, '{}', /must be multipart\/form-data/],
      ['no boundary', { 'content-type': 'multipart/form-data' }, 'x', /malformed multipart body: .*[Bb]oundary/],
      ['truncated', { 'content-type': 'multipart/form-data; boundary=b' }, '--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nhal', /^malformed multipart body: the body ended in the middle of "a"$/],
      ['garbage', { 'content-type': 'multipart/form-data; boundary=b' }, 'this is not a form', /^malformed multipart body: no boundary line "--b" in the body$/],
      ['cut in the headers', { 'content-type': 'multipart/form-data; boundary=b' }, '--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n', /^malformed multipart body: the body ended in the headers of a part$/],
      ['a bad header line', { 'content-type': 'multipart/form-data; boundary=b' }, '--b\r\nContent-Disposition form-data\r\n\r\nx\r\n--b--\r\n', /^malformed multipart body: a part's header line "Content-Disposition form-data" is not "Name: value"$/],
      ['text after a boundary', { 'content-type': 'multipart/form-data; boundary=b' }, '--b junk\r\n\r\nx\r\n--b--\r\n', /^malformed multipart body: a boundary line "--b" is followed by other text$/],
      ['a symlink target too long', { 'content-type': 'multipart/form-data; boundary=b' },
        `--b\r\nContent-Disposition: form-data; name="file"; filename="l"\r\nContent-Type: application/symlink\r\n\r\n${'x'.repeat(65537)}\r\n--b--\r\n`,
        /^malformed multipart body: the target of symlink "l" is longer than 65536 bytes$/]
    ] as const) {
      it(`a malformed body (${name}) is a 400 and the server still answers`, async () => {
        for (const stream of ['true', 'false']) {
          const res = await raw(base, `/add?stream-channels=${stream}`, { method: 'POST', headers, body })
          assert.equal(res.status, 400, `stream-channels=${stream}: ${res.body}`)
          assert.match(JSON.parse(res.body).message, pattern)
        }
        assert.equal((await get('/version')).status, 200)
      })
    }
  })
})

describe('REST API auth', () => {
  const cluster = new FakeCluster()
  let server: Listener
  let base: string
  const auth = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

  before(async () => {
    server = await listen(createRestApp({ basicAuth: { alice: 'secret' } }, { cluster }), '127.0.0.1', 0)
    base = `http://127.0.0.1:${server.address.port}`
  })
  after(async () => { await server.close() })

  it('asks for credentials with WWW-Authenticate and IPFS Cluster\'s messages', async () => {
    const none = await fetch(`${base}/id`)
    assert.equal(none.status, 401)
    assert.match(none.headers.get('www-authenticate') ?? '', /Basic realm="Restricted IPFS Cluster API"/)
    assert.deepEqual(await none.json(), { code: 401, message: 'unauthorized: no auth provided' })
    const wrong = await fetch(`${base}/id`, { headers: { authorization: auth('alice', 'nope') } })
    assert.equal(wrong.status, 401)
    assert.equal(wrong.headers.get('www-authenticate'), 'Basic realm="Restricted IPFS Cluster API"')
    assert.deepEqual(await wrong.json(), { code: 401, message: 'unauthorized: access denied' })
  })

  it('lets good credentials through and keeps /health open', async () => {
    assert.equal((await fetch(`${base}/id`, { headers: { authorization: auth('alice', 'secret') } })).status, 200)
    assert.equal((await fetch(`${base}/health`)).status, 204)
  })

  it('POST /token issues a JWT that works as a Bearer token; a forged one does not', async () => {
    const res = await fetch(`${base}/token`, { method: 'POST', headers: { authorization: auth('alice', 'secret') } })
    assert.equal(res.status, 200)
    const { token } = await res.json() as { token: string }
    assert.equal((await fetch(`${base}/version`, { headers: { authorization: `Bearer ${token}` } })).status, 200)
    const forged = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA')
    const bad = await fetch(`${base}/version`, { headers: { authorization: `Bearer ${forged}` } })
    assert.equal(bad.status, 401)
    assert.deepEqual(await bad.json(), { code: 401, message: 'unauthorized: invalid token' })
  })
})

describe('REST API dashboard routes', () => {
  const cluster = new FakeCluster()
  let server: Listener
  let base: string

  before(async () => {
    server = await listen(createRestApp({ basicAuth: { alice: 'secret' } }, {
      cluster,
      gateway: () => ({ host: '0.0.0.0', port: 8080 }),
      bitswap: () => ({ bytesIn: 10, blocksIn: 1, bytesOut: 20, blocksOut: 2 })
    }), '127.0.0.1', 0)
    base = `http://127.0.0.1:${server.address.port}`
  })
  after(async () => { await server.close() })
  const auth = { authorization: `Basic ${Buffer.from('alice:secret').toString('base64')}` }

  it('serves the page and its assets without credentials, locked down by CSP; the data still needs them', async () => {
    const page = await fetch(`${base}/?q=%E0%A4%A`)
    assert.equal(page.status, 200)
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8')
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self';/)
    assert.match(await page.text(), /<script type="module" src="\/dashboard\/main.js">/)
    const script = await fetch(`${base}/dashboard/main.js`)
    assert.equal(script.status, 200)
    assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8')
    assert.equal((await fetch(`${base}/dashboard/style.css`)).headers.get('content-type'), 'text/css; charset=utf-8')
    for (const path of ['/dashboard/nope.js', '/dashboard/..%2F..%2Fpackage.json', '/dashboard/tsconfig.json', '/dashboard/']) {
      const res = await fetch(base + path, { headers: auth, redirect: 'manual' })
      assert.ok([404, 307].includes(res.status), `${path}: ${res.status}`)
    }
    assert.equal((await fetch(`${base}/id`)).status, 401)
    assert.equal((await fetch(`${base}/mirrors`)).status, 401)
  })

  it('GET /mirrors lists the mirrors in the pinset with the gateway URL on the host the client asked', async () => {
    assert.deepEqual(await (await fetch(`${base}/mirrors`, { headers: auth })).json(), [])
    await cluster.pin(CID.parse(V1), { name: 'deb@1', metadata: { 'cairn-mirror': 'deb', 'cairn-mirror-version': '1' } })
    await cluster.pin(CID.parse(OTHER), { name: 'plain' })
    const list = await (await fetch(`${base}/mirrors`, { headers: auth })).json() as any[]
    assert.equal(list.length, 1)
    assert.equal(list[0].mirror, 'deb')
    assert.equal(list[0].gateway_url, 'http://127.0.0.1:8080/mirror/deb/')
    assert.deepEqual(list[0].versions.map((v: any) => [v.version, v.cid, v.name, v.spread, v.bytes]), [[1, V1, 'deb@1', false, 0]])
  })

  it('GET /ipfs/bitswap/stat gives the node\'s bitswap counters', async () => {
    assert.deepEqual(await (await fetch(`${base}/ipfs/bitswap/stat`, { headers: auth })).json(),
      { blocks_received: 1, data_received: 10, blocks_sent: 2, data_sent: 20 })
  })
})

describe('REST API lifecycle', () => {
  it('start listens on port 0, stop ends streams and resolves with keep-alive sockets open', async () => {
    const cluster = new FakeCluster()
    const api = createRestApi({ listen: '127.0.0.1:0' }, { cluster })
    await api.start()
    const { host, port } = api.address()
    assert.equal(host, '127.0.0.1')
    assert.ok(port > 0)
    assert.equal((await fetch(`http://${host}:${port}/version`)).status, 200) // leaves an idle keep-alive socket
    cluster.endless = true
    const res = await fetch(`http://${host}:${port}/pins`)
    await res.body!.getReader().read()
    await api.stop()
    await waitFor(() => cluster.endlessStopped, { timeoutMs: 5000, intervalMs: 10, message: 'the stream to end on stop' })
    await assert.rejects(fetch(`http://${host}:${port}/version`))
    assert.throws(() => api.address(), { name: 'NotStartedError' })
  })

  it('rejects a listen address that is not host:port', () => {
    assert.throws(() => createRestApi({ listen: 'localhost' }, { cluster: new FakeCluster() }), { name: 'ConfigError', message: /"localhost" is not host:port/ })
  })
})
