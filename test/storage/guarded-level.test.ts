// A level database on a disk that fills up and is freed again: every write it acknowledged must be there after
// a reopen. A plain LevelDB loses some (src/storage/guarded-level.ts says why); the guarded one refuses writes
// after the first that failed, until it is opened again.
import assert from 'node:assert/strict'
import { rm, statfs, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { guardedLevel } from '../../src/storage/guarded-level.js'
import { mountSmallDisk } from '../small-disk.js'

describe('guarded level database', () => {
  it('on a full disk: refuses writes after one failed, naming the disk; after a reopen every acknowledged write is there', async t => {
    const disk = await mountSmallDisk(8)
    if (typeof disk === 'string') {
      t.skip(disk)
      return
    }
    try {
      const path = join(disk.dir, 'db')
      const db = guardedLevel<string, Uint8Array>(path, { valueEncoding: 'view' })
      await db.open()
      const fs = await statfs(disk.dir)
      // all but 3000 bytes: the log's next block cannot be had
      await writeFile(join(disk.dir, 'filler'), new Uint8Array(Number(fs.bavail) * Number(fs.bsize) - 3000))
      const acked: string[] = []
      const refused: Error[] = []
      const write = async (key: string): Promise<void> => {
        try {
          await db.put(key, new Uint8Array(700).fill(acked.length))
          acked.push(key)
        } catch (err) {
          refused.push(err as Error)
        }
      }
      for (let i = 0; i < 40; i++) await write(`full-${i}`)
      assert.ok(refused.length > 0, 'no write failed on the full disk')
      for (const err of refused) {
        assert.equal(err.name, 'InsufficientStorageError')
        assert.ok(err.message.includes(`the disk holding ${path}`) && err.message.includes(`mounted at ${disk.dir}`), err.message)
      }
      assert.match(refused[0].message, /^insufficient storage: a write to .* failed for lack of space on .*, 0 B free\); this database takes no more writes until the peer is restarted with space free$/)
      assert.equal(db.guard.writable, false)

      // space again: a plain LevelDB takes these writes, and its next open drops some of them as corrupt
      await rm(join(disk.dir, 'filler'))
      refused.length = 0
      for (let i = 0; i < 100; i++) await write(`freed-${i}`)
      assert.equal(refused.length, 100, 'writes were taken after one failed, before a reopen')
      assert.match(refused[0].message, /^insufficient storage: writes to .* are refused since .*, when a write failed for lack of space on .*; restart the peer once space is free$/)

      await db.close()
      await db.open()
      assert.equal(db.guard.writable, true)
      for (let i = 0; i < 100; i++) await write(`reopened-${i}`)
      assert.equal(refused.length, 100, 'writes are refused after a reopen')
      await db.close()
      await db.open()
      const held = await db.getMany(acked)
      const lost = acked.filter((_, i) => held[i] === undefined)
      assert.deepEqual(lost, [], `${lost.length} of ${acked.length} acknowledged writes lost`)
      await db.close()
    } finally {
      await disk.remove()
    }
  })
})
