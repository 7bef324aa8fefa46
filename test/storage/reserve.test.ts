// The reserve file: made when the disk has room for it twice, deleted at start when the databases need the
// room to replay their logs, and a start refused (before anything is written) when even that is not enough.
import assert from 'node:assert/strict'
import { mkdir, readdir, rm, stat, statfs, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { RESERVE_FILE, createDiskReserve, replayBytes } from '../../src/storage/reserve.js'
import { mountSmallDisk } from '../small-disk.js'
import { quietLogger, tempDir, waitFor } from '../util.js'

const MiB = 1024 * 1024

/** A level database's files as replay sees them: CURRENT, and a log of `logBytes`. */
async function fakeDb (dir: string, logBytes: number): Promise<void> {
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'CURRENT'), 'MANIFEST-000002\n')
  await writeFile(join(dir, '000003.log'), new Uint8Array(logBytes))
  await writeFile(join(dir, '000005.ldb'), new Uint8Array(1000))
}

const freeOn = async (dir: string): Promise<number> => { const fs = await statfs(dir); return Number(fs.bavail) * Number(fs.bsize) }

describe('disk reserve', () => {
  it('counts the logs of the level databases in the peer folder, one level down too', async () => {
    const tmp = await tempDir()
    try {
      await fakeDb(join(tmp.path, 'blocks'), 3000)
      await fakeDb(join(tmp.path, 'pinsvc', 'requests'), 500)
      // not a database: no CURRENT
      await mkdir(join(tmp.path, 'other'))
      await writeFile(join(tmp.path, 'other', '000001.log'), new Uint8Array(7000))
      assert.equal(await replayBytes(tmp.path), 3500)
    } finally {
      await tmp.cleanup()
    }
  })

  it('is made with room for it twice, deleted at start when the logs need the room, and a start refused when even that is short', { timeout: 60_000 }, async t => {
    const disk = await mountSmallDisk(48)
    if (typeof disk === 'string') {
      t.skip(disk)
      return
    }
    try {
      const peer = join(disk.dir, 'peer')
      await fakeDb(join(peer, 'blocks'), 6 * MiB)
      const reserve = createDiskReserve({ path: peer, bytes: 8 * MiB, checkIntervalMs: 100 }, { logger: quietLogger() })
      await reserve.prepare()
      await reserve.start()
      await waitFor(async () => (await stat(join(peer, RESERVE_FILE)).catch(() => undefined))?.size === 8 * MiB, { message: 'start() makes the reserve' })
      await reserve.stop()

      // the disk fills: the log's replay (6 MiB + 8 MiB margin) fits only with the reserve's 8 MiB
      await writeFile(join(disk.dir, 'filler'), new Uint8Array(await freeOn(disk.dir) - 7 * MiB))
      const again = createDiskReserve({ path: peer, bytes: 8 * MiB, checkIntervalMs: 100 }, { logger: quietLogger() })
      await again.prepare()
      assert.deepEqual((await readdir(peer)).sort(), ['blocks'], 'the reserve is still there')
      // not made again until the disk has room for it twice (15 MiB free, not 16)
      assert.equal(await again.ensure(), false)
      assert.deepEqual((await readdir(peer)).sort(), ['blocks'])

      // fuller still: no reserve left to give, the start is refused, naming the disk and what to free
      await writeFile(join(disk.dir, 'filler-2'), new Uint8Array(3 * MiB))
      const before = await freeOn(disk.dir)
      const last = createDiskReserve({ path: peer, bytes: 8 * MiB }, { logger: quietLogger() })
      await assert.rejects(last.prepare(), (err: Error) => {
        assert.equal(err.name, 'InsufficientStorageError')
        assert.match(err.message, new RegExp(`^insufficient storage: cannot start: opening the databases in ${peer} needs about 14\\.0 MiB free .*, more than the disk holding ${peer} \\(\\S+ mounted at ${disk.dir}, [\\d.]+ MiB free\\) has: free at least [\\d.]+ MiB on it, then start again$`))
        return true
      })
      assert.equal(await freeOn(disk.dir), before, 'a refused start wrote something')
      // once that much is freed, it starts
      await rm(join(disk.dir, 'filler-2'))
      await rm(join(disk.dir, 'filler'))
      await last.prepare()
    } finally {
      await disk.remove()
    }
  })
})
