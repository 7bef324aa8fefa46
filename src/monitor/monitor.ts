// The gossipsub monitor. Incoming messages are verified in the topic validator and stored there (a rejected
// message is neither stored nor forwarded, and nothing is verified twice); this peer's own metrics are stored
// when published, since gossipsub does not deliver a peer its own messages (emitSelf is off).
import { repeatingTask, type RepeatingTask } from '@libp2p/utils'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { peerIdFromString } from '@libp2p/peer-id'
import { ConfigError } from '../errors.js'
import { clusterSecret, type ClusterSecret } from '../secret.js'
import { pingInformer } from './informers.js'
import {
  decodeMetricsMessage, encodeMetricsBody, encodeMetricsMessage, metricsSigningPayload, metricsTopic,
  MAX_MESSAGE_BYTES, MAX_METRIC_TTL_MS, MAX_METRICS_PER_MESSAGE, MAX_NAME_LENGTH, MAX_VALUE_LENGTH
} from './protocol.js'
import type { Alert, Informer, LostPeer, Metric, Monitor, MonitorComponents, MonitorInit, PeerInfo } from './index.js'
import type { Message, SubscriptionChangeData } from '@libp2p/gossipsub'
import type { Logger } from '@libp2p/interface'

/** Tolerated clock difference when checking how far ahead a peer's metric expires. */
const CLOCK_SKEW_MS = 60_000
/**
 * Expired metrics are kept this long by default (a lost peer's last values), then forgotten; but a lost peer's
 * ping is kept until the peer returns or is removed (forgetLost), so it is shown as lost rather than vanish.
 */
const RETAIN_EXPIRED_MS = 60 * 60_000
const NS_PER_MS = 1_000_000
const DEFAULT_MAX_PEERS = 5000
const DEFAULT_MAX_NAMES_PER_PEER = 32
/** A full table is swept for peers whose metrics all expired at most this often. */
const SWEEP_INTERVAL_MS = 1000
/**
 * A peer that subscribes to the metrics topic is sent this peer's metrics after this long, at most once per
 * WELCOME_INTERVAL_MS however many subscribe: else it waits up to TTL/2 (15 s) for the next round, and a peer
 * that just joined is not in its peerset for that long.
 */
const WELCOME_DELAY_MS = 100
const WELCOME_INTERVAL_MS = 2000

interface Entry {
  metric: Metric
  /** Set once the metric expired (and was alerted on if it was valid): one alert per expiry. */
  expired: boolean
  /** When the expiry was noticed (the alert's triggered_at), unix ms. */
  expiredAt?: number
}

export class PubsubMonitor implements Monitor {
  private readonly log: Logger
  private readonly self: string
  private readonly topic: string
  private readonly secret: ClusterSecret
  private readonly informers: Informer[]
  private readonly checkIntervalMs: number
  private readonly retainExpiredMs: number
  private readonly maxAlerts: number
  /** name -> peer -> latest metric. */
  private readonly metrics = new Map<string, Map<string, Entry>>()
  /** The metric names held for each peer: bounds what one peer, or many, can make this peer keep. */
  private readonly namesOf = new Map<string, Set<string>>()
  private readonly maxPeers: number
  private readonly maxNamesPerPeer: number
  private lastSweep = 0
  private readonly alertList: Alert[] = []
  private readonly listeners = new Set<(alert: Alert) => void>()
  private readonly dropped = new Map<string, number>()
  /** When each informer is next due (unix ms). */
  private readonly due = new Map<Informer, number>()
  private publishTimer?: NodeJS.Timeout
  private welcomeTimer?: NodeJS.Timeout
  private lastWelcome = 0
  private checkTask?: RepeatingTask
  private shutdown = new AbortController()
  /** Publish rounds run one at a time. */
  private rounds: Promise<void> = Promise.resolve()
  private started = false

  constructor (private readonly init: MonitorInit, private readonly components: MonitorComponents) {
    if (init.cluster === '') throw new ConfigError('monitor: cluster name cannot be empty')
    this.checkIntervalMs = init.checkIntervalMs ?? 5_000
    if (!(this.checkIntervalMs > 0)) throw new ConfigError(`monitor: checkIntervalMs must be a positive number of ms, got ${init.checkIntervalMs}`)
    this.retainExpiredMs = init.retainExpiredMs ?? RETAIN_EXPIRED_MS
    this.maxAlerts = init.maxAlerts ?? 1000
    if (!Number.isSafeInteger(this.maxAlerts) || this.maxAlerts < 0) throw new ConfigError(`monitor: maxAlerts must be a non-negative integer, got ${init.maxAlerts}`)
    this.maxPeers = init.maxPeers ?? DEFAULT_MAX_PEERS
    this.maxNamesPerPeer = init.maxNamesPerPeer ?? DEFAULT_MAX_NAMES_PER_PEER
    for (const [name, v] of [['maxPeers', this.maxPeers], ['maxNamesPerPeer', this.maxNamesPerPeer]] as const) {
      if (!Number.isSafeInteger(v) || v < 1) throw new ConfigError(`monitor: ${name} must be a positive integer, got ${v}`)
    }
    this.log = components.logger.forComponent('cairn:monitor')
    this.self = components.libp2p.peerId.toString()
    this.topic = metricsTopic(init.cluster)
    this.secret = init.secret ?? clusterSecret('')
    const informers = [...init.informers]
    if (!informers.some(i => i.name === 'ping')) {
      informers.unshift(pingInformer({ peername: init.peername, addresses: () => components.libp2p.getMultiaddrs().map(String) }))
    }
    const names = new Set<string>()
    for (const inf of informers) {
      if (typeof inf.name !== 'string' || inf.name === '' || inf.name.length > MAX_NAME_LENGTH) {
        throw new ConfigError(`monitor: informer name must be 1-${MAX_NAME_LENGTH} characters, got "${String(inf.name)}"`)
      }
      if (names.has(inf.name)) throw new ConfigError(`monitor: two informers are named "${inf.name}"`)
      names.add(inf.name)
      if (!(inf.ttlMs > 0 && inf.ttlMs <= MAX_METRIC_TTL_MS)) {
        throw new ConfigError(`monitor: informer "${inf.name}" ttl must be between 1 ms and ${MAX_METRIC_TTL_MS} ms, got ${inf.ttlMs}`)
      }
    }
    this.informers = informers
  }

  // ----- lifecycle

  async start (): Promise<void> {
    if (this.started) return
    this.shutdown = new AbortController()
    const pubsub = this.components.libp2p.services.pubsub
    pubsub.topicValidators.set(this.topic, async (_from, msg) => await this.validate(msg))
    pubsub.subscribe(this.topic)
    pubsub.addEventListener('subscription-change', this.onSubscriptionChange)
    this.started = true
    this.checkTask = repeatingTask(() => { this.check() }, this.checkIntervalMs)
    this.checkTask.start()
    // informer errors are handled per informer; anything else must not fail the peer's start
    await this.publishNow().catch(err => { this.log.error('publishing the first metrics failed: %e', err) })
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    this.shutdown.abort()
    clearTimeout(this.publishTimer)
    clearTimeout(this.welcomeTimer)
    this.welcomeTimer = undefined
    this.checkTask?.stop()
    const pubsub = this.components.libp2p.services.pubsub
    pubsub.removeEventListener('subscription-change', this.onSubscriptionChange)
    pubsub.topicValidators.delete(this.topic)
    try { pubsub.unsubscribe(this.topic) } catch {}
    await this.rounds
  }

  // ----- reads

  latest (name: string): Metric[] {
    const now = Date.now()
    const out: Metric[] = []
    for (const { metric } of this.metrics.get(name)?.values() ?? []) {
      if (metric.valid && metric.expire / NS_PER_MS > now && this.counts(metric.peer)) out.push({ ...metric })
    }
    return out.sort((a, b) => a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0)
  }

  names (): string[] {
    const out: string[] = []
    for (const [name, byPeer] of this.metrics) {
      if ([...byPeer.keys()].some(p => this.counts(p))) out.push(name)
    }
    return out.sort()
  }

  peerset (): string[] {
    const peers = new Set(this.latest('ping').map(m => m.peer))
    if (this.started) peers.add(this.self)
    return [...peers].sort()
  }

  peerInfo (peer: string): PeerInfo | undefined {
    const entry = this.metrics.get('ping')?.get(peer)
    if (entry == null || !this.counts(peer)) return undefined
    try {
      const v = JSON.parse(entry.metric.value) as { peer_name?: unknown, ipfs_addresses?: unknown }
      return {
        peer_name: typeof v.peer_name === 'string' ? v.peer_name : '',
        addresses: Array.isArray(v.ipfs_addresses) ? v.ipfs_addresses.filter((a): a is string => typeof a === 'string') : []
      }
    } catch {
      return undefined
    }
  }

  lost (): LostPeer[] {
    const out: LostPeer[] = []
    for (const [peer, entry] of this.metrics.get('ping') ?? []) {
      if (peer === this.self || entry.expiredAt == null || !this.counts(peer)) continue
      const info = this.peerInfo(peer)
      out.push({ peer, since: new Date(entry.expiredAt).toISOString(), peer_name: info?.peer_name ?? '', addresses: info?.addresses ?? [] })
    }
    return out.sort((a, b) => a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0)
  }

  forgetLost (peer: string): boolean {
    if (this.metrics.get('ping')?.get(peer)?.expiredAt == null || peer === this.self) return false
    for (const [name, byPeer] of this.metrics) {
      if (byPeer.has(peer)) this.forget(name, byPeer, peer)
      if (byPeer.size === 0) this.metrics.delete(name)
    }
    this.log('forgot lost peer %s', peer)
    return true
  }

  alerts (): Alert[] { return this.alertList.map(a => ({ ...a })) }

  onAlert (listener: (alert: Alert) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  rejected (): Record<string, number> { return Object.fromEntries(this.dropped) }

  private counts (peer: string): boolean {
    return peer === this.self || this.init.isMember == null || this.init.isMember(peer)
  }

  // ----- publishing

  async publishNow (): Promise<void> {
    await this.enqueue(this.informers)
  }

  private async enqueue (informers: Informer[]): Promise<void> {
    const round = this.rounds.then(async () => { await this.publishRound(informers) })
    this.rounds = round.catch(() => {})
    await round
  }

  /** Asks the informers, stores their metrics as this peer's, and gossips them in one signed message. */
  private async publishRound (informers: Informer[]): Promise<void> {
    if (!this.started) return
    const signal = this.shutdown.signal
    const results = await Promise.all(informers.map(async (inf): Promise<Metric | undefined> => {
      try {
        const r = await inf.get({ signal: AbortSignal.any([signal, AbortSignal.timeout(inf.ttlMs / 2)]), peer: this.self })
        if (typeof r.value !== 'string' || r.value.length > MAX_VALUE_LENGTH) throw new Error(`value is not a string of at most ${MAX_VALUE_LENGTH} characters`)
        if (!Number.isSafeInteger(r.weight)) throw new Error(`weight ${r.weight} is not an integer`)
        this.due.set(inf, Date.now() + inf.ttlMs / 2)
        if (r.valid === false) return undefined
        const now = Date.now()
        return {
          name: inf.name, peer: this.self, value: r.value, expire: (now + inf.ttlMs) * NS_PER_MS, valid: true,
          weight: r.weight, partitionable: inf.partitionable ?? false, received_at: now * NS_PER_MS
        }
      } catch (err) {
        this.due.set(inf, Date.now() + inf.ttlMs / 4)
        if (!signal.aborted) this.log.error('informer %s failed (retrying in %d ms): %e', inf.name, inf.ttlMs / 4, err)
        return undefined
      }
    }))
    if (!this.started) return
    this.schedule()
    const metrics = results.filter((m): m is Metric => m != null)
    if (metrics.length === 0) return
    for (const m of metrics) this.store(m)
    for (const batch of batches(metrics)) {
      const body = encodeMetricsBody({ cluster: this.init.cluster, peer: this.self, metrics: batch })
      const signature = await this.components.privateKey.sign(metricsSigningPayload(body))
      if (!this.started) return
      this.components.libp2p.services.pubsub.publish(this.topic, this.secret.seal(encodeMetricsMessage(body, signature))).catch(err => {
        this.log('publishing %d metrics failed: %e', batch.length, err)
      })
    }
  }

  /** A peer subscribed to the metrics topic: it gets this peer's metrics now rather than at the next round. */
  private readonly onSubscriptionChange = (evt: CustomEvent<SubscriptionChangeData>): void => {
    if (!this.started || this.welcomeTimer != null) return
    if (!evt.detail.subscriptions.some(s => s.topic === this.topic && s.subscribe)) return
    const wait = Math.max(WELCOME_DELAY_MS, this.lastWelcome + WELCOME_INTERVAL_MS - Date.now())
    this.welcomeTimer = setTimeout(() => {
      this.welcomeTimer = undefined
      this.lastWelcome = Date.now()
      this.publishNow().catch(err => { this.log.error('publishing metrics for a new subscriber failed: %e', err) })
    }, wait)
    this.welcomeTimer.unref()
  }

  /** One timer for the earliest due informer; informers due soon after it go in the same message. */
  private schedule (): void {
    clearTimeout(this.publishTimer)
    if (!this.started) return
    let next = Infinity
    for (const inf of this.informers) next = Math.min(next, this.due.get(inf) ?? 0)
    this.publishTimer = setTimeout(() => {
      const now = Date.now()
      const due = this.informers.filter(inf => (this.due.get(inf) ?? 0) <= now + inf.ttlMs / 20)
      this.enqueue(due).catch(err => { this.log.error('publishing metrics failed: %e', err) })
    }, Math.max(0, next - Date.now()))
    this.publishTimer.unref()
  }

  // ----- receiving

  private drop (reason: string, result: TopicValidatorResult, detail: string): TopicValidatorResult {
    const n = (this.dropped.get(reason) ?? 0) + 1
    this.dropped.set(reason, n)
    if (n === 1) this.log.error('dropped a metrics message (%s): %s; further ones are only counted', reason, detail)
    return result
  }

  private async validate (msg: Message): Promise<TopicValidatorResult> {
    const { Accept, Ignore, Reject } = TopicValidatorResult
    if (!this.started) return Ignore
    let data: Uint8Array
    try {
      data = this.secret.open(msg.data)
    } catch (err) {
      return this.drop('secret', Reject, (err as Error).message)
    }
    let m
    try {
      m = decodeMetricsMessage(data)
    } catch (err) {
      return this.drop('malformed', Reject, (err as Error).message)
    }
    if (m.cluster !== this.init.cluster) return this.drop('cluster', Reject, `from cluster "${m.cluster}"`)
    const other = m.metrics.find(x => x.peer !== m.peer)
    if (other != null) return this.drop('peer', Reject, `${m.peer} sent a metric of ${other.peer}`)
    let key
    try {
      key = peerIdFromString(m.peer).publicKey
    } catch {
      return this.drop('malformed', Reject, `"${m.peer}" is not a peer id`)
    }
    if (key == null || !(await key.verify(metricsSigningPayload(m.body), m.signature))) {
      return this.drop('signature', Reject, `metrics claiming to be from ${m.peer}`)
    }
    // Only the peer itself may publish its metrics: another peer replaying them could keep a dead peer alive.
    if (msg.type === 'signed' && msg.from.toString() !== m.peer) {
      return this.drop('sender', Reject, `${msg.from.toString()} published metrics of ${m.peer}`)
    }
    const now = Date.now()
    const far = m.metrics.find(x => x.expire / NS_PER_MS > now + MAX_METRIC_TTL_MS + CLOCK_SKEW_MS)
    if (far != null) return this.drop('ttl', Reject, `${m.peer}'s "${far.name}" expires ${new Date(far.expire / NS_PER_MS).toISOString()}`)
    if (m.peer === this.self) return Ignore
    if (!this.counts(m.peer)) return this.drop('member', Ignore, `${m.peer} is not a member`)
    if (!this.namesOf.has(m.peer) && this.namesOf.size >= this.maxPeers && this.init.isTrusted?.(m.peer) !== true && !this.sweep(now)) {
      return this.drop('full', Ignore, `metrics of ${this.maxPeers} peers are held already; ${m.peer}'s are not kept`)
    }
    let stored = 0
    let refused = 0
    for (const metric of m.metrics) {
      if (metric.expire / NS_PER_MS <= now) continue
      const outcome = this.store({ ...metric, received_at: now * NS_PER_MS })
      if (outcome === 'stored') stored++
      else if (outcome === 'names') refused++
    }
    if (refused > 0) this.drop('names', Ignore, `${m.peer} published more than ${this.maxNamesPerPeer} metric names; ${refused} not kept`)
    if (stored === 0) return refused > 0 ? Ignore : this.drop('stale', Ignore, `metrics of ${m.peer} expired or older than those held`)
    return Accept
  }

  /**
   * Keeps the metric unless a live one expiring later is already held (out-of-order delivery), or it would be
   * one name too many for its peer.
   */
  private store (metric: Metric): 'stored' | 'older' | 'names' {
    let names = this.namesOf.get(metric.peer)
    // this peer's own informers are its config's business
    if (metric.peer !== this.self && names?.has(metric.name) !== true && (names?.size ?? 0) >= this.maxNamesPerPeer) return 'names'
    let byPeer = this.metrics.get(metric.name)
    if (byPeer == null) {
      byPeer = new Map()
      this.metrics.set(metric.name, byPeer)
    }
    const old = byPeer.get(metric.peer)
    if (old != null && !old.expired && old.metric.expire > metric.expire) return 'older'
    byPeer.set(metric.peer, { metric, expired: false })
    if (names == null) {
      names = new Set()
      this.namesOf.set(metric.peer, names)
    }
    names.add(metric.name)
    return 'stored'
  }

  private forget (name: string, byPeer: Map<string, Entry>, peer: string): void {
    byPeer.delete(peer)
    const names = this.namesOf.get(peer)
    names?.delete(name)
    if (names?.size === 0) this.namesOf.delete(peer)
  }

  /**
   * With the table full: forgets the peers whose metrics have all expired (kept only to show a lost peer's last
   * values, and that it is lost), at most once a second. Whether there is room now.
   */
  private sweep (now: number): boolean {
    if (now - this.lastSweep < SWEEP_INTERVAL_MS) return false
    this.lastSweep = now
    const live = new Set<string>()
    for (const byPeer of this.metrics.values()) {
      for (const [peer, entry] of byPeer) if (entry.metric.expire / NS_PER_MS > now) live.add(peer)
    }
    for (const [name, byPeer] of this.metrics) {
      for (const peer of byPeer.keys()) if (!live.has(peer) && peer !== this.self) this.forget(name, byPeer, peer)
      if (byPeer.size === 0) this.metrics.delete(name)
    }
    return this.namesOf.size < this.maxPeers
  }

  // ----- expiry

  /** Turns metrics past their expiry into alerts (once per expiry) and forgets long-expired ones. */
  private check (): void {
    const now = Date.now()
    for (const [name, byPeer] of this.metrics) {
      for (const [peer, entry] of byPeer) {
        if (!this.counts(peer)) { this.forget(name, byPeer, peer); continue }
        const expire = entry.metric.expire / NS_PER_MS
        if (expire > now) continue
        if (!entry.expired) {
          entry.expired = true
          entry.expiredAt = now
          if (entry.metric.valid) {
            entry.metric = { ...entry.metric, valid: false }
            this.raise({ ...entry.metric, triggered_at: new Date(now).toISOString() })
          }
        } else if (now - expire > this.retainExpiredMs && name !== 'ping') {
          this.forget(name, byPeer, peer)
        }
      }
      if (byPeer.size === 0) this.metrics.delete(name)
    }
  }

  private raise (alert: Alert): void {
    this.log('metric %s of %s expired', alert.name, alert.peer)
    this.alertList.unshift(alert)
    if (this.alertList.length > this.maxAlerts) this.alertList.length = this.maxAlerts
    for (const l of this.listeners) {
      try { l({ ...alert }) } catch (err) { this.log.error('alert listener failed: %e', err) }
    }
  }
}

/** Splits metrics into messages that respect the size and count limits. */
function batches (metrics: Metric[]): Metric[][] {
  const out: Metric[][] = []
  let current: Metric[] = []
  let size = 0
  const budget = MAX_MESSAGE_BYTES - 16 * 1024 // room for the envelope and the signature
  for (const m of metrics) {
    const n = JSON.stringify(m).length * 3 // worst case UTF-8
    if (current.length > 0 && (size + n > budget || current.length >= MAX_METRICS_PER_MESSAGE)) {
      out.push(current)
      current = []
      size = 0
    }
    current.push(m)
    size += n
  }
  if (current.length > 0) out.push(current)
  return out
}
