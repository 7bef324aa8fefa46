// `blockstore`: the peer's blockstore (src/ipfs/sized-blockstore.ts: blocks under increasing keys, plus an index)
// against blockstore-level's layout (each block under its multihash), both LevelDB with the same 64 MiB
// memtable, in the same run. N MB of fresh pseudo-random 256 KiB blocks are written with as many puts in flight as the
// peer's write-behind allows (src/ipfs/add.ts WriteBehind, used by the add and by fetches: 256 blocks, 32 MiB),
// each store in a new folder; the figure is MB/s until the last write resolved, then the
// time until the store is closed, the compactions LevelDB logged, and the CPU time of this process.
// Why it matters: under random keys LevelDB merges the table files again at each level as the store grows, and a
// mirror is hundreds of GB.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { LevelBlockstore } from 'blockstore-level'
import { LevelDatastore } from 'datastore-level'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { WRITE_BEHIND_BLOCKS, WRITE_BEHIND_BYTES } from '../src/ipfs/add.js'
import { DEFAULT_WRITE_BUFFER_SIZE, SizedBlockstore } from '../src/ipfs/sized-blockstore.js'
import { parseFlags, positiveInt, tempDir, type Benchmark, type BenchContext, type BenchReport, type Metric } from './lib.js'

const USAGE = `  --mb N            megabytes (10^6 bytes) written to each store (default 2048)
  --block-size N    bytes per block (default 262144)
  --keep            keep the stores' folders (path printed under the table)`

interface Result { writeS: number, closeS: number, cpuS: number, compactions: number }

interface Store {
  open: () => Promise<void>
  put: (cid: CID, bytes: Uint8Array) => Promise<unknown>
  close: () => Promise<void>
}

/** Puts in flight for blocks of this size: as many as the peer's write-behind allows. */
export const inFlight = (blockSize: number): number => Math.max(1, Math.min(WRITE_BEHIND_BLOCKS, Math.floor(WRITE_BEHIND_BYTES / blockSize)))

/**
 * Writes `count` blocks into an opened store, inFlight() puts in flight at all times (a new one as soon as one
 * lands, as the write-behind does). The blocks are made and hashed in batches with the clock
 * stopped: each batch is made, then written, and the next one made once it has all landed.
 */
async function fill (store: Store, count: number, blockSize: number, signal: AbortSignal): Promise<{ writeS: number, cpuS: number }> {
  let cpu = 0
  let wall = 0
  const BATCH = 1024
  for (let done = 0; done < count; done += BATCH) {
    signal.throwIfAborted()
    const batch = await Promise.all(Array.from({ length: Math.min(BATCH, count - done) }, async () => {
      const bytes = randomBytes(blockSize)
      return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
    }))
    const c = process.cpuUsage()
    const t = performance.now()
    let next = 0
    // writers, each taking the next block as soon as its put lands
    await Promise.all(Array.from({ length: inFlight(blockSize) }, async () => {
      while (next < batch.length) {
        const b = batch[next++]
        await store.put(b.cid, b.bytes)
      }
    }))
    wall += performance.now() - t
    const d = process.cpuUsage(c)
    cpu += (d.user + d.system) / 1e6
  }
  return { writeS: wall / 1000, cpuS: cpu }
}

async function measure (name: string, dir: string, make: () => Promise<Store>, count: number, blockSize: number, ctx: BenchContext): Promise<Result> {
  // neither store pays for the other's writeback
  execFileSync('sync')
  const store = await make()
  await store.open()
  let filled: { writeS: number, cpuS: number }
  try {
    filled = await fill(store, count, blockSize, ctx.signal)
  } catch (err) {
    await store.close()
    throw err
  }
  const t = performance.now()
  await store.close()
  const closeS = (performance.now() - t) / 1000
  ctx.log(`${name}: ${filled.writeS.toFixed(2)} s writing, ${closeS.toFixed(2)} s closing`)
  const compactions = (await readFile(join(dir, 'LOG'), 'utf8')).match(/Compacting /g)?.length ?? 0
  return { ...filled, closeS, compactions }
}

async function run (argv: string[], ctx: BenchContext): Promise<BenchReport> {
  const values = parseFlags(argv, { mb: { type: 'string' }, 'block-size': { type: 'string' }, keep: { type: 'boolean' } })
  const mb = positiveInt('mb', values.mb, 2048)
  const blockSize = positiveInt('block-size', values['block-size'], 256 * 1024)
  const count = Math.ceil(mb * 1e6 / blockSize)
  const root = await tempDir('cairn-bench-blockstore-')
  const log = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false }) as never
  try {
    const datastore = new LevelDatastore(join(root.path, 'datastore'))
    await datastore.open()
    let ours: Result
    try {
      ours = await measure('in the order written', join(root.path, 'ours'), async () =>
        new SizedBlockstore({ path: join(root.path, 'ours'), datastore, log }), count, blockSize, ctx)
    } finally {
      await datastore.close()
    }
    const byHash = await measure('by multihash', join(root.path, 'by-hash'), async () =>
      new LevelBlockstore(join(root.path, 'by-hash'), { writeBufferSize: DEFAULT_WRITE_BUFFER_SIZE }), count, blockSize, ctx)
    const mbps = (r: Result): number => count * blockSize / 1e6 / r.writeS
    const metrics: Metric[] = [
      { key: 'ordered_mbps', label: 'cairn\'s blockstore (blocks in the order written, plus an index): write rate', value: mbps(ours), unit: 'MB/s' },
      { key: 'by_hash_mbps', label: 'blockstore-level (each block under its multihash): write rate', value: mbps(byHash), unit: 'MB/s' },
      { key: 'ratio', label: 'cairn\'s / blockstore-level\'s', value: mbps(ours) / mbps(byHash), unit: 'ratio', digits: 2, baseline: `${mbps(byHash).toFixed(0)} MB/s blockstore-level` },
      { key: 'ordered_compactions', label: 'cairn\'s blockstore: compactions LevelDB logged', value: ours.compactions, unit: '', digits: 0 },
      { key: 'by_hash_compactions', label: 'blockstore-level: compactions LevelDB logged', value: byHash.compactions, unit: '', digits: 0 },
      { key: 'ordered_cpu', label: 'cairn\'s blockstore: CPU time of the process while writing', value: ours.cpuS, unit: 's', digits: 2 },
      { key: 'by_hash_cpu', label: 'blockstore-level: CPU time of the process while writing', value: byHash.cpuS, unit: 's', digits: 2 },
      { key: 'ordered_close', label: 'cairn\'s blockstore: close (waits for LevelDB\'s work in progress)', value: ours.closeS, unit: 's', digits: 2 },
      { key: 'by_hash_close', label: 'blockstore-level: close', value: byHash.closeS, unit: 's', digits: 2 }
    ]
    const notes = [
      `${count} fresh pseudo-random blocks of ${blockSize} bytes into each store, ${inFlight(blockSize)} puts in flight at all times, as the peer's write-behind allows (blocks made in batches of 1024 with the clock stopped); memtable ${DEFAULT_WRITE_BUFFER_SIZE / 2 ** 20} MiB for both; ` +
        'blocks are made and hashed outside the timed part; `sync` before each store; CPU covers all of this process\'s threads (LevelDB\'s included) over the timed part'
    ]
    if (values.keep === true) notes.push(`stores kept in ${root.path}`)
    return {
      title: `blockstore: ${mb} MB of ${blockSize}-byte blocks written to cairn's blockstore and to blockstore-level's layout`,
      params: { mb, block_size: blockSize, blocks: count },
      metrics,
      notes
    }
  } finally {
    if (values.keep !== true) await root.cleanup()
  }
}

export const blockstore: Benchmark = {
  description: 'N MB (default 2048) of 256 KiB blocks written to cairn\'s blockstore (blocks in the order written) and to ' +
    'blockstore-level\'s layout (blocks under their multihash), in the same run: write rate, compactions, CPU.',
  usage: USAGE,
  run
}
