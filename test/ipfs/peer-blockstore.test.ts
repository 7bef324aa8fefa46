// The peer's blockstore: new peer folders hold blocks in the value log; a folder of the earlier level layout
// stays readable at once and is moved to the value log in the background (a stop part-way loses nothing), after
// which the level folders are gone.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { access, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { LevelDatastore } from 'datastore-level'
import { CID } from 'multiformats/cid'
import { PeerBlockstore } from '../../src/ipfs/peer-blockstore.js'
import { SizedBlockstore } from '../../src/ipfs/sized-blockstore.js'
import { makeBlocks, silentLog as log, withDatastoreDir } from './blocks.js'
import { chunked, collect, concatBytes, removeDirs, startPeer, stopPeers, type TestPeer } from './helpers.js'
import { waitFor } from '../util.js'

const exists = async (path: string): Promise<boolean> => await access(path).then(() => true, () => false)

describe('PeerBlockstore', () => {
  it('a new peer folder holds its blocks in the value log only', async () => {
    await withDatastoreDir('cairn-peer-blockstore-', async (dir, datastore) => {
      const store = new PeerBlockstore({ dataDir: dir, datastore, log })
      await store.open()
      const [b] = await makeBlocks(1, () => 1000)
      await store.put(b.cid, b.bytes)
      await store.close()
      assert.ok((await readdir(join(dir, 'blocks-vlog'))).includes('000001.seg'))
      assert.equal(await exists(join(dir, 'blocks')), false)
    })
  })

  it('a folder of the earlier layout reads at once, is moved to the value log across a stop part-way, then its level folders go', async () => {
    await withDatastoreDir('cairn-peer-blockstore-', async (dir, datastore) => {
      const blocks = await makeBlocks(600, i => 500 + i * 7)
      const total = blocks.reduce((n, b) => n + b.bytes.byteLength, 0)
      const level = new SizedBlockstore({ path: join(dir, 'blocks'), datastore, log })
      await level.open()
      await Promise.all(blocks.map(async b => await level.put(b.cid, b.bytes)))
      await level.close()

      let store = new PeerBlockstore({ dataDir: dir, datastore, log, migrateSlice: 16 })
      await store.open()
      // stopped while moving: some blocks in each store
      await store.close()
      store = new PeerBlockstore({ dataDir: dir, datastore, log, migrateSlice: 16 })
      await store.open()
      try {
        assert.equal(store.size(), total)
        const [fresh] = await makeBlocks(1, () => 2000)
        // reads, a put and deletes while the move goes on
        const [got] = await Promise.all([store.getBlocks(blocks.map(b => b.cid)), store.put(fresh.cid, fresh.bytes), store.delete(blocks[5].cid)])
        blocks.forEach((b, i) => { if (i !== 5) assert.ok(got[i] !== undefined && Buffer.from(got[i]).equals(b.bytes), `block ${i} reads`) })
        await store.migrated()
        assert.equal(store.stats().unmigratedBytes, 0)
        assert.equal(await exists(join(dir, 'blocks')), false)
        assert.equal(await exists(join(dir, 'blocks-index')), false)
        assert.equal(store.size(), total - blocks[5].bytes.byteLength + 2000)
        assert.equal(await store.has(blocks[5].cid), false)
      } finally {
        await store.close()
      }
      store = new PeerBlockstore({ dataDir: dir, datastore, log })
      await store.open()
      try {
        const got = await store.getBlocks(blocks.map(b => b.cid))
        blocks.forEach((b, i) => { assert.ok(i === 5 ? got[i] === undefined : got[i] !== undefined && Buffer.from(got[i]).equals(b.bytes), `block ${i} after the move`) })
      } finally {
        await store.close()
      }
    })
  })

  it('a peer restarted on a folder of the earlier layout serves its pin at once and ends with the value log only', async () => {
    let a: TestPeer | undefined
    try {
      a = await startPeer('a')
      const data = randomBytes(2 * 1024 * 1024)
      const [out] = await collect(a.node.addEntries((async function * () { yield { path: 'f.bin', content: chunked(data) } })(), {}))
      const root = CID.parse(out.cid)
      await a.node.pin(root)
      const { dataDir, privateKey } = a
      await a.node.stop()
      // the folder as the earlier version left it: every block in level, no value log
      const datastore = new LevelDatastore(join(dataDir, 'datastore'))
      await datastore.open()
      const store = new PeerBlockstore({ dataDir, datastore, log })
      await store.open()
      const level = new SizedBlockstore({ path: join(dataDir, 'blocks'), datastore, log })
      await level.open()
      for await (const slice of store.cidSlices(64)) {
        const blocks = await store.getBlocks(slice)
        for (const [i, cid] of slice.entries()) await level.put(cid, blocks[i] as Uint8Array)
      }
      await level.close()
      await store.close()
      await datastore.close()
      await rm(join(dataDir, 'blocks-vlog'), { recursive: true })

      a = await startPeer('a', { dataDir, privateKey })
      assert.equal(await a.node.isPinned(root), true)
      const got = await concatBytes(a.node.cat(root))
      assert.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(data).digest('hex'))
      const node = a.node
      await waitFor(async () => !(await exists(join(dataDir, 'blocks'))), { message: 'the earlier layout moved and its folders removed' })
      assert.deepEqual(await concatBytes(node.cat(root)), Buffer.from(data))
      await a.node.stop()
      a = await startPeer('a', { dataDir, privateKey })
      assert.deepEqual(await concatBytes(a.node.cat(root)), Buffer.from(data))
    } finally {
      await stopPeers(a)
      await removeDirs(a)
    }
  })
})
