// Batched pin records: the same keys and values Helia reads, counts kept right when pins share blocks.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as cborg from 'cborg'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { PinRecords, pinKey } from '../../src/ipfs/pin-records.js'
import type { GraphWalker } from '@helia/interface'

async function rawCid (text: string): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(text)))
}

/** A walker over a fixed graph: root -> its blocks. */
function walkerOf (graph: Map<string, CID[]>): GraphWalker {
  return {
    async * walk (root: CID) {
      for (const cid of [root, ...(graph.get(root.toString()) ?? [])]) yield { block: { cid } as any, depth: 0, path: [] } as any
    }
  }
}

const blockKey = (cid: CID): Key => new Key(`/pinned-block/${base36.encode(cid.multihash.bytes)}`)

describe('pin records', () => {
  it('counts blocks shared by two pins, and drops a record only with its last pin', async () => {
    const ds = new MemoryDatastore()
    const records = new PinRecords(ds)
    const [a, b, shared, onlyA] = await Promise.all(['a', 'b', 'shared', 'only-a'].map(rawCid))
    const graph = new Map([[a.toString(), [shared, onlyA]], [b.toString(), [shared]]])
    // concurrently: the shared block must end with both pins
    await Promise.all([records.add(a, Infinity, walkerOf(graph)), records.add(b, Infinity, walkerOf(graph))])
    const rec = cborg.decode(await ds.get(blockKey(shared))) as { pinCount: number, pinnedBy: Uint8Array[] }
    assert.equal(rec.pinCount, 2)
    assert.equal(rec.pinnedBy.length, 2)
    assert.deepEqual(cborg.decode(await ds.get(pinKey(a))), { depth: Infinity, metadata: {} })
    // adding again changes nothing
    await records.add(a, Infinity, walkerOf(graph))
    assert.equal((cborg.decode(await ds.get(blockKey(shared))) as { pinCount: number }).pinCount, 2)

    await records.remove(a, walkerOf(graph))
    assert.equal(await ds.has(pinKey(a)), false)
    assert.equal(await ds.has(blockKey(onlyA)), false, 'a block of no pin has no record')
    const after = cborg.decode(await ds.get(blockKey(shared))) as { pinCount: number, pinnedBy: Uint8Array[] }
    assert.equal(after.pinCount, 1)
    assert.deepEqual(after.pinnedBy.map(x => CID.decode(x).toString()), [b.toString()], 'only b still claims it')
    await records.remove(b, walkerOf(graph))
    assert.equal(await ds.has(blockKey(shared)), false)
    await records.remove(b, walkerOf(graph)) // not pinned: a no-op
  })
})
