// The level blockstore with a byte count: concurrent writes go to level in batches, and every one lands; blocks
// are kept in the order written (no LevelDB compactions as the store grows), deleted space is given back, and a
// store written by an earlier version (blockstore-level's layout) still reads.
import assert from 'node:assert/strict'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { LevelBlockstore } from 'blockstore-level'
import { Key } from 'interface-datastore'
import { Level } from 'level'
import { SizedBlockstore } from '../../src/ipfs/sized-blockstore.js'
import { concatChunks } from '../../src/utils/bytes.js'
import { makeBlocks, silentLog, withDatastoreDir } from './blocks.js'
import { waitFor } from '../util.js'

const log = silentLog

/** Bytes of the files in a folder. */
async function du (dir: string): Promise<number> {
  let total = 0
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size
  return total
}

describe('SizedBlockstore', () => {
  it('stores 500 blocks written at once (duplicates too), counts each once, and keeps the count across a restart', async () => {
    await withDatastoreDir('cairn-blockstore-', async (tmp, datastore) => {
      const blocks = await makeBlocks(500, i => 1 + (i * 997) % 20_000)
      const expected = blocks.reduce((n, b) => n + b.bytes.byteLength, 0)
      let store = new SizedBlockstore({ path: join(tmp, 'blocks'), datastore, log })
      await store.open()
      // every block twice, all in flight together
      await Promise.all([...blocks, ...blocks].map(async ({ cid, bytes }) => await store.put(cid, bytes)))
      assert.equal(store.size(), expected)
      assert.deepEqual(await store.hasBlocks(blocks.map(b => b.cid)), blocks.map(() => true))
      for (const { cid, bytes } of blocks.slice(0, 20)) assert.ok(Buffer.from(await concatChunks(store.get(cid))).equals(bytes))
      await store.close()
      store = new SizedBlockstore({ path: join(tmp, 'blocks'), datastore, log })
      await store.open()
      assert.equal(store.size(), expected)
      const got = await store.getBlocks(blocks.map(b => b.cid))
      assert.ok(got.every((b, i) => b != null && Buffer.from(b).equals(blocks[i].bytes)), 'every block reads back after a restart')
      await store.close()
    })
  })

  it('rebuilds the count from the index after a crash, and goes on numbering blocks after the last one', async () => {
    await withDatastoreDir('cairn-blockstore-', async (tmp, datastore) => {
      const blocks = await makeBlocks(60, i => 100 + i)
      let store = new SizedBlockstore({ path: join(tmp, 'blocks'), datastore, log })
      await store.open()
      for (const b of blocks.slice(0, 40)) await store.put(b.cid, b.bytes)
      await store.delete(blocks[0].cid)
      await store.close()
      // a crash: the count was never saved
      await datastore.delete(new Key('/cairn/ipfs/repo-size'))
      store = new SizedBlockstore({ path: join(tmp, 'blocks'), datastore, log })
      await store.open()
      assert.equal(store.size(), blocks.slice(1, 40).reduce((n, b) => n + b.bytes.byteLength, 0))
      for (const b of blocks.slice(40)) await store.put(b.cid, b.bytes)
      const got = await store.getBlocks(blocks.map(b => b.cid))
      assert.equal(got[0], undefined, 'the deleted block stays deleted')
      assert.ok(got.slice(1).every((b, i) => b != null && Buffer.from(b).equals(blocks[i + 1].bytes)), 'blocks written before and after the restart all read back')
      await assert.rejects(concatChunks(store.get(blocks[0].cid)), { name: 'NotFoundError' })
      const all = new Map<string, Uint8Array>()
      for await (const { cid, bytes } of store.getAll()) all.set(Buffer.from(cid.multihash.bytes).toString('hex'), await concatChunks(bytes))
      assert.equal(all.size, 59)
      assert.ok(blocks.slice(1).every(b => all.get(Buffer.from(b.cid.multihash.bytes).toString('hex'))?.length === b.bytes.length), 'getAll yields every block held, with its bytes')
      await store.close()
    })
  })

  it('after a crash, deletes the bytes written but never indexed, and keeps them when there are more than a crash leaves', async () => {
    await withDatastoreDir('cairn-blockstore-', async (tmp, datastore) => {
      const path = join(tmp, 'blocks')
      const blocks = await makeBlocks(30, i => 1000 + i)
      let store = new SizedBlockstore({ path, datastore, log })
      await store.open()
      for (const b of blocks) await store.put(b.cid, b.bytes)
      await store.close()
      const dataKeys = async (): Promise<string[]> => {
        const db = new Level<string, Uint8Array>(path, { keyEncoding: 'utf8', valueEncoding: 'view' })
        const keys = await db.keys({ gt: '/d/', lt: '/d0' }).all()
        await db.close()
        return keys
      }
      /** Bytes of blocks numbered after the last one, with no index entry: what a crash mid-write leaves. */
      const crash = async (n: number, size: number): Promise<void> => {
        const db = new Level<string, Uint8Array>(path, { keyEncoding: 'utf8', valueEncoding: 'view' })
        const [last] = await db.keys({ gt: '/d/', lt: '/d0', reverse: true, limit: 1 }).all()
        const next = parseInt(last.slice(3), 16) + 1
        await db.batch(Array.from({ length: n }, (_, i) => ({ type: 'put' as const, key: '/d/' + (next + i).toString(16).padStart(12, '0'), value: new Uint8Array(size) })))
        await db.close()
        await datastore.delete(new Key('/cairn/ipfs/repo-size'))
      }
      const expected = blocks.reduce((n, b) => n + b.bytes.byteLength, 0)

      await crash(200, 64 * 1024)
      assert.equal((await dataKeys()).length, 230)
      store = new SizedBlockstore({ path, datastore, log })
      await store.open()
      assert.equal(store.size(), expected)
      const more = await makeBlocks(5, () => 500)
      for (const b of more) await store.put(b.cid, b.bytes)
      const got = await store.getBlocks([...blocks, ...more].map(b => b.cid))
      assert.ok(got.every((b, i) => b != null && Buffer.from(b).equals([...blocks, ...more][i].bytes)), 'every indexed block reads back')
      await store.close()
      assert.equal((await dataKeys()).length, 35, 'the 200 unindexed blocks are gone, the 35 indexed ones stay')

      // an index that does not match the store (more unindexed blocks than writes in flight): nothing is deleted
      await crash(10_001, 10)
      store = new SizedBlockstore({ path, datastore, log })
      await store.open()
      assert.equal(store.size(), expected + 5 * 500)
      await store.close()
      assert.equal((await dataKeys()).length, 35 + 10_001)
    })
  })

  it('writes 256 KiB blocks without LevelDB compactions (blocks in the order written), where keys by hash are merged', async () => {
    await withDatastoreDir('cairn-blockstore-', async (tmp, datastore) => {
      // 1 MiB memtables: 40 MB of blocks make ~40 table files
      const blocks = await makeBlocks(160, () => 256 * 1024)
      const store = new SizedBlockstore({ path: join(tmp, 'blocks'), datastore, log, writeBufferSize: 1024 * 1024 })
      await store.open()
      for (let i = 0; i < blocks.length; i += 8) await Promise.all(blocks.slice(i, i + 8).map(async b => await store.put(b.cid, b.bytes)))
      await store.close()
      const ours = await readFile(join(tmp, 'blocks', 'LOG'), 'utf8')
      assert.match(ours, /Level-0 table #\d+: started/, 'memtables were flushed')
      assert.doesNotMatch(ours, /Compacting/, 'no table file was merged')

      // the same blocks under their multihashes (blockstore-level's layout), for comparison
      const byHash = new LevelBlockstore(join(tmp, 'by-hash'), { writeBufferSize: 1024 * 1024 })
      await byHash.open()
      for (let i = 0; i < blocks.length; i += 8) await Promise.all(blocks.slice(i, i + 8).map(async b => await byHash.put(b.cid, b.bytes)))
      await byHash.close()
      assert.match(await readFile(join(tmp, 'by-hash', 'LOG'), 'utf8'), /Compacting/)
    })
  })

  it('gives the space of deleted blocks back', async () => {
    await withDatastoreDir('cairn-blockstore-', async (tmp, datastore) => {
      const blocks = await makeBlocks(48, () => 1024 * 1024)
      const store = new SizedBlockstore({ path: join(tmp, 'blocks'), datastore, log, writeBufferSize: 4 * 1024 * 1024, reclaimBytes: 8 * 1024 * 1024 })
      await store.open()
      try {
        for (const b of blocks) await store.put(b.cid, b.bytes)
        await waitFor(async () => await du(join(tmp, 'blocks')) > 40e6, { timeoutMs: 10_000, message: 'the blocks are on disk' })
        for (const b of blocks.slice(0, 40)) await store.delete(b.cid)
        assert.equal(store.size(), 8 * 1024 * 1024)
        // compactions run in the background: what was deleted leaves the disk
        await waitFor(async () => await du(join(tmp, 'blocks')) < 20e6, { timeoutMs: 20_000, message: 'deleted blocks still take space' })
        const left = await store.getBlocks(blocks.slice(40).map(b => b.cid))
        assert.ok(left.every((b, i) => b != null && Buffer.from(b).equals(blocks[40 + i].bytes)), 'the blocks not deleted are intact')
      } finally {
        await store.close()
      }
    })
  })

  it('remembers deleted blocks across a restart, and compacts only ranges that are mostly deleted', async () => {
    await withDatastoreDir('cairn-blockstore-', async (tmp, datastore) => {
      // 12 MiB in blocks 0-11, 300 small blocks, 25 MiB in blocks 312-336, then 8 MiB more (so that the blocks
      // before are in table files: level's size estimate leaves out its memtable)
      const dense = await makeBlocks(12, () => 1024 * 1024)
      const filler = await makeBlocks(300, () => 1024)
      const sparse = await makeBlocks(25, () => 1024 * 1024)
      const tail = await makeBlocks(8, () => 1024 * 1024)
      const options = { path: join(tmp, 'blocks'), datastore, log, writeBufferSize: 4 * 1024 * 1024, reclaimBytes: 8 * 1024 * 1024 }
      let store = new SizedBlockstore(options)
      await store.open()
      for (const b of [...dense, ...filler, ...sparse, ...tail]) await store.put(b.cid, b.bytes)
      // every tenth block of the 25: a range where ~15% was deleted, not worth rewriting for the space
      const sparseDeleted = sparse.filter((_, i) => i % 10 === 0)
      for (const b of sparseDeleted) await store.delete(b.cid)
      // 5 MiB of the first range (8 MiB deleted in all, at the threshold: the sparse range is looked at, and left)
      for (const b of dense.slice(0, 5)) await store.delete(b.cid)
      await waitFor(async () => (await readFile(join(tmp, 'blocks', 'LOG'), 'utf8')).includes('Manual compaction'), { timeoutMs: 10_000, message: 'no compaction ran' })
      // then 4 MiB more of it, and a restart: those wait for more deletes
      for (const b of dense.slice(5, 9)) await store.delete(b.cid)
      await store.close()
      const before = await du(join(tmp, 'blocks'))
      store = new SizedBlockstore(options)
      await store.open()
      try {
        // with the 7 MiB remembered across the restart (the sparse range's 3 and these 4), one more delete is enough
        await store.delete(dense[9].cid)
        await waitFor(async () => await du(join(tmp, 'blocks')) < before - 4e6, { timeoutMs: 20_000, message: 'the deleted range still takes space' })
        const compacted = [...(await readFile(join(tmp, 'blocks', 'LOG'), 'utf8')).matchAll(/Manual compaction at level-\d+ from '\/d\/([0-9a-f]{12})/g)]
          .map(m => parseInt(m[1], 16))
        assert.ok(compacted.includes(5), `blocks 5-9 were compacted after the restart (from sequence numbers ${compacted.join(', ')})`)
        assert.ok(compacted.every(seq => seq < 12), `only the dense range was compacted (from sequence numbers ${compacted.join(', ')})`)
        const deletedDense = dense.slice(0, 10)
        const all = [...dense, ...filler, ...sparse, ...tail]
        const gone = new Set([...deletedDense, ...sparseDeleted])
        const left = await store.getBlocks(all.map(b => b.cid))
        assert.ok(left.every((b, i) => gone.has(all[i]) ? b === undefined : b != null && Buffer.from(b).equals(all[i].bytes)), 'exactly the deleted blocks are gone')
      } finally {
        await store.close()
      }
    })
  })

  it('reads, counts and deletes blocks a store of the earlier layout (blockstore-level) holds, and adds new ones beside them', async () => {
    await withDatastoreDir('cairn-blockstore-', async (tmp, datastore) => {
      const old = await makeBlocks(30, i => 500 + i)
      const fresh = await makeBlocks(10, i => 700 + i)
      const earlier = new LevelBlockstore(join(tmp, 'blocks'))
      await earlier.open()
      for (const b of old) await earlier.put(b.cid, b.bytes)
      await earlier.close()

      const store = new SizedBlockstore({ path: join(tmp, 'blocks'), datastore, log })
      await store.open()
      try {
        assert.equal(store.size(), old.reduce((n, b) => n + b.bytes.byteLength, 0), 'the earlier blocks are counted')
        assert.deepEqual(await store.hasBlocks(old.map(b => b.cid)), old.map(() => true))
        assert.ok(Buffer.from(await concatChunks(store.get(old[3].cid))).equals(old[3].bytes))
        // a block held already is not written again
        await store.put(old[4].cid, old[4].bytes)
        for (const b of fresh) await store.put(b.cid, b.bytes)
        await store.delete(old[0].cid)
        assert.equal(store.size(), [...old.slice(1), ...fresh].reduce((n, b) => n + b.bytes.byteLength, 0))
        const got = await store.getBlocks([...old, ...fresh].map(b => b.cid))
        assert.equal(got[0], undefined)
        assert.ok(got.slice(1).every((b, i) => b != null && Buffer.from(b).equals([...old, ...fresh][i + 1].bytes)))
        let n = 0
        for await (const _ of store.getAll()) n++
        assert.equal(n, 39)
      } finally {
        await store.close()
      }
    })
  })
})
