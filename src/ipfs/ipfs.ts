// The IPFS node (IpfsNode): starts Helia with bitswap over the peer's host on level stores, records pins (per CID,
// in call order, against repo GC), runs repo GC and wires imports; block fetches are fetch.ts's, quota checks
// quota.ts's, reads cat.ts's, and every reach into Helia's internals is helia-internals.ts'.
import pMap from 'p-map'
import { setMaxListeners } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import * as dagCbor from '@ipld/dag-cbor'
import { AbortError } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { LevelDatastore } from 'datastore-level'
import { createHeliaLight } from 'helia'
import { createUnsafe } from 'multiformats/block'
import * as raw from 'multiformats/codecs/raw'
import { raceSignal } from 'race-signal'
import { InvalidParameterError, NotFoundError, NotStartedError, ShuttingDownError } from '../errors.js'
import { libp2pOptions } from '../libp2p/index.js'
import { guardedLevel } from '../storage/guarded-level.js'
import { pinKey, type PinKey } from '../utils/keys.js'
import { importCar, importEntries, type BlockSink } from './add.js'
import { HostDatastore } from './host-datastore.js'
import { PinRecords, type Generation, type PinBlock, type SpreadClaims } from './pin-records.js'
import { fetchSpread, listSpreadLocal, parseShare, shareString, spreadClaims, type Share } from './spread-pin.js'
import type { BlockReader } from '../spread/layout.js'
import { PeerBlockstore, type PeerBlockstoreStats as StoreStats } from './peer-blockstore.js'
import type { LocalBlockstore } from './blockstore.js'
import { blockId, RecentLinks, scanLocalDag, type LocalDagInit } from './local-dag.js'
import { countBitswapTraffic, installBitswapSender, type BitswapTraffic, type CountedTraffic, type InstalledBitswap } from './helia-internals.js'
import { BlockFetcher, fetchDag, type FetchSession } from './fetch.js'
import { checkQuota, checkQuotaEstimate } from './quota.js'
import { catFile } from './cat.js'
import { GcLock } from './gc-lock.js'
import { BlockCache } from './cache.js'
import { accountRepo, findMissing } from './repo.js'
import { diskUsage } from '../storage/disk.js'
import type { CacheStats, GcOptions, GcStats, GetBlockOptions, IpfsComponents, IpfsInit, IpfsNode } from './index.js'
import type { AbortOptions, AddEntry, AddParams, AddedOutput } from '../components.js'
import type { CairnServices } from '../libp2p/index.js'
import type { RepoStat, RepoVerify, RepoVerifyProblem } from '../types/wire.js'
import type { Helia, Pin } from '@helia/interface'
import type { ComponentLogger, Libp2p, Logger } from '@libp2p/interface'
import type { BlockCodec } from 'multiformats/codecs/interface'
import type { MultihashHasher } from 'multiformats/hashes/interface'
import type { CID } from 'multiformats/cid'

type CairnHelia = Helia & { libp2p: Libp2p<CairnServices> }

/** Bytes of link CIDs remembered for the blocks imported last (RecentLinks): ~450,000 links. */
const RECENT_LINKS_BYTES = 16 * 1024 * 1024
/** How long a repo GC waits for the pins and adds writing blocks to finish (new ones wait meanwhile). */
const DEFAULT_GC_WAIT_MS = 60_000
/** Blocks whose pin records a repo GC reads at once. */
const GC_SLICE = 2048
/** The bounded cache's default size (gateway.cache_max). */
export const DEFAULT_CACHE_MAX = 4 * 1024 ** 3
/** Share of storage_max past which the cache gives way (evicted down so that held bytes fall back under it). */
export const HIGH_WATERMARK = 0.9
/** A cache eviction put off because pins or adds held the store is tried again after this long. */
const EVICT_RETRY_MS = 1000
/** How long repo verify waits for each pin's block it fetches again. */
const VERIFY_FETCH_MS = 30_000
/** Missing blocks fetched at once by the start-up self-check. */
const REPAIR_CONCURRENCY = 16

type PinOptions = AbortOptions & {
  depth?: number
  onProgress?: (blocks: number) => void
  /** Quota: refuse to start, or stop fetching, once the blockstore holds more than this many bytes. */
  maxRepoBytes?: number
  /** A spread pin: only this peer's share of it (spread-pin.ts). */
  share?: Share
}

interface PinnedRoot {
  /** CIDv1. */
  cid: CID
  /** Infinity for a recursive pin. */
  depth: number
  /** A spread pin's share (shareString), as recorded. */
  share?: string
}

interface Running {
  helia: CairnHelia
  blockstore: LocalBlockstore
  /** The same store, for its value-log figures. */
  store: PeerBlockstore
  datastore: LevelDatastore
  /** `datastore` as libp2p sees it: closed after libp2p stops and before `datastore` closes. */
  hostDatastore: HostDatastore
  /** Helia's pin records by pinKey, loaded at start and kept by pin/unpin: pin checks read no database. */
  pins: Map<PinKey, PinnedRoot>
  /** Pins whose records are being rewritten (a changed share): what they held before, still on disk meanwhile. */
  rewriting: Map<PinKey, PinnedRoot>
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
  /** Where blocks come from: the store, connected peers, then providers (fetch.ts). */
  fetcher: BlockFetcher
  /** Blocks fetched for reads, not pins: evicted least recently used past cache_max (cache.ts). */
  cache: BlockCache
  /** A cache eviction put off while writers held the store. */
  evictRetry?: NodeJS.Timeout
}

interface RunningGc {
  run: Promise<CID[]>
  /** Aborts the GC: once every request waiting for it gave up. */
  abort: AbortController
  /** Requests waiting for its result. */
  waiters: number
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
  /** The repo GC running, which a GC asked for meanwhile joins. */
  private currentGc?: RunningGc
  private readonly gcCounters: GcStats = { runs: 0, failures: 0, blocks_deleted: 0, bytes_reclaimed: 0, last_finished: 0, last_duration_ms: 0 }
  private readonly cacheCounters = { evicted_blocks: 0, evicted_bytes: 0 }
  /** Pinned and garbage bytes as the last repo stat or verify found them (they read every block). */
  private lastAccount?: { pinned: number, garbage: number }
  /** A cache eviction is running (the fetches meanwhile leave it to that one). */
  private evicting = false

  constructor (init: IpfsInit, components: IpfsComponents) {
    this.init = init
    this.logger = components.logger ?? init.host.logger ?? defaultLogger()
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
    const blockstore = new PeerBlockstore({ dataDir, datastore, log: this.log, segmentBytes: this.init.segmentBytes })
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
      const pins = new Map<PinKey, PinnedRoot>()
      for await (const pin of helia.pins.ls()) {
        const share = pin.metadata?.spread
        pins.set(pinKey(pin.cid), { cid: pin.cid.toV1(), depth: pin.depth, ...(typeof share === 'string' ? { share } : {}) })
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
      const cache = new BlockCache({ datastore, hasBlocks: async (cids, options) => await blockstore.hasBlocks(cids, options) })
      await cache.load()
      const fetcher = new BlockFetcher(this.init, {
        helia,
        blockstore,
        bitswap,
        reads: {
          fetched: async (cid, block) => {
            await cache.fetched(cid, block.byteLength)
            if (this.running != null) await this.trimCache(this.running)
          },
          used: async cid => { await cache.used(cid) }
        }
      })
      this.running = { helia, blockstore, store: blockstore, datastore, hostDatastore, pins, rewriting: new Map(), shutdown, bitswap, traffic, fetcher, cache, records: new PinRecords(datastore, async keys => await datastore.db.getMany(keys.map(k => k.toString()))), recent: new RecentLinks(RECENT_LINKS_BYTES) }
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
    clearTimeout(running.evictRetry)
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
    const key = pinKey(root)
    // the CID's lock first, so that pins and unpins of a CID keep their call order; then, as blocks found held by
    // the local scan must stay until the pin is recorded, no repo GC meanwhile
    await this.withLock(key, options.signal, async () => await this.gcLock.shared(async () => {
      const existing = pins.get(key)
      const share = options.share != null ? shareString(options.share) : undefined
      if (existing?.depth === depth && existing.share === share) {
        return
      }
      const counted = (): number => this.counted(running)
      // a spread share is checked as its files are fetched: the peer a spread mirror was uploaded to holds all
      // of it (unpinned) until the other peers hold their shares, and needs no more room for its own
      if (options.share == null) checkQuota(counted, root, options.maxRepoBytes)
      const dagComponents = { ...running, dag: this.localDagReader(running), shutdown: running.shutdown.signal, counted }
      // 1. fetch everything first: an abort here leaves no half-counted pin behind, only cached blocks
      let fetched: { blocks: PinBlock[], generation: Generation, spread?: SpreadClaims }
      if (options.share != null) {
        const spreadShare = options.share
        // the skeleton is on every allocated peer: asked of one at a time (the one that sent the last block)
        const session: FetchSession = {}
        const got = await fetchSpread(root, spreadShare, async (c, o) => await this.getBlock(c, { signal: o?.signal, session }), dagComponents, options)
        fetched = { blocks: got.blocks, generation: got.generation, spread: { claims: got.claims, tops: got.tops, share: share as string } }
      } else {
        await checkQuotaEstimate(root, options.maxRepoBytes, { ...running, counted }, { signal: options.signal })
        fetched = await fetchDag(root, depth, dagComponents, options)
      }
      const { blocks, generation } = fetched
      // 2. record the pin without the signal (Helia cannot undo a half-recorded pin)
      let written = 0
      try {
        if (existing != null) {
          this.log('changing pin of %c from depth %s%s to %s%s', root, existing.depth, existing.share != null ? ` share ${existing.share}` : '', depth, share != null ? ` share ${share}` : '')
          // the blocks stay on disk meanwhile (no repo GC under the shared lock): heldShare still says so
          running.rewriting.set(key, existing)
          await running.records.remove(root, async (d, md) => await this.claimedBlocks(running, root, d, md))
          pins.delete(key)
        }
        const spreadShare = options.share
        written = await running.records.add(root, depth, blocks, {
          generation,
          spread: fetched.spread,
          rescan: spreadShare != null
            ? async () => (await listSpreadLocal(root, spreadShare, this.localDagReader(running), this.localReader(running))).blocks
            : async () => await this.heldBlocks(running, root, depth)
        })
        pins.set(key, { cid: root, depth, ...(share != null ? { share } : {}) })
        running.rewriting.delete(key)
        // cached blocks this pin holds are pinned now, no longer cache
        await running.cache.forget(blocks.map(b => b.cid))
      } catch (err) {
        running.rewriting.delete(key)
        await this.reloadPin(running, root)
        throw err
      }
      this.log('pinned %c (depth %s, %d blocks listed, %d block records written)', root, depth, blocks.length, written)
      this.emitPinChange(root, true)
    }, options.signal))
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

  /** What a pin claims, for its removal: a spread pin's skeleton and file roots, else its blocks within depth. */
  private async claimedBlocks (running: Running, root: CID, depth: number, metadata: Record<string, unknown>): Promise<CID[]> {
    const share = parseShare(metadata.spread)
    if (share != null) return await spreadClaims(root, share, this.localReader(running))
    return await this.localBlocks(running, root, depth)
  }

  /** Reads a block held here (NotFoundError when it is not). */
  private localReader (running: Running): BlockReader {
    return async (cid) => {
      const block = await running.fetcher.localBlock(cid)
      if (block == null) throw new NotFoundError(`block ${cid.toString()} is not held here`)
      return block
    }
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

  async unpin (cid: CID, options: AbortOptions = {}): Promise<void> {
    const running = this.require()
    const root = cid.toV1()
    const key = pinKey(root)
    await this.withLock(key, options.signal, async () => {
      if (!running.pins.has(key)) {
        return
      }
      // local walk, no signal: stopping half-way would leave block pin counts wrong
      try {
        await running.records.remove(root, async (d, md) => await this.claimedBlocks(running, root, d, md))
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

  async isPinned (cid: CID, options: AbortOptions & { share?: Share } = {}): Promise<boolean> {
    options.signal?.throwIfAborted()
    const pinned = this.require().pins.get(pinKey(cid))
    if (pinned == null) return false
    // a spread pin counts only with the share asked for (a changed share is pinned again)
    return options.share == null ? pinned.share == null : pinned.share === shareString(options.share)
  }

  heldShare (key: PinKey): Share | undefined {
    const share = (this.running?.pins.get(key) ?? this.running?.rewriting.get(key))?.share
    return share != null ? parseShare(share) : undefined
  }

  holdsPin (key: PinKey): boolean {
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
      if (running.pins.has(pinKey(cid)) || await running.helia.pins.isPinned(cid, options)) continue
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
    await running.cache.forget([cid])
  }

  /**
   * How many bytes the cache may hold now: cache_max, less what held bytes are over the high watermark of
   * storage_max (the cache gives way first).
   */
  private cacheLimit (running: Running): number {
    const max = this.init.cacheMaxBytes ?? DEFAULT_CACHE_MAX
    const storageMax = this.init.storageMax ?? 0
    if (storageMax <= 0) return max
    const over = running.blockstore.size() - Math.floor(storageMax * HIGH_WATERMARK)
    return over > 0 ? Math.max(0, Math.min(max, running.cache.bytes - over)) : max
  }

  /**
   * Evicts the least recently used cache blocks past the cache's limit, when no pin or add holds the store (one
   * that fetches for hours must not hold the cache up: the eviction is tried again a second later).
   */
  private async trimCache (running: Running): Promise<void> {
    if (this.evicting) return
    this.evicting = true
    try {
      while (running.cache.bytes > this.cacheLimit(running) && this.running === running) {
        const done = await this.gcLock.tryExclusive(async () => { await this.evict(running, running.cache.victims(this.cacheLimit(running))) })
        if (done == null) {
          running.evictRetry ??= setTimeout(() => {
            running.evictRetry = undefined
            this.trimCache(running).catch(err => { this.log.error('cache eviction - %e', err) })
          }, EVICT_RETRY_MS).unref()
          return
        }
      }
    } finally {
      this.evicting = false
    }
  }

  /** Deletes cache blocks (under the GC lock): those pinned meanwhile only leave the cache. */
  private async evict (running: Running, cids: CID[]): Promise<CID[]> {
    if (cids.length === 0) return []
    const records = await running.records.lookup(cids)
    const gone = cids.filter((_, i) => records[i] === undefined)
    const freed = await running.cache.forget(gone)
    await Promise.all(gone.map(async cid => { await this.deleteBlock(running, cid) }))
    await running.cache.forget(cids)
    this.cacheCounters.evicted_blocks += gone.length
    this.cacheCounters.evicted_bytes += freed
    return gone
  }

  async holdBlocks (signal?: AbortSignal): Promise<() => void> {
    this.require()
    return await this.gcLock.acquire(signal)
  }

  async gc (options: GcOptions = {}): Promise<CID[]> {
    const running = this.require()
    // a GC asked for while one runs joins it: the running one deletes everything a new one would, and answers both
    let current = this.currentGc
    if (current == null) {
      const abort = new AbortController()
      // stopping the node ends a GC between slices (a slice's deletes finish: the count stays exact)
      const run = this.runGc(running, options, AbortSignal.any([abort.signal, running.shutdown.signal]))
      const joined: RunningGc = { run, abort, waiters: 0 }
      current = joined
      this.currentGc = joined
      this.gcs.add(run)
      run.finally(() => {
        this.gcs.delete(run)
        if (this.currentGc === joined) this.currentGc = undefined
      }).catch(() => {})
    }
    current.waiters++
    try {
      return [...await raceSignal(current.run, options.signal)]
    } finally {
      current.waiters--
      // the GC itself stops only when every request waiting for it gave up
      if (options.signal?.aborted === true && current.waiters === 0) current.abort.abort(options.signal.reason)
    }
  }

  private async runGc (running: Running, options: GcOptions, signal: AbortSignal): Promise<CID[]> {
    try {
      return await this.gcLock.exclusive(async () => {
        const started = Date.now()
        // reads may add cache blocks meanwhile (pins and adds wait): what is not cache tells what the GC freed
        const notCache = (): number => running.blockstore.size() - running.cache.bytes
        const before = notCache()
        const evictedBefore = this.cacheCounters.evicted_bytes
        // past the high watermark of storage_max, cache blocks go first (least recently used)
        const removed = await this.evict(running, running.cache.victims(this.cacheLimit(running)))
        // what the roots to keep reach here; below a deep block everything is recorded, so kept anyway
        const kept = new Set<string>()
        const roots = await options.keep?.() ?? []
        for (const { cid, depth } of roots) {
          await scanLocalDag(cid.toV1(), depth, this.localDagReader(running), { signal, seen: kept, stopAtDeep: depth === Infinity })
        }
        let scanned = 0
        for await (const slice of running.blockstore.cidSlices(GC_SLICE, { signal })) {
          scanned += slice.length
          // every block held for a local pin has a record (claimed or referenced)
          const records = await running.records.lookup(slice, { signal })
          const garbage = slice.filter((cid, i) => records[i] === undefined && !kept.has(blockId(cid)) && !running.cache.has(cid))
          await Promise.all(garbage.map(async cid => { await this.deleteBlock(running, cid) }))
          removed.push(...garbage)
        }
        const counters = this.gcCounters
        counters.runs++
        counters.blocks_deleted += removed.length
        counters.bytes_reclaimed += Math.max(0, before - notCache()) + this.cacheCounters.evicted_bytes - evictedBefore
        counters.last_finished = Date.now()
        counters.last_duration_ms = counters.last_finished - started
        this.log('repo gc: deleted %d of %d blocks (%d kept for %d roots not pinned here yet) in %d ms', removed.length, scanned, kept.size, roots.length, counters.last_duration_ms)
        return removed
      }, { waitMs: options.waitMs ?? DEFAULT_GC_WAIT_MS, signal })
    } catch (err) {
      this.gcCounters.failures++
      if (running.shutdown.signal.aborted) throw new ShuttingDownError('stopped during a repo GC')
      throw err
    }
  }

  overHighWatermark (): boolean {
    const max = this.init.storageMax ?? 0
    const running = this.running
    return max > 0 && running != null && running.blockstore.size() >= max * HIGH_WATERMARK
  }

  gcStats (): GcStats {
    return { ...this.gcCounters }
  }

  async repoStat (options: AbortOptions = {}): Promise<RepoStat> {
    const running = this.require()
    const account = await accountRepo(this.accountComponents(running), options)
    this.lastAccount = { pinned: account.pinned_bytes, garbage: account.garbage_bytes }
    return {
      peer: running.helia.libp2p.peerId.toString(),
      blocks: account.blocks,
      held_bytes: account.pinned_bytes + account.cache_bytes + account.garbage_bytes,
      pinned_bytes: account.pinned_bytes,
      cache_bytes: account.cache_bytes,
      garbage_bytes: account.garbage_bytes,
      disk_bytes: await diskUsage(this.init.dataDir),
      storage_max: this.init.storageMax ?? 0,
      cache_max: this.init.cacheMaxBytes ?? DEFAULT_CACHE_MAX,
      gc_runs: this.gcCounters.runs,
      gc_bytes_reclaimed: this.gcCounters.bytes_reclaimed,
      cache_evicted_bytes: this.cacheCounters.evicted_bytes,
      ...storeFigures(running.store.stats())
    }
  }

  lastRepoAccount (): { pinned: number, garbage: number } | undefined {
    return this.lastAccount
  }

  async repoVerify (options: AbortOptions = {}): Promise<RepoVerify> {
    const running = this.require()
    const account = await accountRepo(this.accountComponents(running), { ...options, verify: true })
    this.lastAccount = { pinned: account.pinned_bytes, garbage: account.garbage_bytes }
    const problems: RepoVerifyProblem[] = []
    const refetch = async (cid: CID): Promise<Pick<RepoVerifyProblem, 'action' | 'error'>> => await this.refetch(running, cid, options)
    for (const { cid, pinned } of account.corrupt) {
      // wrong bytes must not be served to anyone: deleted, and a pin's fetched again
      await this.deleteBlock(running, cid)
      problems.push({ cid: cid.toString(), problem: 'corrupt', pinned, ...(pinned ? await refetch(cid) : { action: 'deleted' }) })
    }
    for (const cid of account.missing) {
      problems.push({ cid: cid.toString(), problem: 'missing', pinned: true, ...await refetch(cid) })
    }
    this.log('repo verify: %d blocks checked, %d corrupt, %d missing', account.blocks, account.corrupt.length, account.missing.length)
    return { peer: running.helia.libp2p.peerId.toString(), blocks_checked: account.blocks, problems }
  }

  /** A pin's block fetched again (from the peers that hold it): held as the pin's, not as cache. */
  private async refetch (running: Running, cid: CID, options: AbortOptions): Promise<Pick<RepoVerifyProblem, 'action' | 'error'>> {
    try {
      const signal = options.signal != null ? AbortSignal.any([options.signal, AbortSignal.timeout(VERIFY_FETCH_MS)]) : AbortSignal.timeout(VERIFY_FETCH_MS)
      await running.fetcher.getBlock(cid, { signal, lookupDelayMs: 0 })
      await running.cache.forget([cid])
      return { action: 'refetched' }
    } catch (err) {
      return { action: 'none', error: (err as Error).message }
    }
  }

  /**
   * The start-up self-check: every block the pin records claim is looked up in the store's index (no block is
   * read), and each one missing (a store damaged while the peer was off, a file deleted by hand) is fetched
   * again. `repo verify` also re-hashes every block.
   */
  async repairMissing (options: AbortOptions & { onMissing?: (n: number) => void } = {}): Promise<{ checked: number, missing: number, refetched: number, failed: number }> {
    const running = this.require()
    const { checked, missing } = await findMissing(this.accountComponents(running), options)
    options.onMissing?.(missing.length)
    let refetched = 0
    await pMap(missing, async cid => {
      if ((await this.refetch(running, cid, options)).action === 'refetched') refetched++
    }, { concurrency: REPAIR_CONCURRENCY, signal: options.signal })
    if (missing.length > 0) this.log.error('self-check: %d of %d pinned blocks were missing from the store; %d fetched again', missing.length, checked, refetched)
    else this.log('self-check: the %d pinned blocks are all in the store', checked)
    return { checked, missing: missing.length, refetched, failed: missing.length - refetched }
  }

  private accountComponents (running: Running): Parameters<typeof accountRepo>[0] {
    return { blockstore: running.blockstore, records: running.records, cache: running.cache, getHasher: async code => await running.helia.getHasher(code) }
  }

  storeStats (): StoreStats | undefined {
    return this.running?.store.stats()
  }

  cacheStats (): CacheStats {
    const cache = this.running?.cache
    return { bytes: cache?.bytes ?? 0, blocks: cache?.size ?? 0, max_bytes: this.init.cacheMaxBytes ?? DEFAULT_CACHE_MAX, ...this.cacheCounters }
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

  async getBlock (cid: CID, options: GetBlockOptions = {}): Promise<Uint8Array> {
    return await this.require().fetcher.getBlock(cid, options)
  }

  async getCodec (code: number): Promise<BlockCodec<any, any>> {
    return await this.require().helia.getCodec(code)
  }

  async getHasher (code: number): Promise<MultihashHasher> {
    return await this.require().helia.getHasher(code)
  }

  async repoSize (options: AbortOptions = {}): Promise<number> {
    options.signal?.throwIfAborted()
    return this.require().blockstore.size()
  }

  async quotaBytes (options: AbortOptions = {}): Promise<number> {
    options.signal?.throwIfAborted()
    return this.counted(this.require())
  }

  /** Held bytes but the cache's (see IpfsConnector.quotaBytes). */
  private counted (running: Running): number {
    return Math.max(0, running.blockstore.size() - running.cache.bytes)
  }

  /** After a pins.add or pins.rm that failed part-way, Helia's record is the truth again. */
  private async reloadPin (running: Running, root: CID): Promise<void> {
    const key = pinKey(root)
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
        await running.fetcher.storeBlock(cid, block)
        if (cid.code !== raw.code) {
          running.recent.set(cid, [...createUnsafe({ cid, bytes: block, codec: await running.helia.getCodec(cid.code) }).links()].map(([, link]) => link))
        }
      }
    }
  }

  async * cat (cid: CID, options: AbortOptions = {}): AsyncIterable<Uint8Array> {
    this.require()
    // one file's blocks are asked first of the peer that sent the previous one
    const session: FetchSession = {}
    yield * catFile(cid, { stallMs: this.init.catStallMs }, { getBlock: async (c, o) => await this.getBlock(c, { ...o, session }), log: this.log }, options)
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

/** Waits for `promise`, or throws an AbortError (not the signal's reason) once `signal` aborts. */
async function raceSignalAsAbortError<T> (promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  signal?.throwIfAborted()
  return await raceSignal(promise, signal, { translateError: () => new AbortError('operation aborted') })
}

/** The value log's figures as RepoStat names them. */
function storeFigures (s: StoreStats): Pick<RepoStat, 'segments' | 'segment_bytes' | 'compacted_bytes' | 'unmigrated_bytes'> {
  return { segments: s.segments, segment_bytes: s.segmentBytes, compacted_bytes: s.compactedBytes, unmigrated_bytes: s.unmigratedBytes }
}
