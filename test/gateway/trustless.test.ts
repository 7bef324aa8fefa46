// Issue 16, item 7: the trustless gateway, checked against the words of ipfs/specs (trustless-gateway.md,
// path-gateway.md, IPIP-402, IPIP-412). Content is added on peer 0 and not pinned; peer 1's gateway fetches it over
// bitswap, so that only-if-cached can be seen to fetch nothing. Every CAR is read back, each block checked against
// its CID, and the blocks it holds are compared with what a plain walk of peer 0's store says they must be.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { CarReader } from '@ipld/car'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { exporter } from 'ipfs-unixfs-exporter'
import { importer } from 'ipfs-unixfs-importer'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import { parseAccept, cacheDirectives } from '../../src/gateway/http.js'
import { parseEntityBytes, resolveEntityBytes } from '../../src/gateway/trustless.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { waitFor } from '../util.js'
import type { AddEntry, AddedOutput } from '../../src/components.js'

const enc = new TextEncoder()
const KIB = 1024
/** 200 chunks of 1 KiB: a root over two nodes of 174 and 26 raw leaves (Kubo's balanced layout). */
const BIG = randomBytes(200 * KIB)
const DUP = randomBytes(3 * KIB)
const FILES: Record<string, Uint8Array> = {
  'big.bin': BIG,
  'hello.txt': enc.encode('hello from cairn\n'),
  'sub/f.txt': enc.encode('eff\n'),
  'sub/g.txt': enc.encode('gee\n'),
  // the same file twice, and a file whose three chunks are one block
  'dup/a.bin': DUP,
  'dup/b.bin': DUP,
  'dup/zeros.bin': new Uint8Array(3 * KIB),
  'holey.bin': randomBytes(3000)
}
/** Added on its own, read by the only-if-cached test alone. */
const CACHED = randomBytes(5 * KIB)

async function * entriesOf (prefix: string, files: Record<string, Uint8Array>): AsyncGenerator<AddEntry> {
  for (const [path, bytes] of Object.entries(files)) yield { path: `${prefix}/${path}`, content: (async function * () { yield bytes })() }
}

interface Car {
  roots: string[]
  /** CIDs in CAR order. */
  cids: string[]
  bytes: Map<string, Uint8Array>
  /** A store of the CAR's blocks alone, for the UnixFS exporter: a block that is not in the CAR is an error. */
  store: { get: (cid: CID) => AsyncGenerator<Uint8Array> }
}

/** Reads a CAR body, checking every block against its CID. */
async function readCar (res: Response): Promise<Car> {
  assert.equal(res.status, 200, `${res.url}: ${res.status}`)
  const reader = await CarReader.fromBytes(new Uint8Array(await res.arrayBuffer()))
  const cids: string[] = []
  const blocks = new Map<string, Uint8Array>()
  for await (const { cid, bytes } of reader.blocks()) {
    assert.notEqual(cid.multihash.code, identity.code, `identity block ${cid} in the CAR`)
    assert.deepEqual((await sha256.digest(bytes)).bytes, cid.multihash.bytes, `block ${cid} verifies`)
    cids.push(cid.toString())
    blocks.set(cid.toString(), bytes)
  }
  const store = {
    async * get (cid: CID) {
      if (cid.multihash.code === identity.code) { yield cid.multihash.digest; return }
      const b = blocks.get(cid.toString())
      if (b == null) throw new Error(`${cid} is not in the CAR`)
      yield b
    }
  }
  return { roots: (await reader.getRoots()).map(String), cids, bytes: blocks, store }
}

async function concat (chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const out: Uint8Array[] = []
  for await (const c of chunks) out.push(c)
  return new Uint8Array(Buffer.concat(out))
}

async function readAll (entry: Awaited<ReturnType<typeof exporter>>, options: { offset?: number, length?: number } = {}): Promise<Uint8Array> {
  assert.ok(entry.type === 'file' || entry.type === 'raw')
  const chunks: Uint8Array[] = []
  for await (const c of entry.content(options)) chunks.push(c)
  return new Uint8Array(Buffer.concat(chunks))
}

describe('the trustless gateway', () => {
  let tc: TestCluster
  let gw: string
  let tree: Map<string, AddedOutput>
  let root: string
  const cid = (name: string): string => tree.get(`site/${name}`)!.cid
  /** Peer 0's own store: the oracle. */
  let local: { get: (cid: CID) => AsyncGenerator<Uint8Array> }
  const links = async (c: string): Promise<string[]> => {
    const id = CID.parse(c)
    if (id.code !== dagPb.code) return []
    return dagPb.decode(await concat(local.get(id))).Links.map(l => l.Hash.toString())
  }
  /** Depth-first, links in order: every occurrence (dups) or the first of each block. */
  const dfs = async (c: string, dups: boolean, seen = new Set<string>()): Promise<string[]> => {
    if (!dups && seen.has(c)) return []
    seen.add(c)
    const out = [c]
    for (const child of await links(c)) out.push(...await dfs(child, dups, seen))
    return out
  }

  before(async () => {
    tc = await createTestCluster(2)
    await waitFor(async () => (await tc.peer(1).cluster.peerset()).length === 2, { message: 'peers see each other', timeoutMs: 30_000 })
    tree = new Map()
    for await (const line of tc.peer(0).cluster.add(entriesOf('site', FILES), { cid_version: 1, no_pin: true, chunk_size: KIB })) {
      if (line.cid !== '') tree.set(line.name, line)
    }
    root = tree.get('site')!.cid
    local = tc.peer(0).ipfs.helia.blockstore as unknown as typeof local
    gw = `http://127.0.0.1:${tc.peer(1).gatewayAddress().port}`
    assert.equal(await tc.peer(1).ipfs.hasBlock(CID.parse(root)), false, 'peer 1 starts without the content')
  })
  after(async () => { await tc?.close() })

  it('dag-scope=block: the path blocks and the terminal block, nothing below it', async () => {
    // "block - Only the root block at the end of the path is returned after blocks required to verify the
    // specified path segments."
    const file = await readCar(await fetch(`${gw}/ipfs/${root}/big.bin?format=car&dag-scope=block`))
    assert.deepEqual(file.roots, [cid('big.bin')])
    assert.deepEqual(file.cids, [root, cid('big.bin')])
    const dir = await readCar(await fetch(`${gw}/ipfs/${root}/sub?format=car&dag-scope=block`))
    assert.deepEqual(dir.cids, [root, cid('sub')])
  })

  it('dag-scope=entity: a whole file, a directory without its children, a DAG-CBOR document without its links', async () => {
    // "For UnixFS, all the blocks needed to read an entire UnixFS file, or enumerate a UnixFS directory."
    const file = await readCar(await fetch(`${gw}/ipfs/${root}/big.bin?format=car&dag-scope=entity`))
    const whole = await dfs(cid('big.bin'), false)
    assert.equal(whole.length, 1 + 2 + 200, 'a root, two interior nodes, 200 leaves')
    assert.deepEqual(file.cids, [root, ...whole], 'the path, then the file depth-first')
    assert.deepEqual(await readAll(await exporter(`${root}/big.bin`, file.store)), new Uint8Array(BIG))

    // IPIP-402: "blocks for the directory node, allowing its enumeration; no root blocks for any of the child entities"
    const dir = await readCar(await fetch(`${gw}/ipfs/${root}/sub?format=car&dag-scope=entity`))
    assert.deepEqual(dir.cids, [root, cid('sub')])
    const listed = await exporter(`${root}/sub`, dir.store)
    assert.equal(listed.type, 'directory')
    const names: string[] = []
    for await (const e of listed.entries()) names.push(e.name)
    assert.deepEqual(names, ['f.txt', 'g.txt'])

    // "For all queries that reference non-UnixFS data, entity is equivalent to block"
    const doc = dagCbor.encode({ title: 'a document', file: CID.parse(cid('hello.txt')) })
    const docCid = CID.createV1(dagCbor.code, await sha256.digest(doc))
    await tc.peer(0).ipfs.helia.blockstore.put(docCid, doc)
    assert.deepEqual((await readCar(await fetch(`${gw}/ipfs/${docCid}?format=car&dag-scope=entity`))).cids, [docCid.toString()])
    assert.deepEqual((await readCar(await fetch(`${gw}/ipfs/${docCid}?format=car&dag-scope=all`))).cids, [docCid.toString(), cid('hello.txt')])
    // and a path through it carries it
    assert.deepEqual((await readCar(await fetch(`${gw}/ipfs/${docCid}/file?format=car&dag-scope=block`))).cids, [docCid.toString(), cid('hello.txt')])
  })

  it('dag-scope=entity of a HAMT-sharded directory: every shard, no entry; a path through it carries its shards', async () => {
    const names = Array.from({ length: 300 }, (_, i) => `file-${i}.txt`)
    let hamt: CID | undefined
    const entries = names.map(name => ({ path: `hamt/${name}`, content: enc.encode(`${name}\n`) }))
    for await (const r of importer(entries, tc.peer(0).ipfs.helia.blockstore, { cidVersion: 1, rawLeaves: true, shardSplitThresholdBytes: 1 })) {
      if (r.path === 'hamt') hamt = r.cid
    }
    assert.ok(hamt != null)
    // the oracle: shards are the nodes below the root whose UnixFS type says so
    const shards: string[] = []
    const walk = async (c: string): Promise<void> => {
      shards.push(c)
      for (const child of await links(c)) {
        const id = CID.parse(child)
        if (id.code !== dagPb.code) continue
        const node = dagPb.decode(await concat(local.get(id)))
        if (node.Data != null && UnixFS.unmarshal(node.Data).type === 'hamt-sharded-directory') await walk(child)
      }
    }
    await walk(hamt.toString())
    const subShardOfRoot = new Set((await links(hamt.toString())).filter(c => shards.includes(c)))
    assert.ok(subShardOfRoot.size > 0, 'the HAMT has sub-shards')

    const car = await readCar(await fetch(`${gw}/ipfs/${hamt}?format=car&dag-scope=entity`))
    assert.deepEqual(car.cids, shards, 'the shards, depth-first, and nothing else')
    // enough to list it, from the CAR alone
    const dir = await exporter(hamt, car.store)
    assert.equal(dir.type, 'directory')
    const listed: string[] = []
    for await (const e of dir.entries()) listed.push(e.name)
    assert.deepEqual(listed.sort(), [...names].sort())

    // IPIP-402 pathing: "all blocks necessary for traversing from the root CID to the terminating element"; an
    // entry of a sub-shard of the root: its link is named by its bucket then the entry's name
    const sub = [...subShardOfRoot][0]
    const subBlock = dagPb.decode(await concat(local.get(CID.parse(sub))))
    const entry = subBlock.Links.find(l => (l.Name ?? '').length > 2)!
    const name = entry.Name!.slice(2)
    const viaHamt = await readCar(await fetch(`${gw}/ipfs/${hamt}/${name}?format=car`))
    assert.deepEqual(viaHamt.cids, [hamt.toString(), sub, entry.Hash.toString()])
    assert.equal(new TextDecoder().decode(await readAll(await exporter(`${hamt}/${name}`, viaHamt.store))), `${name}\n`)
  })

  it('entity-bytes=from:to: only the blocks of those bytes, with negative and * bounds', async () => {
    const leaves = (await dfs(cid('big.bin'), false)).filter(c => CID.parse(c).code === raw.code)
    const [inner0, inner1] = await links(cid('big.bin'))
    const big = cid('big.bin')
    // "a Gateway MUST return only the minimal set of blocks necessary to verify the specified byte range of that entity"
    const cases: Array<[string, string[], number, number]> = [
      ['0:1023', [big, inner0, leaves[0]], 0, 1023],
      ['1000:1100', [big, inner0, leaves[0], leaves[1]], 1000, 1100],
      // across the two interior nodes
      [`${174 * KIB - 10}:${174 * KIB + 10}`, [big, inner0, leaves[173], inner1, leaves[174]], 174 * KIB - 10, 174 * KIB + 10],
      // "entity-bytes=-1024:* is the last 1024 bytes of a file"
      ['-1024:*', [big, inner1, leaves[199]], 199 * KIB, 200 * KIB - 1],
      // "ask for the range of 500 bytes from the beginning of the file to 1000 bytes from the end"
      [`${199 * KIB}:-700`, [big, inner1, leaves[199]], 199 * KIB, 200 * KIB - 700],
      // a range past the end is cut at the end ("the response MUST include the subset of blocks within the entity's bytes")
      [`${199 * KIB + 1000}:${10 * 1000 * KIB}`, [big, inner1, leaves[199]], 199 * KIB + 1000, 200 * KIB - 1],
      ['0:*', await dfs(big, false), 0, 200 * KIB - 1]
    ]
    const etags = new Set<string>()
    for (const [bytes, blocks, from, to] of cases) {
      const res = await fetch(`${gw}/ipfs/${root}/big.bin?format=car&entity-bytes=${bytes}`)
      // "A Gateway MUST augment the returned Etag based on the passed entity-bytes."
      etags.add(res.headers.get('etag')!)
      const car = await readCar(res)
      assert.deepEqual(car.cids, [root, ...blocks], bytes)
      // its chunks, in order, hold those bytes
      const chunks = car.cids.filter(c => CID.parse(c).code === raw.code)
      const first = leaves.indexOf(chunks[0])
      assert.ok(first * KIB <= from && to < (first + chunks.length) * KIB, bytes)
      assert.deepEqual(new Uint8Array(Buffer.concat(chunks.map(c => car.bytes.get(c)!))), new Uint8Array(BIG.subarray(first * KIB, (first + chunks.length) * KIB)), bytes)
    }
    assert.equal(etags.size, cases.length, 'one ETag per range')

    // "If the requested entity-bytes resolves to a zero-length range ... the response is equivalent to dag-scope=block."
    assert.deepEqual((await readCar(await fetch(`${gw}/ipfs/${root}/big.bin?format=car&entity-bytes=1000:-${200 * KIB - 500}`))).cids, [root, big])
    // "A Gateway SHOULD return an HTTP 400 Bad Request error when the requested range is entirely outside of the
    // entity's byte range and the Gateway is able to determine this upfront."
    for (const outside of [`${200 * KIB}:*`, '300000:400000', '-300000:-250000']) {
      const res = await fetch(`${gw}/ipfs/${root}/big.bin?format=car&entity-bytes=${outside}`)
      assert.equal(res.status, 400, outside)
      assert.equal(await res.text(), `entity-bytes=${outside} lies outside the ${200 * KIB} bytes of ${big}\n`)
    }
    // "cannot be interpreted as a continuous array of bytes (such as ... UnixFS directory), the parameter MUST be
    // ignored, and the request is equivalent to dag-scope=entity"
    assert.deepEqual((await readCar(await fetch(`${gw}/ipfs/${root}/sub?format=car&entity-bytes=0:10`))).cids, [root, cid('sub')])
  })

  it('entity-bytes succeeds when a block outside the range cannot be had (the IPIP-402 fixture)', async () => {
    const holey = cid('holey.bin')
    const [leaf0, leaf1, leaf2] = await links(holey)
    // nobody has the middle chunk any more
    await tc.peer(0).ipfs.helia.blockstore.delete(CID.parse(leaf1))
    // "MUST succeed despite the fact that a block after the range is not retrievable"
    const head = await readCar(await fetch(`${gw}/ipfs/${root}/holey.bin?format=car&entity-bytes=0:1000`, { signal: AbortSignal.timeout(20_000) }))
    assert.deepEqual(head.cids, [root, holey, leaf0])
    // "MUST succeed despite the fact that a block before the range is not retrievable"
    const tail = await readCar(await fetch(`${gw}/ipfs/${root}/holey.bin?format=car&entity-bytes=2200:*`, { signal: AbortSignal.timeout(20_000) }))
    assert.deepEqual(tail.cids, [root, holey, leaf2])
    assert.deepEqual(await readAll(await exporter(`${root}/holey.bin`, tail.store), { offset: 2200, length: 800 }), new Uint8Array(FILES['holey.bin'].subarray(2200)))
  })

  it('walks each block of a file that links one node over and over once, whatever the range (dups=n)', async () => {
    // 2^20 chunks of 1 KiB in 21 blocks: each node links the one below it twice. A walk that went down every link
    // would take minutes; without dups each block is sent once, and a node met again is not walked again, but for
    // the nodes cut by the range's ends. (Not deeper: protons-runtime 5.6 writes uint64 values from 2^31 to 2^32
    // as 0, so a node of 2 GiB or more would not say its size.)
    const leaf = randomBytes(KIB)
    let below: CID = CID.createV1(raw.code, await sha256.digest(leaf))
    await tc.peer(0).ipfs.helia.blockstore.put(below, leaf)
    const chain = [below.toString()]
    let size = KIB
    for (let level = 0; level < 20; level++) {
      const node = dagPb.encode(dagPb.prepare({
        Data: new UnixFS({ type: 'file', blockSizes: [BigInt(size), BigInt(size)] }).marshal(),
        Links: [{ Hash: below, Tsize: size }, { Hash: below, Tsize: size }]
      }))
      below = CID.createV1(dagPb.code, await sha256.digest(node))
      await tc.peer(0).ipfs.helia.blockstore.put(below, node)
      chain.unshift(below.toString())
      size *= 2
    }
    for (const query of ['', '&dag-scope=entity', '&entity-bytes=1000:-1000', `&entity-bytes=${size / 2 - 10}:${size / 2 + 10}`]) {
      const car = await readCar(await fetch(`${gw}/ipfs/${below}?format=car${query}`, { signal: AbortSignal.timeout(20_000) }))
      assert.deepEqual(car.cids, chain, query)
    }
    // with dups, as many as the client reads
    const res = await fetch(`${gw}/ipfs/${below}?format=car&car-dups=y`)
    assert.equal(res.headers.get('content-type'), 'application/vnd.ipld.car; version=1; order=dfs; dups=y')
    const reader = res.body!.getReader()
    let read = 0
    while (read < 1024 * KIB) read += (await reader.read()).value?.byteLength ?? Infinity
    await reader.cancel()
  })

  it('a path CAR carries the blocks that verify the path, and the terminal\'s DAG', async () => {
    const car = await readCar(await fetch(`${gw}/ipfs/${root}/sub/f.txt?format=car`))
    assert.deepEqual(car.roots, [cid('sub/f.txt')])
    assert.deepEqual(car.cids, [root, cid('sub'), cid('sub/f.txt')])
    assert.equal(new TextDecoder().decode(await readAll(await exporter(`${root}/sub/f.txt`, car.store))), 'eff\n')
    const all = await readCar(await fetch(`${gw}/ipfs/${root}/sub?format=car&dag-scope=all`))
    assert.deepEqual(all.cids, [root, cid('sub'), cid('sub/f.txt'), cid('sub/g.txt')])
  })

  it('says order=dfs and dups=n by default, and honours Accept ...;order=dfs;dups=y and car-dups=y', async () => {
    const dup = cid('dup')
    // "If the dups parameter is absent from the Accept request header ... a Gateway should respond with dups=n if
    // it has control over the duplicate status"; "A Gateway SHOULD always return explicit order"
    const plain = await fetch(`${gw}/ipfs/${dup}?format=car`)
    assert.equal(plain.headers.get('content-type'), 'application/vnd.ipld.car; version=1; order=dfs; dups=n')
    const once = await readCar(plain)
    assert.deepEqual(once.cids, await dfs(dup, false))
    assert.equal(new Set(once.cids).size, once.cids.length, 'no block twice')
    assert.equal(once.cids.length, 1 + 4 + 2, 'the directory, a.bin (= b.bin) and its 3 leaves, zeros.bin and its one leaf')

    // "y: Duplicate blocks MUST be sent every time they occur during the DAG walk."
    const withDups = await dfs(dup, true)
    assert.equal(withDups.length, 1 + 4 + 4 + 4)
    for (const res of [
      await fetch(`${gw}/ipfs/${dup}`, { headers: { Accept: 'application/vnd.ipld.car; order=dfs; dups=y' } }),
      await fetch(`${gw}/ipfs/${dup}?format=car&car-dups=y`),
      // the spec's own list of preferences: order=foo is not written here, the next choice is
      await fetch(`${gw}/ipfs/${dup}`, { headers: { Accept: 'application/vnd.ipld.car;order=foo, application/vnd.ipld.car;order=dfs;dups=y;q=0.5' } })
    ]) {
      assert.equal(res.headers.get('content-type'), 'application/vnd.ipld.car; version=1; order=dfs; dups=y')
      assert.deepEqual((await readCar(res)).cids, withDups)
    }
    // the big file's order is depth-first too
    assert.deepEqual((await readCar(await fetch(`${gw}/ipfs/${cid('big.bin')}?format=car`))).cids, await dfs(cid('big.bin'), false))
  })

  it('order=unk is answered in arrival order with a weak ETag, and said so', async () => {
    const dup = cid('dup')
    const res = await fetch(`${gw}/ipfs/${dup}?format=car`, { headers: { Accept: 'application/vnd.ipld.car; order=unk' } })
    assert.equal(res.headers.get('content-type'), 'application/vnd.ipld.car; version=1; order=unk; dups=n')
    // "When a gateway can't guarantee byte-for-byte identical responses, a "weak" etag should be used."
    const etag = res.headers.get('etag')!
    assert.match(etag, /^W\/"/)
    const car = await readCar(res)
    assert.deepEqual([...car.cids].sort(), (await dfs(dup, false)).sort(), 'every block of the DAG, once')
    const again = await fetch(`${gw}/ipfs/${dup}?format=car`, { headers: { Accept: 'application/vnd.ipld.car; order=unk', 'If-None-Match': etag } })
    assert.equal(again.status, 304)
    // an entity is always sent depth-first: the answer says so, with a strong ETag
    const entity = await fetch(`${gw}/ipfs/${root}/big.bin?format=car&dag-scope=entity&car-order=unk`)
    assert.equal(entity.headers.get('content-type'), 'application/vnd.ipld.car; version=1; order=dfs; dups=n')
    assert.doesNotMatch(entity.headers.get('etag')!, /^W\//)
    await entity.arrayBuffer()
  })

  it('gives a strong ETag to a depth-first CAR, the same bytes each time, a new ETag per scope, path and dups', async () => {
    const url = `${gw}/ipfs/${root}/big.bin?format=car&dag-scope=entity`
    const a = await fetch(url)
    const etag = a.headers.get('etag')!
    assert.match(etag, /^"[^"]+"$/, 'strong')
    assert.ok(etag.includes(cid('big.bin')) && etag.includes('entity'), `"Etag must include unique prefix based on the passed scope type": ${etag}`)
    const bytesA = Buffer.from(await a.arrayBuffer())
    const bytesB = Buffer.from(await (await fetch(url)).arrayBuffer())
    assert.ok(bytesA.equals(bytesB), 'byte-for-byte the same')
    assert.equal((await fetch(url, { headers: { 'If-None-Match': etag } })).status, 304)
    const others = [
      `${gw}/ipfs/${root}/big.bin?format=car`,
      `${gw}/ipfs/${root}/big.bin?format=car&dag-scope=block`,
      `${gw}/ipfs/${root}/big.bin?format=car&dag-scope=entity&car-dups=y`,
      // the same file, reached without a path: other blocks in the CAR
      `${gw}/ipfs/${cid('big.bin')}?format=car&dag-scope=entity`
    ]
    const tags = new Set([etag])
    for (const u of others) {
      const res = await fetch(u, { method: 'HEAD' })
      tags.add(res.headers.get('etag')!)
    }
    assert.equal(tags.size, others.length + 1)
  })

  it('leaves identity blocks out of a CAR, and answers the bafkqaaa probe', async () => {
    const inline = CID.createV1(raw.code, identity.digest(enc.encode('inline bytes')))
    const dir = dagPb.encode(dagPb.prepare({
      Data: new UnixFS({ type: 'directory' }).marshal(),
      Links: [{ Name: 'hello.txt', Hash: CID.parse(cid('hello.txt')), Tsize: 17 }, { Name: 'inline.txt', Hash: inline, Tsize: 12 }]
    }))
    const dirCid = CID.createV1(dagPb.code, await sha256.digest(dir))
    await tc.peer(0).ipfs.helia.blockstore.put(dirCid, dir)
    // "A Gateway MUST NOT include virtual blocks identified by identity CIDs (multihash with 0x00 code) in CAR responses."
    for (const dups of ['n', 'y']) {
      const car = await readCar(await fetch(`${gw}/ipfs/${dirCid}?format=car&car-dups=${dups}`))
      assert.deepEqual(car.cids, [dirCid.toString(), cid('hello.txt')])
      assert.equal(new TextDecoder().decode(await readAll(await exporter(`${dirCid}/inline.txt`, car.store))), 'inline bytes')
    }
    // a directory whose own block is inline: its children are sent, it is not
    const inlineDir = CID.createV1(dagPb.code, identity.digest(dir))
    assert.deepEqual((await readCar(await fetch(`${gw}/ipfs/${inlineDir}?format=car`))).cids, [cid('hello.txt')])

    // "it MUST return 200 OK and a valid CAR with CAR Header roots set to bafkqaaa"
    const probe = await readCar(await fetch(`${gw}/ipfs/bafkqaaa?format=car`))
    assert.deepEqual(probe.roots, ['bafkqaaa'])
    assert.deepEqual(probe.cids, [])
    const rawProbe = await fetch(`${gw}/ipfs/bafkqaaa`, { headers: { Accept: 'application/vnd.ipld.raw' } })
    assert.equal(rawProbe.status, 200)
    assert.equal((await rawProbe.arrayBuffer()).byteLength, 0)
  })

  it('sends Content-Disposition: attachment with raw blocks and CARs, HEAD too, and Content-Location when Accept chose', async () => {
    const hello = cid('hello.txt')
    for (const method of ['GET', 'HEAD']) {
      // "Content-Disposition ... MUST be returned and set to attachment"; "Raw block responses should use filename="<cid>.bin""
      const rawRes = await fetch(`${gw}/ipfs/${hello}`, { method, headers: { Accept: 'application/vnd.ipld.raw' } })
      assert.equal(rawRes.status, 200)
      assert.equal(rawRes.headers.get('content-disposition'), `attachment; filename="${hello}.bin"`, method)
      assert.equal(rawRes.headers.get('content-type'), 'application/vnd.ipld.raw')
      // "a request to /ipfs/{cid} with Accept: application/vnd.ipld.raw SHOULD return a Content-Location: /ipfs/{cid}?format=raw"
      assert.equal(rawRes.headers.get('content-location'), `/ipfs/${hello}?format=raw`, method)
      await rawRes.arrayBuffer()

      // "CAR responses should use filename="<cid>.car""
      const carRes = await fetch(`${gw}/ipfs/${root}/sub?dag-scope=entity`, { method, headers: { Accept: 'application/vnd.ipld.car; order=dfs; dups=y' } })
      assert.equal(carRes.status, 200)
      assert.equal(carRes.headers.get('content-disposition'), `attachment; filename="${cid('sub')}.car"`, method)
      assert.equal(carRes.headers.get('content-type'), 'application/vnd.ipld.car; version=1; order=dfs; dups=y', method)
      assert.match(carRes.headers.get('etag') ?? '', /^"/, method)
      const location = carRes.headers.get('content-location')
      assert.equal(location, `/ipfs/${root}/sub?dag-scope=entity&format=car&car-order=dfs&car-dups=y`, method)
      const body = Buffer.from(await carRes.arrayBuffer())
      if (method === 'HEAD') {
        assert.equal(body.byteLength, 0)
      } else {
        // the URL it names is the same representation
        assert.ok(body.equals(Buffer.from(await (await fetch(`${gw}${location}`)).arrayBuffer())))
      }
      // the format in the URL: no Content-Location
      const named = await fetch(`${gw}/ipfs/${hello}?format=raw`, { method, headers: { Accept: 'application/vnd.ipld.raw' } })
      assert.equal(named.headers.get('content-location'), null)
      assert.equal(named.headers.get('content-disposition'), `attachment; filename="${hello}.bin"`)
      await named.arrayBuffer()
    }
  })

  it('names the parameter of a malformed or unsupported request, with a 400 or a 406', async () => {
    const cases: Array<[string, Record<string, string>, number, RegExp]> = [
      ['?format=car&dag-scope=everything', {}, 400, /^dag-scope=everything is not supported: expected block, entity or all/],
      ['?format=car&entity-bytes=abc', {}, 400, /^entity-bytes=abc is not valid: expected from:to/],
      ['?format=car&entity-bytes=5:1', {}, 400, /^entity-bytes=5:1 is not valid: from is after to/],
      ['?format=car&entity-bytes=1:2:3', {}, 400, /^entity-bytes=1:2:3 is not valid/],
      ['?format=car&entity-bytes=x:*', {}, 400, /^entity-bytes=x:\* is not valid: from \("x"\) is not an integer/],
      ['?format=car&entity-bytes=0:10&dag-scope=all', {}, 400, /^entity-bytes selects bytes of an entity: it goes with dag-scope=entity/],
      ['?format=car&car-order=random', {}, 400, /^car-order=random is not supported: order=random \(dfs or unk\)/],
      ['?format=car&car-version=2', {}, 400, /^car-version=2 is not supported: version=2/],
      ['?format=car&car-dups=maybe', {}, 400, /^car-dups=maybe is not supported/],
      ['', { Accept: 'application/vnd.ipld.car; version=2' }, 406, /^Accept lists only CAR variants this gateway does not write: application\/vnd\.ipld\.car; version=2/]
    ]
    for (const [query, headers, status, message] of cases) {
      const res = await fetch(`${gw}/ipfs/${root}/hello.txt${query}`, { headers })
      assert.equal(res.status, status, query)
      assert.match(await res.text(), message, query)
    }
    // only CAR requests read dag-scope and entity-bytes
    assert.equal((await fetch(`${gw}/ipfs/${cid('hello.txt')}?format=raw&dag-scope=everything`)).status, 200)
  })

  it('Cache-Control: only-if-cached: 412 at once when a block the answer needs is not here, and no fetch', async () => {
    const own = new Map<string, AddedOutput>()
    for await (const line of tc.peer(0).cluster.add(entriesOf('cached', { 'cache/c.bin': CACHED }), { cid_version: 1, no_pin: true, chunk_size: KIB })) {
      if (line.cid !== '') own.set(line.name, line)
    }
    const top = own.get('cached')!.cid
    const c = own.get('cached/cache/c.bin')!.cid
    const path = `/ipfs/${top}/cache/c.bin`
    const onlyCached = { 'Cache-Control': 'only-if-cached' }
    const has = async (id: string): Promise<boolean> => await tc.peer(1).ipfs.hasBlock(CID.parse(id))
    // path-gateway: "If data is not cached locally, and the response requires an expensive remote fetch, a 412
    // Precondition Failed HTTP status code should be returned"; trustless: "gateway SHOULD return HTTP 412 if the
    // root block is not immediately available"
    for (const [suffix, method] of [['', 'GET'], ['', 'HEAD'], ['?format=car', 'GET'], ['?format=car', 'HEAD']] as const) {
      const t0 = Date.now()
      const res = await fetch(`${gw}${path}${suffix}`, { method, headers: onlyCached })
      assert.equal(res.status, 412, `${method} ${suffix}`)
      assert.ok(Date.now() - t0 < 2000, `at once (${Date.now() - t0} ms)`)
      if (method === 'GET') assert.match(await res.text(), /^block \S+ is not in this peer's store, and Cache-Control: only-if-cached forbids fetching it/)
    }
    const rawRes = await fetch(`${gw}/ipfs/${c}?format=raw`, { headers: { 'Cache-Control': 'max-age=0, only-if-cached' } })
    assert.equal(rawRes.status, 412)
    assert.match(await rawRes.text(), new RegExp(`^block ${c} is not in this peer's store`))
    assert.equal(await has(c), false, 'nothing was fetched')

    // the first 1000 bytes fetched (a range ending on a chunk boundary would have ipfs-unixfs-exporter read the next
    // chunk too): they can be answered from here, the rest cannot
    const first = await fetch(`${gw}${path}`, { headers: { Range: 'bytes=0-999' } })
    assert.equal(first.status, 206)
    await first.arrayBuffer()
    const [leaf0, leaf1] = await links(c)
    assert.equal(await has(leaf0), true)
    assert.equal(await has(leaf1), false)
    const part = await fetch(`${gw}${path}`, { headers: { ...onlyCached, Range: 'bytes=0-999' } })
    assert.equal(part.status, 206)
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), new Uint8Array(CACHED.subarray(0, 1000)))
    assert.deepEqual((await readCar(await fetch(`${gw}${path}?format=car&entity-bytes=0:1023`, { headers: onlyCached }))).cids, [top, own.get('cached/cache')!.cid, c, leaf0])
    // the whole file needs leaves that are not here: 412 before anything is sent, HEAD too, and still no fetch
    for (const [suffix, method] of [['', 'GET'], ['', 'HEAD'], ['?format=car', 'GET'], ['?format=car&dag-scope=entity', 'HEAD']] as const) {
      const t0 = Date.now()
      const res = await fetch(`${gw}${path}${suffix}`, { method, headers: onlyCached })
      assert.equal(res.status, 412, `${method} ${suffix}`)
      assert.ok(Date.now() - t0 < 2000, `at once (${Date.now() - t0} ms)`)
      if (method === 'GET') assert.match(await res.text(), new RegExp(`^block ${leaf1} is not in this peer's store`))
    }
    assert.equal(await has(leaf1), false, 'nothing was fetched')

    // all of it here: served from here
    await (await fetch(`${gw}${path}`)).arrayBuffer()
    const whole = await fetch(`${gw}${path}`, { headers: onlyCached })
    assert.equal(whole.status, 200)
    assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), new Uint8Array(CACHED))
    assert.deepEqual((await readCar(await fetch(`${gw}${path}?format=car`, { headers: onlyCached }))).cids, [top, own.get('cached/cache')!.cid, ...await dfs(c, false)])
  })
})

describe('trustless request parsing', () => {
  it('reads entity-bytes as the spec writes it', () => {
    assert.deepEqual(parseEntityBytes('0:*'), { from: 0, to: '*' })
    assert.deepEqual(parseEntityBytes('-1024:*'), { from: -1024, to: '*' })
    assert.deepEqual(parseEntityBytes('499:-1000'), { from: 499, to: -1000 })
    assert.deepEqual(parseEntityBytes('-10:-5'), { from: -10, to: -5 })
    for (const bad of ['', '1', '1:', ':1', '1:2:3', 'a:b', '1.5:2', '*:1', '5:1', '-1:-5', '1:**']) {
      assert.throws(() => parseEntityBytes(bad), { name: 'InvalidParameterError', message: new RegExp(`^entity-bytes=${bad.replace(/[*.]/g, '\\$&')} is not valid`) }, bad)
    }
    assert.deepEqual(resolveEntityBytes({ from: 499, to: -1000 }, 2000), { from: 499, to: 1000 })
    assert.deepEqual(resolveEntityBytes({ from: -5000, to: '*' }, 2000), { from: 0, to: 1999 })
    assert.deepEqual(resolveEntityBytes({ from: 10, to: 99999 }, 2000), { from: 10, to: 1999 })
    assert.equal(resolveEntityBytes({ from: 2000, to: '*' }, 2000), 'outside')
    assert.equal(resolveEntityBytes({ from: 0, to: -3000 }, 2000), 'outside')
    assert.equal(resolveEntityBytes({ from: 1500, to: -1000 }, 2000), 'empty')
    assert.equal(resolveEntityBytes({ from: 0, to: '*' }, 0), 'empty')
  })

  it('reads Accept with parameters and weights, and Cache-Control directives', () => {
    assert.deepEqual(parseAccept('application/vnd.ipld.car;order=foo, application/vnd.ipld.car;order=dfs;dups=y;q=0.5, text/html;q=0'), [
      { type: 'application/vnd.ipld.car', params: { order: 'foo' }, q: 1 },
      { type: 'application/vnd.ipld.car', params: { order: 'dfs', dups: 'y' }, q: 0.5 }
    ])
    assert.deepEqual(parseAccept('a/b;q=0.2, c/d, e/f;q=0.9').map(r => r.type), ['c/d', 'e/f', 'a/b'])
    assert.deepEqual([...cacheDirectives('max-age=0, Only-If-Cached')], ['max-age', 'only-if-cached'])
    assert.deepEqual([...cacheDirectives(undefined)], [])
  })
})
