// Repo verify (accountRepo with verify) on a real value log whose first segment file is gone: the blocks the
// index still lists there cannot be read, and verify reports each as corrupt (pinned or not), instead of passing
// them over as blocks deleted meanwhile; the blocks of the other segments are checked and fine.
import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { sha256 } from 'multiformats/hashes/sha2'
import { accountRepo } from '../../src/ipfs/repo.js'
import { segmentName } from '../../src/ipfs/value-log/segments.js'
import { ValueLogBlockstore } from '../../src/ipfs/value-log/index.js'
import { makeBlocks, silentLog } from './blocks.js'
import { tempDir } from '../util.js'
import type { CID } from 'multiformats/cid'

describe('repo verify', () => {
  it('reports the blocks whose segment file is gone as corrupt, pinned ones as pinned', async () => {
    const tmp = await tempDir('cairn-verify-')
    const path = join(tmp.path, 'vlog')
    // 40 blocks of 64 KiB in segments of 1 MiB: the first ~15 in segment 1
    const blocks = await makeBlocks(40, () => 65_536)
    let store = new ValueLogBlockstore({ path, log: silentLog, segmentBytes: 1024 * 1024 })
    try {
      await store.open()
      for (const { cid, bytes } of blocks) await store.put(cid, bytes)
      await store.close()
      await rm(join(path, segmentName(1)))
      store = new ValueLogBlockstore({ path, log: silentLog, segmentBytes: 1024 * 1024 })
      await store.open()
      const read = await store.getBlocks(blocks.map(b => b.cid))
      const lost = blocks.filter((_, i) => read[i] === undefined).map(b => b.cid.toString())
      assert.ok(lost.length > 0 && lost.length < blocks.length, `${lost.length} of ${blocks.length} blocks were in segment 1`)
      // every other block is pinned
      const pinned = new Set(blocks.filter((_, i) => i % 2 === 0).map(b => b.cid.toString()))
      const account = await accountRepo({
        blockstore: store,
        records: { lookup: async (cids: CID[]) => cids.map(c => pinned.has(c.toString()) ? {} as never : undefined), blocks: async function * () {} },
        cache: { has: () => false },
        getHasher: async () => sha256
      }, { verify: true })
      assert.deepEqual(account.corrupt.map(c => c.cid.toString()).sort(), [...lost].sort())
      assert.deepEqual(account.corrupt.filter(c => c.pinned).map(c => c.cid.toString()).sort(), lost.filter(c => pinned.has(c)).sort())
      assert.equal(account.blocks, blocks.length - lost.length)
      assert.deepEqual(account.missing, [])
    } finally {
      await store.close()
      await tmp.cleanup()
    }
  })
})
