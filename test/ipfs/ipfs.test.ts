import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { join } from 'node:path'
import { CarWriter } from '@ipld/car/writer'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagPb from '@ipld/dag-pb'
import { LevelDatastore } from 'datastore-level'
import { Key } from 'interface-datastore'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import { concatChunks } from '../../src/utils/bytes.js'
import { chunked, collect, concatBytes, removeDirs, startPeer, stopPeers } from './helpers.js'
import { waitFor } from '../util.js'
import type { TestPeer } from './helpers.js'
import type { AddEntry } from '../../src/components.js'

function tree (files: Record<string, Uint8Array | null>): AsyncIterable<AddEntry> {
  return (async function * () {
    for (const [path, content] of Object.entries(files)) {
      yield content == null ? { path } : { path, content: chunked(content) }
    }
  })()
}

async function rawBlock (bytes: Uint8Array): Promise<{ cid: CID, bytes: Uint8Array }> {
  return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
}

async function carBytes (roots: CID[], blocks: Array<{ cid: CID, bytes: Uint8Array }>): Promise<AsyncIterable<Uint8Array>> {
  const { writer, out } = CarWriter.create(roots)
  const chunks = collect(out)
  for (const b of blocks) {
    await writer.put(b)
  }
  await writer.close()
  const all = await chunks
  return (async function * () { yield * all })()
}

describe('ipfs node', () => {
  it('moves a 3 MiB file between two peers over bitswap: pin, cat, unpin', async () => {
    let a: TestPeer | undefined
    let b: TestPeer | undefined
    try {
      a = await startPeer('a')
      b = await startPeer('b')
      const data = randomBytes(3 * 1024 * 1024)
      const out = await collect(a.node.addEntries(tree({ 'big.bin': data }), {}))
      assert.equal(out.length, 1)
      const root = CID.parse(out[0].cid)
      assert.equal(out[0].name, 'big.bin')
      assert.ok(out[0].size != null && out[0].size > data.length, 'size is the cumulative DAG size')
      assert.equal(await a.node.isPinned(root), false, 'add pins nothing')
      assert.ok(await a.node.repoSize() >= data.length)

      await b.node.libp2p.dial(a.node.libp2p.getMultiaddrs()[0])
      let progress = 0
      await b.node.pin(root, { signal: AbortSignal.timeout(20_000), onProgress: n => { progress = n } })
      assert.ok(progress > 12, `progress counted ${progress} blocks`)
      assert.equal(await b.node.isPinned(root), true)
      const pinned = (await collect(b.node.pinLs())).map(c => c.toString())
      assert.deepEqual(pinned, [root.toV1().toString()])

      const got = await concatBytes(b.node.cat(root))
      assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(data).digest('hex'))
      assert.ok(await b.node.repoSize() >= data.length)

      await b.node.pin(root) // already pinned: resolves at once
      await b.node.unpin(root)
      assert.equal(await b.node.isPinned(root), false)
      assert.deepEqual(await collect(b.node.pinLs()), [])
      await b.node.unpin(root) // not pinned: no error
    } finally {
      await stopPeers(a, b)
      await removeDirs(a, b)
    }
  })

  it('gives blocks through getBlock (held, fetched from a connected peer, offline), its pinned blocks and bitswap counts', async () => {
    let a: TestPeer | undefined
    let b: TestPeer | undefined
    try {
      a = await startPeer('get-a')
      b = await startPeer('get-b')
      const block = await rawBlock(randomBytes(50_000))
      await a.node.helia.blockstore.put(block.cid, block.bytes)
      assert.deepEqual(await a.node.getBlock(block.cid), block.bytes)
      await assert.rejects(b.node.getBlock(block.cid, { offline: true }), { name: 'NotFoundError' })
      const inline = CID.createV1(raw.code, identity.digest(Buffer.from('inline')))
      assert.equal(Buffer.from(await b.node.getBlock(inline, { offline: true })).toString(), 'inline', 'an identity CID carries its block')

      await b.node.libp2p.dial(a.node.libp2p.getMultiaddrs()[0])
      const sentBefore = a.node.bitswapStats()?.bytesOut ?? NaN
      const receivedBefore = b.node.bitswapStats()?.bytesIn ?? NaN
      // from the connected peer: no provider lookup within the test's time
      const got = await b.node.getBlock(block.cid, { signal: AbortSignal.timeout(20_000), lookupDelayMs: 60_000 })
      assert.deepEqual(got, block.bytes)
      assert.deepEqual(await b.node.getBlock(block.cid, { offline: true }), block.bytes, 'a fetched block is stored')
      assert.ok(b.node.bitswapStats()!.bytesIn - receivedBefore >= block.bytes.length, 'received bytes counted')
      await waitFor(() => a!.node.bitswapStats()!.bytesOut - sentBefore >= block.bytes.length, { timeoutMs: 5000, message: 'sent bytes counted' })

      const file = CID.parse((await collect(a.node.addEntries(tree({ 'f.bin': randomBytes(200_000) }), { chunk_size: 65_536 })))[0].cid)
      const leaves = dagPb.decode(await a.node.getBlock(file)).Links.map(l => l.Hash)
      await a.node.pin(file)
      const hex = (mh: Uint8Array): string => Buffer.from(mh).toString('hex')
      assert.deepEqual((await collect(a.node.pinnedBlocks())).map(hex).sort(), [file, ...leaves].map(c => hex(c.multihash.bytes)).sort())
      await a.node.unpin(file)
      assert.deepEqual(await collect(a.node.pinnedBlocks()), [])

      assert.equal((await a.node.getCodec(dagPb.code)).name, 'dag-pb')
      assert.equal((await a.node.getHasher(sha256.code)).code, sha256.code)
    } finally {
      await stopPeers(a, b)
      await removeDirs(a, b)
    }
  })

  it('imports directory trees like Kubo: every entry, root last, stable CIDs, v0 and v1', async () => {
    let a: TestPeer | undefined
    try {
      a = await startPeer('tree')
      const files = {
        'site/index.html': new TextEncoder().encode('<h1>hi</h1>\n'),
        'site/empty': null,
        'site/assets/logo.bin': randomBytes(300_000),
        'site/assets/deep/x.txt': new TextEncoder().encode('x\n'),
        'site/readme.txt': new TextEncoder().encode('hello world\n')
      }
      const v0 = await collect(a.node.addEntries(tree(files), { wrap_with_directory: true }))
      const names = v0.map(o => o.name)
      assert.deepEqual([...names].sort(), [
        '', 'site', 'site/assets', 'site/assets/deep', 'site/assets/deep/x.txt', 'site/assets/logo.bin',
        'site/empty', 'site/index.html', 'site/readme.txt'
      ])
      assert.equal(v0.at(-1)?.name, '', 'the wrapping directory comes last')
      assert.equal(v0.find(o => o.name === 'site/empty')?.cid, 'QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn', 'Kubo\'s empty directory')
      assert.ok(names.indexOf('site/empty') < names.indexOf('site'), 'children before parents')
      for (const o of v0) {
        assert.match(o.cid, /^Qm/, `${o.name} is CIDv0`)
        assert.ok(typeof o.size === 'number' && o.size > 0)
      }
      // Kubo: `echo "hello world" | ipfs add` gives this CID
      assert.equal(v0.find(o => o.name === 'site/readme.txt')?.cid, 'QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o')

      assert.equal(v0.find(o => o.name === 'site/readme.txt')?.size, 20)
      const again = await collect(a.node.addEntries(tree(files), { wrap_with_directory: true }))
      assert.equal(again.at(-1)?.cid, v0.at(-1)?.cid, 'same input, same root')
      // directories may come before or after their contents (or not at all)
      const reordered = { ...Object.fromEntries(Object.entries(files).reverse()), site: null, 'site/assets': null }
      const shuffled = await collect(a.node.addEntries(tree(reordered), { wrap_with_directory: true }))
      assert.equal(shuffled.at(-1)?.cid, v0.at(-1)?.cid, 'same tree, same root, whatever the order')

      const v1 = await collect(a.node.addEntries(tree(files), { wrap_with_directory: true, cid_version: 1 }))
      assert.match(v1.at(-1)?.cid ?? '', /^bafy/)
      for (const o of v1) {
        assert.match(o.cid, /^baf/, `${o.name} is CIDv1`)
      }
      // cid_version 1 implies raw leaves: a one-block file is a raw block
      const readme = (await rawBlock(files['site/readme.txt'])).cid.toString()
      assert.equal(v1.find(o => o.name === 'site/readme.txt')?.cid, readme)

      // without a wrapper the single top-level directory is the root
      const bare = await collect(a.node.addEntries(tree(files), {}))
      assert.equal(bare.at(-1)?.name, 'site')
      assert.equal(bare.at(-1)?.cid, v0.find(o => o.name === 'site')?.cid)

      // the tree reads back through the node
      const logo = v0.find(o => o.name === 'site/assets/logo.bin')
      assert.ok(logo != null)
      assert.deepEqual(await concatBytes(a.node.cat(CID.parse(logo.cid))), Buffer.from(files['site/assets/logo.bin']))
      await assert.rejects(collect(a.node.cat(CID.parse(v0.at(-1)?.cid ?? ''))), { name: 'InvalidParameterError' })
    } finally {
      await stopPeers(a)
      await removeDirs(a)
    }
  })

  it('reports progress, honours chunk_size, and rejects bad add requests', async () => {
    let a: TestPeer | undefined
    try {
      a = await startPeer('params')
      const data = randomBytes(3 * 1024 * 1024 + 5)
      const lines = await collect(a.node.addEntries(tree({ 'f.bin': data }), { progress: true, chunk_size: 1_048_576 }))
      const progress = lines.filter(l => l.cid === '')
      const results = lines.filter(l => l.cid !== '')
      assert.equal(results.length, 1)
      assert.equal(lines.at(-1), results[0], 'the result comes after its progress lines')
      assert.ok(progress.length >= 3)
      assert.deepEqual(progress.at(-1), { name: 'f.bin', cid: '', bytes: data.length })
      const defaultChunks = await collect(a.node.addEntries(tree({ 'f.bin': data }), {}))
      assert.notEqual(defaultChunks[0].cid, results[0].cid, 'the chunk size changes the DAG')

      await assert.rejects(collect(a.node.addEntries(tree({}), {})), { name: 'InvalidParameterError', message: 'no files in the request' })
      await assert.rejects(collect(a.node.addEntries(tree({ '../etc/passwd': data }), {})), { name: 'InvalidParameterError' })
      await assert.rejects(collect(a.node.addEntries(tree({ f: data }), { chunk_size: 4 * 1024 * 1024 })), { name: 'InvalidParameterError' })
    } finally {
      await stopPeers(a)
      await removeDirs(a)
    }
  })

  it('imports a single-root CAR (dag-cbor root) and refuses two roots or a corrupt block', async () => {
    let a: TestPeer | undefined
    try {
      a = await startPeer('car')
      const leaves = await Promise.all([randomBytes(1000), randomBytes(2000)].map(rawBlock))
      const rootBytes = dagCbor.encode({ name: 'shard', links: leaves.map(l => l.cid) })
      const root = { cid: CID.createV1(dagCbor.code, await sha256.digest(rootBytes)), bytes: rootBytes }

      const out = await collect(a.node.addCar(await carBytes([root.cid], [root, ...leaves])))
      assert.deepEqual(out, [{ name: '', cid: root.cid.toString(), size: rootBytes.length + 3000 }])
      for (const block of [root, ...leaves]) {
        assert.equal(await a.node.hasBlock(block.cid), true)
      }
      await a.node.pin(root.cid)
      assert.equal(await a.node.isPinned(root.cid), true)

      // the same through addEntries with format=car
      const viaAdd = await collect(a.node.addEntries((async function * () {
        yield { path: 'x.car', content: await carBytes([root.cid], [root, ...leaves]) }
      })(), { format: 'car' }))
      assert.equal(viaAdd[0].cid, root.cid.toString())

      await assert.rejects(collect(a.node.addCar(await carBytes([leaves[0].cid, leaves[1].cid], leaves))), {
        name: 'InvalidParameterError', message: 'only CAR files with a single root are supported'
      })
      const forged = { cid: leaves[0].cid, bytes: randomBytes(1000) }
      await assert.rejects(collect(a.node.addCar(await carBytes([forged.cid], [forged]))), { name: 'InvalidParameterError' })
      await assert.rejects(collect(a.node.addCar(chunked(new TextEncoder().encode('not a car')))), { name: 'InvalidParameterError' })
    } finally {
      await stopPeers(a)
      await removeDirs(a)
    }
  })

  it('aborts a pin of content nobody has, promptly, and keeps working', async () => {
    let a: TestPeer | undefined
    let b: TestPeer | undefined
    try {
      a = await startPeer('abort-a')
      b = await startPeer('abort-b')
      await a.node.libp2p.dial(b.node.libp2p.getMultiaddrs()[0])
      const missing = (await rawBlock(randomBytes(64))).cid
      const started = Date.now()
      await assert.rejects(a.node.pin(missing, { signal: AbortSignal.timeout(300) }), { name: 'AbortError' })
      assert.ok(Date.now() - started < 3000, `abort took ${Date.now() - started} ms`)
      const controller = new AbortController()
      controller.abort()
      await assert.rejects(a.node.pin(missing, { signal: controller.signal }), { name: 'AbortError' })
      assert.equal(await a.node.isPinned(missing), false)
      assert.deepEqual(await collect(a.node.pinLs()), [])

      // still works: a pin of real content right after
      const out = await collect(b.node.addEntries(tree({ 'ok.txt': randomBytes(5000) }), {}))
      const cid = CID.parse(out[0].cid)
      await a.node.pin(cid, { signal: AbortSignal.timeout(10_000) })
      assert.equal(await a.node.isPinned(cid), true)

      // stop() does not wait for fetches that cannot finish
      const pending = assert.rejects(a.node.pin(missing), { name: 'ShuttingDownError' })
      const stopping = Date.now()
      await a.node.stop()
      await pending
      assert.ok(Date.now() - stopping < 3000, `stop took ${Date.now() - stopping} ms`)
    } finally {
      await stopPeers(a, b)
      await removeDirs(a, b)
    }
  })

  it('finds a provider it is not connected to through the DHT', async () => {
    let a: TestPeer | undefined
    let b: TestPeer | undefined
    let c: TestPeer | undefined
    try {
      a = await startPeer('dht-a')
      // b is a DHT client: nobody's routing table holds it, so providing never dials it
      b = await startPeer('dht-b', { clientMode: true })
      c = await startPeer('dht-c')
      // a <- c -> b: b and a only know each other through c's DHT
      await c.node.libp2p.dial(a.node.libp2p.getMultiaddrs()[0])
      await c.node.libp2p.dial(b.node.libp2p.getMultiaddrs()[0])
      const data = randomBytes(1_000_000)
      const out = await collect(a.node.addEntries(tree({ 'far.bin': data }), {}))
      const root = CID.parse(out[0].cid)
      const peers = [a, b, c].map(p => p.node)
      const hub = c.node
      await waitFor(() => peers.every(n => n.libp2p.getPeers().length >= 1) && hub.libp2p.getPeers().length === 2, { timeoutMs: 5000, message: 'connections' })
      await a.node.helia.routing.provide(root, { signal: AbortSignal.timeout(5000) })
      // a's provide walk may have dialled b on its own: cut that link so b must find a through the DHT
      await b.node.libp2p.hangUp(a.node.libp2p.peerId)
      assert.equal(b.node.libp2p.getConnections(a.node.libp2p.peerId).length, 0)
      await b.node.pin(root, { signal: AbortSignal.timeout(15_000) })
      assert.deepEqual(await concatBytes(b.node.cat(root)), data)
    } finally {
      await stopPeers(a, b, c)
      await removeDirs(a, b, c)
    }
  })

  it('serialises pin and unpin of one CID: the last call wins', async () => {
    let a: TestPeer | undefined
    try {
      a = await startPeer('locks')
      const out = await collect(a.node.addEntries(tree({ 'l.bin': randomBytes(900_000) }), {}))
      const root = CID.parse(out[0].cid)
      await Promise.all([a.node.pin(root), a.node.pin(root), a.node.unpin(root)])
      assert.equal(await a.node.isPinned(root), false)
      await Promise.all([a.node.unpin(root), a.node.pin(root)])
      assert.equal(await a.node.isPinned(root), true)
      // the blocks are counted once per pin: one unpin releases them
      await a.node.unpin(root)
      assert.equal(await a.node.helia.pins.isPinned(root), false)
    } finally {
      await stopPeers(a)
      await removeDirs(a)
    }
  })

  it('records pins where Helia looks, the blocks of small DAGs included, and forgets them on unpin', async () => {
    let a: TestPeer | undefined
    try {
      a = await startPeer('records')
      const block = await rawBlock(randomBytes(100))
      await a.node.helia.blockstore.put(block.cid, block.bytes)
      const data = randomBytes(300_000)
      const file = CID.parse((await collect(a.node.addEntries(tree({ 'small.bin': data }), { chunk_size: 65_536 })))[0].cid)
      const rootBytes: Uint8Array[] = []
      for await (const chunk of a.node.helia.blockstore.get(file)) rootBytes.push(chunk)
      const leaves = dagPb.decode(Buffer.concat(rootBytes)).Links.map(l => l.Hash)
      assert.equal(leaves.length, 5, '300 kB in 64 KiB chunks')

      for (const root of [block.cid, file]) {
        await a.node.pin(root)
        assert.equal(await a.node.isPinned(root), true)
        assert.equal((await a.node.helia.pins.get(root)).depth, Infinity)
      }
      for (const cid of [block.cid, file, ...leaves]) {
        assert.equal(await a.node.helia.pins.isPinned(cid), true, `${cid} is counted as pinned`)
      }
      assert.deepEqual((await collect(a.node.pinLs())).map(String).sort(), [block.cid, file.toV1()].map(String).sort())

      for (const root of [block.cid, file]) await a.node.unpin(root)
      for (const cid of [block.cid, file, ...leaves]) {
        assert.equal(await a.node.helia.pins.isPinned(cid), false, `${cid} is no longer counted`)
      }
      assert.deepEqual(await collect(a.node.helia.pins.ls()), [])
      assert.deepEqual(await collect(a.node.pinLs()), [])
    } finally {
      await stopPeers(a)
      await removeDirs(a)
    }
  })

  it('pins a new version of a tree by writing records for what changed, and unpinning the old one keeps the new one whole', async () => {
    let a: TestPeer | undefined
    try {
      a = await startPeer('versions')
      const files: Record<string, Uint8Array> = {}
      for (let d = 0; d < 20; d++) for (let f = 0; f < 10; f++) files[`pool/d${d}/f${f}.deb`] = randomBytes(2000 + d * 10 + f)
      const rootOf = async (): Promise<CID> => CID.parse((await collect(a!.node.addEntries(tree(files), { cid_version: 1, wrap_with_directory: true }))).at(-1)?.cid ?? '')
      /** The block records, key -> value. */
      const blockRecords = async (): Promise<Map<string, string>> => {
        const records = new Map<string, string>()
        for await (const { key, value } of a!.node.helia.datastore.query({ prefix: '/pinned-block/' })) records.set(key.toString(), Buffer.from(value).toString('hex'))
        return records
      }
      const v1 = await rootOf()
      await a.node.pin(v1)
      const afterV1 = await blockRecords()
      assert.ok(afterV1.size > 220, `every block of v1 recorded (${afterV1.size})`)
      files['pool/d7/f3.deb'] = randomBytes(5000)
      const v2 = await rootOf()
      await a.node.pin(v2)
      const afterV2 = await blockRecords()
      const written = [...afterV2].filter(([key, value]) => afterV1.get(key) !== value)
      // new: the root, pool, d7 and the new file; one more ref on each unchanged child of those (19 + 9)
      assert.equal(written.length, 4 + 19 + 9, `${written.length} records written for one changed file`)

      await a.node.unpin(v1)
      const afterUnpin = await blockRecords()
      assert.equal(afterUnpin.size, afterV1.size, 'v1-only blocks (root, pool, d7, old file) went, v2-only ones came')
      // every block of v2 is still counted: nothing below a released directory lost its record
      for await (const entry of a.node.helia.pins.ls()) assert.equal(entry.cid.toString(), v2.toString())
      const walk = [v2]
      let blocks = 0
      while (walk.length > 0) {
        const cid = walk.pop() as CID
        blocks++
        assert.equal(await a.node.helia.pins.isPinned(cid), true, `${cid} of v2 is still recorded`)
        if (cid.code === dagPb.code) walk.push(...dagPb.decode(await concatChunks(a.node.helia.blockstore.get(cid))).Links.map(l => l.Hash))
      }
      assert.equal(blocks, afterUnpin.size)
      await a.node.unpin(v2)
      assert.equal((await blockRecords()).size, 0)
    } finally {
      await stopPeers(a)
      await removeDirs(a)
    }
  })

  it('a peer pinning the new version of a tree fetches the new blocks and does not walk the subtrees it holds', async () => {
    let a: TestPeer | undefined
    let b: TestPeer | undefined
    try {
      a = await startPeer('walk-a')
      b = await startPeer('walk-b')
      const files: Record<string, Uint8Array> = {}
      for (let d = 0; d < 10; d++) for (let f = 0; f < 20; f++) files[`pool/d${d}/f${f}.deb`] = randomBytes(300_000 + d * 10 + f)
      let added: Array<{ name: string, cid: string }> = []
      const rootOf = async (): Promise<CID> => {
        added = await collect(a!.node.addEntries(tree(files), { cid_version: 1, wrap_with_directory: true, chunk_size: 65_536 }))
        return CID.parse(added.at(-1)?.cid ?? '')
      }
      const fileCid = (path: string): CID => CID.parse(added.find(o => o.name.endsWith(path))?.cid ?? '')
      const v1 = await rootOf()
      await b.node.libp2p.dial(a.node.libp2p.getMultiaddrs()[0])
      let listed = 0
      await b.node.pin(v1, { onProgress: n => { listed = n } })
      // 200 files of 5 leaves and a root each, 10 directories, pool and the root
      assert.equal(listed, 200 * 6 + 12)
      files['pool/d4/f7.deb'] = randomBytes(100)
      const v2 = await rootOf()
      await b.node.pin(v2, { onProgress: n => { listed = n } })
      // fetched: root, pool, d4 and the new file; listed from records: the 9 other directories and 19 files of d4
      assert.equal(listed, 4 + 9 + 19, `${listed} blocks listed for one changed file`)
      assert.equal(await b.node.isPinned(v2), true)
      await a.node.stop() // what b reads from here on, it holds
      assert.deepEqual(await concatBytes(b.node.cat(fileCid('pool/d4/f7.deb'))), Buffer.from(files['pool/d4/f7.deb']))
      await b.node.unpin(v1)
      assert.deepEqual(await concatBytes(b.node.cat(fileCid('pool/d9/f19.deb'))), Buffer.from(files['pool/d9/f19.deb']), 'unchanged files stay')
    } finally {
      await stopPeers(a, b)
      await removeDirs(a, b)
    }
  })

  it('direct pins take the root only, and a recursive pin upgrades them', async () => {
    let a: TestPeer | undefined
    let b: TestPeer | undefined
    try {
      a = await startPeer('depth-a')
      b = await startPeer('depth-b')
      const out = await collect(a.node.addEntries(tree({ 'd.bin': randomBytes(600_000) }), {}))
      const root = CID.parse(out[0].cid)
      await b.node.libp2p.dial(a.node.libp2p.getMultiaddrs()[0])
      let blocks = 0
      await b.node.pin(root, { depth: 0, onProgress: n => { blocks = n } })
      assert.equal(blocks, 1)
      assert.equal(await b.node.isPinned(root), true)
      await assert.rejects(b.node.pin(root, { depth: -2 }), { name: 'InvalidParameterError' })
      await b.node.pin(root, { depth: -1, onProgress: n => { blocks = n } })
      assert.equal(blocks, 4, 'root + 3 leaves')
      assert.equal(await b.node.isPinned(root), true)
      assert.equal((await b.node.helia.pins.get(root)).depth, Infinity)
    } finally {
      await stopPeers(a, b)
      await removeDirs(a, b)
    }
  })

  it('keeps its peer id, pins, blocks and repo size across a restart on the same data dir', async () => {
    let first: TestPeer | undefined
    let second: TestPeer | undefined
    try {
      first = await startPeer('restart')
      const data = randomBytes(700_000)
      const out = await collect(first.node.addEntries(tree({ 'keep.bin': data }), {}))
      const root = CID.parse(out[0].cid)
      await first.node.pin(root)
      const peerId = first.node.libp2p.peerId.toString()
      const size = await first.node.repoSize()
      await first.node.stop()
      assert.throws(() => first?.node.libp2p, { name: 'NotStartedError' })

      second = await startPeer('restart', { dataDir: first.dataDir, privateKey: first.privateKey })
      assert.equal(second.node.libp2p.peerId.toString(), peerId)
      assert.equal(await second.node.isPinned(root), true)
      assert.deepEqual((await collect(second.node.pinLs())).map(String), [root.toV1().toString()])
      assert.equal(await second.node.repoSize(), size)
      assert.deepEqual(await concatBytes(second.node.cat(root, { signal: AbortSignal.timeout(5000) })), data)
      await second.node.stop()

      // after a crash the saved size is missing: it is rebuilt from the blocks
      const ds = new LevelDatastore(join(first.dataDir, 'datastore'))
      await ds.open()
      await ds.delete(new Key('/cairn/ipfs/repo-size'))
      await ds.close()
      second = await startPeer('restart', { dataDir: first.dataDir, privateKey: first.privateKey })
      assert.equal(await second.node.repoSize(), size)
    } finally {
      await stopPeers(first, second)
      await removeDirs(second ?? first)
    }
  })
})
