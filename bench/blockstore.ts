// `blockstore`: the layouts a peer could keep blocks in, on the same blocks, in the same run: the value log
// (src/ipfs/value-log/: segment files + a level index, what new peer folders use), the earlier level layout
// (src/ipfs/sized-blockstore.ts: blocks in level in the order written, plus an index) and blockstore-fs (one file
// per block, what a Helia user would pick). Two cases by default: 334 MB of 26 KiB blocks (the `add` tree's size
// and mean block) and 2 GB of 256 KiB blocks (a big pin's). For each store, in a new folder:
//   write   fresh pseudo-random blocks, as many puts in flight as the peer's write-behind allows (src/ipfs/add.ts),
//           timed until the last put resolved, then until `sync` returns: the value log fdatasyncs before each
//           put resolves, the other two never sync, so "to disk" (write + sync) is the figure that compares
//           like with like;
//   read    every block back, in random order, as many reads in flight (from the page cache: the machine is
//           shared, caches are not dropped);
//   delete  three of every four blocks, then close (the stores give space back: the value log compacts its
//           segments, level compacts ranges, blockstore-fs unlinks), and `du` of the folder before and after.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { FsBlockstore } from 'blockstore-fs'
import { LevelDatastore } from 'datastore-level'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { WRITE_BEHIND_BLOCKS, WRITE_BEHIND_BYTES } from '../src/ipfs/add.js'
import { SizedBlockstore } from '../src/ipfs/sized-blockstore.js'
import { ValueLogBlockstore } from '../src/ipfs/value-log/index.js'
import { concatChunks } from '../src/utils/bytes.js'
import { parseFlags, positiveInt, tempDir, type Benchmark, type BenchContext, type BenchReport, type Metric } from './lib.js'

const USAGE = `  --mb N            megabytes (10^6 bytes) per store, one case (default: two cases, 334 MB of 26 KiB blocks
                    and 2048 MB of 256 KiB blocks)
  --block-size N    bytes per block of that one case (default 262144)`

interface Store {
  open: () => Promise<void>
  put: (cid: CID, bytes: Uint8Array) => Promise<unknown>
  get: (cid: CID) => AsyncIterable<Uint8Array>
  delete: (cid: CID) => Promise<void>
  close: () => Promise<void>
}

interface Layout { key: string, label: string, make: (dir: string, datastore: LevelDatastore) => Store }

const log = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false }) as never

const LAYOUTS: Layout[] = [
  { key: 'vlog', label: 'value log', make: dir => new ValueLogBlockstore({ path: dir, log }) },
  { key: 'level', label: 'level (SizedBlockstore)', make: (dir, datastore) => new SizedBlockstore({ path: join(dir, 'blocks'), datastore, log }) },
  { key: 'fs', label: 'blockstore-fs', make: dir => new FsBlockstore(dir) }
]

interface Result { writeS: number, syncS: number, cpuS: number, readS: number, deleteS: number, duBefore: number, duAfter: number }

/** Puts in flight for blocks of this size: as many as the peer's write-behind allows. */
export const inFlight = (blockSize: number): number => Math.max(1, Math.min(WRITE_BEHIND_BLOCKS, Math.floor(WRITE_BEHIND_BYTES / blockSize)))

async function du (dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name))).size
  }
  return total
}

/** Runs fn on each item, `n` at a time (a new one as soon as one ends); seconds taken. */
async function timed<T> (items: T[], n: number, fn: (item: T) => Promise<unknown>): Promise<number> {
  const t = performance.now()
  let next = 0
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) await fn(items[next++])
  }))
  return (performance.now() - t) / 1000
}

async function measure (layout: Layout, dir: string, blocks: Array<{ cid: CID, bytes: Uint8Array }>, ctx: BenchContext): Promise<Result> {
  // no store pays for the writeback of the one before
  execFileSync('sync')
  const datastore = new LevelDatastore(join(dir, 'datastore'))
  await datastore.open()
  try {
    let store = layout.make(join(dir, 'store'), datastore)
    await store.open()
    const width = inFlight(blocks[0].bytes.byteLength)
    const c = process.cpuUsage()
    const writeS = await timed(blocks, width, async b => await store.put(b.cid, b.bytes))
    const cpu = process.cpuUsage(c)
    let t = performance.now()
    execFileSync('sync')
    const syncS = (performance.now() - t) / 1000
    ctx.signal.throwIfAborted()
    const shuffled = [...blocks].sort(() => Math.random() - 0.5)
    const readS = await timed(shuffled, width, async b => {
      const bytes = await concatChunks(store.get(b.cid))
      if (bytes.byteLength !== b.bytes.byteLength) throw new Error(`${layout.label}: block ${b.cid} read back with ${bytes.byteLength} bytes`)
    })
    await store.close()
    const duBefore = await du(dir)
    store = layout.make(join(dir, 'store'), datastore)
    await store.open()
    t = performance.now()
    await timed(blocks.filter((_, i) => i % 4 !== 0), width, async b => { await store.delete(b.cid) })
    if (store instanceof ValueLogBlockstore) await store.compacted()
    await store.close()
    const deleteS = (performance.now() - t) / 1000
    const duAfter = await du(dir)
    ctx.log(`${layout.label}: write ${writeS.toFixed(2)} s + sync ${syncS.toFixed(2)} s, read ${readS.toFixed(2)} s, delete 3/4 ${deleteS.toFixed(2)} s, du ${(duBefore / 1e6).toFixed(0)} -> ${(duAfter / 1e6).toFixed(0)} MB`)
    return { writeS, syncS, cpuS: (cpu.user + cpu.system) / 1e6, readS, deleteS, duBefore, duAfter }
  } finally {
    await datastore.close()
  }
}

async function runCase (mb: number, blockSize: number, ctx: BenchContext): Promise<{ metrics: Metric[], note: string }> {
  const count = Math.ceil(mb * 1e6 / blockSize)
  const blocks = await Promise.all(Array.from({ length: count }, async () => {
    const bytes = randomBytes(blockSize)
    return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
  }))
  const results = new Map<string, Result>()
  for (const layout of LAYOUTS) {
    const root = await tempDir(`cairn-bench-blockstore-${layout.key}-`)
    try {
      results.set(layout.key, await measure(layout, root.path, blocks, ctx))
    } finally {
      await root.cleanup()
    }
  }
  const tag = `${blockSize >= 1024 ? `${Math.round(blockSize / 1024)}k` : blockSize}`
  const bytes = count * blockSize / 1e6
  const metrics: Metric[] = []
  const vlog = results.get('vlog') as Result
  for (const layout of LAYOUTS) {
    const r = results.get(layout.key) as Result
    const k = `${tag}_${layout.key}`
    metrics.push(
      { key: `${k}_write_mbps`, label: `${tag}: ${layout.label}: write rate to disk (write + sync)`, value: bytes / (r.writeS + r.syncS), unit: 'MB/s' },
      { key: `${k}_write_s`, label: `${tag}: ${layout.label}: write, then sync`, value: r.writeS, unit: `s (+ ${r.syncS.toFixed(2)} s sync)`, digits: 2 },
      { key: `${k}_cpu`, label: `${tag}: ${layout.label}: CPU while writing`, value: r.cpuS, unit: 's', digits: 2 },
      { key: `${k}_read_mbps`, label: `${tag}: ${layout.label}: read back, random order`, value: bytes / r.readS, unit: 'MB/s' },
      { key: `${k}_delete_s`, label: `${tag}: ${layout.label}: delete 3/4 and give the space back (close included)`, value: r.deleteS, unit: 's', digits: 2 },
      { key: `${k}_du_after`, label: `${tag}: ${layout.label}: folder after the deletes / before`, value: r.duAfter / r.duBefore, unit: 'ratio', digits: 2 }
    )
    if (layout.key !== 'vlog') {
      metrics.push(
        { key: `${k}_write_ratio`, label: `${tag}: value log / ${layout.label}: write to disk, speed`, value: (r.writeS + r.syncS) / (vlog.writeS + vlog.syncS), unit: 'ratio', digits: 2 },
        { key: `${k}_read_ratio`, label: `${tag}: value log / ${layout.label}: read, speed`, value: r.readS / vlog.readS, unit: 'ratio', digits: 2 }
      )
    }
  }
  return { metrics, note: `${tag}: ${count} fresh pseudo-random blocks of ${blockSize} bytes (${bytes.toFixed(0)} MB), ${inFlight(blockSize)} puts and reads in flight` }
}

async function run (argv: string[], ctx: BenchContext): Promise<BenchReport> {
  const values = parseFlags(argv, { mb: { type: 'string' }, 'block-size': { type: 'string' } })
  const cases: Array<[number, number]> = values.mb === undefined && values['block-size'] === undefined
    ? [[334, 26 * 1024], [2048, 256 * 1024]]
    : [[positiveInt('mb', values.mb, 2048), positiveInt('block-size', values['block-size'], 256 * 1024)]]
  const metrics: Metric[] = []
  const notes: string[] = []
  for (const [mb, blockSize] of cases) {
    const r = await runCase(mb, blockSize, ctx)
    metrics.push(...r.metrics)
    notes.push(r.note)
  }
  notes.push('blocks are made and hashed before the timed part; `sync` before each store; the value log fdatasyncs before each put resolves, the others never: compare "to disk"; reads come from the page cache; ratios above 1 mean the value log is faster')
  return {
    title: `blockstore: value log, level (SizedBlockstore) and blockstore-fs on the same blocks: write, read, delete + compact (${cases.map(([mb, b]) => `${mb} MB of ${b}-byte blocks`).join('; ')})`,
    params: { cases: cases.map(([mb, b]) => `${mb}MBx${b}`).join(',') },
    metrics,
    notes
  }
}

export const blockstore: Benchmark = {
  description: 'The value log, the level layout (SizedBlockstore) and blockstore-fs on the same blocks (334 MB of 26 KiB, ' +
    '2 GB of 256 KiB): write to disk, read back, delete 3/4 and give the space back.',
  usage: USAGE,
  run
}
