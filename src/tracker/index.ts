// The pin tracker: reconciles what the pinset wants on this peer with what the local IPFS holds. Like IPFS
// Cluster's stateless tracker it keeps only in-flight and failed operations in memory; every other status is
// derived from the pinset plus the local pins, so a restart resumes by reconciling again.
//
// The queue is kept hand-written (issue 18 item 9 looked at @libp2p/utils Queue and p-queue): it holds keys whose
// operation lives in `ops`, the tracker's status view; a superseded operation is replaced in `ops` and its stale
// key skipped when reached, so superseding is O(1) on a queue of up to max_queue_size (1M) entries, and a full
// queue records QueueFullError on the operation (shown in status) instead of throwing. Both libraries remove an
// aborted or finished job by scanning their array (O(n) each, O(n^2) over a mirror's million pins), and the
// libp2p Queue counts running jobs in its size, which would change when max_queue_size says "full".
import { raceSignal } from 'race-signal'
import { repeatingTask, type RepeatingTask } from '@libp2p/utils'
import { QueueFullError } from '../errors.js'
import { asInsufficientStorage } from '../storage/disk.js'
import { parseCid } from '../utils/cid.js'
import { heldPinKey, pinKey, type PinKey } from '../utils/keys.js'
import { turnBudget } from '../utils/turns.js'
import type { AbortOptions, IpfsConnector, Pin, PinInfo, PinShare, Pinset, PinTracker, TrackerStatus } from '../components.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export interface TrackerInit {
  peername: string
  /** Parallel pin operations (default 10). */
  concurrentPins?: number
  /** Most operations waiting (default 1,000,000); past it new ones fail with QueueFullError. */
  maxQueueSize?: number
  /** Automatic attempts before an operation stays in error until recovered (default 5). */
  maxRetries?: number
  retryBaseMs?: number
  retryMaxMs?: number
  /** A pin that fetches no block for this long is aborted (default 2 min). */
  pinTimeoutMs?: number
  /** Re-queue failed and unexpectedly unpinned items this often (default 12 min, as IPFS Cluster). */
  recoverIntervalMs?: number
  /** Bytes this peer may store (monitor.storage_max); 0 = no quota. Pins past it fail with the quota error. */
  storageMax?: number
}

export interface TrackerComponents {
  ipfs: IpfsConnector
  pinset: Pick<Pinset, 'get' | 'list' | 'onChange' | 'size'>
  /** This peer's id (also its IPFS id: one host). */
  peerId: string
  /** Connects to a pin's origins (multiaddrs) before fetching it; failures are logged, not fatal. */
  dialOrigins?: (origins: string[], options?: AbortOptions) => Promise<void>
  /**
   * This peer's repo GC (one asked for while one runs joins it): run before a pin is refused for its quota, as
   * garbage (blocks of removed pins not collected yet) must not count against storage_max.
   */
  collectGarbage?: (options?: AbortOptions) => Promise<void>
  logger: ComponentLogger
}

type OpType = 'pin' | 'unpin'
type Phase = 'queued' | 'in_progress' | 'error'

interface Op {
  cid: PinKey
  type: OpType
  phase: Phase
  attempts: number
  error: string
  timestamp: string
  controller?: AbortController
  retryTimer?: NodeJS.Timeout
  /** Bumped when the op is replaced, so a finishing worker knows its result is stale. */
  generation: number
}

const STATUS: Record<OpType, Record<Phase, TrackerStatus>> = {
  pin: { queued: 'pin_queued', in_progress: 'pinning', error: 'pin_error' },
  unpin: { queued: 'unpin_queued', in_progress: 'unpinning', error: 'unpin_error' }
}

export function isAllocatedTo (pin: Pin, peerId: string): boolean {
  return pin.allocations.length === 0 || pin.allocations.includes(peerId)
}

/** This peer's share of a spread pin (undefined for a whole pin). */
export function shareOf (pin: Pin, peerId: string): PinShare | undefined {
  const map = pin.spread === true ? pin.spread_map : undefined
  if (map == null) return undefined
  return { partitions: map.partition_bytes.length, mine: map.shares[peerId] ?? [], ...(map.layout != null ? { layout: map.layout } : {}) }
}

/** The other peers holding each partition of a spread pin: its files are asked of one of them first. */
export function holdersOf (pin: Pin, peerId: string): Record<number, string[]> {
  const out: Record<number, string[]> = {}
  for (const [peer, parts] of Object.entries(pin.spread_map?.shares ?? {})) {
    if (peer === peerId) continue
    for (const p of parts) (out[p] ??= []).push(peer)
  }
  return out
}

export function createTracker (init: TrackerInit, components: TrackerComponents): PinTracker {
  return new StatelessTracker(init, components)
}

class StatelessTracker implements PinTracker {
  private readonly log: Logger
  private readonly ops = new Map<PinKey, Op>()
  private queue: PinKey[] = []
  private queueHead = 0
  private active = 0
  private generation = 0
  private started = false
  /** The repo GC run before refusing pins for their quota, while it runs. */
  private quotaGc?: Promise<boolean>
  /** Whether an unpin ran since that GC started (true at start: an earlier run may have left garbage). */
  private garbage = true
  /** Aborted at stop (a GC started for one pin outlives that pin's signal). */
  private stopping = new AbortController()
  private unsubscribe?: () => void
  private recoverTask?: RepeatingTask
  private readonly idleWaiters: Array<() => void> = []
  private readonly concurrency: number
  private readonly maxQueue: number

  constructor (private readonly init: TrackerInit, private readonly components: TrackerComponents) {
    this.log = components.logger.forComponent('cairn:tracker')
    this.concurrency = init.concurrentPins ?? 10
    this.maxQueue = init.maxQueueSize ?? 1_000_000
  }

  async start (): Promise<void> {
    this.started = true
    this.stopping = new AbortController()
    this.unsubscribe = this.components.pinset.onChange(change => {
      for (const pin of change.added) {
        const key = heldPinKey(pin.cid)
        if (this.wanted(pin)) this.enqueue(key, 'pin')
        else this.drop(key)
      }
      // a removed CID may have been added again since
      for (const cid of change.removed) if (!this.wanted(this.components.pinset.get(cid))) this.drop(heldPinKey(cid))
    })
    this.recoverTask = repeatingTask(async () => { await this.reconcile() }, this.init.recoverIntervalMs ?? 12 * 60_000)
    this.recoverTask.start()
    // Resume after a restart: queue what is wanted but missing, and drop what is pinned but no longer wanted.
    void this.reconcile()
  }

  async stop (): Promise<void> {
    this.started = false
    this.stopping.abort(new Error('the tracker is stopping'))
    this.unsubscribe?.()
    this.recoverTask?.stop()
    for (const op of this.ops.values()) {
      clearTimeout(op.retryTimer)
      op.controller?.abort(new Error('the tracker is stopping'))
    }
    while (this.active > 0) await new Promise<void>(resolve => this.idleWaiters.push(resolve))
  }

  queueLength (): number {
    return this.queue.length - this.queueHead
  }

  // ----- wanted-state changes

  private wanted (pin: Pin | undefined): boolean {
    return pin != null && pin.type !== 'meta-pin' && isAllocatedTo(pin, this.components.peerId)
  }

  /**
   * A pin not (or no longer) allocated here: an operation on it is superseded by an unpin, and an unpin is queued
   * when it is held here; nothing happens otherwise. A follower sees every pin allocated elsewhere go by (all of
   * them at once when it loads a checkpoint), so this decides from memory, without an async check per pin.
   */
  private drop (cid: PinKey): void {
    const op = this.ops.get(cid)
    if (op?.type === 'unpin' && op.phase !== 'error') return
    if (op != null || this.components.ipfs.holdsPin(cid)) this.enqueue(cid, 'unpin')
  }

  /** Replaces any operation on cid by a fresh one of this type at the back of the queue. */
  private enqueue (cid: PinKey, type: OpType): void {
    const existing = this.ops.get(cid)
    if (existing != null) {
      if (existing.type === type && existing.phase !== 'error') return
      clearTimeout(existing.retryTimer)
      existing.controller?.abort(new Error(`superseded by ${type}`))
    }
    const op: Op = {
      cid, type, phase: 'queued', attempts: existing?.type === type ? existing.attempts : 0, error: '',
      timestamp: new Date().toISOString(), generation: ++this.generation
    }
    this.ops.set(cid, op)
    if (this.queueLength() >= this.maxQueue) {
      op.phase = 'error'
      op.error = new QueueFullError().message
      return
    }
    this.queue.push(cid)
    this.pump()
  }

  private pump (): void {
    while (this.started && this.active < this.concurrency && this.queueLength() > 0) {
      const cid = this.queue[this.queueHead++]
      if (this.queueHead > 4096 && this.queueHead * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.queueHead)
        this.queueHead = 0
      }
      const op = this.ops.get(cid)
      if (op == null || op.phase !== 'queued') continue
      this.active++
      void this.run(op).finally(() => {
        this.active--
        if (this.active === 0) for (const w of this.idleWaiters.splice(0)) w()
        this.pump()
      })
    }
  }

  private async run (op: Op): Promise<void> {
    op.phase = 'in_progress'
    op.attempts++
    op.timestamp = new Date().toISOString()
    const controller = new AbortController()
    op.controller = controller
    const { ipfs, pinset } = this.components
    let idle: NodeJS.Timeout | undefined
    const timeoutMs = this.init.pinTimeoutMs ?? 120_000
    const armIdle = (): void => {
      clearTimeout(idle)
      idle = setTimeout(() => { controller.abort(new Error(`no progress for ${timeoutMs / 1000}s (pin_timeout)`)) }, timeoutMs)
    }
    try {
      const cid = parseCid(op.cid)
      if (op.type === 'pin') {
        const pin = pinset.get(op.cid)
        if (!this.wanted(pin)) return this.finish(op)
        const share = shareOf(pin!, this.components.peerId)
        if (!(await ipfs.isPinned(cid, { signal: controller.signal, share }))) {
          if (pin!.origins.length > 0 && this.components.dialOrigins != null) {
            await this.components.dialOrigins(pin!.origins, { signal: controller.signal })
              .catch(err => { this.log('dialling the origins of %s failed: %e', op.cid, err) })
          }
          armIdle()
          const pinHere = async (): Promise<void> => {
            await ipfs.pin(cid, {
              signal: controller.signal,
              depth: pin!.max_depth < 0 ? undefined : pin!.max_depth,
              onProgress: armIdle,
              maxRepoBytes: this.init.storageMax,
              share: share != null ? { ...share, holders: holdersOf(pin!, this.components.peerId) } : undefined
            })
          }
          try {
            await pinHere()
          } catch (err) {
            if ((err as Error).name !== 'QuotaExceededError') throw err
            // what a spread pin's upload left here is kept until the other peers hold their shares: the next
            // attempt collects again
            if (share != null) this.garbage = true
            if (!(await this.collectForQuota(op.cid, controller.signal))) throw err
            armIdle()
            try {
              await pinHere()
            } catch (again) {
              if (share != null && (again as Error).name === 'QuotaExceededError') this.garbage = true
              throw again
            }
          }
        }
        // a spread pin whose share changed while this one was pinned is pinned again, with the new share
        const now = pinset.get(op.cid)
        if (share != null && now != null && this.wanted(now) && JSON.stringify(shareOf(now, this.components.peerId)) !== JSON.stringify(share)) {
          this.finish(op)
          this.enqueue(op.cid, 'pin')
          return
        }
      } else {
        if (this.wanted(pinset.get(op.cid))) return this.finish(op)
        await ipfs.unpin(cid, { signal: controller.signal })
        // its blocks, or those of a pin dropped part-way, are garbage until the next repo GC
        this.garbage = true
      }
      this.finish(op)
    } catch (err) {
      this.fail(op, controller.signal.aborted ? (controller.signal.reason as Error) ?? (err as Error) : err as Error)
    } finally {
      clearTimeout(idle)
    }
  }

  /**
   * Collects garbage before a pin is refused for its quota, when an unpin may have left some since the last such
   * GC (a peer truly at its quota would otherwise scan its store for every pin it refuses). Whether a GC ran.
   */
  private async collectForQuota (cid: PinKey, signal: AbortSignal): Promise<boolean> {
    const collect = this.components.collectGarbage
    if (collect == null) return false
    // pins refused while one runs wait for it, then try again
    if (this.quotaGc != null) return await raceSignal(this.quotaGc, signal)
    if (!this.garbage) return false
    this.garbage = false
    this.log('pin %s is past storage_max: collecting garbage before refusing it', cid)
    const run = collect({ signal: this.stopping.signal }).then(() => true, err => {
      this.log('repo gc before refusing %s for its quota failed: %e', cid, err)
      return false
    }).finally(() => { this.quotaGc = undefined })
    this.quotaGc = run
    return await raceSignal(run, signal)
  }

  private finish (op: Op): void {
    if (this.ops.get(op.cid) === op) this.ops.delete(op.cid)
  }

  private fail (op: Op, err: Error): void {
    if (this.ops.get(op.cid) !== op) return // superseded while running
    op.phase = 'error'
    // a full disk is said in the same words whichever library reported it
    op.error = (asInsufficientStorage(err) ?? err).message ?? String(err)
    op.controller = undefined
    op.timestamp = new Date().toISOString()
    const maxRetries = this.init.maxRetries ?? 5
    if (!this.started) return
    this.log('%s %s failed (attempt %d/%d): %s', op.type, op.cid, op.attempts, maxRetries, op.error)
    if (op.attempts < maxRetries) {
      const base = this.init.retryBaseMs ?? 1000
      const delay = Math.min(base * 2 ** (op.attempts - 1), this.init.retryMaxMs ?? 60_000) * (0.75 + Math.random() / 2)
      op.retryTimer = setTimeout(() => {
        if (this.ops.get(op.cid) !== op || op.phase !== 'error') return
        op.phase = 'queued'
        this.queue.push(op.cid)
        this.pump()
      }, delay)
      op.retryTimer.unref()
    }
  }

  // ----- status

  /** `pin`: the pinset's pin for `cid` when the caller has it already (the pinset is not read again). */
  private async statusOf (cid: PinKey, options?: AbortOptions, pin = this.components.pinset.get(cid)): Promise<PinInfo> {
    const { peerId } = this.components
    const op = this.ops.get(cid)
    let status: TrackerStatus
    let error = ''
    let timestamp = pin?.timestamp ?? new Date().toISOString()
    if (op != null && op.type === 'pin' && op.phase !== 'error' && pin != null && this.wanted(pin) &&
        await this.components.ipfs.isPinned(parseCid(cid), { ...options, share: shareOf(pin, peerId) })) {
      // a pin changed without changing what this peer holds (a new map that keeps its share, new metadata): the
      // queued op only confirms it, and the copy here counts meanwhile
      status = 'pinned'
    } else if (op != null) {
      status = STATUS[op.type][op.phase]
      error = op.error
      timestamp = op.timestamp
    } else if (pin == null) {
      status = 'unpinned'
    } else if (pin.type === 'meta-pin') {
      status = 'sharded'
    } else if (!isAllocatedTo(pin, peerId)) {
      status = 'remote'
    } else if (await this.components.ipfs.isPinned(parseCid(cid), { ...options, share: shareOf(pin, peerId) })) {
      status = 'pinned'
    } else {
      status = 'unexpectedly_unpinned'
      error = 'the item should be pinned but it is not'
    }
    // of a spread pin: the partitions held now, when the share held is of this pin's map
    const wantedShare = pin != null ? shareOf(pin, peerId) : undefined
    const heldShare = wantedShare != null ? this.components.ipfs.heldShare(cid) : undefined
    const held = heldShare != null && heldShare.partitions === wantedShare?.partitions && heldShare.layout === wantedShare.layout ? heldShare.mine : undefined
    return {
      cid: pin?.cid ?? cid,
      name: pin?.name ?? '',
      peer: peerId,
      allocations: pin?.allocations ?? [],
      origins: pin?.origins ?? [],
      created: pin?.timestamp ?? timestamp,
      metadata: pin?.metadata ?? null,
      peername: this.init.peername,
      ipfs_peer_id: peerId,
      status,
      timestamp,
      error,
      attempt_count: op?.attempts ?? 0,
      priority_pin: false,
      ...(held != null ? { share_held: held } : {})
    }
  }

  async status (key: PinKey, options?: AbortOptions): Promise<PinInfo> {
    return await this.statusOf(key, options)
  }

  async * statusAll (options?: AbortOptions): AsyncIterable<PinInfo> {
    const { pinset } = this.components
    const turn = turnBudget()
    // read lazily: decoding the whole pinset first was itself a turn of a second or more at 300k pins
    for (const pin of pinset.list()) {
      options?.signal?.throwIfAborted()
      if (turn.spent()) await turn.yield()
      yield await this.statusOf(heldPinKey(pin.cid), options, pin)
    }
    // In-flight or failed unpins of CIDs already gone from the pinset.
    for (const op of [...this.ops.values()]) {
      if (op.type === 'unpin' && pinset.get(op.cid) == null) yield await this.statusOf(op.cid, options)
    }
  }

  async recover (key: PinKey, options?: AbortOptions): Promise<PinInfo> {
    await this.recoverOne(key, options)
    return await this.statusOf(key, options)
  }

  /** Re-queues cid when it is in error or not where it should be; true if it was re-queued. */
  private async recoverOne (cid: PinKey, options?: AbortOptions): Promise<boolean> {
    const op = this.ops.get(cid)
    if (op != null) {
      if (op.phase !== 'error') return false
      clearTimeout(op.retryTimer)
      op.attempts = 0
      this.ops.delete(cid)
      this.enqueue(cid, op.type)
      return true
    }
    const pin = this.components.pinset.get(cid)
    const share = pin != null ? shareOf(pin, this.components.peerId) : undefined
    const pinned = await this.components.ipfs.isPinned(parseCid(cid), { ...options, share })
    if (this.wanted(pin) && !pinned) { this.enqueue(cid, 'pin'); return true }
    // held in any form (whole, or another share) while not wanted here
    if (!this.wanted(pin) && this.components.ipfs.holdsPin(cid)) { this.enqueue(cid, 'unpin'); return true }
    return false
  }

  async * recoverAll (options?: AbortOptions): AsyncIterable<PinInfo> {
    for (const cid of await this.reconcile(options)) yield await this.statusOf(cid, options)
  }

  /** Compares the whole pinset with the local pins and queues the differences; returns the CIDs queued. */
  private async reconcile (options?: AbortOptions): Promise<PinKey[]> {
    const queued = new Set<PinKey>()
    try {
      for (const pin of [...this.components.pinset.list()]) {
        if (!this.started) return [...queued]
        const key = heldPinKey(pin.cid)
        if (await this.recoverOne(key, options)) queued.add(key)
      }
      for await (const cid of this.components.ipfs.pinLs(options)) {
        const key = pinKey(cid)
        if (!this.wanted(this.components.pinset.get(key)) && !this.ops.has(key)) {
          this.enqueue(key, 'unpin')
          queued.add(key)
        }
      }
      for (const op of [...this.ops.values()]) {
        if (op.phase === 'error' && !queued.has(op.cid) && await this.recoverOne(op.cid, options)) queued.add(op.cid)
      }
    } catch (err) {
      this.log.error('reconciling the pinset with local pins failed: %e', err)
    }
    if (queued.size > 0) this.log('reconcile queued %d operations', queued.size)
    return [...queued]
  }
}
