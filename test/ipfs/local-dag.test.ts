// The local part of a DAG, found with bulk reads: what pinning a new version of a mirror mostly consists of.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { RecentLinks, scanLocalDag, type LocalDagInit } from '../../src/ipfs/local-dag.js'
import type { PinnedBlock } from '../../src/ipfs/pin-records.js'

async function rawBlock (text: string): Promise<{ cid: CID, bytes: Uint8Array }> {
  const bytes = new TextEncoder().encode(text)
  return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
}

async function node (links: CID[]): Promise<{ cid: CID, bytes: Uint8Array }> {
  const bytes = dagPb.encode(dagPb.prepare({ Links: links.map(Hash => ({ Hash })) }))
  return { cid: CID.createV1(dagPb.code, await sha256.digest(bytes)), bytes }
}

/** A store over a map, counting the bulk calls it gets; `records` are the pin records it holds. */
function store (blocks: Array<{ cid: CID, bytes: Uint8Array }>, records = new Map<string, PinnedBlock>()): LocalDagInit & { calls: number, reads: number } {
  const map = new Map(blocks.map(b => [b.cid.toString(), b.bytes]))
  const s = {
    calls: 0,
    reads: 0,
    records: async (cids: CID[]) => { s.calls++; return cids.map(c => records.get(c.toString())) },
    getMany: async (cids: CID[]) => { s.calls++; s.reads += cids.length; return cids.map(c => map.get(c.toString())) },
    hasMany: async (cids: CID[]) => { s.calls++; return cids.map(c => map.has(c.toString())) },
    getCodec: (code: number) => code === dagPb.code ? dagPb : raw
  }
  return s
}

describe('local DAG scan', () => {
  it('lists each held block once, reads only nodes with links, and stops at missing blocks', async () => {
    const [l1, l2, l3, gone] = await Promise.all(['one', 'two', 'three', 'not here'].map(rawBlock))
    const shared = await node([l1.cid, l2.cid])
    const missingDir = await node([l3.cid])
    // the shared subtree is linked twice; `gone` and `missingDir` are not held (l3 is, under the missing node)
    const root = await node([shared.cid, shared.cid, gone.cid, missingDir.cid])
    const s = store([root, shared, l1, l2, l3])
    const scan = await scanLocalDag(root.cid, Infinity, s)
    assert.deepEqual(scan.blocks.map(b => b.cid.toString()).sort(), [root, shared, l1, l2].map(b => b.cid.toString()).sort())
    assert.deepEqual(scan.blocks.find(b => b.cid.equals(shared.cid))?.links?.map(String), [l1.cid.toString(), l2.cid.toString()])
    assert.deepEqual(scan.missing.map(m => [m.cid.toString(), m.depth]).sort(), [[gone.cid.toString(), 1], [missingDir.cid.toString(), 1]].sort())
    assert.equal(s.reads, 3, 'read root, shared and the missing dir; raw leaves are only checked for')
    assert.ok(s.calls <= 8, `${s.calls} bulk calls for a 3-level DAG`)

    // blocks with a pin record listing their links are not read again, nor checked for
    const records = new Map<string, PinnedBlock>([
      [shared.cid.toString(), { pinCount: 1, pinnedBy: [], codec: dagPb.code, links: [l1.cid.bytes, l2.cid.bytes] }],
      [l1.cid.toString(), { pinCount: 1, pinnedBy: [] }]
    ])
    const recorded = store([root, shared, l1, l2, l3], records)
    const again = await scanLocalDag(root.cid, Infinity, recorded)
    assert.deepEqual(again.blocks.map(b => b.cid.toString()).sort(), scan.blocks.map(b => b.cid.toString()).sort())
    assert.equal(recorded.reads, 2, 'read root and the missing dir, not the recorded one')
    assert.deepEqual(again.blocks.find(b => b.cid.equals(l1.cid))?.record, records.get(l1.cid.toString()))

    // a deep record (everything below held and recorded): a recursive pin's scan lists it and goes no further
    const deep = new Map<string, PinnedBlock>([[shared.cid.toString(), { pinCount: 0, pinnedBy: [], deep: true, refs: 1, codec: dagPb.code, links: [l1.cid.bytes, l2.cid.bytes] }]])
    const stopping = store([root, shared, l1, l2, l3], deep)
    const top = await scanLocalDag(root.cid, Infinity, stopping, { stopAtDeep: true })
    assert.deepEqual(top.blocks.map(b => b.cid.toString()).sort(), [root, shared].map(b => b.cid.toString()).sort())
    assert.equal(top.blocks.find(b => b.cid.equals(shared.cid))?.record?.deep, true)
    assert.equal(stopping.reads, 2, 'read root and the missing dir only')
    // without stopAtDeep (a depth-limited pin, an unpin of an older pin) the same record is followed
    assert.equal((await scanLocalDag(root.cid, Infinity, store([root, shared, l1, l2, l3], deep))).blocks.length, 4)

    // blocks imported lately: their links are known, they are not read back
    // a budget for the links of two of these blocks (4 and 2 CIDs of 36 bytes, keys of 34)
    const recent = new RecentLinks(6 * 36 + 2 * 34)
    recent.set(root.cid, [shared.cid, shared.cid, gone.cid, missingDir.cid])
    recent.set(shared.cid, [l1.cid, l2.cid])
    const imported = Object.assign(store([root, shared, l1, l2, l3]), { recentLinks: (cid: CID) => recent.get(cid) })
    const fromRecent = await scanLocalDag(root.cid, Infinity, imported)
    assert.equal(imported.reads, 1, 'only the missing dir is read (and found missing); root and shared were 2 of the 3 reads')
    assert.deepEqual(fromRecent.blocks.map(b => b.cid.toString()).sort(), scan.blocks.map(b => b.cid.toString()).sort())
    assert.deepEqual(fromRecent.missing.map(m => m.cid.toString()).sort(), scan.missing.map(m => m.cid.toString()).sort())
    // missingDir: in no record and not recent, it is read (and found missing)
    recent.set(missingDir.cid, [l3.cid]) // past the budget: the oldest (root) goes
    assert.equal(recent.get(root.cid), undefined)
    assert.deepEqual(recent.get(shared.cid)?.map(String), [l1.cid.toString(), l2.cid.toString()], 'the newer ones stay')
    assert.equal(recent.get(CID.createV1(raw.code, shared.cid.multihash)), undefined, 'same bytes under another codec: not known')

    // a record written by Helia (or an older cairn) has no links: that block is read
    const helia = store([root, shared, l1, l2, l3], new Map([[shared.cid.toString(), { pinCount: 1, pinnedBy: [] }]]))
    const old = await scanLocalDag(root.cid, Infinity, helia)
    assert.deepEqual(old.blocks.map(b => b.cid.toString()).sort(), scan.blocks.map(b => b.cid.toString()).sort())
    assert.equal(helia.reads, 3)

    // depth 1: the root's children are checked for, not read
    const shallow = store([root, shared, l1, l2, l3])
    const one = await scanLocalDag(root.cid, 1, shallow)
    assert.deepEqual(one.blocks.map(b => b.cid.toString()).sort(), [root, shared].map(b => b.cid.toString()).sort())
    assert.equal(shallow.reads, 1)
    // a direct pin's root that is not here
    const none = await scanLocalDag(gone.cid, 0, store([]))
    assert.deepEqual(none, { blocks: [], missing: [{ cid: gone.cid, depth: 0 }] })
  })
})
