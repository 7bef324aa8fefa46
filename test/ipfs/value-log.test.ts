// The value-log blockstore: blocks in segment files, an index in level. Reads back what was put (across a
// restart), cuts a torn tail at open and re-indexes what the index lacks, shares one fdatasync among puts made
// together, gives space back by compaction without failing a read, and keeps every acknowledged block through
// kill -9.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { cp, readdir, rm, stat, statfs, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { CID } from 'multiformats/cid'
import { ValueLogBlockstore } from '../../src/ipfs/value-log/index.js'
import { recordBytes } from '../../src/ipfs/value-log/record.js'
import { concatChunks } from '../../src/utils/bytes.js'
import { makeBlocks, silentLog } from './blocks.js'
import { mountSmallDisk } from '../small-disk.js'
import { tempDir } from '../util.js'

const log = silentLog

/** Bytes of the segment files in a store's folder. */
async function segmentBytes (dir: string): Promise<number> {
  let total = 0
  for (const name of await readdir(dir)) if (name.endsWith('.seg')) total += (await stat(join(dir, name))).size
  return total
}

async function withDir (fn: (dir: string) => Promise<void>): Promise<void> {
  const tmp = await tempDir('cairn-vlog-')
  try {
    await fn(tmp.path)
  } finally {
    await tmp.cleanup()
  }
}

async function readBack (store: ValueLogBlockstore, blocks: Array<{ cid: CID, bytes: Uint8Array }>): Promise<void> {
  const got = await store.getBlocks(blocks.map(b => b.cid))
  blocks.forEach((b, i) => { assert.ok(got[i] !== undefined && Buffer.from(got[i]).equals(b.bytes), `block ${i} (${b.cid}) reads back`) })
}

describe('ValueLogBlockstore', () => {
  it('stores 500 blocks put at once (duplicates too), counts each once, reads them back after a restart, deletes', async () => {
    await withDir(async dir => {
      const path = join(dir, 'vlog')
      const blocks = await makeBlocks(500, i => 1 + (i * 997) % 20_000)
      const expected = blocks.reduce((n, b) => n + b.bytes.byteLength, 0)
      let store = new ValueLogBlockstore({ path, log })
      await store.open()
      await Promise.all([...blocks, ...blocks].map(async ({ cid, bytes }) => await store.put(cid, bytes)))
      assert.equal(store.size(), expected)
      assert.deepEqual(await store.hasBlocks(blocks.map(b => b.cid)), blocks.map(() => true))
      await store.close()
      store = new ValueLogBlockstore({ path, log })
      await store.open()
      try {
        assert.equal(store.size(), expected)
        await readBack(store, blocks)
        assert.ok(Buffer.from(await concatChunks(store.get(blocks[7].cid))).equals(blocks[7].bytes))
        const listed: CID[] = []
        for await (const slice of store.cidSlices(64)) listed.push(...slice)
        assert.deepEqual(new Set(listed.map(c => c.multihash.bytes.toString())), new Set(blocks.map(b => b.cid.multihash.bytes.toString())))
        await store.delete(blocks[0].cid)
        assert.equal(await store.has(blocks[0].cid), false)
        assert.equal(store.size(), expected - blocks[0].bytes.byteLength)
        await assert.rejects(concatChunks(store.get(blocks[0].cid)), { name: 'NotFoundError' })
      } finally {
        await store.close()
      }
    })
  })

  it('cuts a torn last record at open, at every offset, and every earlier block reads back; a whole one is indexed again', async () => {
    await withDir(async dir => {
      const path = join(dir, 'vlog')
      const blocks = await makeBlocks(20, () => 3000)
      const [last] = await makeBlocks(1, () => 60)
      let store = new ValueLogBlockstore({ path, log })
      await store.open()
      for (const b of blocks) await store.put(b.cid, b.bytes)
      await store.close()
      const segment = join(path, '000001.seg')
      const before = (await stat(segment)).size
      // the index as it was before the last put: LevelDB's unsynced log lost its entry in the crash
      await cp(join(path, 'index'), join(dir, 'index-before'), { recursive: true })
      store = new ValueLogBlockstore({ path, log })
      await store.open()
      await store.put(last.cid, last.bytes)
      await store.close()
      const after = (await stat(segment)).size
      await cp(segment, join(dir, 'whole.seg'))
      assert.ok(after > before)
      for (let at = before; at <= after; at++) {
        await rm(join(path, 'index'), { recursive: true })
        await cp(join(dir, 'index-before'), join(path, 'index'), { recursive: true })
        await cp(join(dir, 'whole.seg'), segment)
        await truncate(segment, at)
        store = new ValueLogBlockstore({ path, log })
        await store.open()
        try {
          assert.equal((await stat(segment)).size, at === after ? after : before, `cut at ${at}`)
          assert.equal(await store.has(last.cid), at === after, `torn at ${at}: the last block is ${at === after ? '' : 'not '}held`)
          await readBack(store, blocks)
        } finally {
          await store.close()
        }
      }
    })
  })

  it('rebuilds a lost index from the segments', async () => {
    await withDir(async dir => {
      const path = join(dir, 'vlog')
      const blocks = await makeBlocks(300, () => 10_000)
      let store = new ValueLogBlockstore({ path, log, segmentBytes: 1024 * 1024 })
      await store.open()
      await Promise.all(blocks.map(async b => await store.put(b.cid, b.bytes)))
      await store.close()
      await rm(join(path, 'index'), { recursive: true })
      store = new ValueLogBlockstore({ path, log, segmentBytes: 1024 * 1024 })
      await store.open()
      try {
        assert.equal(store.size(), 300 * 10_000)
        await readBack(store, blocks)
      } finally {
        await store.close()
      }
    })
  })

  it('group commit: 200 puts made together share far fewer fdatasyncs than 200', async () => {
    await withDir(async dir => {
      const store = new ValueLogBlockstore({ path: join(dir, 'vlog'), log })
      await store.open()
      try {
        const blocks = await makeBlocks(200, () => 4096)
        const syncs = store.stats().syncs
        await Promise.all(blocks.map(async b => await store.put(b.cid, b.bytes)))
        const used = store.stats().syncs - syncs
        assert.ok(used >= 1 && used <= 20, `${used} fdatasyncs for 200 puts`)
        await readBack(store, blocks)
      } finally {
        await store.close()
      }
    })
  })

  it('compaction gives the space of deleted blocks back (segment files shrink) while reads go on, and no block is lost', async () => {
    await withDir(async dir => {
      const path = join(dir, 'vlog')
      const store = new ValueLogBlockstore({ path, log, segmentBytes: 1024 * 1024 })
      await store.open()
      const blocks = await makeBlocks(512, () => 16 * 1024)
      try {
        await Promise.all(blocks.map(async b => await store.put(b.cid, b.bytes)))
        const full = await segmentBytes(path)
        // three of every four deleted: each segment falls to a quarter live
        const kept = blocks.filter((_, i) => i % 4 === 0)
        const gone = blocks.filter((_, i) => i % 4 !== 0)
        const state = { reading: true }
        const reads = (async () => {
          let n = 0
          while (state.reading) {
            await readBack(store, [kept[n++ % kept.length]])
          }
          return n
        })()
        for (const b of gone) await store.delete(b.cid)
        await store.compacted()
        state.reading = false
        assert.ok(await reads > 0)
        const after = await segmentBytes(path)
        assert.ok(store.stats().compactedSegments > 0)
        assert.ok(after < full * 0.5, `segment files ${full} -> ${after} bytes`)
        await readBack(store, kept)
        assert.deepEqual(await store.hasBlocks(gone.map(b => b.cid)), gone.map(() => false))
        assert.equal(store.size(), kept.length * 16 * 1024)
      } finally {
        await store.close()
      }
      const reopened = new ValueLogBlockstore({ path, log, segmentBytes: 1024 * 1024 })
      await reopened.open()
      try {
        await readBack(reopened, blocks.filter((_, i) => i % 4 === 0))
      } finally {
        await reopened.close()
      }
    })
  })

  it('compacts the segment being appended to, once enough of it is dead: a store smaller than a segment gives space back', async () => {
    await withDir(async dir => {
      const path = join(dir, 'vlog')
      const store = new ValueLogBlockstore({ path, log, segmentBytes: 8 * 1024 * 1024 })
      await store.open()
      try {
        const blocks = await makeBlocks(256, () => 16 * 1024)
        await Promise.all(blocks.map(async b => await store.put(b.cid, b.bytes)))
        assert.equal(store.stats().segments, 1)
        const full = await segmentBytes(path)
        for (const b of blocks.slice(64)) await store.delete(b.cid)
        await store.compacted()
        const after = await segmentBytes(path)
        assert.ok(after < full * 0.3, `segment files ${full} -> ${after} bytes`)
        await readBack(store, blocks.slice(0, 64))
      } finally {
        await store.close()
      }
    })
  })

  it('garbage spread thinly over every segment (each still over half live) is compacted until the files hold <= 1.2x the live blocks', async () => {
    await withDir(async dir => {
      const path = join(dir, 'vlog')
      const store = new ValueLogBlockstore({ path, log, segmentBytes: 2 * 1024 * 1024 })
      await store.open()
      try {
        const blocks = await makeBlocks(640, () => 16 * 1024)
        await Promise.all(blocks.map(async b => await store.put(b.cid, b.bytes)))
        assert.ok(store.stats().segments >= 5)
        // one block in three, everywhere: every segment stays 2/3 live, above the per-segment threshold (1/2)
        const gone = blocks.filter((_, i) => i % 3 === 0)
        const kept = blocks.filter((_, i) => i % 3 !== 0)
        for (const b of gone) await store.delete(b.cid)
        await store.compacted()
        const after = await segmentBytes(path)
        const live = kept.length * 16 * 1024
        assert.ok(store.stats().compactedSegments > 0)
        // the bound counts whole records (the framing of each block too)
        const records = kept.length * recordBytes(blocks[0].cid.multihash.bytes.byteLength, 16 * 1024)
        assert.ok(after <= 1.2 * records, `segment files hold ${(after / records).toFixed(3)}x the live records (${live} bytes of blocks)`)
        await readBack(store, kept)
        assert.equal(store.size(), live)
      } finally {
        await store.close()
      }
    })
  })

  it('on a full disk: puts fail with InsufficientStorageError naming the disk; after a reopen every acknowledged block is there', async t => {
    const disk = await mountSmallDisk(8)
    if (typeof disk === 'string') {
      t.skip(disk)
      return
    }
    try {
      const path = join(disk.dir, 'vlog')
      let store = new ValueLogBlockstore({ path, log, segmentBytes: 1024 * 1024 })
      await store.open()
      const fs = await statfs(disk.dir)
      // room for about ten blocks
      await writeFile(join(disk.dir, 'filler'), new Uint8Array(Math.max(0, Number(fs.bavail) * Number(fs.bsize) - 700 * 1024)))
      const blocks = await makeBlocks(30, () => 64 * 1024)
      const acked: typeof blocks = []
      const refused: Error[] = []
      for (const b of blocks) {
        try {
          await store.put(b.cid, b.bytes)
          acked.push(b)
        } catch (err) {
          refused.push(err as Error)
        }
      }
      assert.ok(refused.length > 0, 'no put failed on the full disk')
      assert.ok(acked.length > 0, 'no put succeeded before the disk filled')
      for (const err of refused) {
        assert.equal(err.name, 'InsufficientStorageError', err.message)
        assert.ok(err.message.includes(`mounted at ${disk.dir}`), err.message)
      }
      await store.close()
      await rm(join(disk.dir, 'filler'))
      store = new ValueLogBlockstore({ path, log, segmentBytes: 1024 * 1024 })
      await store.open()
      try {
        await readBack(store, acked)
        // and takes writes again: the last block, refused on the full disk
        const last = blocks[blocks.length - 1]
        await store.put(last.cid, last.bytes)
        await readBack(store, [last])
      } finally {
        await store.close()
      }
    } finally {
      await disk.remove()
    }
  })

  it('kill -9 while writing, 10 times: every put that had resolved is readable and hashes right', async () => {
    await withDir(async dir => {
      const path = join(dir, 'vlog')
      const child = fileURLToPath(new URL('./value-log-child.js', import.meta.url))
      const acknowledged: string[] = []
      for (let trial = 0; trial < 10; trial++) {
        const proc = spawn(process.execPath, [child, path], { stdio: ['ignore', 'pipe', 'inherit'] })
        let out = ''
        proc.stdout.setEncoding('utf8')
        const exited = new Promise(resolve => proc.on('exit', resolve))
        await new Promise<void>((resolve, reject) => {
          proc.stdout.on('data', (chunk: string) => {
            out += chunk
            if (out.startsWith('open\n')) resolve()
          })
          proc.on('exit', code => { reject(new Error(`child exited with ${code} before opening the store`)) })
        })
        await new Promise(resolve => setTimeout(resolve, 100 + Math.random() * 500))
        proc.kill('SIGKILL')
        await exited
        const lines = out.split('\n').slice(1)
        // a line cut by the kill is not an acknowledgement
        lines.pop()
        acknowledged.push(...lines)
        assert.ok(lines.length > 0, `trial ${trial}: the child wrote blocks before it was killed`)
        const store = new ValueLogBlockstore({ path, log, segmentBytes: 2 * 1024 * 1024 })
        await store.open()
        try {
          const cids = acknowledged.map(s => CID.parse(s))
          const got = await store.getBlocks(cids)
          cids.forEach((cid, i) => {
            const bytes = got[i]
            assert.ok(bytes !== undefined, `trial ${trial}: acknowledged block ${cid} is held`)
            assert.ok(Buffer.from(cid.multihash.digest).equals(createHash('sha256').update(bytes).digest()), `trial ${trial}: block ${cid} hashes right`)
          })
        } finally {
          await store.close()
        }
      }
    })
  })
})
