// Prometheus /metrics for one peer (DESIGN §10): pins by tracker status, queue, pinset and envelope counters,
// reprovide progress, bitswap traffic, connections, API latency and process figures. Every value is read from
// its component when scraped; only API latencies are recorded as they happen.
import type { PeerBlockstoreStats } from '../ipfs/peer-blockstore.js'
import { createAppServer, type AppServer } from '../api/server.js'
import { parseListen } from '../api/rest/index.js'
import { NotStartedError } from '../errors.js'
import { VERSION } from '../version.js'
import { TRACKER_STATUSES } from '../components.js'
import { CONTENT_TYPE, LATENCY_BUCKETS, PeerRegistry, type Sample } from './registry.js'
import type { AbortOptions, Pinset, PinTracker, ReprovideAPI, ReprovideStatus, Startable, TrackerStatus } from '../components.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'
import type { BitswapTraffic, CacheStats, GcStats } from '../ipfs/index.js'
import type { AuditStats } from '../audit/index.js'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Histogram } from 'prom-client'

export { PeerRegistry, LATENCY_BUCKETS, CONTENT_TYPE } from './registry.js'
export type { Sample, Labels, Collect } from './registry.js'

export interface MetricsInit {
  /** host:port of the /metrics listener (config `metrics.listen`, default 127.0.0.1:8888; port 0 = any). */
  listen: string
  peerId?: string
  peername?: string
  cluster?: string
  /**
   * Pins by status need a pass over the whole pinset: its result is reused for this long (default 1 s), or
   * for 5 times as long as the last pass took, whichever is longer (a pass over 1M pins takes seconds).
   */
  statusCacheMs?: number
}

export interface MetricsComponents {
  pinset: Pick<Pinset, 'size' | 'stats'>
  tracker: Pick<PinTracker, 'statusAll' | 'queueLength'>
  /** Connections by direction. */
  libp2p?: { getConnections(): Array<{ direction: 'inbound' | 'outbound' }> }
  /** Bytes held by the blockstore. */
  repoSize?: (options?: AbortOptions) => Promise<number>
  /** Bitswap traffic of the IPFS node (undefined: not counted, its @helia/bitswap not recognised). */
  bitswap?: () => BitswapTraffic | undefined
  /** The reprovider, when this peer has one (it may be built after this component). */
  reprovider?: () => ReprovideAPI | undefined
  /** Repo GC counters of the IPFS node. */
  gcStats?: () => GcStats
  /** The bounded cache of the IPFS node. */
  cacheStats?: () => CacheStats
  /** The value log's figures. */
  storeStats?: () => PeerBlockstoreStats | undefined
  /** Pinned and garbage bytes as the last repo stat or verify found them (undefined: none yet). */
  repoAccount?: () => { pinned: number, garbage: number } | undefined
  /** Bytes the peer folder takes on disk. */
  diskBytes?: () => Promise<number>
  /** Storage audits and trust states (src/audit/). */
  audit?: () => AuditStats
  logger?: ComponentLogger
}

/** Records one finished HTTP request: method, route pattern (not the raw path), status and duration. */
export type ObserveRequest = (method: string, route: string, status: number, seconds: number) => void

export interface MetricsServer extends Startable {
  /** The bound address (the real port when listening on port 0). */
  address(): { host: string, port: number }
  /** The request hook of one HTTP API ('rest', 'pinsvc', 'gateway'), for its createApp options. */
  observer(api: string): ObserveRequest
  /** The exposition text, as served at /metrics. */
  render(): Promise<string>
}

export function createMetricsServer (init: MetricsInit, components: MetricsComponents): MetricsServer {
  return new PeerMetrics(init, components)
}

interface StatusCache { at: number, ttl: number, counts: Promise<Map<TrackerStatus, number>> }

/** Rejection reasons always exported (as 0 until one happens), so alerts on them need no absent() dance. */
const REJECT_REASONS = ['signature', 'untrusted', 'sender', 'malformed', 'cluster', 'checkpoint', 'secret', 'rate', 'unpromised', 'frame']

class PeerMetrics implements MetricsServer {
  private readonly registry = new PeerRegistry()
  private readonly latency: Histogram
  private readonly log?: Logger
  private readonly reported = new Set<string>()
  private readonly observers = new Map<string, ObserveRequest>()
  private server?: AppServer
  private statusCache?: StatusCache

  constructor (private readonly init: MetricsInit, private readonly components: MetricsComponents) {
    this.log = components.logger?.forComponent('cairn:metrics')
    const r = this.registry
    const c = components

    r.gauge({
      name: 'cairn_info',
      help: 'Always 1; the labels say which peer and version this is.',
      labelNames: ['version', 'peer_id', 'peername', 'cluster'],
      collect: () => [{ labels: { version: VERSION, peer_id: init.peerId ?? '', peername: init.peername ?? '', cluster: init.cluster ?? '' }, value: 1 }]
    })

    // ----- tracker
    r.gauge({
      name: 'cairn_tracker_pins',
      help: 'Pins of the pinset by their status on this peer (remote = allocated to other peers).',
      labelNames: ['status'],
      collect: async () => {
        const counts = await this.statusCounts()
        return TRACKER_STATUSES.filter(s => s !== 'undefined').map(status => ({ labels: { status }, value: counts.get(status) ?? 0 }))
      }
    })
    r.gauge({ name: 'cairn_tracker_queue_length', help: 'Pin and unpin operations waiting to run on this peer.', collect: () => c.tracker.queueLength() })

    // ----- pinset
    const stats = (): ReturnType<Pinset['stats']> => c.pinset.stats()
    r.gauge({ name: 'cairn_pinset_pins', help: 'Pins in the shared pinset.', collect: () => c.pinset.size() })
    r.gauge({ name: 'cairn_pinset_envelopes', help: 'Pinset envelopes this peer has, applied or covered by a checkpoint.', collect: () => stats().envelopes })
    r.counter({
      name: 'cairn_pinset_envelopes_rejected_total',
      help: 'Pinset envelopes and notices dropped, by reason (see the README).',
      labelNames: ['reason'],
      collect: () => {
        const byReason = { ...Object.fromEntries(REJECT_REASONS.map(r => [r, 0])), ...stats().rejected_by_reason }
        return Object.entries(byReason).map(([reason, value]) => ({ labels: { reason }, value }))
      }
    })
    r.counter({ name: 'cairn_pinset_envelopes_applied_total', help: 'Envelopes from other peers applied one by one.', collect: () => stats().envelopes_applied })
    r.counter({ name: 'cairn_pinset_envelopes_duplicate_total', help: 'Envelopes received again (echoes, replays) and ignored.', collect: () => stats().envelopes_duplicate })
    r.counter({
      name: 'cairn_pinset_checkpoints_total',
      help: 'Signed pinset checkpoints loaded from other peers or made by this peer.',
      labelNames: ['event'],
      collect: () => {
        const s = stats()
        return [{ labels: { event: 'loaded' }, value: s.checkpoints_loaded }, { labels: { event: 'made' }, value: s.checkpoints_made }]
      }
    })
    r.counter({
      name: 'cairn_pinset_sync_bytes_total',
      help: 'Payload bytes of pinset catch-up streams.',
      labelNames: ['direction'],
      collect: () => {
        const s = stats()
        return [{ labels: { direction: 'in' }, value: s.sync_bytes_in }, { labels: { direction: 'out' }, value: s.sync_bytes_out }]
      }
    })

    // ----- reprovider (absent until a reprovider exists on this peer)
    const rp = (pick: (s: ReprovideStatus) => number) => (): number | undefined => {
      const status = this.reprovideStatus()
      return status == null ? undefined : pick(status)
    }
    const seconds = (iso: string): number => iso === '' ? 0 : Date.parse(iso) / 1000
    r.gauge({ name: 'cairn_reprovide_running', help: '1 while a reprovide cycle runs.', collect: rp(s => s.running ? 1 : 0) })
    r.gauge({ name: 'cairn_reprovide_cycle_done', help: 'CIDs announced so far in the running cycle.', collect: rp(s => s.cycle_done) })
    r.gauge({ name: 'cairn_reprovide_cycle_cids', help: 'CIDs to announce in the running cycle.', collect: rp(s => s.cycle_total) })
    r.gauge({ name: 'cairn_reprovide_last_cycle_duration_seconds', help: 'How long the last finished cycle took.', collect: rp(s => s.last_cycle_duration_ms / 1000) })
    r.gauge({ name: 'cairn_reprovide_last_cycle_cids', help: 'CIDs announced in the last finished cycle.', collect: rp(s => s.last_cycle_cids) })
    r.gauge({ name: 'cairn_reprovide_last_cycle_finished_timestamp_seconds', help: 'When the last cycle finished (0 = never).', collect: rp(s => seconds(s.last_cycle_finished)) })
    r.gauge({ name: 'cairn_reprovide_next_cycle_timestamp_seconds', help: 'When the next cycle is due (0 = not scheduled).', collect: rp(s => seconds(s.next_cycle_at)) })
    r.gauge({ name: 'cairn_reprovide_interval_seconds', help: 'The reprovide interval.', collect: rp(s => s.interval_ms / 1000) })
    r.counter({ name: 'cairn_reprovide_cids_announced_total', help: 'CIDs announced to the DHT.', collect: rp(s => s.cids_announced_total) })
    r.counter({ name: 'cairn_reprovide_fast_provides_total', help: 'Roots announced as soon as they were pinned.', collect: rp(s => s.fast_provides_total) })
    r.counter({ name: 'cairn_reprovide_failures_total', help: 'Announcements that failed.', collect: rp(s => s.failures_total) })
    r.counter({ name: 'cairn_reprovide_cycles_total', help: 'Reprovide cycles finished.', collect: rp(s => s.cycles_total) })
    r.counter({ name: 'cairn_reprovide_cycles_overrun_total', help: 'Cycles that did not finish within their interval.', collect: rp(s => s.cycles_overrun_total) })

    // ----- storage audits
    if (c.audit != null) {
      const audit = c.audit
      r.counter({
        name: 'cairn_audit_total',
        help: 'Audits of one pin on one peer run by this peer, by result (pass, fail, skip: nothing could be checked).',
        labelNames: ['result'],
        collect: () => Object.entries(audit().audits).map(([result, value]) => ({ labels: { result }, value }))
      })
      r.gauge({
        name: 'cairn_audit_peers',
        help: 'Peers of the peerset by how this peer judges their storage (trusted, proven, probation, failed; unknown on a peer that does not audit).',
        labelNames: ['state'],
        collect: () => Object.entries(audit().peers).map(([state, value]) => ({ labels: { state }, value }))
      })
      r.gauge({
        name: 'cairn_pins_under_replicated',
        help: 'Pins whose allocations hold fewer trusted or proven peers than their replication_factor_min (as of the last audit round).',
        collect: () => audit().under_replicated
      })
    }

    // ----- ipfs and network
    if (c.gcStats != null) {
      const gc = c.gcStats
      r.counter({ name: 'cairn_repo_gc_runs_total', help: 'Repo GCs that ran to the end (scheduled, or POST /ipfs/gc).', collect: () => gc().runs })
      r.counter({ name: 'cairn_repo_gc_failures_total', help: 'Repo GCs that failed (the repo busy past the wait, a stop, a store error).', collect: () => gc().failures })
      r.counter({ name: 'cairn_repo_gc_blocks_deleted_total', help: 'Blocks deleted by repo GCs.', collect: () => gc().blocks_deleted })
      r.gauge({ name: 'cairn_repo_gc_last_run_timestamp_seconds', help: 'When the last repo GC ended (0 = none since start).', collect: () => gc().last_finished / 1000 })
      r.gauge({ name: 'cairn_repo_gc_last_run_duration_seconds', help: 'How long the last repo GC took.', collect: () => gc().last_duration_ms / 1000 })
      r.counter({ name: 'cairn_repo_gc_bytes_reclaimed_total', help: 'Bytes repo GCs gave back (garbage deleted, cache evicted past the high watermark).', collect: () => gc().bytes_reclaimed })
    }
    if (c.cacheStats != null) {
      const cache = c.cacheStats
      r.gauge({ name: 'cairn_repo_cache_bytes', help: 'Bytes of blocks held as cache (fetched for reads, not pins).', collect: () => cache().bytes })
      r.gauge({ name: 'cairn_repo_cache_max_bytes', help: 'gateway.cache_max: cache bytes past which the least recently used are evicted.', collect: () => cache().max_bytes })
      r.counter({ name: 'cairn_repo_cache_evicted_bytes_total', help: 'Bytes evicted from the cache.', collect: () => cache().evicted_bytes })
    }
    if (c.storeStats != null) {
      const store = c.storeStats
      r.gauge({ name: 'cairn_repo_segments', help: 'Segment files of the value log (where block bytes are kept).', collect: () => store()?.segments })
      r.gauge({ name: 'cairn_repo_segment_bytes', help: 'Bytes of the value log\'s segment files: live blocks and dead ones not compacted yet.', collect: () => store()?.segmentBytes })
      r.counter({ name: 'cairn_repo_compacted_bytes_total', help: 'Segment bytes compaction gave back to the disk.', collect: () => store()?.compactedBytes ?? 0 })
      r.gauge({ name: 'cairn_repo_unmigrated_bytes', help: 'Bytes of blocks still in the earlier level layout, being moved to the value log.', collect: () => store()?.unmigratedBytes })
    }
    if (c.repoAccount != null) {
      const account = c.repoAccount
      r.gauge({ name: 'cairn_repo_pinned_bytes', help: 'Bytes of blocks held for pins, as the last repo stat or verify counted them.', collect: () => account()?.pinned })
      r.gauge({ name: 'cairn_repo_garbage_bytes', help: 'Bytes of blocks held that are neither pinned nor cache, as the last repo stat or verify counted them.', collect: () => account()?.garbage })
    }
    if (c.diskBytes != null) {
      const disk = c.diskBytes
      r.gauge({ name: 'cairn_repo_disk_bytes', help: 'Bytes the peer folder takes on disk (as du).', collect: async () => await disk() })
    }
    if (c.repoSize != null) {
      const repoSize = c.repoSize
      r.gauge({ name: 'cairn_ipfs_repo_bytes', help: 'Bytes of blocks held by this peer.', collect: async () => await repoSize({ signal: AbortSignal.timeout(5000) }) })
    }
    const traffic = (pick: (t: BitswapTraffic) => [number, number]) => (): Sample[] | undefined => {
      const counted = c.bitswap?.()
      if (counted == null) return undefined
      const [inbound, outbound] = pick(counted)
      return [{ labels: { direction: 'in' }, value: inbound }, { labels: { direction: 'out' }, value: outbound }]
    }
    r.counter({ name: 'cairn_bitswap_bytes_total', help: 'Block bytes received and sent over bitswap.', labelNames: ['direction'], collect: traffic(t => [t.bytesIn, t.bytesOut]) })
    r.counter({ name: 'cairn_bitswap_blocks_total', help: 'Blocks received and sent over bitswap.', labelNames: ['direction'], collect: traffic(t => [t.blocksIn, t.blocksOut]) })
    if (c.libp2p != null) {
      const libp2p = c.libp2p
      r.gauge({
        name: 'cairn_libp2p_connections',
        help: 'Open libp2p connections by direction.',
        labelNames: ['direction'],
        collect: () => {
          let inbound = 0
          let outbound = 0
          for (const conn of libp2p.getConnections()) {
            if (conn.direction === 'inbound') inbound++
            else outbound++
          }
          return [{ labels: { direction: 'inbound' }, value: inbound }, { labels: { direction: 'outbound' }, value: outbound }]
        }
      })
    }

    // ----- APIs
    this.latency = r.histogram({
      name: 'cairn_api_request_duration_seconds',
      help: 'HTTP API requests by API, method, route pattern and status.',
      labelNames: ['api', 'method', 'route', 'status'],
      buckets: LATENCY_BUCKETS
    })

    // ----- process (Prometheus' standard names, shared by every peer of the process)
    r.gauge({ name: 'process_resident_memory_bytes', help: 'Resident memory size in bytes.', collect: () => process.memoryUsage.rss() })
    r.counter({
      name: 'process_cpu_seconds_total',
      help: 'Total user and system CPU time spent in seconds.',
      collect: () => {
        const { user, system } = process.cpuUsage()
        return (user + system) / 1e6
      }
    })
    r.gauge({ name: 'process_start_time_seconds', help: 'Start time of the process since unix epoch in seconds.', collect: () => Math.round(performance.timeOrigin) / 1000 })
    r.gauge({ name: 'nodejs_heap_used_bytes', help: 'V8 heap in use, in bytes.', collect: () => process.memoryUsage().heapUsed })
  }

  observer (api: string): ObserveRequest {
    let observe = this.observers.get(api)
    if (observe == null) {
      observe = (method, route, status, seconds) => { this.latency.observe({ api, method, route, status: String(status) }, seconds) }
      this.observers.set(api, observe)
    }
    return observe
  }

  async render (): Promise<string> {
    return await this.registry.render((name, err) => {
      // once per family, so that a broken collector does not flood the log at every scrape
      if (this.reported.has(name)) return
      this.reported.add(name)
      this.log?.error('collecting %s failed: %e', name, err)
    })
  }

  private reprovideStatus (): ReprovideStatus | undefined {
    try {
      return this.components.reprovider?.()?.status()
    } catch {
      // a reprovider getter that throws before its component started
      return undefined
    }
  }

  /** Pins by status, from one pass over the tracker's statuses, shared by concurrent scrapes and reused for a while. */
  private async statusCounts (): Promise<Map<TrackerStatus, number>> {
    const cached = this.statusCache
    if (cached != null && (cached.at === 0 || Date.now() - cached.at < cached.ttl)) return await cached.counts
    const minTtl = this.init.statusCacheMs ?? 1000
    // at = 0 while the pass runs: every scrape meanwhile waits for it
    const entry: StatusCache = { at: 0, ttl: minTtl, counts: Promise.resolve(new Map()) }
    entry.counts = (async () => {
      const counts = new Map<TrackerStatus, number>()
      const started = Date.now()
      try {
        for await (const info of this.components.tracker.statusAll({ signal: AbortSignal.timeout(60_000) })) {
          counts.set(info.status, (counts.get(info.status) ?? 0) + 1)
        }
      } catch (err) {
        // do not keep a failed pass: the next scrape tries again
        if (this.statusCache === entry) this.statusCache = undefined
        throw err
      }
      entry.ttl = Math.max(minTtl, 5 * (Date.now() - started))
      entry.at = Date.now()
      return counts
    })()
    this.statusCache = entry
    return await entry.counts
  }

  async start (): Promise<void> {
    if (this.server != null) return
    const { host, port } = parseListen(this.init.listen)
    const server = createAppServer({ host, port, name: 'the metrics endpoint' }, {
      log: this.log,
      open: async () => ({ app: (req, res) => { void this.handle(req, res) } })
    })
    await server.start()
    this.server = server
  }

  async stop (): Promise<void> {
    await this.server?.stop()
    this.server = undefined
  }

  address (): { host: string, port: number } {
    if (this.server == null) throw new NotStartedError('the metrics endpoint is not listening')
    return this.server.address()
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]
    if (path !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: metrics are at /metrics\n')
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n')
      return
    }
    try {
      const body = await this.render()
      res.writeHead(200, { 'Content-Type': CONTENT_TYPE, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) })
      res.end(req.method === 'HEAD' ? undefined : body)
    } catch (err) {
      this.log?.error('rendering /metrics failed: %e', err)
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' })
      res.end('rendering the metrics failed\n')
    }
  }
}
