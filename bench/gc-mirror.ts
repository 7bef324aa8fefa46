// The mirror part of `npm run bench -- gc` (issue 19): a package tree published with `mirror sync --keep 2`
// `versions` times, `changed-pct` of its files rewritten with new bytes before each re-sync, and a repo GC
// (POST /ipfs/gc) after each sync from the third on, to one in-process peer. Figures: what the peer's block folder
// holds on disk after the last GC (`du` of blocks-vlog, and repo stat's disk_bytes: the whole peer folder, no
// reserve file) over what the two kept versions need (the distinct blocks of their roots, walked; checked against
// pinned_bytes), goal <= 1.25; MB/s given back to the disk (du before the GC minus du once compaction settled,
// over that time); and the latency of gateway reads (a kept file, whole) and of pins (a leaf of the kept version
// pinned again, until this peer holds the pin) while each GC and its compaction run, against a quiet window of the same
// length right after.
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import { createClient, type Client } from '../src/client/index.js'
import { syncMirror } from '../src/mirror/index.js'
import { diskUsage } from '../src/storage/disk.js'
import { concatChunks } from '../src/utils/bytes.js'
import { content, generateTree, packageSize } from './mirror.js'
import { distinctBlocks, seededRandom } from '../test/util.js'
import { MiB, median, preparePeers, quantile, sleep, startPeersInProcess, stopAll, tempDir, type Metric } from './lib.js'
import type { CairnPeer } from '../src/peer.js'

export interface MirrorGcOptions {
  files: number
  versions: number
  changedPct: number
  signal: AbortSignal
  log: (line: string) => void
}

export interface MirrorGcResult {
  treeBytes: number
  written: number
  needed: number
  neededBlocks: number
  pinned: number
  blockFolder: number
  diskBytes: number
  reclaimed: number
  reclaimSeconds: number
  gcRuns: number
  reads: { gc: number[], quiet: number[] }
  pins: { gc: number[], quiet: number[] }
}

/** Bytes of the value log's segment files (one compacted away meanwhile counts 0). */
async function segmentBytes (dir: string): Promise<number> {
  let total = 0
  for (const name of await readdir(dir)) if (name.endsWith('.seg')) total += await stat(join(dir, name)).then(s => s.size, () => 0)
  return total
}

/** Resolves with the time (performance.now()) the segment files last changed, once they held still for `quietMs`. */
async function settled (dir: string, signal: AbortSignal, quietMs = 700): Promise<number> {
  let last = await segmentBytes(dir)
  let changedAt = performance.now()
  while (performance.now() - changedAt < quietMs) {
    await sleep(50, signal)
    const now = await segmentBytes(dir)
    if (now !== last) [last, changedAt] = [now, performance.now()]
  }
  return changedAt
}

/** The distinct blocks the roots reach, read from the peer's store. */
async function neededBytes (peer: CairnPeer, roots: string[]): Promise<{ blocks: number, bytes: number }> {
  return await distinctBlocks(peer.ipfs.helia.blockstore, roots)
}

/** Raw leaves of a kept version (single-chunk files): what the pin probes pin again. Only dag-pb nodes are read. */
async function rawLeaves (peer: CairnPeer, root: string, max: number): Promise<string[]> {
  const out: string[] = []
  const walk = [CID.parse(root)]
  while (walk.length > 0 && out.length < max) {
    const node = dagPb.decode(await concatChunks(peer.ipfs.helia.blockstore.get(walk.pop() as CID)))
    for (const { Hash } of node.Links) {
      if (Hash.code === dagPb.code) walk.push(Hash)
      else out.push(Hash.toString())
    }
  }
  return out.slice(0, max)
}

/**
 * Probes until `until` resolves: one loop reading kept files whole through the gateway, one pinning leaves of the
 * kept version again (a pin takes the GC lock, and writes pin records but no block), until this peer holds each;
 * latencies in ms. The pins made are returned, to be removed.
 */
async function probe (peer: CairnPeer, client: Client, kept: { root: string, paths: string[], leaves: string[], next: number }, until: Promise<unknown>):
Promise<{ reads: number[], pins: number[], pinned: string[] }> {
  const state = { done: false }
  const ended = until.finally(() => { state.done = true })
  const reads: number[] = []
  const pins: number[] = []
  const pinned: string[] = []
  const gw = peer.gatewayAddress()
  const reader = (async () => {
    for (let i = 0; !state.done; i++) {
      const path = kept.paths[(i * 7919) % kept.paths.length]
      const t = performance.now()
      const res = await fetch(`http://${gw.host}:${gw.port}/ipfs/${kept.root}/${path}`)
      await res.arrayBuffer()
      if (!res.ok) throw new Error(`gateway read of ${path}: ${res.status}`)
      reads.push(performance.now() - t)
    }
  })()
  const pinner = (async () => {
    while (!state.done) {
      const cid = kept.leaves[kept.next++ % kept.leaves.length]
      const t = performance.now()
      await client.pin(cid, { name: 'gc-probe' })
      while (!await peer.ipfs.isPinned(CID.parse(cid))) await sleep(5)
      pins.push(performance.now() - t)
      pinned.push(cid)
    }
  })()
  await Promise.all([ended, reader, pinner])
  return { reads, pins, pinned }
}
export async function runMirrorGc (o: MirrorGcOptions): Promise<MirrorGcResult> {
  const root = await tempDir('cairn-bench-gc-mirror-')
  let peers: Array<{ peer: CairnPeer, stop: () => Promise<void> }> = []
  try {
    const tree = join(root.path, 'tree')
    const r = seededRandom(19)
    const { paths, bytes: treeBytes } = await generateTree(tree, o.files, r)
    o.log(`mirror: ${paths.length} files, ${(treeBytes / MiB).toFixed(1)} MiB, ${o.versions} versions, ${o.changedPct}% changed each, --keep 2`)
    await mkdir(join(root.path, 'peers'))
    const prepared = await preparePeers({ peers: 1, root: join(root.path, 'peers') })
    // GC only when asked; no reserve file in the peer folder (disk_bytes is then the store's); an add's hold on GC
    // of 1 s instead of 30 s, so that a GC right after a sync does not wait for it
    peers = await startPeersInProcess(prepared, {
      noPinHoldMs: 1000,
      adjust: c => { c.peer.gc.interval_ms = 0; c.peer.disk.reserve_bytes = 0 }
    })
    const peer = peers[0].peer
    const client = createClient({ api: `http://${peer.restAddress().host}:${peer.restAddress().port}` })
    const blocks = join(prepared[0].dir, 'blocks-vlog')
    const cacheFile = join(root.path, 'cache.json')
    const roots: string[] = []
    const result: MirrorGcResult = {
      treeBytes, written: treeBytes, needed: 0, neededBlocks: 0, pinned: 0, blockFolder: 0, diskBytes: 0, reclaimed: 0, reclaimSeconds: 0, gcRuns: 0,
      reads: { gc: [], quiet: [] }, pins: { gc: [], quiet: [] }
    }
    const changed = Math.max(1, Math.round(paths.length * o.changedPct / 100))
    let probes: string[] = []
    for (let v = 1; v <= o.versions; v++) {
      o.signal.throwIfAborted()
      if (v > 1) {
        for (let k = 0; k < changed; k++) {
          const size = packageSize(r)
          await writeFile(join(tree, paths[((v - 2) * changed + k) % paths.length]), content(r, size))
          result.written += size
        }
      }
      const t = performance.now()
      const sync = await syncMirror(client, { dir: tree, name: 'debian', keep: 2, cacheFile, pollMs: 50, signal: o.signal })
      roots.push(sync.root)
      o.log(`version ${v}: ${((performance.now() - t) / 1000).toFixed(2)} s, uploaded ${(sync.bytes_uploaded / MiB).toFixed(1)} MiB`)
      if (v < 3) continue
      // the pins the last probes made go with this GC
      for (const cid of probes) await client.unpin(cid)
      await settled(blocks, o.signal)
      const before = await diskUsage(blocks)
      // each version's probes pin other leaves than the last one's (whose unpins may still be under way)
      const leaves = await rawLeaves(peer, sync.root, 4000)
      const kept = { root: sync.root, paths, leaves, next: (v * 1000) % leaves.length }
      const started = performance.now()
      const gc = (async () => {
        await client.repoGC({ local: true, signal: o.signal })
        return await settled(blocks, o.signal)
      })()
      const during = await probe(peer, client, kept, gc)
      const ended = await gc
      const seconds = (ended - started) / 1000
      const freed = before - await diskUsage(blocks)
      result.reclaimed += freed
      result.reclaimSeconds += seconds
      result.gcRuns++
      // a quiet window as long as the GC's (at least 1 s)
      const quiet = await probe(peer, client, kept, sleep(Math.max(1000, ended - started), o.signal))
      result.reads.gc.push(...during.reads)
      result.pins.gc.push(...during.pins)
      result.reads.quiet.push(...quiet.reads)
      result.pins.quiet.push(...quiet.pins)
      probes = [...new Set([...during.pinned, ...quiet.pinned])]
      o.log(`gc after version ${v}: ${(freed / MiB).toFixed(1)} MiB back to the disk in ${seconds.toFixed(2)} s; ` +
        `${during.reads.length} reads, ${during.pins.length} pins during, ${quiet.reads.length} and ${quiet.pins.length} quiet`)
    }
    // what is left: the probes' pins removed and one more GC, so that only the two versions are pinned
    for (const cid of probes) await client.unpin(cid)
    await client.repoGC({ local: true, signal: o.signal })
    await settled(blocks, o.signal)
    const need = await neededBytes(peer, roots.slice(-2))
    const stat = await client.repoStat({ signal: o.signal })
    if (stat.pinned_bytes !== need.bytes) throw new Error(`pinned_bytes ${stat.pinned_bytes} is not the kept versions' ${need.bytes} bytes`)
    Object.assign(result, { needed: need.bytes, neededBlocks: need.blocks, pinned: stat.pinned_bytes, blockFolder: await diskUsage(blocks), diskBytes: stat.disk_bytes })
    return result
  } finally {
    await stopAll(peers)
    await root.cleanup()
  }
}

/** The scenario's rows of the gc table, and its goal. */
export function mirrorGcMetrics (m: MirrorGcResult): { metrics: Metric[], goal: { text: string, met: boolean } } {
  const ms = (values: number[], q: number): number => quantile(Float64Array.from(values).sort(), q)
  const ratio = m.blockFolder / m.needed
  const lat = (what: string, key: string, v: { gc: number[], quiet: number[] }): Metric[] => [
    { key: `${key}_gc_p50_ms`, label: `${what} during GC, median (${v.gc.length})`, value: median(v.gc), unit: 'ms', digits: 1 },
    { key: `${key}_gc_p95_ms`, label: `${what} during GC, p95`, value: ms(v.gc, 0.95), unit: 'ms', digits: 1 },
    { key: `${key}_quiet_p50_ms`, label: `${what} quiet, median (${v.quiet.length})`, value: median(v.quiet), unit: 'ms', digits: 1 },
    { key: `${key}_quiet_p95_ms`, label: `${what} quiet, p95`, value: ms(v.quiet, 0.95), unit: 'ms', digits: 1 },
    { key: `${key}_p50_ratio`, label: `${what}: GC / quiet, median`, value: median(v.gc) / median(v.quiet), unit: 'x', digits: 2, baseline: `quiet median ${median(v.quiet).toFixed(1)} ms` },
    { key: `${key}_p95_ratio`, label: `${what}: GC / quiet, p95`, value: ms(v.gc, 0.95) / ms(v.quiet, 0.95), unit: 'x', digits: 2, baseline: `quiet p95 ${ms(v.quiet, 0.95).toFixed(1)} ms` }
  ]
  return {
    metrics: [
      { key: 'mirror_written_mib', label: 'mirror: bytes written over the versions', value: m.written / MiB, unit: 'MiB', digits: 1 },
      { key: 'mirror_needed_mib', label: 'mirror: the two kept versions need (distinct blocks = pinned_bytes)', value: m.needed / MiB, unit: 'MiB', digits: 1 },
      { key: 'mirror_held_mib', label: 'mirror: block folder on disk after GC (du)', value: m.blockFolder / MiB, unit: 'MiB', digits: 1 },
      { key: 'mirror_held_ratio', label: 'mirror: held / needed (du of the block folder)', value: ratio, unit: 'x', digits: 3, baseline: `${(m.needed / MiB).toFixed(1)} MiB needed` },
      { key: 'mirror_disk_ratio', label: 'mirror: disk_bytes (peer folder) / needed', value: m.diskBytes / m.needed, unit: 'x', digits: 3 },
      { key: 'mirror_reclaimed_mib', label: `mirror: given back to the disk by ${m.gcRuns} GCs`, value: m.reclaimed / MiB, unit: 'MiB', digits: 1 },
      { key: 'mirror_reclaim_mb_s', label: 'mirror: reclaimed, GC + compaction', value: m.reclaimed / 1e6 / m.reclaimSeconds, unit: 'MB/s', digits: 1 },
      ...lat('gateway read', 'read', m.reads),
      ...lat('pin (a held leaf, until pinned)', 'pin', m.pins)
    ],
    goal: { text: `mirror held / needed <= 1.25: ${ratio.toFixed(3)}`, met: ratio <= 1.25 }
  }
}
