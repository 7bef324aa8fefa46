import { setMaxListeners } from 'node:events'
import { raceSignal } from 'race-signal'
import { reprovideConfigSchema } from '../config/schema.js'
import { dialBootstrap } from './bootstrap.js'
import { compareKeys, entryOf, fromHex, sortUnique, toHex, type KeyEntry } from './keys.js'
import { listPhases } from './source.js'
import { createSelfRecords, type SelfRecords } from './self-records.js'
import { loadState, saveState, type CycleState, type ReprovideState } from './state.js'
import { Sweeper } from './sweep.js'
import type { Reprovider, ReprovideComponents, ReprovideInit, ReprovideStatusDetail } from './index.js'
import type { AbortOptions } from '../components.js'
import type { ReprovideConfig } from '../config/schema.js'
import type { Logger } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

const DEFAULT_REGION_CACHE_MS = 10 * 60_000
const MAX_TIMER_MS = 2 ** 31 - 1
/**
 * Fast-provide sweeps whose records no DHT peer has taken yet. One still waiting on a peer that does not answer
 * (until send_timeout_ms and the retries run out) frees its place as soon as the other peers took its records,
 * so pins that come next are not held behind it; while none answers at all, new pins gather into the next sweep.
 */
const FAST_SWEEPS = 4
/** Roots that no DHT peer took in their fast provide are tried once more after this, not after retry_interval_ms. */
const FAST_RETRY_MS = 15_000
/** Deadline of one bootstrap dial. */
const BOOTSTRAP_DIAL_MS = 10_000

type ProgressListener = (done: number, total: number) => void

interface Pending {
  entry: KeyEntry
  resolve: (announced: boolean) => void
}

interface Running {
  controller: AbortController
  unsubscribe?: () => void
  state: ReprovideState
}

export class ReproviderImpl implements Reprovider {
  private readonly config: ReprovideConfig
  private readonly init: ReprovideInit
  private readonly components: ReprovideComponents
  private readonly log: Logger
  private readonly sweeper: Sweeper
  private readonly selfRecords: SelfRecords
  private running?: Running
  private timer?: ReturnType<typeof setTimeout>
  private retryTimer?: ReturnType<typeof setTimeout>
  private current?: Promise<void>
  private readonly listeners = new Set<ProgressListener>()
  private readonly pending = new Map<string, Pending[]>()
  /** Fast-provide sweeps running, and how many of them hold a place (see FAST_SWEEPS). */
  private readonly fastSweeps = new Set<Promise<void>>()
  private fastPlaces = 0
  /** Roots waiting for their one early retry, and those that had it. */
  private fastRetryList: KeyEntry[] = []
  private readonly fastRetried = new Set<string>()
  private fastRetryTimer?: ReturnType<typeof setTimeout>
  private retryList: KeyEntry[] = []
  private cycle = { done: 0, total: 0, resumedFrom: 0 }
  private readonly counters = { announced: 0, fast: 0, overrun: 0, cycles: 0 }

  constructor (init: ReprovideInit, components: ReprovideComponents) {
    // the config section's defaults for whatever the caller left out; a bad value is a ConfigError-worthy bug
    this.config = reprovideConfigSchema.parse(Object.fromEntries(Object.entries({
      strategy: init.strategy,
      interval_ms: init.intervalMs,
      validity_ms: init.validityMs,
      fast_provide: init.fastProvide,
      concurrency: init.concurrency,
      batch_size: init.batchSize,
      send_timeout_ms: init.sendTimeoutMs,
      lookup_timeout_ms: init.lookupTimeoutMs,
      retries: init.retries,
      retry_backoff_ms: init.retryBackoffMs,
      retry_interval_ms: init.retryIntervalMs
    }).filter(([, v]) => v !== undefined)))
    this.init = init
    this.components = components
    this.log = components.logger.forComponent('cairn:reprovider')
    const c = this.config
    this.sweeper = new Sweeper({
      libp2p: components.libp2p,
      protocol: init.protocol,
      concurrency: c.concurrency,
      batchSize: c.batch_size,
      sendTimeoutMs: c.send_timeout_ms,
      lookupTimeoutMs: c.lookup_timeout_ms,
      retries: c.retries,
      retryBackoffMs: c.retry_backoff_ms,
      regionCacheMs: init.regionCacheMs ?? DEFAULT_REGION_CACHE_MS,
      bootstrap: async () => { await this.bootstrap() },
      log: this.log.newScope('sweep')
    })
    this.selfRecords = createSelfRecords({ libp2p: components.libp2p, log: this.log.newScope('self-records') })
  }

  async start (): Promise<void> {
    if (this.running != null) return
    const controller = new AbortController()
    setMaxListeners(Infinity, controller.signal)
    const saved = await loadState(this.components.datastore)
    const state: ReprovideState = saved ?? {
      v: 1,
      next_cycle_at: Date.now() + (this.init.firstCycleDelayMs ?? Math.min(this.config.interval_ms, 60_000)),
      cycle: null,
      last: null
    }
    this.running = { controller, state }
    if (this.config.fast_provide && this.components.onPinChange != null) {
      this.running.unsubscribe = this.components.onPinChange((cid, pinned) => { this.onPinChange(cid, pinned) })
    }
    this.bootstrap({ report: true }).catch(err => { this.log('DHT bootstrap - %e', err) })
    if (state.cycle != null) {
      this.log('resuming the cycle started %s at %d/%d', new Date(state.cycle.started).toISOString(), state.cycle.done, state.cycle.total)
      this.schedule(0)
    } else {
      this.schedule(state.next_cycle_at - Date.now())
    }
  }

  async stop (): Promise<void> {
    const running = this.running
    if (running == null) return
    this.running = undefined
    running.controller.abort()
    running.unsubscribe?.()
    clearTimeout(this.timer)
    clearTimeout(this.retryTimer)
    clearTimeout(this.fastRetryTimer)
    for (const list of this.pending.values()) for (const p of list) p.resolve(false)
    this.pending.clear()
    await Promise.allSettled([this.current, ...this.fastSweeps])
    this.sweeper.close()
  }

  status (): ReprovideStatusDetail {
    const state = this.running?.state
    const last = state?.last
    const iso = (ms: number | undefined): string => ms == null ? '' : new Date(ms).toISOString()
    const c = this.config
    const s = this.sweeper.counters
    return {
      strategy: c.strategy,
      interval_ms: c.interval_ms,
      validity_ms: c.validity_ms,
      running: this.current != null,
      cycle_done: this.current != null ? this.cycle.done : 0,
      cycle_total: this.current != null ? this.cycle.total : 0,
      last_cycle_started: iso(last?.started),
      last_cycle_finished: iso(last?.finished),
      last_cycle_duration_ms: last?.duration_ms ?? 0,
      last_cycle_cids: last?.cids ?? 0,
      next_cycle_at: this.current != null ? '' : iso(state?.next_cycle_at),
      cids_announced_total: this.counters.announced,
      fast_provides_total: this.counters.fast,
      failures_total: s.failures,
      cycles_overrun_total: this.counters.overrun,
      cycles_total: this.counters.cycles,
      retries_total: s.retries,
      lookups_total: s.lookups,
      records_sent_total: s.records,
      region_prefix_bits: this.sweeper.regionBits() ?? -1,
      cycle_resumed_from: this.cycle.resumedFrom,
      retry_pending: this.retryList.length
    }
  }

  async reprovideNow (options: AbortOptions & { onProgress?: ProgressListener } = {}): Promise<ReprovideStatusDetail> {
    if (this.running == null) throw new Error('the reprovider is not started')
    const { onProgress } = options
    if (onProgress != null) this.listeners.add(onProgress)
    try {
      const cycle = this.current ?? this.runCycle()
      await raceSignal(cycle, options.signal)
    } finally {
      if (onProgress != null) this.listeners.delete(onProgress)
    }
    return this.status()
  }

  async provide (cid: CID, options: AbortOptions = {}): Promise<boolean> {
    if (this.running == null) return false
    const entry = entryOf(cid.multihash.bytes)
    const done = new Promise<boolean>(resolve => {
      const id = toHex(entry.key)
      const list = this.pending.get(id) ?? []
      list.push({ entry, resolve })
      this.pending.set(id, list)
    })
    this.kickDrain()
    return await raceSignal(done, options.signal)
  }

  /** Starts fast-provide sweeps for what is pending, while places are free. */
  private kickDrain (): void {
    while (this.pending.size > 0 && this.running != null && this.fastPlaces < FAST_SWEEPS) {
      const batch = new Map(this.pending)
      this.pending.clear()
      this.fastPlaces++
      let placed = true
      const release = (): void => {
        if (!placed) return
        placed = false
        this.fastPlaces--
        this.kickDrain()
      }
      const sweep: Promise<void> = this.fastSweep(batch, release).finally(() => {
        this.fastSweeps.delete(sweep)
        release()
      })
      this.fastSweeps.add(sweep)
    }
  }

  private onPinChange (cid: CID, pinned: boolean): void {
    if (pinned) {
      this.provide(cid).catch(err => { this.log('fast provide of %c - %e', cid, err) })
      return
    }
    // unpinned before its turn came: nothing to announce
    const id = toHex(entryOf(cid.multihash.bytes).key)
    for (const p of this.pending.get(id) ?? []) p.resolve(false)
    this.pending.delete(id)
    this.fastRetryList = this.fastRetryList.filter(e => toHex(e.key) !== id)
    this.fastRetried.delete(id)
  }

  /**
   * Fast provides: whatever was pending goes out as one small sweep (roots pinned together share lookups) on
   * streams of its own. Each root's provide() resolves as soon as a DHT peer took it.
   */
  private async fastSweep (batch: Map<string, Pending[]>, release: () => void): Promise<void> {
    const running = this.running
    if (running == null) return
    const entries = sortUnique([...batch.values()].map(list => list[0].entry))
    let waiting = entries.length
    try {
      await this.recordSelf(entries, running.controller.signal)
      await this.sweeper.sweep(entries, {
        signal: running.controller.signal,
        lane: 'fast',
        onAcked: acked => {
          for (const e of acked) {
            const id = toHex(e.key)
            const list = batch.get(id)
            if (list == null) continue
            batch.delete(id)
            this.fastRetried.delete(id)
            for (const p of list) p.resolve(true)
            this.counters.fast++
            waiting--
          }
          if (waiting === 0) release()
        },
        onBatch: r => { this.retryFast(r.failed) }
      })
    } catch (err) {
      if (!running.controller.signal.aborted) this.log.error('fast provide - %e', err)
    }
    for (const list of batch.values()) for (const p of list) p.resolve(false)
  }

  /** Roots no DHT peer took: once more soon (the routing table may have been empty), then with the other retries. */
  private retryFast (failed: KeyEntry[]): void {
    const later: KeyEntry[] = []
    for (const e of failed) {
      const id = toHex(e.key)
      if (this.fastRetried.has(id)) {
        this.fastRetried.delete(id)
        later.push(e)
      } else {
        this.fastRetried.add(id)
        this.fastRetryList.push(e)
      }
    }
    this.queueRetry(later)
    if (this.fastRetryList.length === 0 || this.fastRetryTimer != null || this.running == null) return
    this.fastRetryTimer = setTimeout(() => {
      this.fastRetryTimer = undefined
      const list = this.fastRetryList
      this.fastRetryList = []
      this.log('retrying the fast provide of %d roots', list.length)
      for (const entry of list) {
        const id = toHex(entry.key)
        const waiting = this.pending.get(id) ?? []
        waiting.push({ entry, resolve: () => {} })
        this.pending.set(id, waiting)
      }
      this.kickDrain()
    }, Math.min(FAST_RETRY_MS, this.config.retry_interval_ms))
    this.fastRetryTimer.unref?.()
  }

  private schedule (delayMs: number): void {
    clearTimeout(this.timer)
    if (this.running == null) return
    this.timer = setTimeout(() => {
      if (delayMs > MAX_TIMER_MS) { this.schedule(delayMs - MAX_TIMER_MS); return }
      this.runCycle().catch(() => {})
    }, Math.max(0, Math.min(delayMs, MAX_TIMER_MS)))
    this.timer.unref?.()
  }

  private async runCycle (): Promise<void> {
    this.current ??= this.cycleOnce().finally(() => { this.current = undefined })
    await this.current
  }

  private async cycleOnce (): Promise<void> {
    const running = this.running
    if (running == null) return
    clearTimeout(this.timer)
    const { state, controller: { signal } } = running
    const resume: CycleState | null = state.cycle
    const started = resume?.started ?? Date.now()
    // a fresh cycle covers whatever was waiting for a retry
    clearTimeout(this.retryTimer)
    this.retryList = []
    try {
      const phases = await listPhases(this.config.strategy, this.components, { signal })
      const total = phases.reduce((n, p) => n + p.length, 0)
      const todo = phases.map((list, phase) => skipDone(list, phase, resume))
      const skipped = total - todo.reduce((n, p) => n + p.length, 0)
      const cycle: CycleState = { started, phase: resume?.phase ?? 0, cursor: resume?.cursor ?? '', done: skipped, total, announced: skipped > 0 ? resume?.announced ?? 0 : 0 }
      this.cycle = { done: skipped, total, resumedFrom: skipped }
      state.cycle = cycle
      await saveState(this.components.datastore, state)
      this.log('cycle: %d CIDs (%s), %d done before a restart', total, this.config.strategy, skipped)
      this.emitProgress()
      for (let phase = 0; phase < todo.length; phase++) {
        if (todo[phase].length === 0) continue
        await this.recordSelf(todo[phase], signal)
        await this.sweeper.sweep(todo[phase], {
          signal,
          onBatch: async r => {
            cycle.phase = phase
            cycle.cursor = toHex(r.entries[r.entries.length - 1].key)
            cycle.done += r.entries.length
            cycle.announced += r.announced
            this.cycle.done = cycle.done
            this.counters.announced += r.announced
            this.retryList.push(...r.failed)
            await saveState(this.components.datastore, state)
            this.emitProgress()
          }
        })
      }
      const finished = Date.now()
      const duration = finished - started
      this.counters.cycles++
      state.last = { started, finished, duration_ms: duration, cids: cycle.announced }
      state.cycle = null
      state.next_cycle_at = started + this.config.interval_ms
      if (duration > this.config.interval_ms) {
        // reported, never skipped: the next cycle starts right away
        this.counters.overrun++
        this.warn(`reprovide cycle took ${duration} ms, more than its interval of ${this.config.interval_ms} ms: the next one starts now (${total} CIDs; raise reprovide.concurrency or interval_ms)`)
      }
      await saveState(this.components.datastore, state)
      // every CID still held was recorded again since the cycle started: older self records are of CIDs let go
      const pruned = await this.selfRecords.prune(started, { signal })
      this.log('cycle done: %d of %d CIDs announced in %d ms, %d to retry, %d self records of CIDs no longer held dropped', cycle.announced, total, duration, this.retryList.length, pruned)
      if (this.retryList.length > 0) this.scheduleRetry()
    } catch (err) {
      if (signal.aborted) return
      // the position is saved: the next attempt resumes
      this.log.error('cycle failed - %e', err)
      this.warn(`reprovide cycle failed: ${(err as Error).message}; retrying in ${this.config.retry_interval_ms} ms`)
      state.next_cycle_at = Date.now() + this.config.retry_interval_ms
    } finally {
      if (this.running === running && !signal.aborted) this.schedule(state.next_cycle_at - Date.now())
    }
  }

  private queueRetry (failed: KeyEntry[]): void {
    if (failed.length === 0) return
    this.retryList.push(...failed)
    this.scheduleRetry()
  }

  /** Records no DHT peer took are tried again after retry_interval_ms (the next cycle covers them anyway). */
  private scheduleRetry (): void {
    if (this.retryTimer != null || this.running == null) return
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined
      const list = sortUnique(this.retryList)
      this.retryList = []
      const running = this.running
      if (running == null || list.length === 0) return
      if (this.current != null) return
      this.log('retrying %d records', list.length)
      this.sweeper.sweep(list, {
        signal: running.controller.signal,
        onBatch: r => {
          this.counters.announced += r.announced
          this.queueRetry(r.failed)
        }
      }).catch(err => { if (!running.controller.signal.aborted) this.log.error('retry - %e', err) })
    }, this.config.retry_interval_ms)
    this.retryTimer.unref?.()
  }

  /**
   * This peer as a provider of `entries` in its own DHT provider store, before they are announced (a lookup that
   * ends here then finds it, even when no other DHT peer took the records). A failed write is logged, and the
   * announcement goes on.
   */
  private async recordSelf (entries: KeyEntry[], signal: AbortSignal): Promise<void> {
    for (let i = 0; i < entries.length; i += this.config.batch_size) {
      try {
        await this.selfRecords.add(entries.slice(i, i + this.config.batch_size), { signal })
      } catch (err) {
        signal.throwIfAborted()
        this.log.error('writing %d self provider records - %e', Math.min(this.config.batch_size, entries.length - i), err)
      }
    }
  }

  /**
   * Dials the DHT bootstrap peers we are not connected to (they fill the routing table). With `report`, a round in
   * which none could be dialled is a warning the user sees (offline, or a /dnsaddr that does not resolve).
   */
  private async bootstrap (options: { report?: boolean } = {}): Promise<void> {
    const list = this.init.bootstrap ?? []
    if (list.length === 0) return
    const round = await dialBootstrap(this.components.libp2p, list, { signal: this.running?.controller.signal, timeoutMs: BOOTSTRAP_DIAL_MS })
    for (const { addr, error } of round.failed) this.log('could not dial DHT bootstrap peer %s - %e', addr, error)
    if (options.report === true && round.dialled > 0 && round.failed.length === round.dialled && this.running?.controller.signal.aborted === false) {
      const first = round.failed[0]
      this.warn(`could not reach any of the ${round.dialled} DHT bootstrap peers (dht.bootstrap), e.g. ${first.addr}: ${first.error.message}; they are dialled again whenever the DHT routing table is empty`)
    }
  }

  private emitProgress (): void {
    for (const l of this.listeners) {
      try { l(this.cycle.done, this.cycle.total) } catch (err) { this.log.error('progress listener - %e', err) }
    }
  }

  private warn (line: string): void {
    if (this.components.warn != null) this.components.warn(line)
    else this.log(line)
  }
}

/** The entries of one phase still to do when resuming: later phases whole, the cursor's phase after the cursor. */
function skipDone (list: KeyEntry[], phase: number, resume: CycleState | null): KeyEntry[] {
  if (resume == null) return list
  if (phase < resume.phase) return []
  if (phase > resume.phase || resume.cursor === '') return list
  const cursor = fromHex(resume.cursor)
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (compareKeys(list[mid].key, cursor) <= 0) lo = mid + 1
    else hi = mid
  }
  return list.slice(lo)
}
