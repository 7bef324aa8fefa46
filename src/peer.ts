// One cairn peer: builds the components in dependency order and runs them. Several peers can run in one
// process (tests): nothing here is global.
import { heavyRequests } from './api/common.js'
import { createRestApi, type RestApi } from './api/rest/index.js'
import { createCluster, type Cluster } from './cluster/index.js'
import { createIpfs, type IpfsNode } from './ipfs/index.js'
import { createLogger, type CairnLogger } from './logger.js'
import { watchClusterConfig, type ClusterConfigWatch } from './config/watch.js'
import { createMonitor, freespaceInformer, metricsTopic, offerInformer, pingInformer, pinqueueInformer, tagInformers, type Monitor } from './monitor/index.js'
import { statfs } from 'node:fs/promises'
import { createPinset, pinsetTopic } from './pinset/index.js'
import { clusterSecret } from './secret.js'
import { createTracker } from './tracker/index.js'
import { createPinningApi, peerAddresses, type PinningApi } from './api/pinsvc/index.js'
import { createMetricsServer, type MetricsServer } from './metrics/index.js'
import { createGateway, type Gateway } from './gateway/index.js'
import type { ReprovideAPI } from './components.js'
import { bootstrapNotice, createReprovider, type Reprovider } from './reprovider/index.js'
import { createAuditor, offlineBlocks, type AuditorAPI } from './audit/index.js'
import { createDiskReserve } from './storage/reserve.js'
import { diskUsage } from './storage/disk.js'
import { multiaddr } from '@multiformats/multiaddr'
import type { AbortOptions, Pinset, PinTracker, Startable } from './components.js'
import type { Libp2p } from '@libp2p/interface'
import type { LoadedConfig } from './config/index.js'

export interface PeerInit {
  config: LoadedConfig
  logger?: CairnLogger
  /** Test knobs: how often the pinset resyncs with peers (default 30 s). */
  syncIntervalMs?: number
  /** How often the shared cluster config is re-read for trust changes (default 60 s). */
  configRefreshMs?: number
  /** Pinset knobs (benchmarks, tests): take checkpoints when far behind (default true), and the threshold. */
  acceptCheckpoints?: boolean
  checkpointThreshold?: number
  /** How often expired pins are looked for (default 10 s). */
  expiryIntervalMs?: number
  /** How long an add without a pin keeps repo GC off after it ends (default 30 s). */
  noPinHoldMs?: number
  /** A connected stranger is identified again after this, then with doubling gaps (default 5 s; tests). */
  strangerRetryMs?: number
}

export interface CairnPeer extends Startable {
  readonly id: string
  readonly config: LoadedConfig
  readonly logger: CairnLogger
  readonly ipfs: IpfsNode
  /** Available after start(). */
  readonly pinset: Pinset
  readonly tracker: PinTracker
  readonly cluster: Cluster
  readonly monitor: Monitor
  /** Storage audits and the trust they earn (available after start()). */
  readonly auditor: AuditorAPI
  /** The REST API's bound address (port resolved when configured as 0). */
  restAddress(): { host: string, port: number }
  /** The swarm multiaddrs, with /p2p/<id>. */
  swarmAddresses(): string[]
  // [slot: service accessors] one line per service (reprovider, pinsvcAddress(), gatewayAddress(), metricsAddress())
  /** The DHT reprovider (available after start()). */
  readonly reprovider: ReprovideAPI
  /** The HTTP gateway's bound address; throws when gateway.enabled is false. */
  gatewayAddress(): { host: string, port: number }
  /** The pinning service API's bound address; throws when pinsvc.enabled is false. */
  pinsvcAddress(): { host: string, port: number }
  /** The /metrics listener's bound address; throws when metrics.enabled is false. */
  metricsAddress(): { host: string, port: number }
}

export function createPeer (init: PeerInit): CairnPeer {
  const { config } = init
  const id = config.identity.peerId.toString()
  const logger = init.logger ?? createLogger({ level: config.peer.log.level, peer: config.peer.peername })
  const trusted = new Set(config.cluster.trusted_peers)
  const isTrusted = (peer: string): boolean => peer === id || trusted.has(peer)
  const isWriter = (): boolean => trusted.has(id)
  const dht = config.cluster.dht
  const secret = clusterSecret(config.cluster.secret)
  // A closed cluster admits by config: the secret's holders, or the trusted peers and listed followers
  const followers = new Set(config.cluster.followers)
  const isMember = (peer: string): boolean => followers.size === 0 || isTrusted(peer) || followers.has(peer)
  const isClosed = (): boolean => secret.enabled || followers.size > 0

  const ipfs = createIpfs({
    dataDir: config.path,
    host: {
      privateKey: config.identity.privateKey,
      listen: config.peer.swarm.listen,
      announce: config.peer.swarm.announce,
      bootstrap: config.cluster.bootstrap,
      dht: { protocol: dht.protocol, clientMode: dht.client_mode, keepPrivateAddresses: dht.keep_private_addresses },
      scoredTopics: [pinsetTopic(config.cluster.name), metricsTopic(config.cluster.name)],
      logger
    },
    cacheMaxBytes: config.peer.gateway.cache_max,
    storageMax: config.peer.monitor.storage_max,
    segmentBytes: config.peer.disk.segment_bytes
  }, { logger })

  const reserve = createDiskReserve({ path: config.path, bytes: config.peer.disk.reserve_bytes }, { logger })
  let pinset: Pinset | undefined
  let tracker: PinTracker | undefined
  let cluster: Cluster | undefined
  let monitor: Monitor | undefined
  let auditor: AuditorAPI | undefined
  let rest: RestApi | undefined
  let reprovider: Reprovider | undefined
  let pinsvc: PinningApi | undefined
  let metrics: MetricsServer | undefined
  let gateway: Gateway | undefined
  const started: Startable[] = []
  // Maintainers add or remove trusted peers by editing the shared config: re-read it and apply at once.
  const watcher: Startable & { watch?: ClusterConfigWatch } = {
    async start () {
      this.watch = watchClusterConfig({
        source: config.peer.cluster_config,
        peerDir: config.path,
        intervalMs: init.configRefreshMs,
        current: config.cluster,
        report: line => { logger.pino.warn(line) },
        onChange: next => {
          const before = [...trusted].sort().join(',')
          trusted.clear()
          for (const p of next.trusted_peers) trusted.add(p)
          const listed = [...followers].sort().join(',')
          followers.clear()
          for (const p of next.followers) followers.add(p)
          if ([...followers].sort().join(',') !== listed) {
            logger.pino.info({ followers: next.followers }, next.followers.length > 0 ? 'followers changed: only listed followers take part' : 'followers list emptied: the cluster is open')
          }
          if ([...trusted].sort().join(',') !== before) {
            logger.pino.info({ trusted_peers: next.trusted_peers }, `trusted peers changed; this peer is now ${isWriter() ? 'trusted' : 'a follower'}`)
          }
        }
      })
    },
    async stop () { await this.watch?.stop() }
  }
  const need = <T>(v: T | undefined, what: string): T => {
    if (v == null) throw new Error(`${what} is available after start()`)
    return v
  }

  return {
    id,
    config,
    logger,
    ipfs,
    get pinset () { return need(pinset, 'pinset') },
    get tracker () { return need(tracker, 'tracker') },
    get cluster () { return need(cluster, 'cluster') },
    get monitor () { return need(monitor, 'monitor') },
    get auditor () { return need(auditor, 'the auditor') },
    get reprovider () { return need(reprovider, 'the reprovider') },
    restAddress: () => need(rest, 'the REST API').address(),
    pinsvcAddress: () => need(pinsvc, 'the pinning service API (pinsvc.enabled)').address(),
    gatewayAddress: () => need(gateway, 'the gateway (gateway.enabled)').address(),
    swarmAddresses: () => ipfs.libp2p.getMultiaddrs().map(String),
    metricsAddress: () => {
      if (!config.peer.metrics.enabled) throw new Error('the metrics endpoint is off (metrics.enabled is false)')
      return need(metrics, 'the metrics endpoint').address()
    },

    async start () {
      try {
        // before any database opens: room for them to replay their logs on a full disk
        await reserve.prepare()
        await ipfs.start()
        started.push(ipfs)
        const libp2p = ipfs.libp2p
        pinset = createPinset({
          cluster: config.cluster.name,
          dataDir: config.path,
          isTrusted,
          isWriter,
          secret,
          acceptCheckpoints: init.acceptCheckpoints,
          checkpointThreshold: init.checkpointThreshold,
          syncIntervalMs: init.syncIntervalMs ?? config.peer.pinset.sync_interval_ms
        }, { libp2p, privateKey: config.identity.privateKey, logger })
        await pinset.start()
        started.push(pinset)
        await watcher.start()
        started.push(watcher)
        const t = config.peer.tracker
        tracker = createTracker({
          peername: config.peer.peername,
          concurrentPins: t.concurrent_pins,
          maxQueueSize: t.max_queue_size,
          maxRetries: t.max_retries,
          retryBaseMs: t.retry_base_ms,
          retryMaxMs: t.retry_max_ms,
          pinTimeoutMs: t.pin_timeout_ms,
          recoverIntervalMs: t.recover_interval_ms,
          storageMax: config.peer.monitor.storage_max
        }, {
          ipfs,
          pinset,
          peerId: id,
          logger,
          dialOrigins: async (origins, options) => { await dialAll(libp2p, origins, options) },
          // the cluster (made below) keeps the blocks of pins allocated here that are not pinned yet
          collectGarbage: async options => { if (cluster != null) await cluster.repoGC({ ...options, local: true }) }
        })
        await tracker.start()
        started.push(tracker)
        monitor = createMonitor({
          cluster: config.cluster.name,
          peername: config.peer.peername,
          secret,
          isTrusted,
          isMember,
          checkIntervalMs: Math.min(5000, Math.ceil(config.peer.monitor.metric_ttl_ms / 2)),
          informers: [
            pingInformer({ peername: config.peer.peername, addresses: () => libp2p.getMultiaddrs().map(String), ttlMs: config.peer.monitor.metric_ttl_ms }),
            freespaceInformer({
              storageMax: config.peer.monitor.storage_max,
              used: async o => await ipfs.quotaBytes(o),
              diskFree: async () => { const fs = await statfs(config.path); return Number(fs.bavail) * Number(fs.bsize) },
              ttlMs: config.peer.monitor.metric_ttl_ms
            }),
            offerInformer({
              storageMax: config.peer.monitor.storage_max,
              diskSize: async () => { const fs = await statfs(config.path); return Number(fs.blocks) * Number(fs.bsize) },
              ttlMs: config.peer.monitor.metric_ttl_ms
            }),
            pinqueueInformer({ queueLength: () => tracker!.queueLength(), ttlMs: config.peer.monitor.metric_ttl_ms }),
            ...tagInformers(config.peer.monitor.tags, config.peer.monitor.metric_ttl_ms)
          ]
        }, { libp2p, privateKey: config.identity.privateKey, logger })
        await monitor.start()
        started.push(monitor)
        const a = config.peer.audit
        auditor = createAuditor({
          intervalMs: a.interval_ms,
          graceMs: a.grace_ms,
          timeoutMs: a.timeout_ms,
          pinsPerRound: a.pins_per_round,
          provenAfter: a.proven_after,
          probationPins: a.probation_pins,
          cooldownMs: a.cooldown_ms,
          cluster: config.cluster.name, secret, isTrusted, isWriter, isClosed
        }, {
          libp2p, logger, pinset, monitor, blocks: offlineBlocks(ipfs.helia.blockstore), verifier: ipfs.helia, datastore: ipfs.helia.datastore
        })
        await auditor.start()
        started.push(auditor)
        cluster = createCluster({
          cluster: config.cluster.name,
          peername: config.peer.peername,
          replicationFactorMin: config.cluster.replication_factor_min,
          replicationFactorMax: config.cluster.replication_factor_max,
          isTrusted,
          isMember,
          secret,
          isWriter,
          expiryIntervalMs: init.expiryIntervalMs,
          noPinHoldMs: init.noPinHoldMs,
          strangerRetryMs: init.strangerRetryMs,
          gcIntervalMs: config.peer.gc.interval_ms,
          spreadRebalanceIntervalMs: config.cluster.spread_rebalance_interval_ms,
          storageMax: config.peer.monitor.storage_max
        }, { pinset, tracker, monitor, trust: auditor, importer: ipfs, libp2p, logger })
        await cluster.start()
        started.push(cluster)
        // one cap on whole-pinset lists for both APIs: they share the event loop and the pinset
        const heavy = heavyRequests(config.peer.rest.max_heavy_requests)
        rest = createRestApi({ listen: config.peer.rest.listen, basicAuth: config.peer.rest.basic_auth_credentials }, { cluster, logger, observe: (...a) => metrics?.observer('rest')(...a), reprovider: { status: () => need(reprovider, 'the reprovider').status(), reprovideNow: async o => await need(reprovider, 'the reprovider').reprovideNow(o) }, repo: { stat: async o => await ipfs.repoStat(o), verify: async o => await ipfs.repoVerify(o) }, heavy, gateway: () => gateway?.address(), bitswap: () => ipfs.bitswapStats() })
        await rest.start()
        started.push(rest)
        // [slot: services] each HTTP service / reprovider starts here, pushed onto `started`, in this order:
        // [slot: reprovider]
        const r = config.cluster.reprovide
        const lonely = bootstrapNotice({ profile: dht.profile, dhtBootstrap: dht.bootstrap, clusterBootstrap: config.cluster.bootstrap, self: id })
        if (lonely != null) logger.pino.warn(lonely)
        reprovider = createReprovider({
          strategy: r.strategy, intervalMs: r.interval_ms, validityMs: r.validity_ms, fastProvide: r.fast_provide, concurrency: r.concurrency,
          batchSize: r.batch_size, sendTimeoutMs: r.send_timeout_ms, lookupTimeoutMs: r.lookup_timeout_ms, retries: r.retries,
          retryBackoffMs: r.retry_backoff_ms, retryIntervalMs: r.retry_interval_ms, protocol: dht.protocol, bootstrap: dht.bootstrap
        }, {
          libp2p, logger, datastore: ipfs.helia.datastore, getBlock: async (c, o) => await ipfs.getBlock(c, o), pinLs: o => ipfs.pinLs(o), pinnedBlocks: o => ipfs.pinnedBlocks(o),
          onPinChange: l => ipfs.onPinChange(l), warn: line => { logger.pino.warn(line) }
        })
        await reprovider.start()
        started.push(reprovider)
        // [slot: pinsvc]
        if (config.peer.pinsvc.enabled) {
          pinsvc = createPinningApi({ listen: config.peer.pinsvc.listen, dataDir: config.path, basicAuth: config.peer.rest.basic_auth_credentials }, {
            logger, heavy, cluster, pinset, peerId: id, addressesOf: peerAddresses(libp2p, p => monitor?.peerInfo(p)?.addresses)
          })
          await pinsvc.start()
          started.push(pinsvc)
        }
        // [slot: gateway]
        if (config.peer.gateway.enabled) {
          gateway = createGateway({ listen: config.peer.gateway.listen }, { ipfs, pinset, logger })
          await gateway.start()
          started.push(gateway)
        }
        // [slot: metrics]
        if (config.peer.metrics.enabled) {
          const self = this as { reprovider?: ReprovideAPI }
          metrics = createMetricsServer({ listen: config.peer.metrics.listen, peerId: id, peername: config.peer.peername, cluster: config.cluster.name }, {
            pinset, tracker, libp2p, repoSize: async o => await ipfs.repoSize(o), gcStats: () => ipfs.gcStats(), cacheStats: () => ipfs.cacheStats(), storeStats: () => ipfs.storeStats(), repoAccount: () => ipfs.lastRepoAccount(), diskBytes: async () => await diskUsage(config.path), audit: () => need(auditor, 'the auditor').stats(), bitswap: () => ipfs.bitswapStats(), reprovider: () => self.reprovider, logger
          })
          await metrics.start()
          started.push(metrics)
        }
        await reserve.start()
        started.push(reserve)
        if (config.peer.disk.check_on_start) {
          const check = selfCheck(ipfs, logger)
          await check.start()
          started.push(check)
        }
        const exposed = exposedWithoutAuth(config)
        if (exposed != null) logger.pino.warn(exposed)
      } catch (err) {
        await this.stop()
        throw err
      }
    },

    async stop () {
      // Reverse order: stop taking requests first, close the stores last.
      while (started.length > 0) {
        const c = started.pop()!
        try { await c.stop() } catch (err) { logger.pino.error({ err }, 'stopping a component failed') }
      }
    }
  }
}

/** A warning when the REST API listens beyond loopback with no credentials (anyone on the network could pin). */
export function exposedWithoutAuth (config: LoadedConfig): string | undefined {
  if (config.peer.rest.basic_auth_credentials != null) return undefined
  const beyondLoopback = (listen: string): boolean => {
    const host = listen.replace(/:\d+$/, '').replace(/^\[|\]$/g, '')
    return !(host === 'localhost' || host === '::1' || host.startsWith('127.'))
  }
  const exposed = [
    ...(beyondLoopback(config.peer.rest.listen) ? [`the REST API listens on ${config.peer.rest.listen}`] : []),
    ...(config.peer.pinsvc.enabled && beyondLoopback(config.peer.pinsvc.listen) ? [`the pinning API listens on ${config.peer.pinsvc.listen}`] : [])
  ]
  if (exposed.length === 0) return undefined
  return `WARNING: ${exposed.join(' and ')}, beyond loopback, without basic_auth_credentials: ` +
    'anyone who can reach it can pin, unpin and add. Set rest.basic_auth_credentials in peer.json (or CAIRN_REST_BASIC_AUTH_CREDENTIALS).'
}

/** Dials each multiaddr (with /p2p/<id>) at most 5 s; the first failure is thrown after all were tried. */
async function dialAll (libp2p: Libp2p, addrs: string[], options: AbortOptions = {}): Promise<void> {
  const results = await Promise.allSettled(addrs.map(async a => {
    const signal = AbortSignal.any([AbortSignal.timeout(5000), ...(options.signal != null ? [options.signal] : [])])
    await libp2p.dial(multiaddr(a), { signal })
  }))
  const failed = results.find(r => r.status === 'rejected')
  if (failed != null) throw (failed as PromiseRejectedResult).reason
}

/** Attempts of the start-up self-check while missing blocks cannot be had (no peer holding them connected yet). */
const SELF_CHECK_ATTEMPTS = 5
const SELF_CHECK_RETRY_MS = 30_000

/**
 * The start-up self-check in the background (IpfsNode.repairMissing): what a store lost while the peer was off
 * is fetched again from the peers that hold it, retried a few times while some of it cannot be had.
 */
function selfCheck (ipfs: IpfsNode, logger: CairnLogger): Startable {
  const stopping = new AbortController()
  let running: Promise<void> | undefined
  return {
    async start () {
      running = (async () => {
        for (let attempt = 1; attempt <= SELF_CHECK_ATTEMPTS; attempt++) {
          const r = await ipfs.repairMissing({ signal: stopping.signal })
          if (r.missing > 0) logger.pino.warn(`self-check: ${r.missing} of the ${r.checked} blocks the pins hold were missing from the store; ${r.refetched} fetched again${r.failed > 0 ? `, ${r.failed} not found yet` : ''}`)
          if (r.failed === 0) return
          await new Promise(resolve => setTimeout(resolve, SELF_CHECK_RETRY_MS * attempt).unref())
          stopping.signal.throwIfAborted()
        }
      })().catch(err => { if (!stopping.signal.aborted) logger.pino.error({ err }, 'the start-up self-check failed') })
    },
    async stop () {
      stopping.abort()
      await running
    }
  }
}
