// Issue 6, item 3: the HTTP gateway. Content is added on peer 0 (not pinned, so only peer 0 holds it) and read
// through peer 1's gateway, which fetches every block over bitswap.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { CarReader } from '@ipld/car'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { exporter } from 'ipfs-unixfs-exporter'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import { sniff, typeByName } from '../../src/gateway/content-type.js'
import { matchingEtag, parseRange } from '../../src/gateway/http.js'
import { createGateway } from '../../src/gateway/index.js'
import { acceptsNpm, registryBase, rewritePackument } from '../../src/gateway/npm.js'
import { pathSegments } from '../../src/gateway/path.js'
import { MIRROR_KEY, MIRROR_VERSION_KEY } from '../../src/mirror/meta.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { BAD_INLINE_CBOR, rawRequest, sleep, UNKNOWN_CODEC, UNKNOWN_HASH, waitFor } from '../util.js'
import type { AddEntry, AddedOutput } from '../../src/components.js'

const enc = new TextEncoder()
const DATA = randomBytes(600 * 1024)
const FILES: Record<string, Uint8Array> = {
  'hello.txt': enc.encode('hello from cairn\n'),
  'data.bin': DATA,
  Release: enc.encode('Origin: Debian\nSuite: stable\n'),
  'weird name ü.txt': enc.encode('percent-encoded\n'),
  'docs/a.json': enc.encode('{"a":1}\n'),
  'docs/b.css': enc.encode('body{}\n'),
  'page/index.html': enc.encode('<!doctype html><title>page</title><p>index page</p>\n')
}

async function * entriesOf (prefix: string, files: Record<string, Uint8Array>): AsyncGenerator<AddEntry> {
  for (const [path, bytes] of Object.entries(files)) {
    yield { path: `${prefix}/${path}`, content: (async function * () { yield bytes })() }
  }
}

/** Adds a tree through peer 0's cluster without pinning it; returns every output line by name. */
async function addTree (tc: TestCluster, prefix: string, files: Record<string, Uint8Array>): Promise<Map<string, AddedOutput>> {
  const out = new Map<string, AddedOutput>()
  for await (const line of tc.peer(0).cluster.add(entriesOf(prefix, files), { cid_version: 1, no_pin: true })) {
    if (line.cid !== '') out.set(line.name, line)
  }
  return out
}

describe('the HTTP gateway', () => {
  let tc: TestCluster
  let gw: string
  let port: number
  let root: string
  let tree: Map<string, AddedOutput>

  before(async () => {
    tc = await createTestCluster(2)
    await waitFor(async () => (await tc.peer(1).cluster.peerset()).length === 2, { message: 'peers see each other', timeoutMs: 30_000 })
    tree = await addTree(tc, 'site', FILES)
    root = tree.get('site')!.cid
    const address = tc.peer(1).gatewayAddress()
    port = address.port
    gw = `http://127.0.0.1:${port}`
    assert.equal(await tc.peer(1).ipfs.hasBlock(CID.parse(root)), false, 'peer 1 starts without the content')
  })
  after(async () => { await tc?.close() })

  it('serves files with their bytes, content type, length and immutable caching', async () => {
    const cases: Array<[string, string]> = [
      ['hello.txt', 'text/plain; charset=utf-8'],
      ['docs/a.json', 'application/json; charset=utf-8'],
      ['docs/b.css', 'text/css; charset=utf-8'],
      // no extension: sniffed as text
      ['Release', 'text/plain; charset=utf-8'],
      ['data.bin', 'application/octet-stream']
    ]
    for (const [path, type] of cases) {
      const res = await fetch(`${gw}/ipfs/${root}/${path}`)
      assert.equal(res.status, 200, path)
      assert.equal(res.headers.get('content-type'), type, path)
      const body = new Uint8Array(await res.arrayBuffer())
      assert.deepEqual(body, new Uint8Array(FILES[path]), path)
      assert.equal(res.headers.get('content-length'), String(FILES[path].byteLength), path)
      assert.equal(res.headers.get('cache-control'), 'public, max-age=29030400, immutable')
      assert.equal(res.headers.get('etag'), `"${tree.get(`site/${path}`)!.cid}"`, path)
      assert.equal(res.headers.get('x-ipfs-path'), `/ipfs/${root}/${path}`)
    }
    // the blocks came over bitswap
    assert.equal(await tc.peer(1).ipfs.hasBlock(CID.parse(tree.get('site/data.bin')!.cid)), true)

    const weird = await fetch(`${gw}/ipfs/${root}/${encodeURIComponent('weird name ü.txt')}`)
    assert.equal(weird.status, 200)
    assert.equal(await weird.text(), 'percent-encoded\n')

    const head = await fetch(`${gw}/ipfs/${root}/data.bin`, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('content-length'), String(DATA.byteLength))
    assert.equal(head.headers.get('accept-ranges'), 'bytes')
    assert.equal((await head.arrayBuffer()).byteLength, 0)
  })

  it('answers a Range request with 206 and the exact bytes, and 416 when unsatisfiable', async () => {
    // across the 256 KiB chunk boundary
    const start = 262_100
    const end = 262_299
    const res = await fetch(`${gw}/ipfs/${root}/data.bin`, { headers: { Range: `bytes=${start}-${end}` } })
    assert.equal(res.status, 206)
    assert.equal(res.headers.get('content-range'), `bytes ${start}-${end}/${DATA.byteLength}`)
    assert.equal(res.headers.get('content-length'), '200')
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), new Uint8Array(DATA.subarray(start, end + 1)))

    const suffix = await fetch(`${gw}/ipfs/${root}/data.bin`, { headers: { Range: 'bytes=-10' } })
    assert.equal(suffix.status, 206)
    assert.deepEqual(new Uint8Array(await suffix.arrayBuffer()), new Uint8Array(DATA.subarray(DATA.byteLength - 10)))

    const beyond = await fetch(`${gw}/ipfs/${root}/data.bin`, { headers: { Range: `bytes=${DATA.byteLength}-` } })
    assert.equal(beyond.status, 416)
    assert.equal(beyond.headers.get('content-range'), `bytes */${DATA.byteLength}`)
    await beyond.arrayBuffer()
  })

  it('answers If-None-Match with 304', async () => {
    const first = await fetch(`${gw}/ipfs/${root}/hello.txt`)
    await first.arrayBuffer()
    const etag = first.headers.get('etag')!
    const again = await fetch(`${gw}/ipfs/${root}/hello.txt`, { headers: { 'If-None-Match': etag } })
    assert.equal(again.status, 304)
    assert.equal(again.headers.get('etag'), etag)
    assert.equal(await again.text(), '')
    // a different representation of the same CID does not match
    const rawRes = await fetch(`${gw}/ipfs/${root}/hello.txt?format=raw`, { headers: { 'If-None-Match': etag } })
    assert.equal(rawRes.status, 200)
    await rawRes.arrayBuffer()
  })

  it('lists a directory as HTML and as JSON, redirects to the slash form, and serves index.html', async () => {
    const redirect = await fetch(`${gw}/ipfs/${root}/docs?x=1`, { redirect: 'manual' })
    assert.equal(redirect.status, 301)
    assert.equal(redirect.headers.get('location'), `/ipfs/${root}/docs/?x=1`)

    const html = await fetch(`${gw}/ipfs/${root}/`)
    assert.equal(html.status, 200)
    assert.equal(html.headers.get('content-type'), 'text/html; charset=utf-8')
    const page = await html.text()
    for (const name of ['hello.txt', 'data.bin', 'Release', 'docs/', 'page/']) assert.ok(page.includes(`>${name}</a>`), `listing shows ${name}`)
    assert.ok(page.includes(`href="${encodeURIComponent('weird name ü.txt')}"`), 'links are percent-encoded')

    const json = await fetch(`${gw}/ipfs/${root}/`, { headers: { Accept: 'application/json' } })
    assert.equal(json.status, 200)
    assert.match(json.headers.get('content-type') ?? '', /^application\/json/)
    assert.notEqual(json.headers.get('etag'), html.headers.get('etag'), 'HTML and JSON listings have their own ETags')
    const listing = await json.json() as { cid: string, entries: Array<{ name: string, cid: string, size: number, type: string }> }
    assert.equal(listing.cid, root)
    const byName = new Map(listing.entries.map(e => [e.name, e]))
    assert.deepEqual([...byName.keys()].sort(), ['Release', 'data.bin', 'docs', 'hello.txt', 'page', 'weird name ü.txt'])
    assert.deepEqual(byName.get('hello.txt'), { name: 'hello.txt', cid: tree.get('site/hello.txt')!.cid, size: FILES['hello.txt'].byteLength, type: 'file' })
    assert.equal(byName.get('data.bin')!.size, DATA.byteLength)
    assert.equal(byName.get('docs')!.type, 'directory')
    assert.equal(byName.get('docs')!.cid, tree.get('site/docs')!.cid)

    const index = await fetch(`${gw}/ipfs/${root}/page/`)
    assert.equal(index.status, 200)
    assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8')
    assert.equal(await index.text(), new TextDecoder().decode(FILES['page/index.html']))
  })

  it('serves a raw block and a CAR whose blocks verify against the root', async () => {
    const rawRes = await fetch(`${gw}/ipfs/${root}`, { headers: { Accept: 'application/vnd.ipld.raw' } })
    assert.equal(rawRes.status, 200)
    assert.equal(rawRes.headers.get('content-type'), 'application/vnd.ipld.raw')
    assert.equal(rawRes.headers.get('etag'), `"${root}.raw"`)
    const block = new Uint8Array(await rawRes.arrayBuffer())
    assert.deepEqual((await sha256.digest(block)).bytes, CID.parse(root).multihash.bytes)

    const carRes = await fetch(`${gw}/ipfs/${root}?format=car`)
    assert.equal(carRes.status, 200)
    assert.match(carRes.headers.get('content-type') ?? '', /^application\/vnd\.ipld\.car; version=1/)
    const reader = await CarReader.fromBytes(new Uint8Array(await carRes.arrayBuffer()))
    const roots = await reader.getRoots()
    assert.deepEqual(roots.map(String), [root])
    const blocks = new Map<string, Uint8Array>()
    for await (const { cid, bytes } of reader.blocks()) {
      const hasher = cid.multihash.code === identity.code ? identity : sha256
      assert.deepEqual((await hasher.digest(bytes)).bytes, cid.multihash.bytes, `block ${cid} verifies`)
      blocks.set(cid.toV1().toString(), bytes)
    }
    // the CAR holds the whole DAG: every file reads back from it alone
    const fromCar = { async * get (cid: CID) { const b = blocks.get(cid.toV1().toString()); if (b == null) throw new Error(`${cid} missing from the CAR`); yield b } }
    for (const [path, bytes] of Object.entries(FILES)) {
      const entry = await exporter(`${root}/${path}`, fromCar)
      assert.ok(entry.type === 'file' || entry.type === 'raw')
      const chunks: Uint8Array[] = []
      for await (const c of entry.content()) chunks.push(c)
      assert.equal(createHash('sha256').update(Buffer.concat(chunks)).digest('hex'), createHash('sha256').update(bytes).digest('hex'), path)
    }

    // a CAR of a sub-path has that node as its root, and starts with the blocks of the path to it (IPIP-402: "The
    // returned CAR MUST include both the block with the file data and all blocks necessary for traversing from the
    // root CID to the terminating element")
    const sub = await fetch(`${gw}/ipfs/${root}/docs`, { headers: { Accept: 'application/vnd.ipld.car' } })
    assert.equal(sub.status, 200)
    const subReader = await CarReader.fromBytes(new Uint8Array(await sub.arrayBuffer()))
    assert.deepEqual((await subReader.getRoots()).map(String), [tree.get('site/docs')!.cid])
    const order: string[] = []
    for await (const { cid } of subReader.blocks()) order.push(cid.toString())
    assert.deepEqual(order, [root, ...['site/docs', 'site/docs/a.json', 'site/docs/b.css'].map(n => tree.get(n)!.cid)], 'the root, the docs directory and its two files, depth-first')
  })

  it('gives clear 404, 400 and 504 errors', async () => {
    const missing = await fetch(`${gw}/ipfs/${root}/docs/nope.txt`)
    assert.equal(missing.status, 404)
    assert.match(await missing.text(), /nope\.txt/)
    const missingJson = await fetch(`${gw}/ipfs/${root}/nope.txt`, { headers: { Accept: 'application/json' } })
    assert.equal(missingJson.status, 404)
    const body = await missingJson.json() as { code: number, message: string }
    assert.equal(body.code, 404)
    assert.match(body.message, /no link named "nope\.txt"/)
    // a path below a file
    assert.equal((await rawRequest(port, `/ipfs/${root}/hello.txt/more`)).status, 404)

    const bad = await fetch(`${gw}/ipfs/not-a-cid/file.txt`)
    assert.equal(bad.status, 400)
    assert.match(await bad.text(), /invalid CID "not-a-cid": "n" is not a multibase prefix/)
    assert.equal((await fetch(`${gw}/ipfs/${root}/x?format=tar`)).status, 400)
    // CIDs no peer can read: 400s naming them, not 500s
    for (const [cid, why] of [[UNKNOWN_CODEC, 'codec 0x9999 is not one this peer can decode'], [UNKNOWN_HASH, 'hash function 0x1234 is not one this peer can verify']]) {
      for (const suffix of ['', '/a', '?format=car']) {
        const res = await fetch(`${gw}/ipfs/${cid}${suffix}`)
        assert.equal(res.status, 400, `${cid}${suffix}`)
        assert.equal(await res.text(), `unsupported CID "${cid}": ${why}\n`)
      }
    }
    // a raw block is served as it is, whatever its codec (this one's bytes are inline)
    const rawBlock = await fetch(`${gw}/ipfs/${UNKNOWN_CODEC}?format=raw`)
    assert.equal(rawBlock.status, 200)
    assert.deepEqual(new Uint8Array(await rawBlock.arrayBuffer()), new Uint8Array([1, 2, 3]))
    // a directory (inline) linking to a block of a codec no peer knows: the path through it is a 502 naming it
    const dir = CID.createV1(dagPb.code, identity.digest(dagPb.encode({ Data: new UnixFS({ type: 'directory' }).marshal(), Links: [{ Name: 'weird', Hash: CID.parse(UNKNOWN_CODEC), Tsize: 3 }] })))
    const deep = await fetch(`${gw}/ipfs/${dir}/weird`)
    assert.equal(deep.status, 502, `/ipfs/${dir}/weird`)
    assert.match(await deep.text(), /0x9999|39321/)
    const badInline = await fetch(`${gw}/ipfs/${BAD_INLINE_CBOR}`)
    assert.equal(badInline.status, 400)
    assert.match(await badInline.text(), new RegExp(`^invalid CID "${BAD_INLINE_CBOR}": its inline \\(identity\\) data is not valid dag-cbor`))

    // no climbing out of the root, however it is spelled
    for (const path of [`/ipfs/${root}/docs/../hello.txt`, `/ipfs/${root}/docs/%2E%2E/hello.txt`, `/ipfs/${root}/docs%2F..%2Fhello.txt`]) {
      const res = await rawRequest(port, path)
      assert.equal(res.status, 400, path)
    }
    assert.equal((await rawRequest(port, `/ipfs/${root}/%E0%A4%A`)).status, 400, 'malformed percent-encoding')
    assert.equal((await fetch(`${gw}/ipfs/${root}/hello.txt`, { method: 'POST' })).status, 405)

    // content nobody has: a short per-request timeout on a second gateway of peer 1
    const errorsLogged: string[] = []
    const gatewayLog = Object.assign(() => {}, { error: (f: string, ...a: unknown[]) => { errorsLogged.push(`${f} ${a.map(String).join(' ')}`) }, trace: () => {}, enabled: false, newScope: () => gatewayLog })
    const impatient = createGateway({ listen: '127.0.0.1:0', timeoutMs: 1500 }, { ipfs: tc.peer(1).ipfs, pinset: tc.peer(1).pinset, logger: { forComponent: () => gatewayLog } as never })
    await impatient.start()
    try {
      const nobody = CID.createV1(raw.code, await sha256.digest(randomBytes(32)))
      const t0 = Date.now()
      const res = await fetch(`http://127.0.0.1:${impatient.address().port}/ipfs/${nobody}`)
      assert.equal(res.status, 504)
      assert.match(await res.text(), new RegExp(`block ${nobody} could not be retrieved within 1.5 s`))
      assert.ok(Date.now() - t0 < 10_000)
      // a client that gives up first is no server error: nothing is logged at error level
      const other = CID.createV1(raw.code, await sha256.digest(randomBytes(32)))
      await assert.rejects(fetch(`http://127.0.0.1:${impatient.address().port}/ipfs/${other}`, { signal: AbortSignal.timeout(300) }))
      // proves a NOT: in the 2 s the server goes on with the abandoned request, it logs no error
      await sleep(2000)
      assert.deepEqual(errorsLogged, [])
    } finally {
      await impatient.stop()
    }
  })

  it('serves the newest version of a mirror under /mirror/<name>/', async () => {
    const v1 = await addTree(tc, 'v1', { 'dists/Release': enc.encode('version one\n'), 'old.txt': enc.encode('old\n') })
    const v2 = await addTree(tc, 'v2', { 'dists/Release': enc.encode('version two\n'), 'new.txt': enc.encode('new\n') })
    const meta = (version: number): Record<string, string> => ({ [MIRROR_KEY]: 'debian', [MIRROR_VERSION_KEY]: String(version) })
    await tc.peer(0).cluster.pin(CID.parse(v1.get('v1')!.cid), { name: 'debian@1', metadata: meta(1) })
    // what the gateway answered last, for the error (a 404 naming the mirror, or a 504 naming a block not fetched)
    let answered = 'nothing yet'
    await waitFor(async () => {
      const r = await fetch(`${gw}/mirror/debian/dists/Release`, { signal: AbortSignal.timeout(40_000) })
      answered = `${r.status} ${(await r.text()).trim()}`
      return r.status === 200
    }, { message: 'peer 1 sees version 1', describe: () => answered })
    assert.equal(await (await fetch(`${gw}/mirror/debian/dists/Release`)).text(), 'version one\n')

    await tc.peer(0).cluster.pin(CID.parse(v2.get('v2')!.cid), { name: 'debian@2', metadata: meta(2) })
    const res = await waitFor(async () => {
      const r = await fetch(`${gw}/mirror/debian/dists/Release`)
      const text = await r.text()
      return text === 'version two\n' ? r : undefined
    }, { message: 'peer 1 serves version 2' })
    assert.equal(res.headers.get('cache-control'), 'public, max-age=60')
    assert.equal(res.headers.get('x-ipfs-path'), `/ipfs/${v2.get('v2')!.cid}/dists/Release`)
    assert.equal(res.headers.get('x-ipfs-roots'), [v2.get('v2')!.cid, v2.get('v2/dists')!.cid, v2.get('v2/dists/Release')!.cid].join(','))
    assert.equal((await fetch(`${gw}/mirror/debian/new.txt`)).status, 200)
    assert.equal((await fetch(`${gw}/mirror/debian/old.txt`)).status, 404)

    const listing = await (await fetch(`${gw}/mirror/debian/`, { headers: { Accept: 'application/json' } })).json() as { entries: Array<{ name: string }> }
    assert.deepEqual(listing.entries.map(e => e.name), ['dists', 'new.txt'])
    const bare = await fetch(`${gw}/mirror/debian`, { redirect: 'manual' })
    assert.equal(bare.status, 302)
    assert.equal(bare.headers.get('location'), '/mirror/debian/')
    const mirrors = await (await fetch(`${gw}/mirror/`)).json() as Array<{ name: string, version: number, cid: string }>
    assert.deepEqual(mirrors.map(m => [m.name, m.version, m.cid]), [['debian', 2, v2.get('v2')!.cid]])

    const unknown = await fetch(`${gw}/mirror/ubuntu/dists/Release`)
    assert.equal(unknown.status, 404)
    assert.match(await unknown.text(), /no mirror named "ubuntu"/)
  })
})

describe('gateway HTTP helpers', () => {
  it('reads Range headers as RFC 9110 says', () => {
    assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 })
    assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 99 })
    assert.deepEqual(parseRange('bytes=90-500', 100), { start: 90, end: 99 })
    assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 99 })
    assert.deepEqual(parseRange('bytes=-500', 100), { start: 0, end: 99 })
    assert.equal(parseRange('bytes=100-', 100), 'unsatisfiable')
    assert.equal(parseRange('bytes=-0', 100), 'unsatisfiable')
    assert.equal(parseRange('bytes=0-0', 0), 'unsatisfiable')
    // ignored: the whole body is sent
    for (const h of [undefined, 'bytes=5-1', 'bytes=0-1,5-6', 'items=0-1', 'bytes=a-b', 'bytes=-']) assert.equal(parseRange(h, 100), undefined, h)
  })

  it('matches If-None-Match weakly and lists', () => {
    assert.equal(matchingEtag('"a", W/"b"', ['"b"']), '"b"')
    assert.equal(matchingEtag('*', ['"x"']), '"x"')
    assert.equal(matchingEtag('"a"', ['"b"']), undefined)
    assert.equal(matchingEtag(undefined, ['"b"']), undefined)
  })

  it('types files by extension, else by their first bytes', () => {
    assert.equal(typeByName('pool/main/h/hello_2.10-3_amd64.deb'), 'application/x-debian-package')
    assert.equal(typeByName('core.db.tar.zst'), 'application/zstd')
    assert.equal(typeByName('InRelease'), undefined)
    assert.equal(sniff(enc.encode('Origin: Debian\n')), 'text/plain; charset=utf-8')
    assert.equal(sniff(enc.encode('  <!DOCTYPE html><p>x')), 'text/html; charset=utf-8')
    assert.equal(sniff(new Uint8Array([0x1f, 0x8b, 8, 0])), 'application/gzip')
    assert.equal(sniff(new Uint8Array([1, 2, 0, 4])), 'application/octet-stream')
    // a UTF-8 character cut by the sniff window is still text
    assert.equal(sniff(enc.encode('é'.repeat(400)).subarray(0, 511)), 'text/plain; charset=utf-8')
  })

  it('reads npm\'s scoped names (@scope%2Fname) as two segments, first segment only, and nothing else with a "/"', () => {
    assert.deepEqual(pathSegments('@scope%2fname', { npmScope: true }), ['@scope', 'name'])
    assert.deepEqual(pathSegments('@scope%2Fname/-/name-1.0.0.tgz', { npmScope: true }), ['@scope', 'name', '-', 'name-1.0.0.tgz'])
    assert.deepEqual(pathSegments('@scope/name', { npmScope: true }), ['@scope', 'name'])
    for (const raw of ['@scope%2F..', '@scope%2F.', 'a/@scope%2Fname', '@a%2Fb%2Fc', 'scope%2Fname']) {
      assert.throws(() => pathSegments(raw, { npmScope: true }), /decodes to a name with "\/"|not allowed/, raw)
    }
    assert.throws(() => pathSegments('@scope%2fname'), /decodes to a name with "\/"/)
  })

  it('makes relative and registry.npmjs.org tarball URLs of a packument absolute, and nothing else', () => {
    const base = (): string => 'http://peer:8080/mirror/npm/'
    const doc = {
      name: 'a',
      versions: {
        1: { dist: { tarball: 'a/-/a-1.tgz' } },
        2: { dist: { tarball: './a/-/a-2.tgz' } },
        3: { dist: { tarball: '/a/-/a-3.tgz' } },
        4: { dist: { tarball: 'https://registry.npmjs.org/a/-/a-4.tgz' } },
        5: { dist: { tarball: 'https://example.org/a-5.tgz' } },
        6: { dist: {} },
        7: 'junk'
      }
    }
    const out = JSON.parse(new TextDecoder().decode(rewritePackument(enc.encode(JSON.stringify(doc)), base, 'x'))) as typeof doc
    assert.deepEqual(Object.values(out.versions).map(v => typeof v === 'string' ? v : (v.dist as { tarball?: string }).tarball), [
      'http://peer:8080/mirror/npm/a/-/a-1.tgz', 'http://peer:8080/mirror/npm/a/-/a-2.tgz', 'http://peer:8080/mirror/npm/a/-/a-3.tgz',
      'http://peer:8080/mirror/npm/a/-/a-4.tgz', 'https://example.org/a-5.tgz', undefined, 'junk'
    ])
    // nothing to rewrite: the very bytes, and no Host needed
    const as = enc.encode('{"name":"b","versions":{"1":{"dist":{"tarball":"https://example.org/b.tgz"}}}}')
    assert.equal(rewritePackument(as, () => { throw new Error('no base needed') }, 'x'), as)
    assert.throws(() => rewritePackument(enc.encode('{"versions": '), base, '/ipfs/x/b/index.json'), { name: 'InvalidContentError', message: /^\/ipfs\/x\/b\/index\.json is not a packument: not valid JSON/ })
    assert.equal(registryBase('[::1]:8080', '/mirror/npm/'), 'http://[::1]:8080/mirror/npm/')
    for (const host of [undefined, '', 'a b', 'a/b', 'a:8080:1']) assert.throws(() => registryBase(host, '/mirror/npm/'), { name: 'InvalidParameterError' }, host)
    assert.equal(acceptsNpm('application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*'), true)
    assert.equal(acceptsNpm('application/json'), false)
    assert.equal(acceptsNpm('application/vnd.npm.install-v1+json;q=0'), false)
  })
})
