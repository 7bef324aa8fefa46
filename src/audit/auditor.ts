// The auditor: every peer answers audits; trusted peers also run them. A round scans the pinset once (in
// slices, yielding between them), samples up to K pins per audited peer among those allocated to it longer
// than the grace period, and walks each on that peer only. A failure is tried once more before it counts, and
// is then reported to the other trusted peers, which note it too: each trusted peer proves peers by its own
// audits, but one failure anywhere is enough.
import { randomInt } from 'node:crypto'
import pMap from 'p-map'
import { ConfigError } from '../errors.js'
import { clusterSecret, type ClusterSecret } from '../secret.js'
import { heldPinKey } from '../utils/keys.js'
import { askBlocks, reportFailure, type AskInit } from './client.js'
import { auditProtocol } from './protocol.js'
import { serveAudit } from './server.js'
import { TrustBook } from './trust.js'
import { walkPin, type WalkResult } from './walk.js'
import { shareOf } from '../tracker/index.js'
import { TRUST_STATES, type AuditorAPI, type AuditorComponents, type AuditorInit, type AuditStats, type PeerTrust, type TrustState } from './index.js'
import type { AbortOptions } from '../components.js'
import type { AlertInfo, Pin } from '../types/wire.js'
import type { Logger } from '@libp2p/interface'

const DEFAULTS = {
  intervalMs: 10 * 60_000,
  graceMs: 60 * 60_000,
  timeoutMs: 30_000,
  pinsPerRound: 2,
  provenAfter: 3,
  probationPins: 16,
  cooldownMs: 6 * 3600_000
}
/** The peer.json key of an init option (intervalMs -> interval_ms), for errors that name what to fix. */
const configKey = (key: string): string => key.replace(/[A-Z]/g, c => `_${c.toLowerCase()}`)
/** Distinct pins a peer must have passed on to be proven. */
const PROVEN_PINS = 2
/** Pins looked at between two yields to the event loop while scanning the pinset. */
const SCAN_SLICE = 2048
/** Peers audited at once. */
const AUDIT_CONCURRENCY = 4
/** A failed audit is tried again after this long before it counts (a blip, or a fetch finishing). */
const RETRY_DELAY_MS = 1000
/** The first round (a scan that also counts each peer's allocations) runs this soon after start at most. */
const FIRST_ROUND_MS = 5000
/** Records of peers not seen, holding nothing and not failed, are forgotten after this long. */
const RECORD_TTL_MS = 7 * 24 * 3600_000
const MAX_ALERTS = 1000
const NS_PER_MS = 1_000_000

export class Auditor implements AuditorAPI {
  private readonly log: Logger
  private readonly self: string
  private readonly protocol: string
  private readonly secret: ClusterSecret
  private readonly config: typeof DEFAULTS
  private readonly book: TrustBook
  private readonly listeners = new Set<(peer: string) => void>()
  private readonly alertList: AlertInfo[] = []
  private readonly counters = { pass: 0, fail: 0, skip: 0 }
  /** Allocations per non-trusted peer: the last scan's count plus allocations seen since. */
  private loads = new Map<string, number>()
  private underReplicated = 0
  private lastRound = 0
  private shutdown = new AbortController()
  private timer?: NodeJS.Timeout
  private running?: Promise<void>
  private stopListening?: () => void
  private started = false

  constructor (private readonly init: AuditorInit, private readonly components: AuditorComponents) {
    this.log = components.logger.forComponent('cairn:audit')
    this.self = components.libp2p.peerId.toString()
    this.protocol = auditProtocol(init.cluster)
    this.secret = init.secret ?? clusterSecret('')
    this.config = { ...DEFAULTS }
    for (const key of Object.keys(DEFAULTS) as Array<keyof typeof DEFAULTS>) {
      const v = init[key]
      if (v == null) continue
      if (!Number.isSafeInteger(v) || v < 1) throw new ConfigError(`audit.${configKey(key)} must be a positive integer, got ${v}`)
      this.config[key] = v
    }
    this.book = new TrustBook({ provenAfter: this.config.provenAfter, provenPins: PROVEN_PINS, cooldownMs: this.config.cooldownMs }, components.datastore)
  }

  get trialLimit (): number { return this.config.probationPins }

  async start (): Promise<void> {
    if (this.started) return
    this.shutdown = new AbortController()
    await this.book.load()
    await this.components.libp2p.handle(this.protocol, (stream, connection) => {
      void serveAudit({
        protocol: this.protocol, self: this.self, secret: this.secret, isTrusted: this.init.isTrusted, timeoutMs: this.config.timeoutMs,
        onReport: async (from, peer, reason) => { await this.reported(from, peer, reason) }
      }, this.components.blocks, stream, connection, this.shutdown.signal, this.log)
    }, { maxInboundStreams: 4, maxOutboundStreams: AUDIT_CONCURRENCY * 2 })
    this.stopListening = this.components.pinset.onChange(change => {
      if (!this.init.isWriter()) return
      for (const pin of change.added) {
        for (const p of pin.allocations) if (!this.init.isTrusted(p)) this.loads.set(p, (this.loads.get(p) ?? 0) + 1)
      }
    })
    this.started = true
    this.schedule(Math.min(this.config.intervalMs, FIRST_ROUND_MS))
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    this.shutdown.abort()
    clearTimeout(this.timer)
    this.stopListening?.()
    await this.components.libp2p.unhandle(this.protocol).catch(() => {})
    await this.running?.catch(() => {})
  }

  // ----- views

  trustOf (peer: string): TrustState {
    // a peer trusts itself for reading, but a follower has no say on storage, its own included
    if (peer === this.self) return this.init.isWriter() ? 'trusted' : 'unknown'
    if (this.init.isTrusted(peer)) return 'trusted'
    if (!this.init.isWriter()) return 'unknown'
    const state = this.book.state(peer)
    if (state === 'failed') return 'failed'
    return this.init.isClosed() ? 'proven' : state
  }

  trialLoad (peer: string): number {
    return this.loads.get(peer) ?? 0
  }

  peerTrust (peer: string): PeerTrust {
    const r = this.init.isTrusted(peer) ? undefined : this.book.get(peer)
    return {
      trust: this.trustOf(peer),
      audits_passed: r?.passed ?? 0,
      audits_failed: r?.failed ?? 0,
      last_audit: r != null && r.last_audit > 0 ? new Date(r.last_audit).toISOString() : '',
      last_error: r?.last_error ?? ''
    }
  }

  onFailed (listener: (peer: string) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  alerts (): AlertInfo[] { return this.alertList.map(a => ({ ...a })) }

  stats (): AuditStats {
    const peers = Object.fromEntries(TRUST_STATES.map(s => [s, 0])) as Record<TrustState, number>
    for (const p of this.components.monitor.peerset()) if (p !== this.self) peers[this.trustOf(p)]++
    return { audits: { ...this.counters }, peers, under_replicated: this.underReplicated, last_round: this.lastRound }
  }

  async auditNow (options: AbortOptions = {}): Promise<void> {
    if (this.running == null) {
      clearTimeout(this.timer)
      this.running = this.round().finally(() => {
        this.running = undefined
        this.schedule(this.config.intervalMs)
      })
    }
    const running = this.running
    await (options.signal == null
      ? running
      : Promise.race([running, new Promise((_resolve, reject) => {
        options.signal?.addEventListener('abort', () => { reject(options.signal?.reason) }, { once: true })
      })]))
  }

  // ----- rounds

  private schedule (ms: number): void {
    clearTimeout(this.timer)
    if (!this.started) return
    this.timer = setTimeout(() => {
      this.auditNow().catch(err => { if (!this.shutdown.signal.aborted) this.log.error('audit round failed: %e', err) })
    }, ms)
    this.timer.unref()
  }

  private counts (peer: string): boolean {
    const t = this.trustOf(peer)
    return t === 'trusted' || t === 'proven'
  }

  private async round (): Promise<void> {
    if (!this.started || !this.init.isWriter()) {
      this.loads = new Map()
      return
    }
    const signal = this.shutdown.signal
    const now = Date.now()
    const live = new Set(this.components.monitor.peerset().filter(p => p !== this.self && !this.init.isTrusted(p)))
    const { loads, samples, under } = await this.scan(live, now, signal)
    // allocations made while the scan ran were counted by the change listener into the map it replaces
    for (const [p, n] of this.loads) if (!loads.has(p)) loads.set(p, n)
    this.loads = loads
    this.underReplicated = under
    await this.book.prune((peer, r) => live.has(peer) || loads.has(peer) || r.state === 'failed' ||
      now - Math.max(r.first_seen, r.last_audit) < RECORD_TTL_MS)
    for (const [peer, n] of loads) {
      // a failed peer still holding allocations (another trusted peer chose it meanwhile): move them again
      if (n > 0 && this.trustOf(peer) === 'failed') this.emitFailed(peer)
    }
    const audited = [...samples].filter(([peer]) => this.trustOf(peer) !== 'failed')
    await pMap(audited, async ([peer, pins]) => {
      for (const pin of pins) {
        if (signal.aborted) return
        const verdict = await this.auditOnce(peer, pin, signal)
        if (signal.aborted) return
        await this.record(peer, pin, verdict)
        if (verdict.result === 'fail') return
      }
    }, { concurrency: AUDIT_CONCURRENCY })
    this.lastRound = Date.now()
  }

  /** One pass over the pinset: each non-trusted peer's allocations, K random eligible pins per live one. */
  private async scan (live: Set<string>, now: number, signal: AbortSignal): Promise<{ loads: Map<string, number>, samples: Map<string, Pin[]>, under: number }> {
    const k = this.config.pinsPerRound
    const loads = new Map<string, number>()
    const samples = new Map<string, Pin[]>()
    const eligible = new Map<string, number>()
    let under = 0
    let n = 0
    // Y.Map iteration survives changes between slices: entries added meanwhile are seen, deleted ones skipped
    for (const pin of this.components.pinset.list()) {
      if (++n % SCAN_SLICE === 0) {
        await new Promise(resolve => setImmediate(resolve))
        signal.throwIfAborted()
      }
      // pins on every peer (-1) name no one: nothing depends on a given peer's copy of them
      if (pin.allocations.length === 0) continue
      let counted = 0
      for (const p of pin.allocations) {
        if (this.counts(p)) counted++
        if (this.init.isTrusted(p)) continue
        loads.set(p, (loads.get(p) ?? 0) + 1)
        if (!live.has(p)) continue
        // grace from the allocation (a re-allocation writes a new timestamp) or from when this peer was first seen
        const since = Math.max(Date.parse(pin.timestamp) || 0, this.book.seen(p, now).first_seen)
        if (now - since < this.config.graceMs) continue
        // reservoir sampling: each eligible pin is kept with probability k / (eligible so far)
        const seen = (eligible.get(p) ?? 0) + 1
        eligible.set(p, seen)
        const kept = samples.get(p) ?? []
        if (kept.length < k) kept.push(pin)
        else {
          const j = randomInt(seen)
          if (j < k) kept[j] = pin
        }
        samples.set(p, kept)
      }
      if (pin.replication_factor_min > 0 && counted < pin.replication_factor_min) under++
    }
    return { loads, samples, under }
  }

  private async auditOnce (peer: string, pin: Pin, shutdown: AbortSignal): Promise<WalkResult> {
    const askInit: AskInit = { protocol: this.protocol, self: this.self, secret: this.secret }
    const verifier = this.components.verifier
    const walk = { depth: this.init.walkDepth ?? 3, width: this.init.walkWidth ?? 2 }
    let result: WalkResult = { result: 'skip', reason: 'not audited' }
    for (let attempt = 0; attempt < 2; attempt++) {
      if (attempt > 0) {
        await new Promise(resolve => setTimeout(resolve, RETRY_DELAY_MS).unref())
        if (shutdown.aborted) return result
      }
      const deadline = AbortSignal.timeout(this.config.timeoutMs)
      const signal = AbortSignal.any([shutdown, deadline])
      try {
        result = await walkPin(pin, async (cids, o) => await askBlocks(this.components.libp2p, askInit, peer, cids, o), verifier, walk, { signal }, shareOf(pin, peer))
      } catch (err) {
        if (shutdown.aborted) return result
        result = { result: 'fail', reason: deadline.aborted ? `no full answer within ${this.config.timeoutMs} ms for ${pin.cid}` : `${pin.cid}: ${(err as Error).message}` }
      }
      if (result.result !== 'fail') return result
    }
    return result
  }

  private async record (peer: string, pin: Pin, verdict: WalkResult): Promise<void> {
    this.counters[verdict.result]++
    if (verdict.result === 'skip') {
      this.log('audit of %s on %s skipped: %s', pin.cid, peer, verdict.reason)
      return
    }
    if (verdict.result === 'pass') {
      this.log('audit of %s on %s passed (%d blocks)', pin.cid, peer, verdict.blocks)
      if (await this.book.pass(peer, heldPinKey(pin.cid))) this.log('peer %s passed %d audits: proven, its copies count', peer, this.config.provenAfter)
      return
    }
    await this.book.fail(peer, verdict.reason)
    this.log.error('peer %s failed an audit: %s; its pins go to other peers, and it is left out for %d ms', peer, verdict.reason, this.config.cooldownMs)
    this.raise(peer, verdict.reason)
    this.emitFailed(peer)
    void this.tellOthers(peer, verdict.reason)
  }

  /** Reports a failure to the other live trusted peers (best effort: each also audits by itself). */
  private async tellOthers (peer: string, reason: string): Promise<void> {
    const askInit: AskInit = { protocol: this.protocol, self: this.self, secret: this.secret }
    const others = this.components.monitor.peerset().filter(p => p !== this.self && this.init.isTrusted(p))
    await Promise.all(others.map(async to => {
      const signal = AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.config.timeoutMs)])
      await reportFailure(this.components.libp2p, askInit, to, peer, reason, { signal })
        .catch(err => { this.log('reporting the failure of %s to %s failed: %e', peer, to, err) })
    }))
  }

  /** Another trusted peer says `peer` failed an audit (the reporter moves its pins). */
  private async reported (from: string, peer: string, reason: string): Promise<void> {
    if (!this.init.isWriter() || this.init.isTrusted(peer) || this.book.state(peer) === 'failed') return
    const why = `reported by ${from}: ${reason}`
    await this.book.fail(peer, why)
    this.log.error('peer %s failed an audit (%s); it is left out for %d ms', peer, why, this.config.cooldownMs)
    this.raise(peer, why)
  }

  private emitFailed (peer: string): void {
    for (const l of this.listeners) {
      try { l(peer) } catch (err) { this.log.error('audit failure listener failed: %e', err) }
    }
  }

  private raise (peer: string, reason: string): void {
    const now = Date.now()
    this.alertList.unshift({
      name: 'audit', peer, value: reason, expire: now * NS_PER_MS, valid: false, weight: 0, partitionable: false,
      received_at: now * NS_PER_MS, triggered_at: new Date(now).toISOString()
    })
    if (this.alertList.length > MAX_ALERTS) this.alertList.length = MAX_ALERTS
  }
}
