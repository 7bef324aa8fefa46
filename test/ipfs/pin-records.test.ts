// Batched pin records: the same keys and values Helia reads, counts kept right when pins share blocks.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import * as cborg from 'cborg'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { PinRecords, pinKey, toBase36 } from '../../src/ipfs/pin-records.js'

async function rawCid (text: string): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(text)))
}

/** The blocks of a pin in a fixed graph: root -> its blocks. */
function blocksOf (graph: Map<string, CID[]>, root: CID): CID[] {
  return [root, ...(graph.get(root.toString()) ?? [])]
}

const blockKey = (cid: CID): Key => new Key(`/pinned-block/${base36.encode(cid.multihash.bytes)}`)

describe('pin records', () => {
  it('counts blocks shared by two pins, and drops a record only with its last pin', async () => {
    const ds = new MemoryDatastore()
    const records = new PinRecords(ds)
    const [a, b, shared, onlyA] = await Promise.all(['a', 'b', 'shared', 'only-a'].map(rawCid))
    const graph = new Map([[a.toString(), [shared, onlyA]], [b.toString(), [shared]]])
    // concurrently: the shared block must end with both pins
    await Promise.all([records.add(a, Infinity, blocksOf(graph, a).map(cid => ({ cid }))), records.add(b, Infinity, blocksOf(graph, b).map(cid => ({ cid })))])
    const rec = cborg.decode(await ds.get(blockKey(shared))) as { pinCount: number, pinnedBy: Uint8Array[] }
    assert.equal(rec.pinCount, 2)
    assert.equal(rec.pinnedBy.length, 2)
    assert.deepEqual(cborg.decode(await ds.get(pinKey(a))), { depth: Infinity, metadata: {} })
    // adding again changes nothing
    await records.add(a, Infinity, blocksOf(graph, a).map(cid => ({ cid })))
    assert.equal((cborg.decode(await ds.get(blockKey(shared))) as { pinCount: number }).pinCount, 2)

    await records.remove(a, async () => blocksOf(graph, a))
    assert.equal(await ds.has(pinKey(a)), false)
    assert.equal(await ds.has(blockKey(onlyA)), false, 'a block of no pin has no record')
    const after = cborg.decode(await ds.get(blockKey(shared))) as { pinCount: number, pinnedBy: Uint8Array[] }
    assert.equal(after.pinCount, 1)
    assert.deepEqual(after.pinnedBy.map(x => CID.decode(x).toString()), [b.toString()], 'only b still claims it')
    await records.remove(b, async () => blocksOf(graph, b))
    assert.equal(await ds.has(blockKey(shared)), false)
    await records.remove(b, async () => blocksOf(graph, b)) // not pinned: a no-op
  })

  it('writes block keys in the base36 Helia reads (multiformats), leading zero bytes included', () => {
    const inputs = [new Uint8Array(0), Uint8Array.of(0), Uint8Array.of(0, 0, 1), Uint8Array.of(255), Uint8Array.of(0, 35, 36)]
    for (let i = 0; i < 200; i++) {
      const b = randomBytes(1 + (i % 40))
      if (i % 3 === 0) b[0] = 0
      if (i % 9 === 0) b[1 % b.length] = 0
      inputs.push(b)
    }
    for (const b of inputs) assert.equal(toBase36(b), base36.encode(b), `bytes ${Buffer.from(b).toString('hex')}`)
  })

  it('keeps the links of a block in its record, and re-reads records that changed since they were read', async () => {
    const ds = new MemoryDatastore()
    const records = new PinRecords(ds)
    const [a, b, leaf, p] = await Promise.all(['a', 'b', 'leaf', 'parent'].map(rawCid))
    const parent = CID.createV1(0x70, p.multihash)
    const generation = records.generation
    const [before] = await records.lookup([parent])
    assert.equal(before, undefined)
    await records.add(a, Infinity, [{ cid: parent, links: [leaf] }, { cid: leaf }])
    const rec = cborg.decode(await ds.get(blockKey(parent))) as { pinCount: number, codec: number, links: Uint8Array[] }
    assert.equal(rec.codec, 0x70)
    assert.deepEqual(rec.links.map(l => CID.decode(l).toString()), [leaf.toString()])
    // b's blocks come with the (now stale) "no record" read before a was recorded: they must be read again
    await records.add(b, Infinity, [{ cid: parent, record: before ?? null }, { cid: leaf, record: null }], { generation })
    const after = cborg.decode(await ds.get(blockKey(parent))) as { pinCount: number, links: Uint8Array[] }
    assert.equal(after.pinCount, 2, 'a stale record would have reset the count to 1')
    assert.equal(after.links.length, 1, 'links kept')
    await records.remove(a, async () => [parent, leaf])
    assert.equal((cborg.decode(await ds.get(blockKey(parent))) as { links: Uint8Array[] }).links.length, 1, 'links kept on unpin')
  })
})
