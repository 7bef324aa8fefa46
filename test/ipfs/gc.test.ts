// Repo GC on one IPFS node: blocks no pin holds are deleted and their bytes leave the count; pinned trees (a new
// version sharing blocks with an unpinned old one too) and roots asked to be kept stay whole; a GC waits for the
// pins and adds writing blocks, keeps new ones waiting meanwhile, and gives up after its wait.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { blockId } from '../../src/ipfs/local-dag.js'
import { collect, removeDirs, startPeer, stopPeers } from './helpers.js'
import type { TestPeer } from './helpers.js'
import type { AddEntry } from '../../src/components.js'
import { sleep } from '../util.js'

function tree (files: Record<string, Uint8Array>): AsyncIterable<AddEntry> {
  return (async function * () {
    for (const [path, bytes] of Object.entries(files)) yield { path, content: (async function * () { yield bytes })() }
  })()
}

describe('repo gc', () => {
  it('deletes the blocks no pin holds, keeps pinned trees and the roots asked for, and gives their bytes back', async () => {
    let a: TestPeer | undefined
    try {
      a = await startPeer('gc')
      const node = a.node
      const files: Record<string, Uint8Array> = {}
      for (let d = 0; d < 5; d++) for (let f = 0; f < 8; f++) files[`pool/d${d}/f${f}.deb`] = randomBytes(3000 + d * 10 + f)
      const add = async (entries: Record<string, Uint8Array>, chunkSize?: number): Promise<CID> =>
        CID.parse((await collect(node.addEntries(tree(entries), { cid_version: 1, wrap_with_directory: true, raw_leaves: true, chunk_size: chunkSize }))).at(-1)?.cid ?? '')
      /** The blocks of a tree held here, by walking it. */
      const blocksOf = async (root: CID): Promise<string[]> => {
        const ids: string[] = []
        const walk = [root]
        while (walk.length > 0) {
          const cid = walk.pop() as CID
          ids.push(blockId(cid))
          const block = node.helia.blockstore.get(cid)
          if (cid.code === 0x70) {
            const { decode } = await import('@ipld/dag-pb')
            const { concatChunks } = await import('../../src/utils/bytes.js')
            walk.push(...decode(await concatChunks(block)).Links.map(l => l.Hash))
          }
        }
        return ids
      }
      const v1 = await add(files)
      await node.pin(v1)
      const v1Blocks = await blocksOf(v1)
      // v2 changes one file: it shares everything else with v1
      files['pool/d2/f5.deb'] = randomBytes(9000)
      const v2 = await add(files)
      await node.pin(v2)
      const v2Blocks = await blocksOf(v2)
      // content nobody pins, and content to keep although not pinned here
      const loose = await add({ 'loose.bin': randomBytes(200_000) }, 16_384)
      const looseBlocks = await blocksOf(loose)
      const kept = await add({ 'kept.bin': randomBytes(100_000) }, 16_384)
      const keptBlocks = await blocksOf(kept)
      await node.unpin(v1)
      const v1Only = v1Blocks.filter(id => !v2Blocks.includes(id))
      assert.ok(v1Only.length >= 4, `v1's root, pool, d2 and the old file are v1's alone: ${v1Only.length}`)

      const before = await node.repoSize()
      const removed = await node.gc({ keep: async () => [{ cid: kept, depth: Infinity }] })
      const removedIds = new Set(removed.map(cid => blockId(cid)))
      assert.deepEqual([...removedIds].sort(), [...v1Only, ...looseBlocks].sort(), 'exactly the unpinned version\'s own blocks and the loose content went')
      assert.ok(v2Blocks.every(id => !removedIds.has(id)) && keptBlocks.every(id => !removedIds.has(id)))
      const freed = before - await node.repoSize()
      assert.ok(freed > 200_000 && freed < 230_000, `the loose file's 200 kB and v1's few blocks left the count: ${freed}`)
      // what stays reads whole, from this node alone (blocksOf reads every block)
      assert.deepEqual(await blocksOf(v2), v2Blocks)
      assert.deepEqual(await blocksOf(kept), keptBlocks)
      assert.equal(await node.hasBlock(loose), false)
      assert.equal(await node.hasBlock(v1), false)
      // a second GC finds nothing more
      assert.deepEqual(await node.gc({ keep: async () => [{ cid: kept, depth: Infinity }] }), [])
      // without the keep, the kept content goes too
      assert.equal((await node.gc()).length, keptBlocks.length)
      assert.equal(await node.isPinned(v2), true)
    } finally {
      await stopPeers(a)
      await removeDirs(a)
    }
  })

  it('waits for the writers of blocks, keeps new ones waiting meanwhile, and gives up after its wait', async () => {
    let a: TestPeer | undefined
    try {
      a = await startPeer('gc-lock')
      const node = a.node
      const order: string[] = []
      const runs = node.gcStats().runs
      // an add holding the store, then a GC: it waits
      const release = await node.holdBlocks()
      // (gc() takes its place in the lock before it returns)
      const gc = node.gc({ waitMs: 10_000 }).then(r => { order.push('gc'); return r })
      // a second GC joins the first: one run, one answer for both
      const joined = node.gc({ waitMs: 10_000 })
      // a new writer waits for the GC (the GCs that had ended when it got the store are noted)
      const next = node.holdBlocks().then(r => { order.push(`writer after ${node.gcStats().runs - runs} GC`); return r })
      // proves a NOT: neither the GC nor the writer gets the store within this window
      await sleep(100)
      assert.deepEqual(order, [])
      release()
      assert.deepEqual(await joined, await gc)
      assert.equal(node.gcStats().runs, runs + 1, 'the second request joined the first GC')
      const releaseNext = await next
      assert.deepEqual(order.sort(), ['gc', 'writer after 1 GC'], 'the GC ran once the add let go, and the writer that came during it after')
      // a writer that keeps the store past the wait: the GC gives up and names why
      await assert.rejects(node.gc({ waitMs: 200 }), { name: 'RepoBusyError', message: /1 pins or adds were still writing blocks after 200 ms/ })
      // and writers go on at once
      const third = await node.holdBlocks(AbortSignal.timeout(1000))
      third()
      releaseNext()
      assert.deepEqual(await node.gc({ waitMs: 200 }), [])
    } finally {
      await stopPeers(a)
      await removeDirs(a)
    }
  })
})
