import { setTimeout as sleep } from 'node:timers/promises'
import { setMaxListeners } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import * as dagCbor from '@ipld/dag-cbor'
import * as dagPb from '@ipld/dag-pb'
import { AbortError } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { LevelDatastore } from 'datastore-level'
import { createHeliaLight } from 'helia'
import { exporter } from 'ipfs-unixfs-exporter'
import { createUnsafe } from 'multiformats/block'
import * as raw from 'multiformats/codecs/raw'
import { InvalidParameterError, NotStartedError, QuotaExceededError, ShuttingDownError } from '../errors.js'
import { libp2pOptions } from '../libp2p/index.js'
import { guardedLevel } from '../storage/guarded-level.js'
import { cidKey } from '../utils/cid.js'
import { importCar, importEntries, WriteBehind, type BlockSink } from './add.js'
import { HostDatastore } from './host-datastore.js'
import { PinRecords, type Generation, type PinBlock } from './pin-records.js'
import { SizedBlockstore } from './sized-blockstore.js'
import { blockId, RecentLinks, scanLocalDag, scanLocalDagFrom, type LocalDagInit } from './local-dag.js'
import { connectedOnly, countBitswapTraffic, installBitswapSender, type BitswapTraffic, type CountedTraffic, type InstalledBitswap } from './helia-internals.js'
import { DEFAULT_WALK_CONCURRENCY, parallelWalker, type ParallelWalker } from './walker.js'
import { GcLock } from './gc-lock.js'
import type { GcOptions, GcStats, IpfsInit, IpfsNode } from './index.js'
import type { AbortOptions, AddEntry, AddParams, AddedOutput } from '../components.js'
import type { CairnServices } from '../libp2p/index.js'
import type { Helia, Pin } from '@helia/interface'
import type { ComponentLogger, Libp2p, Logger } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { raceSignal } from '../utils/abort.js'
import { concatChunks } from '../utils/bytes.js'

type CairnHelia = Helia & { libp2p: Libp2p<CairnServices> }

const DEFAULT_CHILD_LOOKUP_DELAY = 5_000
/** Bytes of link CIDs remembered for the blocks imported last (RecentLinks): ~450,000 links. */
const RECENT_LINKS_BYTES = 16 * 1024 * 1024
/** How long a repo GC waits for the pins and adds writing blocks to finish (new ones wait meanwhile). */
const DEFAULT_GC_WAIT_MS = 60_000
/** Blocks whose pin records a repo GC reads at once. */
const GC_SLICE = 2048
const DEFAULT_CAT_STALL_MS = 10_000
const CAT_ATTEMPTS = 12
const CAT_READ_AHEAD = 16
const FETCH_DONE = new Error('fetched')

type PinOptions = AbortOptions & {
  depth?: number
  onProgress?: (blocks: number) => void
  /** Quota: refuse to start, or stop fetching, once the blockstore holds more than this many bytes. */
  maxRepoBytes?: number
}

interface PinnedRoot {
  /** CIDv1. */
  cid: CID
  /** Infinity for a recursive pin. */
  depth: number
}

interface Running {
  helia: CairnHelia
  blockstore: SizedBlockstore
  datastore: LevelDatastore
  /** `datastore` as libp2p sees it: closed after libp2p stops and before `datastore` closes. */
  hostDatastore: HostDatastore
  /** Helia's pin records by cidKey, loaded at start and kept by pin/unpin: pin checks read no database. */
  pins: Map<string, PinnedRoot>
  /** Aborted by stop(): network fetches of pins in progress give up. */
  shutdown: AbortController
  /** Pin records in Helia's keys, recursive pins counted by reference (pin-records.ts). */
  records: PinRecords
  /** Links of the blocks imported last: a pin of what was just added does not read it back. */
  recent: RecentLinks
  /** Bitswap's sending half (undefined: @helia/bitswap's own, not recognised). */
  bitswap?: InstalledBitswap
  /** Bitswap block traffic since start (undefined: not recognised). */
  traffic?: CountedTraffic
}

export class IpfsNodeImpl implements IpfsNode {
  private readonly init: IpfsInit
  private readonly logger: ComponentLogger
  private readonly log: Logger
  private running?: Running
  private starting?: Promise<void>
  /** Pin operations per CID (v1 string) run one after the other. */
  private readonly locks = new Map<string, Promise<void>>()
  /** onPinChange listeners (the reprovider's fast provide). */
  private readonly pinListeners = new Set<(cid: CID, pinned: boolean) => void>()
  /** Pins (while they fetch and record) and adds (until their pin is in the pinset) against repo GC. */
  private readonly gcLock = new GcLock()
  /** Repo GCs running (stop waits for them to end between slices). */
  private readonly gcs = new Set<Promise<unknown>>()
  private readonly gcCounters: GcStats = { runs: 0, failures: 0, blocks_deleted: 0, last_finished: 0, last_duration_ms: 0 }

  constructor (init: IpfsInit) {
    this.init = init
    this.logger = init.logger ?? init.host.logger ?? defaultLogger()
    this.log = this.logger.forComponent('cairn:ipfs')
  }

  get helia (): CairnHelia {
    return this.require().helia
  }

  get libp2p (): Libp2p<CairnServices> {
    return this.require().helia.libp2p
  }

  private require (): Running {
    if (this.running == null) {
      throw new NotStartedError('ipfs node is not started')
    }
    return this.running
  }

  async start (): Promise<void> {
    if (this.running != null) {
      return
    }
    this.starting ??= this.doStart().finally(() => { this.starting = undefined })
    await this.starting
  }

  private async doStart (): Promise<void> {
    const { dataDir } = this.init
    await mkdir(dataDir, { recursive: true })
    // the options datastore-level would give its own Level
    const datastore = new LevelDatastore(guardedLevel<string, Uint8Array>(join(dataDir, 'datastore'), { keyEncoding: 'utf8', valueEncoding: 'view' }))
    await datastore.open()
    const blockstore = new SizedBlockstore({ path: join(dataDir, 'blocks'), datastore, log: this.log })
    const hostDatastore = new HostDatastore(datastore, this.logger.forComponent('cairn:ipfs:host-datastore'))
    let helia: CairnHelia | undefined
    try {
      await blockstore.open()
      const light = createHeliaLight({
        blockstore,
        datastore,
        logger: this.logger,
        // dag-pb, raw and identity are built in; dag-cbor for shard and clusterdag nodes
        codecs: [dagCbor]
      })
      helia = withBitswap(withLibp2pLight(light, libp2pOptions({ ...this.init.host, datastore: hostDatastore, logger: this.logger })), { sendWantlistDebounce: 1 })
      await helia.start()
      const pins = new Map<string, PinnedRoot>()
      for await (const pin of helia.pins.ls()) {
        pins.set(cidKey(pin.cid), { cid: pin.cid.toV1(), depth: pin.depth })
      }
      const bitswap = installBitswapSender(helia, this.init.bitswap ?? {}, {
        libp2p: helia.libp2p,
        getBlocks: async cids => await blockstore.getBlocks(cids),
        logger: this.logger
      })
      if (bitswap == null) this.log.error('@helia/bitswap is not the expected shape: its own sending is used')
      else blockstore.onStored = cid => { bitswap.sender.receivedBlock(cid) }
      const traffic = countBitswapTraffic(helia)
      if (traffic == null) this.log.error('bitswap traffic is not counted: @helia/bitswap internals are not the expected shape')
      const shutdown = new AbortController()
      // every pin in flight listens to it
      setMaxListeners(Infinity, shutdown.signal)
      this.running = { helia, blockstore, datastore, hostDatastore, pins, shutdown, bitswap, traffic, records: new PinRecords(datastore, async keys => await datastore.db.getMany(keys.map(k => k.toString()))), recent: new RecentLinks(RECENT_LINKS_BYTES) }
      this.log('started as %p with %d pins, listening on %a', helia.libp2p.peerId, pins.size, helia.libp2p.getMultiaddrs())
    } catch (err) {
      await helia?.stop().catch(e => { this.log.error('stop after failed start - %e', e) })
      await hostDatastore.close()
      await blockstore.close().catch(e => { this.log.error('closing blockstore - %e', e) })
      await datastore.close().catch(e => { this.log.error('closing datastore - %e', e) })
      throw err
    }
  }

  async stop (): Promise<void> {
    await this.starting?.catch(() => {})
    const running = this.running
    if (running == null) {
      return
    }
    this.running = undefined
    running.shutdown.abort()
    // pins in flight stop fetching; those recording a pin finish, so no pin is left half-counted
    await Promise.allSettled([...this.locks.values(), ...this.gcs])
    try {
      running.traffic?.detach()
      await running.bitswap?.stop()
      await running.helia.stop()
      // libp2p.stop() resolves with peer store writes still to come: let those in flight land, drop the rest
      await running.hostDatastore.close()
    } finally {
      // the size is written to the datastore, so the blockstore closes first
      try {
        await running.blockstore.close()
      } finally {
        await running.datastore.close()
      }
    }
    this.log('stopped')
  }

  // ---------------------------------------------------------------------------------------------------------
  // Pins

  async pin (cid: CID, options: PinOptions = {}): Promise<void> {
    const depthOption = options.depth ?? -1
    if (!Number.isInteger(depthOption) || depthOption < -1) {
      throw new InvalidParameterError(`pin depth must be -1 (recursive) or >= 0, got ${depthOption}`)
    }
    const depth = depthOption === -1 ? Infinity : depthOption
    const running = this.require()
    const { pins } = running
    // Helia keys pins by CIDv1 but records "pinned by" with the bytes given: use one form throughout
    const root = cid.toV1()
    const key = root.toString()
    // the CID's lock first, so that pins and unpins of a CID keep their call order; then, as blocks found held by
    // the local scan must stay until the pin is recorded, no repo GC meanwhile
    await this.withLock(key, options.signal, async () => await this.gcLock.shared(async () => {
      const existing = pins.get(key)
      if (existing?.depth === depth) {
        return
      }
      this.checkQuota(running, root, options.maxRepoBytes)
      await this.checkQuotaEstimate(running, root, options)
      // 1. fetch everything first: an abort here leaves no half-counted pin behind, only cached blocks
      const { blocks, generation } = await this.fetchDag(running, root, depth, options)
      // 2. record the pin without the signal (Helia cannot undo a half-recorded pin)
      let written = 0
      try {
        if (existing != null) {
          this.log('changing pin depth of %c from %s to %s', root, existing.depth, depth)
          await running.records.remove(root, async d => await this.localBlocks(running, root, d))
          pins.delete(key)
        }
        written = await running.records.add(root, depth, blocks, { generation, rescan: async () => await this.heldBlocks(running, root, depth) })
        pins.set(key, { cid: root, depth })
      } catch (err) {
        await this.reloadPin(running, root)
        throw err
      }
      this.log('pinned %c (depth %s, %d blocks listed, %d block records written)', root, depth, blocks.length, written)
      this.emitPinChange(root, true)
    }, options.signal))
  }

  /**
   * Brings the DAG under `root`, down to `depth`, into the local store. Returns its distinct blocks. What is held
   * here already is found with bulk reads (a new version of a mirror is mostly the previous one); the network
   * walk starts from the blocks found missing.
   */
  private async fetchDag (running: Running, root: CID, depth: number, options: PinOptions): Promise<{ blocks: PinBlock[], generation: Generation }> {
    const { shutdown } = running
    const signal = options.signal
    const fetchSignal = signal != null ? AbortSignal.any([signal, shutdown.signal]) : shutdown.signal
    const seen = new Set<string>()
    try {
      // the records read by the scan are re-used when no record was written meanwhile
      const generation = running.records.generation
      // a recursive pin needs nothing below blocks already deep (see pin-records.ts)
      const local = await scanLocalDag(root, depth, this.localDagReader(running), { signal: fetchSignal, seen, stopAtDeep: depth === Infinity })
      const blocks = local.blocks
      options.onProgress?.(blocks.length)
      this.checkQuota(running, root, options.maxRepoBytes)
      // fetched blocks are stored while the walk goes on; all of them have landed before the pin is recorded
      const writes = new WriteBehind({ put: async (cid, block) => { await this.storeBlock(running, cid, block) } }, fetchSignal)
      try {
        // The network walk starts from the blocks found missing and leaves out the children it finds held here:
        // those are listed by the local scan, which stops at deep records. A new version of a mirror fetched by a
        // follower is new directories over unchanged subtrees, and walking those would read all of them again.
        let missing = local.missing
        while (missing.length > 0) {
          // the scan marked the missing blocks seen; the network walk yields them first
          for (const m of missing) seen.delete(blockId(m.cid))
          const held: Array<{ cid: CID, depth: number }> = []
          for await (const node of this.fetchWalker(running, writes, held).walkFrom(missing, { depth, signal: fetchSignal })) {
            const id = blockId(node.block.cid)
            if (!seen.has(id)) {
              seen.add(id)
              blocks.push({ cid: node.block.cid, links: [...node.block.links()].map(([, cid]) => cid) })
            }
            this.checkQuota(running, root, options.maxRepoBytes)
            options.onProgress?.(blocks.length)
          }
          await writes.flush()
          if (held.length === 0) break
          // below a held block, blocks can be missing (a fetch stopped half-way): they go to the next round
          const below = await scanLocalDagFrom(held, depth, this.localDagReader(running), { signal: fetchSignal, seen, stopAtDeep: depth === Infinity })
          blocks.push(...below.blocks)
          options.onProgress?.(blocks.length)
          missing = below.missing
        }
      } finally {
        await writes.settle()
      }
      return { blocks, generation }
    } catch (err) {
      if (shutdown.signal.aborted) {
        throw new ShuttingDownError(`stopped while pinning ${root}`)
      }
      if ((err as Error).name === 'QuotaExceededError') throw err
      throw toAbortError(err, signal)
    }
  }

  /**
   * A recursive pin's blocks listed again when records changed while it was fetched (called under the records'
   * lock): all of them are held by now.
   */
  private async heldBlocks (running: Running, root: CID, depth: number): Promise<PinBlock[]> {
    const local = await scanLocalDag(root, depth, this.localDagReader(running), { stopAtDeep: true })
    if (local.missing.length > 0) throw new Error(`block ${local.missing[0].cid} of ${root} was removed while the pin was being recorded`)
    return local.blocks
  }

  /** The distinct blocks of a pin held here (unpinning: a block that is gone has nothing to release). */
  private async localBlocks (running: Running, root: CID, depth: number): Promise<CID[]> {
    return (await scanLocalDag(root, depth, this.localDagReader(running))).blocks.map(b => b.cid)
  }

  private localDagReader (running: Running): LocalDagInit {
    return {
      records: async cids => await running.records.lookup(cids),
      getMany: async cids => await running.blockstore.getBlocks(cids),
      hasMany: async cids => await running.blockstore.hasBlocks(cids),
      getCodec: running.helia.getCodec,
      recentLinks: cid => running.recent.get(cid)
    }
  }

  /**
   * Before fetching a UnixFS DAG: its root's links carry the size of each subtree, so a pin that cannot fit is
   * refused before any transfer. Subtrees whose top block is held here are assumed held (a pin update).
   */
  private async checkQuotaEstimate (running: Running, root: CID, options: PinOptions): Promise<void> {
    const max = options.maxRepoBytes
    if (max == null || max <= 0 || root.code !== dagPb.code) return
    const signal = options.signal
    const local = await this.localBlock(running, root, signal)
    const bytes = local ?? await concatChunks(running.helia.blockstore.get(root, { signal }))
    let need = local == null ? bytes.byteLength : 0
    for (const link of dagPb.decode(bytes).Links) {
      if (link.Tsize != null && !(await running.blockstore.has(link.Hash))) need += link.Tsize
    }
    const used = running.blockstore.size()
    if (used + need > max) {
      throw new QuotaExceededError(`quota exceeded: pinning ${root} needs about ${need} more bytes, this peer holds ${used} of its storage_max of ${max} bytes`)
    }
  }

  /**
   * Blocks already held add nothing, so the check is on what the store holds now: a pin whose new blocks push it
   * past the quota stops there (its fetched blocks stay cached; every other pin is untouched).
   */
  private checkQuota (running: Running, root: CID, max: number | undefined): void {
    if (max == null || max <= 0) return
    const used = running.blockstore.size()
    if (used >= max) {
      throw new QuotaExceededError(`quota exceeded: pinning ${root} would take this peer past its storage_max of ${max} bytes (it holds ${used} bytes)`)
    }
  }

  async unpin (cid: CID, options: AbortOptions = {}): Promise<void> {
    const running = this.require()
    const root = cid.toV1()
    const key = root.toString()
    await this.withLock(key, options.signal, async () => {
      if (!running.pins.has(key)) {
        return
      }
      // local walk, no signal: stopping half-way would leave block pin counts wrong
      try {
        await running.records.remove(root, async d => await this.localBlocks(running, root, d))
        running.pins.delete(key)
      } catch (err) {
        await this.reloadPin(running, root)
        throw err
      }
      this.log('unpinned %c', root)
      this.emitPinChange(root, false)
    })
  }

  onPinChange (listener: (cid: CID, pinned: boolean) => void): () => void {
    this.pinListeners.add(listener)
    return () => { this.pinListeners.delete(listener) }
  }

  private emitPinChange (cid: CID, pinned: boolean): void {
    for (const listener of this.pinListeners) {
      try {
        listener(cid, pinned)
      } catch (err) {
        this.log.error('pin change listener failed - %e', err)
      }
    }
  }

  async isPinned (cid: CID, options: AbortOptions = {}): Promise<boolean> {
    options.signal?.throwIfAborted()
    return this.require().pins.has(cidKey(cid))
  }

  holdsPin (key: string): boolean {
    return this.running?.pins.has(key) ?? false
  }

  async * pinLs (options: AbortOptions = {}): AsyncIterable<CID> {
    for (const { cid } of this.require().pins.values()) {
      options.signal?.throwIfAborted()
      yield cid
    }
  }

  async dropUnpinned (cids: CID[], options: AbortOptions = {}): Promise<number> {
    const running = this.require()
    let dropped = 0
    for (const cid of cids) {
      options.signal?.throwIfAborted()
      // every block held for a pin has a record (claimed or referenced): a block with none belongs to no local pin
      if (running.pins.has(cidKey(cid)) || await running.helia.pins.isPinned(cid, options)) continue
      if (!(await running.blockstore.has(cid, options))) continue
      await this.deleteBlock(running, cid, options)
      dropped++
    }
    return dropped
  }

  /** Deletes a block, and what is remembered of its links. */
  private async deleteBlock (running: Running, cid: CID, options?: AbortOptions): Promise<void> {
    await running.blockstore.delete(cid, options)
    running.recent.delete(cid)
  }

  async holdBlocks (signal?: AbortSignal): Promise<() => void> {
    this.require()
    return await this.gcLock.acquire(signal)
  }

  async gc (options: GcOptions = {}): Promise<CID[]> {
    const running = this.require()
    // stopping the node ends a GC between slices (a slice's deletes finish: the count stays exact)
    const signal = options.signal != null ? AbortSignal.any([options.signal, running.shutdown.signal]) : running.shutdown.signal
    const run = this.gcLock.exclusive(async () => {
      const started = Date.now()
      // what the roots to keep reach here; below a deep block everything is recorded, so kept anyway
      const kept = new Set<string>()
      const roots = await options.keep?.() ?? []
      for (const { cid, depth } of roots) {
        await scanLocalDag(cid.toV1(), depth, this.localDagReader(running), { signal, seen: kept, stopAtDeep: depth === Infinity })
      }
      const removed: CID[] = []
      let scanned = 0
      for await (const slice of running.blockstore.cidSlices(GC_SLICE, { signal })) {
        scanned += slice.length
        // every block held for a local pin has a record (claimed or referenced)
        const records = await running.records.lookup(slice, { signal })
        const garbage = slice.filter((cid, i) => records[i] === undefined && !kept.has(blockId(cid)))
        await Promise.all(garbage.map(async cid => { await this.deleteBlock(running, cid) }))
        removed.push(...garbage)
      }
      const counters = this.gcCounters
      counters.runs++
      counters.blocks_deleted += removed.length
      counters.last_finished = Date.now()
      counters.last_duration_ms = counters.last_finished - started
      this.log('repo gc: deleted %d of %d blocks (%d kept for %d roots not pinned here yet) in %d ms', removed.length, scanned, kept.size, roots.length, counters.last_duration_ms)
      return removed
    }, { waitMs: options.waitMs ?? DEFAULT_GC_WAIT_MS, signal })
    this.gcs.add(run)
    try {
      return await run
    } catch (err) {
      this.gcCounters.failures++
      if (running.shutdown.signal.aborted) throw new ShuttingDownError('stopped during a repo GC')
      throw err
    } finally {
      this.gcs.delete(run)
    }
  }

  gcStats (): GcStats {
    return { ...this.gcCounters }
  }

  bitswapStats (): BitswapTraffic | undefined {
    const t = this.running?.traffic
    return t == null ? undefined : { bytesIn: t.bytesIn, blocksIn: t.blocksIn, bytesOut: t.bytesOut, blocksOut: t.blocksOut }
  }

  pinnedBlocks (options: AbortOptions = {}): AsyncIterable<Uint8Array> {
    return this.require().records.blocks(options)
  }

  async hasBlock (cid: CID, options: AbortOptions = {}): Promise<boolean> {
    return this.require().helia.blockstore.has(cid, options)
  }

  async repoSize (options: AbortOptions = {}): Promise<number> {
    options.signal?.throwIfAborted()
    return this.require().blockstore.size()
  }

  /** After a pins.add or pins.rm that failed part-way, Helia's record is the truth again. */
  private async reloadPin (running: Running, root: CID): Promise<void> {
    const key = root.toString()
    try {
      const record = await this.pinRecord(running.helia, root)
      if (record == null) {
        running.pins.delete(key)
      } else {
        running.pins.set(key, { cid: root, depth: record.depth })
      }
    } catch (err) {
      this.log.error('reading the pin record of %c - %e', root, err)
    }
  }

  private async pinRecord (helia: CairnHelia, root: CID): Promise<Pin | undefined> {
    try {
      return await helia.pins.get(root)
    } catch (err) {
      if ((err as Error).name === 'NotFoundError') {
        return undefined
      }
      throw err
    }
  }

  private async withLock<T> (key: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    const prior = this.locks.get(key)
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    // the next operation waits for this one and for everything before it, even if this one gives up early
    const tail = Promise.all([prior, held]).then(() => {})
    this.locks.set(key, tail)
    try {
      if (prior != null) {
        await raceSignalAsAbortError(prior, signal)
      }
      signal?.throwIfAborted()
      return await fn()
    } finally {
      release()
      if (this.locks.get(key) === tail) {
        this.locks.delete(key)
      }
    }
  }

  /**
   * A block from the level store itself: one read, where Helia's blockstore asks `has` first and takes its gc
   * lock (cairn never runs Helia's gc). Undefined when missing, and for identity CIDs, which level never holds.
   */
  private async localBlock (running: Running, cid: CID, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    try {
      return await concatChunks(running.blockstore.get(cid, { signal }))
    } catch (err) {
      if ((err as Error).name === 'NotFoundError') {
        return undefined
      }
      throw err
    }
  }

  /**
   * Loads blocks from the network when missing.
   * @param deferred when given, blocks found held here are not loaded but added to it (with their depth), for
   * the caller to list from the local store
   */
  private fetchWalker (running: Running, writes?: WriteBehind, deferred?: Array<{ cid: CID, depth: number }>): ParallelWalker {
    const delay = this.init.childLookupDelay ?? DEFAULT_CHILD_LOOKUP_DELAY
    // whether a block is held, asked for all children of a block at once (one level lookup for up to 174 links)
    const held = new Map<string, Promise<boolean>>()
    return parallelWalker({
      concurrency: this.init.fetchConcurrency ?? DEFAULT_WALK_CONCURRENCY,
      getCodec: running.helia.getCodec,
      onChildren: (children, signal) => {
        const found = running.blockstore.hasBlocks(children, { signal })
        // a child's load awaits its answer; a walk that stops early leaves answers nobody reads
        found.catch(() => {})
        children.forEach((cid, i) => { held.set(blockId(cid), found.then(all => all[i])) })
      },
      load: async (cid, { signal, depth }) => {
        const id = blockId(cid)
        const known = held.get(id)
        held.delete(id)
        // a miss costs no thrown NotFoundError; a block linked twice is looked up again
        if (await (known ?? running.blockstore.has(cid, { signal }))) {
          if (deferred != null) {
            deferred.push({ cid, depth })
            return undefined
          }
          const local = await this.localBlock(running, cid, signal)
          if (local != null) return local
        }
        return depth === 0 ? await concatChunks(running.helia.blockstore.get(cid, { signal })) : await this.fetchChild(running, cid, signal, delay, writes)
      }
    })
  }

  /**
   * Asks connected peers (bitswap broadcasts wants to them) without a DHT provider lookup; Helia would otherwise
   * start one lookup per block. After `delay` ms without the block, a lookup is started as well.
   */
  private async fetchChild (running: Running, cid: CID, signal: AbortSignal, delay: number, writes?: WriteBehind): Promise<Uint8Array> {
    const { helia } = running
    const done = new AbortController()
    const both = AbortSignal.any([signal, done.signal])
    setMaxListeners(Infinity, both)
    let timer: ReturnType<typeof setTimeout> | undefined
    const attempts = [
      this.wantFromConnected(running, cid, both, writes),
      new Promise<Uint8Array>((resolve, reject) => {
        const onAbort = (): void => { clearTimeout(timer); reject(both.reason) }
        both.addEventListener('abort', onAbort, { once: true })
        timer = setTimeout(() => {
          both.removeEventListener('abort', onAbort)
          concatChunks(helia.blockstore.get(cid, { signal: both })).then(resolve, reject)
        }, delay)
      })
    ]
    try {
      return await Promise.any(attempts)
    } catch (err) {
      throw (err as AggregateError).errors?.[0] ?? err
    } finally {
      clearTimeout(timer)
      // a reason made once: abort() without one builds a DOMException (and its stack) per block
      done.abort(FETCH_DONE)
    }
  }

  /**
   * A block from connected peers, stored and announced. With cairn's bitswap sending installed, the want goes
   * straight to the want list (the block is checked against its CID there, not hashed again by Helia's
   * blockstore); otherwise through Helia's blockstore with no provider lookup.
   */
  private async wantFromConnected (running: Running, cid: CID, signal: AbortSignal, writes?: WriteBehind): Promise<Uint8Array> {
    const { helia, bitswap } = running
    if (bitswap == null) {
      // maxProviders reaches @helia/bitswap's findAndConnect, which then takes no providers from routing
      return await concatChunks(helia.blockstore.get(cid, connectedOnly({ signal })))
    }
    const block = await bitswap.want(cid, { signal })
    // a pin's walk goes on to its next wants while the block is written (level writes are the slowest step)
    if (writes != null) await writes.put(cid, block)
    else await this.storeBlock(running, cid, block)
    return block
  }

  /** Stores a block (fetched or imported) and tells bitswap (the want list cancels our wants for it). */
  private async storeBlock (running: Running, cid: CID, block: Uint8Array): Promise<void> {
    await running.blockstore.put(cid, block)
    await running.bitswap?.announce(cid)
  }

  // ---------------------------------------------------------------------------------------------------------
  // Content

  async * addEntries (entries: AsyncIterable<AddEntry>, params: AddParams, options: AbortOptions = {}): AsyncGenerator<AddedOutput> {
    if (params.format === 'car') {
      yield * this.addCar(singleCarEntry(entries), options)
      return
    }
    yield * importEntries(entries, params, this.importSink(this.require()), options)
  }

  async * addCar (bytes: AsyncIterable<Uint8Array>, options: AbortOptions = {}): AsyncGenerator<AddedOutput> {
    const running = this.require()
    yield * importCar(bytes, { blocks: this.importSink(running), getHasher: running.helia.getHasher }, options)
  }

  /**
   * Where imported blocks go: the level store itself, which checks once whether it holds a block (Helia's
   * blockstore asks too, then tells bitswap before writing), then bitswap is told (our wants for the block are
   * cancelled; peers waiting for it are answered from the store's onStored). Without cairn's bitswap sending,
   * Helia's blockstore.
   */
  private importSink (running: Running): BlockSink {
    if (running.bitswap == null) return running.helia.blockstore
    return {
      put: async (cid: CID, block: Uint8Array) => {
        await this.storeBlock(running, cid, block)
        if (cid.code !== raw.code) {
          running.recent.set(cid, [...createUnsafe({ cid, bytes: block, codec: await running.helia.getCodec(cid.code) }).links()].map(([, link]) => link))
        }
      }
    }
  }

  /**
   * A read that gets no block for `catStallMs` (or whose block sources all gave up on a block) is started again
   * from the byte it reached: the abort cancels its bitswap wants, and wants sent afresh get past a sender that
   * lost them (docs/DESIGN.md §10, "Stuck fetches").
   */
  async * cat (cid: CID, options: AbortOptions = {}): AsyncIterable<Uint8Array> {
    this.require()
    const stallMs = this.init.catStallMs ?? DEFAULT_CAT_STALL_MS
    let offset = 0
    for (let attempt = 1; ; attempt++) {
      const stalled = new AbortController()
      const signal = options.signal != null ? AbortSignal.any([options.signal, stalled.signal]) : stalled.signal
      // every block read in flight listens to it
      setMaxListeners(Infinity, signal)
      // The exporter reads ahead in parallel; an attempt given up must not leave rejected reads behind
      // (unhandled rejections), so its reads go quiet instead, and its iterator is left, not awaited.
      // blocks as a pin fetches them: local first, then connected peers, a DHT lookup only after a while
      const running = this.require()
      const delay = this.init.childLookupDelay ?? DEFAULT_CHILD_LOOKUP_DELAY
      const fetchChild = this.fetchChild.bind(this)
      const blocks = quietAfterAbort({
        get: async function * (cid: CID, opts: AbortOptions = {}) {
          const sig = opts.signal ?? signal
          if (await running.blockstore.has(cid, { signal: sig })) yield * running.blockstore.get(cid, { signal: sig })
          else yield await fetchChild(running, cid, sig, delay)
        } as Helia['blockstore']['get']
      }, signal)
      let timer: NodeJS.Timeout | undefined
      const arm = (): void => {
        clearTimeout(timer)
        timer = setTimeout(() => { stalled.abort(new Error(`no block for ${stallMs} ms`)) }, stallMs)
      }
      try {
        arm()
        const entry = await raceSignal(exporter(cid, blocks, { signal }), signal)
        if (entry.type !== 'file' && entry.type !== 'raw' && entry.type !== 'identity') {
          throw new InvalidParameterError(`${cid} is a ${entry.type}, not a file`)
        }
        // the exporter asks for every block of a file at once by default: 64 MiB of wants make senders build
        // 4 MiB messages that time out on a busy peer (the stuck-fetch cause above); a window keeps it flowing
        const chunks = entry.content({ signal, offset, blockReadConcurrency: CAT_READ_AHEAD })[Symbol.asyncIterator]()
        for (;;) {
          const next = await raceSignal(chunks.next(), signal)
          if (next.done === true) break
          // the reader may take its time with a chunk: only waiting for blocks counts as stalling
          clearTimeout(timer)
          offset += next.value.byteLength
          yield next.value
          arm()
        }
        return
      } catch (err) {
        // a stall, or every block source giving up on a block for now (LoadBlockFailedError), is worth a retry
        const retry = stalled.signal.aborted || (err as Error).name === 'LoadBlockFailedError'
        if (!retry || options.signal?.aborted === true || attempt >= CAT_ATTEMPTS) throw err
        this.log('reading %c failed at byte %d (attempt %d): %s; asking again', cid, offset, attempt, (err as Error).message)
        stalled.abort(new Error('retrying'))
        await sleep(250 * attempt, undefined, { signal: options.signal })
      } finally {
        clearTimeout(timer)
      }
    }
  }

}

/** Reads of `store` under `signal`; once it is aborted, a failing read never settles instead of rejecting. */
function quietAfterAbort (store: Pick<Helia['blockstore'], 'get'>, signal: AbortSignal): Pick<Helia['blockstore'], 'get'> {
  return {
    get: async function * (cid: CID, options: AbortOptions = {}) {
      try {
        yield * store.get(cid, { ...options, signal })
      } catch (err) {
        if (signal.aborted) await new Promise<never>(() => {})
        throw err
      }
    } as Helia['blockstore']['get']
  }
}

async function * singleCarEntry (entries: AsyncIterable<AddEntry>): AsyncGenerator<Uint8Array> {
  let content: AsyncIterable<Uint8Array> | undefined
  for await (const entry of entries) {
    if (entry.content == null) {
      continue
    }
    if (content != null) {
      throw new InvalidParameterError('format=car takes exactly one file')
    }
    content = entry.content
    yield * content
  }
  if (content == null) {
    throw new InvalidParameterError('no files in the request')
  }
}

function toAbortError (err: unknown, signal?: AbortSignal): unknown {
  if (signal?.aborted === true) {
    const reason = signal.reason as Error | undefined
    return new AbortError(`operation aborted${reason?.message != null ? `: ${reason.message}` : ''}`)
  }
  return err
}

async function raceSignalAsAbortError<T> (promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal == null) {
    return promise
  }
  signal.throwIfAborted()
  let onAbort!: () => void
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => { reject(new AbortError('operation aborted')) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}
