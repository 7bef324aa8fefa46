// The level blockstore with a byte count: concurrent writes go to level in batches, and every one lands.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { LevelDatastore } from 'datastore-level'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { SizedBlockstore } from '../../src/ipfs/sized-blockstore.js'
import { concatChunks } from '../../src/utils/bytes.js'
import { tempDir } from '../util.js'

const log = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false }) as never

describe('SizedBlockstore', () => {
  it('stores 500 blocks written at once (duplicates too), counts each once, and keeps the count across a restart', async () => {
    const tmp = await tempDir('cairn-blockstore-')
    const datastore = new LevelDatastore(join(tmp.path, 'datastore'))
    await datastore.open()
    try {
      const blocks = await Promise.all(Array.from({ length: 500 }, async (_, i) => {
        const bytes = randomBytes(1 + (i * 997) % 20_000)
        return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
      }))
      const expected = blocks.reduce((n, b) => n + b.bytes.byteLength, 0)
      let store = new SizedBlockstore({ path: join(tmp.path, 'blocks'), datastore, log })
      await store.open()
      // every block twice, all in flight together
      await Promise.all([...blocks, ...blocks].map(async ({ cid, bytes }) => await store.put(cid, bytes)))
      assert.equal(store.size(), expected)
      assert.deepEqual(await store.hasBlocks(blocks.map(b => b.cid)), blocks.map(() => true))
      for (const { cid, bytes } of blocks.slice(0, 20)) assert.ok(Buffer.from(await concatChunks(store.get(cid))).equals(bytes))
      await store.close()
      store = new SizedBlockstore({ path: join(tmp.path, 'blocks'), datastore, log })
      await store.open()
      assert.equal(store.size(), expected)
      const got = await store.getBlocks(blocks.map(b => b.cid))
      assert.ok(got.every((b, i) => b != null && Buffer.from(b).equals(blocks[i].bytes)), 'every block reads back after a restart')
      await store.close()
    } finally {
      await datastore.close()
      await tmp.cleanup()
    }
  })
})
