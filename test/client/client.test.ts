import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { apiUrl, ClientError, createClient } from '../../src/client/index.js'
import { readMultipart, sampleStatus, samplePin, sendJson, sendNdjson, startFakeApi, type FakeApi, type Part } from './fake-api.js'
import type { GlobalPinInfo } from '../../src/types/wire.js'
import { freePort, tempDir } from '../util.js'

const CID = 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'

describe('apiUrl', () => {
  it('accepts host:port, URLs and multiaddrs', () => {
    assert.equal(apiUrl('127.0.0.1:9094').href, 'http://127.0.0.1:9094/')
    assert.equal(apiUrl('https://example.org:443/cairn').href, 'https://example.org/cairn')
    assert.equal(apiUrl('/ip4/127.0.0.1/tcp/9194').href, 'http://127.0.0.1:9194/')
    assert.equal(apiUrl('/ip6/::1/tcp/9094').href, 'http://[::1]:9094/')
    assert.equal(apiUrl('/dns4/cluster.example/tcp/9094/https').href, 'https://cluster.example:9094/')
  })

  it('names the address it cannot use', () => {
    assert.throws(() => apiUrl('/unix/tmp/api.sock'), /invalid API address "\/unix\/tmp\/api.sock"/)
    assert.throws(() => apiUrl('localhost'), /invalid API address/)
  })
})

describe('client against a fake IPFS Cluster REST API', () => {
  let api: FakeApi
  let releaseSecondLine: () => void = () => {}
  const parts: Part[] = []

  before(async () => {
    api = await startFakeApi({
      'GET /id': (_req, res) => { sendJson(res, 200, { id: 'peerA', peername: 'one', addresses: [], cluster_peers: ['peerA'] }) },
      'GET /version': (_req, res) => { sendJson(res, 200, { version: '0.1.0' }) },
      'GET /peers': (_req, res) => { sendNdjson(res, [{ id: 'peerA' }, { id: 'peerB' }]) },
      'GET /health': (_req, res) => { sendJson(res, 204) },
      'GET /monitor/metrics': (_req, res) => { sendJson(res, 200, ['ping', 'freespace']) },
      [`POST /pins/ipfs/${CID}`]: (_req, res) => { sendJson(res, 200, samplePin(CID)) },
      [`DELETE /pins/${CID}`]: (_req, res) => { sendJson(res, 404, { code: 404, message: 'pin is not part of the pinset' }) },
      'POST /pins/ipfs/not-a-cid': (_req, res) => { sendJson(res, 400, { code: 400, message: 'error decoding Cid: invalid cid: selected encoding not supported' }) },
      [`GET /pins/${CID}`]: (_req, res) => { sendJson(res, 200, sampleStatus(CID, { peerA: { peername: 'one', status: 'pinned' } })) },
      'GET /pins': async (_req, res, url) => {
        if (url.searchParams.get('filter') === 'error') { sendNdjson(res, []); return }
        if (url.searchParams.get('filter') === 'broken') { sendNdjson(res, [sampleStatus('a', {})], 'rpc failed: peer gone'); return }
        if (url.searchParams.get('filter') === 'cut') {
          res.writeHead(200, { 'content-type': 'application/json' })
          res.end(JSON.stringify(sampleStatus('a', {})) + '\n{"cid":"b","na')
          return
        }
        // Line by line: the second line is written only once the client has seen the first.
        res.writeHead(200, { 'content-type': 'application/json', trailer: 'X-Stream-Error' })
        res.write(JSON.stringify(sampleStatus('a', {})) + '\n')
        await new Promise<void>(resolve => { releaseSecondLine = resolve })
        res.write(JSON.stringify(sampleStatus('b', {})) + '\n')
        res.addTrailers({ 'X-Stream-Error': '' })
        res.end()
      },
      'POST /add': async (req, res) => {
        parts.push(...await readMultipart(req))
        sendNdjson(res, parts.map((p, i) => ({ name: decodeURIComponent(p.filename), cid: `bafk${i}`, size: p.content.length })))
      }
    })
  })

  after(async () => { await api.close() })

  it('gets id and version and collects the NDJSON peers into an array', async () => {
    const client = createClient({ api: api.url, basicAuth: 'admin:secret' })
    assert.equal((await client.id()).peername, 'one')
    assert.deepEqual(await client.version(), { version: '0.1.0' })
    assert.deepEqual((await client.peers()).map(p => p.id), ['peerA', 'peerB'])
    assert.deepEqual(await client.metrics(), ['ping', 'freespace'])
    await client.health()
    assert.equal(api.requests.at(-1)?.headers.authorization, `Basic ${Buffer.from('admin:secret').toString('base64')}`)
  })

  it('sends a bearer token rather than basic auth when both are given', async () => {
    await createClient({ api: api.url, basicAuth: 'a:b', token: 'jwt' }).version()
    assert.equal(api.requests.at(-1)?.headers.authorization, 'Bearer jwt')
  })

  it('pins with IPFS Cluster query names on the /pins/ipfs/ path', async () => {
    const client = createClient({ api: `/ip4/127.0.0.1/tcp/${api.port}` })
    const pin = await client.pin(CID, {
      name: 'debian',
      mode: 'direct',
      replication_factor_min: 2,
      replication_factor_max: 3,
      user_allocations: ['peerA', 'peerB'],
      expire_in: '24h',
      metadata: { dist: 'bookworm', arch: 'amd64' },
      origins: ['/ip4/1.2.3.4/tcp/4001/p2p/peerC'],
      shard_size: 1024
    })
    assert.equal(pin.cid, CID)
    const q = api.requests.at(-1)?.query
    assert.deepEqual(Object.fromEntries(q ?? []), {
      name: 'debian',
      mode: 'direct',
      'replication-min': '2',
      'replication-max': '3',
      'shard-size': '1024',
      'user-allocations': 'peerA,peerB',
      'expire-in': '24h',
      'meta-dist': 'bookworm',
      'meta-arch': 'amd64',
      origins: '/ip4/1.2.3.4/tcp/4001/p2p/peerC'
    })
  })

  it('sends pin-update for pinUpdate', async () => {
    await createClient({ api: api.url }).pinUpdate('bafyold', CID, { name: 'v2' })
    assert.equal(api.requests.at(-1)?.path, `/pins/ipfs/${CID}`)
    assert.equal(api.requests.at(-1)?.query.get('pin-update'), 'bafyold')
    assert.equal(api.requests.at(-1)?.query.get('name'), 'v2')
  })

  it('turns error bodies into a ClientError with status, code and the server message', async () => {
    const client = createClient({ api: api.url })
    await assert.rejects(client.pin('not-a-cid'), (err: ClientError) => {
      assert.equal(err.name, 'ClientError')
      assert.equal(err.status, 400)
      assert.equal(err.code, 400)
      assert.equal(err.message, 'error decoding Cid: invalid cid: selected encoding not supported')
      return true
    })
    await assert.rejects(client.unpin(CID), { name: 'ClientError', status: 404, message: 'pin is not part of the pinset' })
  })

  it('sends a GET the peer refused as busy (429) again after its Retry-After, a few times, and never a POST', async () => {
    let busy = 1
    const refuse = (res: import('node:http').ServerResponse, retryAfter: string): void => {
      res.setHeader('Retry-After', retryAfter)
      sendJson(res, 429, { code: 429, message: 'this peer is already serving 8 lists of the whole pinset (rest.max_heavy_requests): try again in 1 s' })
    }
    const busyApi = await startFakeApi({
      'GET /allocations': (_req, res) => {
        if (busy-- > 0) { refuse(res, '1'); return }
        sendNdjson(res, [samplePin(CID)])
      },
      'GET /pins': (_req, res) => { refuse(res, '0') },
      'POST /pins/recover': (_req, res) => { refuse(res, '0') }
    })
    try {
      const lines: string[] = []
      const client = createClient({ api: busyApi.url, log: line => { lines.push(line) } })
      const start = Date.now()
      const pins = []
      for await (const pin of client.allocations()) pins.push(pin)
      assert.equal(pins.length, 1)
      assert.ok(Date.now() - start >= 900, 'it waited the second the peer asked for')
      assert.ok(lines.some(l => l.includes('GET /allocations: the peer is busy (429), trying again in 1 s')), lines.join('\n'))

      // still busy after 3 more tries: the peer's message
      const before = busyApi.requests.length
      await assert.rejects(async () => { for await (const _ of client.statusAll()) { /* drained: only the error matters */ } }, { name: 'ClientError', status: 429, message: /rest\.max_heavy_requests/ })
      assert.equal(busyApi.requests.length - before, 4)
      await assert.rejects(async () => { for await (const _ of client.recoverAll()) { /* drained: only the error matters */ } }, { name: 'ClientError', status: 429 })
      assert.equal(busyApi.requests.length - before, 5, 'a POST is not sent again')
    } finally {
      await busyApi.close()
    }
  })

  it('explains a refused connection', async () => {
    const port = await freePort()
    await assert.rejects(createClient({ api: `127.0.0.1:${port}` }).id(), {
      name: 'ClientError',
      status: 0,
      message: `cannot reach the cairn API at http://127.0.0.1:${port}: connect ECONNREFUSED (is the daemon running?)`
    })
  })

  it('streams statusAll line by line', { timeout: 5000 }, async () => {
    const seen: string[] = []
    for await (const g of createClient({ api: api.url }).statusAll()) {
      seen.push(g.cid)
      // If the client waited for the whole body, the server would never send line 2 and this test would time out.
      releaseSecondLine()
    }
    assert.deepEqual(seen, ['a', 'b'])
  })

  it('reads 204 as an empty stream and passes query flags', async () => {
    const items: GlobalPinInfo[] = []
    for await (const g of createClient({ api: api.url }).statusAll({ filter: ['error'], local: true })) items.push(g)
    assert.deepEqual(items, [])
    assert.equal(api.requests.at(-1)?.query.toString(), 'local=true&filter=error')
  })

  it('throws the X-Stream-Error trailer after the items that arrived', async () => {
    const seen: string[] = []
    await assert.rejects(async () => {
      for await (const g of createClient({ api: api.url }).statusAll({ filter: ['broken' as 'error'] })) seen.push(g.cid)
    }, { name: 'ClientError', message: 'rpc failed: peer gone' })
    assert.deepEqual(seen, ['a'])
  })

  it('reports a stream cut in the middle of a line', async () => {
    await assert.rejects(async () => {
      for await (const _ of createClient({ api: api.url }).statusAll({ filter: ['cut' as 'error'] }));
    }, { name: 'ClientError', message: /cut the \/pins stream short/ })
  })

  it('gets a single status', async () => {
    const g = await createClient({ api: api.url }).status(CID, { local: true })
    assert.equal(g.peer_map.peerA.status, 'pinned')
    assert.equal(api.requests.at(-1)?.query.get('local'), 'true')
  })

  it('gives up after timeoutMs, and honours an abort signal', async () => {
    const silent = await startFakeApi({ 'GET /id': () => {} })
    try {
      const client = createClient({ api: silent.url, timeoutMs: 200 })
      await assert.rejects(client.id(), { name: 'ClientError', message: /did not answer GET \/id within 200 ms/ })
      await assert.rejects(createClient({ api: silent.url }).id({ signal: AbortSignal.timeout(100) }), { name: 'TimeoutError' })
      await assert.rejects(client.health({ signal: AbortSignal.abort() }), { name: 'AbortError' })
    } finally {
      await silent.close()
    }
  })

  it('ends a stream on abort, on timeout and when the connection drops, keeping what arrived', async () => {
    const hanging = await startFakeApi({
      'GET /pins': (_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).write('{"cid":"a"}\n') },
      'GET /peers': (req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' }).write('{"id":"a"}\n')
        setTimeout(() => req.socket.destroy(), 20)
      }
    })
    const drain = async (items: AsyncIterable<unknown>, onItem = () => {}): Promise<number> => {
      let n = 0
      for await (const _ of items) { n++; onItem() }
      return n
    }
    try {
      const ac = new AbortController()
      let seen = 0
      await assert.rejects(drain(createClient({ api: hanging.url }).statusAll({ signal: ac.signal }), () => { seen++; ac.abort() }), { name: 'AbortError' })
      assert.equal(seen, 1)
      await assert.rejects(drain(createClient({ api: hanging.url, timeoutMs: 200 }).statusAll()),
        { name: 'ClientError', message: /did not finish GET \/pins within 200 ms/ })
      await assert.rejects(drain(createClient({ api: hanging.url }).peersStream()), { name: 'ClientError', message: /broke off GET \/peers/ })
    } finally {
      await hanging.close()
    }
  })

  describe('add', () => {
    let dir: string
    const big = randomBytes(700 * 1024)

    before(async () => {
      dir = (await tempDir('cairn-client-')).path
      await mkdir(join(dir, 'tree', 'sub dir', 'empty'), { recursive: true })
      await writeFile(join(dir, 'tree', 'a.txt'), 'hello\n')
      await writeFile(join(dir, 'tree', 'sub dir', 'big.bin'), big)
      await writeFile(join(dir, 'tree', '.hidden'), 'secret')
      await writeFile(join(dir, 'single.txt'), 'just one')
    })

    after(async () => { await rm(dir, { recursive: true, force: true }) })

    it('streams a Kubo-style multipart body with url-encoded relative paths', async () => {
      parts.length = 0
      const progress: Array<[number, number]> = []
      const out = []
      for await (const line of createClient({ api: api.url }).add([join(dir, 'tree')], {
        recursive: true,
        cidVersion: 1,
        name: 'tree',
        replication_factor_min: 1,
        replication_factor_max: 2,
        onProgress: (sent, total) => progress.push([sent, total])
      })) out.push(line)

      assert.deepEqual(parts.map(p => [p.filename, p.type]), [
        ['tree', 'application/x-directory'],
        ['tree%2Fa.txt', 'application/octet-stream'],
        ['tree%2Fsub%20dir', 'application/x-directory'],
        ['tree%2Fsub%20dir%2Fbig.bin', 'application/octet-stream'],
        ['tree%2Fsub%20dir%2Fempty', 'application/x-directory']
      ])
      assert.equal(parts[1].content.toString(), 'hello\n')
      assert.ok(parts[3].content.equals(big))
      assert.equal(parts[0].content.length, 0)
      assert.deepEqual(out.map(o => o.name), ['tree', 'tree/a.txt', 'tree/sub dir', 'tree/sub dir/big.bin', 'tree/sub dir/empty'])

      const req = api.requests.at(-1)
      assert.equal(req?.headers['transfer-encoding'], 'chunked')
      assert.match(String(req?.headers['content-type']), /^multipart\/form-data; boundary=/)
      assert.equal(req?.query.get('recursive'), 'true')
      assert.equal(req?.query.get('cid-version'), '1')
      assert.equal(req?.query.get('name'), 'tree')
      assert.equal(req?.query.get('replication-min'), '1')
      assert.equal(req?.query.get('stream-channels'), 'true')

      const total = 6 + big.length
      assert.deepEqual(progress[0], [0, total])
      assert.deepEqual(progress.at(-1), [total, total])
      assert.ok(progress.length > 3, 'progress is reported per chunk')
    })

    it('includes dot-files with hidden, and adds several paths side by side', async () => {
      parts.length = 0
      for await (const _ of createClient({ api: api.url }).add([join(dir, 'tree', 'a.txt'), join(dir, 'single.txt'), join(dir, 'tree', '.hidden')], { hidden: true }));
      assert.deepEqual(parts.map(p => decodeURIComponent(p.filename)), ['a.txt', 'single.txt', '.hidden'])
      parts.length = 0
      for await (const _ of createClient({ api: api.url }).add([join(dir, 'tree')], { recursive: true, hidden: true }));
      assert.ok(parts.some(p => p.filename === 'tree%2F.hidden'))
    })

    it('reports an early error answer without waiting for the upload to finish', { timeout: 5000 }, async () => {
      const strict = await startFakeApi({ 'POST /add': (_req, res) => { sendJson(res, 401, { code: 401, message: 'unauthorized: access denied' }) } })
      try {
        await assert.rejects(async () => { for await (const _ of createClient({ api: strict.url }).add([join(dir, 'tree')], { recursive: true })); },
          { name: 'ClientError', status: 401, message: 'unauthorized: access denied' })
      } finally {
        await strict.close()
      }
    })

    it('with upload blocks, reports the API\'s refusal rather than the import it stopped', { timeout: 5000 }, async () => {
      const strict = await startFakeApi({ 'POST /add': (_req, res) => { sendJson(res, 401, { code: 401, message: 'unauthorized: access denied' }) } })
      try {
        await assert.rejects(async () => { for await (const _ of createClient({ api: strict.url }).add([join(dir, 'tree')], { recursive: true, upload: 'blocks' })); },
          { name: 'ClientError', status: 401, message: 'unauthorized: access denied' })
        assert.equal(strict.requests.length, 1)
        assert.equal(strict.requests[0].query.get('format'), 'car')
        assert.equal(strict.requests[0].query.get('no-pin'), 'true')
      } finally {
        await strict.close()
      }
    })

    it('with upload blocks, refuses a bad parameter before sending anything', async () => {
      const before = api.requests.length
      await assert.rejects(async () => { for await (const _ of createClient({ api: api.url }).add([join(dir, 'tree')], { recursive: true, upload: 'blocks', chunker: 'rabin' })); },
        { name: 'InvalidParameterError', message: /"chunker": "rabin"/ })
      assert.equal(api.requests.length, before)
    })

    it('sends symlinks as Kubo does (application/symlink, the target as the body), never following them by default', async () => {
      const links = join(dir, 'links')
      await mkdir(join(links, 'sub'), { recursive: true })
      await writeFile(join(links, 'sub', 'f.txt'), 'file')
      await symlink('sub/f.txt', join(links, 'to-file'))
      await symlink('sub', join(links, 'to-dir'))
      await symlink('../nowhere', join(links, 'dangling'))
      parts.length = 0
      for await (const _ of createClient({ api: api.url }).add([links], { recursive: true }));
      assert.deepEqual(parts.map(p => [decodeURIComponent(p.filename), p.type, p.content.toString()]), [
        ['links', 'application/x-directory', ''],
        ['links/dangling', 'application/symlink', '../nowhere'],
        ['links/sub', 'application/x-directory', ''],
        ['links/sub/f.txt', 'application/octet-stream', 'file'],
        ['links/to-dir', 'application/symlink', 'sub'],
        ['links/to-file', 'application/symlink', 'sub/f.txt']
      ])
      // a symlink given as the path is the link itself; followed (--dereference-args), it is its target, named so
      parts.length = 0
      for await (const _ of createClient({ api: api.url }).add([join(links, 'to-file')]));
      assert.deepEqual(parts.map(p => [p.filename, p.type, p.content.toString()]), [['to-file', 'application/symlink', 'sub/f.txt']])
      parts.length = 0
      for await (const _ of createClient({ api: api.url }).add([join(links, 'to-dir')], { recursive: true, dereferenceArgs: true }));
      assert.deepEqual(parts.map(p => [decodeURIComponent(p.filename), p.type]), [['sub', 'application/x-directory'], ['sub/f.txt', 'application/octet-stream']])

      // followed, every link is what it points to; a dangling one is refused before anything is sent
      const before = api.requests.length
      await assert.rejects(async () => { for await (const _ of createClient({ api: api.url }).add([links], { recursive: true, dereferenceSymlinks: true })); },
        { name: 'InvalidParameterError', message: `cannot follow the symlink ${join(links, 'dangling')}: it points to "../nowhere", which does not exist` })
      assert.equal(api.requests.length, before)
      await rm(join(links, 'dangling'))
      parts.length = 0
      for await (const _ of createClient({ api: api.url }).add([links], { recursive: true, dereferenceSymlinks: true }));
      assert.deepEqual(parts.map(p => [decodeURIComponent(p.filename), p.type, p.content.toString()]), [
        ['links', 'application/x-directory', ''],
        ['links/sub', 'application/x-directory', ''],
        ['links/sub/f.txt', 'application/octet-stream', 'file'],
        ['links/to-dir', 'application/x-directory', ''],
        ['links/to-dir/f.txt', 'application/octet-stream', 'file'],
        ['links/to-file', 'application/octet-stream', 'file']
      ])
      // a link to a directory above itself, followed, is a loop
      await symlink('..', join(links, 'sub', 'up'))
      await assert.rejects(async () => { for await (const _ of createClient({ api: api.url }).add([links], { recursive: true, dereferenceSymlinks: true })); },
        { name: 'InvalidParameterError', message: `cannot add ${join(links, 'sub', 'up')}: symlink loop (it is a directory above itself)` })
      await rm(links, { recursive: true })
    })

    it('refuses a directory without recursive, and a missing path, before sending anything', async () => {
      const before = api.requests.length
      await assert.rejects(async () => { for await (const _ of createClient({ api: api.url }).add([join(dir, 'tree')])); },
        { name: 'InvalidParameterError', message: `${join(dir, 'tree')} is a directory: add it recursively (-r)` })
      await assert.rejects(async () => { for await (const _ of createClient({ api: api.url }).add([join(dir, 'nope')])); },
        { name: 'InvalidParameterError', message: /no such file or directory/ })
      assert.equal(api.requests.length, before)
    })
  })
})
