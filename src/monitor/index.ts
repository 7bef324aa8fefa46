// The peer monitor (IPFS Cluster's pubsubmon): every peer gossips its informers' metrics on
// `cairn/<cluster>/metrics`, each with a TTL; the peerset is the set of peers with a live `ping` (DESIGN §5).
import { PubsubMonitor } from './monitor.js'
import type { AbortOptions, Monitor } from '../components.js'
import type { ClusterSecret } from '../secret.js'
import type { GossipSub } from '@libp2p/gossipsub'
import type { ComponentLogger, Libp2p, PrivateKey } from '@libp2p/interface'

export { pingInformer, freespaceInformer, offerInformer, pinqueueInformer, tagInformers } from './informers.js'
export type { PingInformerInit, FreespaceInformerInit, PinqueueInformerInit } from './informers.js'
export { MAX_METRIC_TTL_MS, metricsTopic } from './protocol.js'

/** IPFS Cluster's Metric and Alert (wire types, src/types/wire.ts); the Monitor contract is in src/components.ts. */
export type { Metric, Alert, Monitor, PeerInfo, LostPeer } from '../components.js'

export interface InformerOptions extends AbortOptions {
  /** The peer id of the monitor asking (the ping informer puts it in `ipfs_id`). */
  peer?: string
}

export interface InformerResult {
  value: string
  /** An integer; allocators sort by it, highest first. */
  weight: number
  /** false: nothing is published this round (IPFS Cluster discards invalid metrics). Default true. */
  valid?: boolean
}

export interface Informer {
  /** Metric name, e.g. 'freespace' or 'tag:group'. */
  name: string
  /** Published every ttl/2, or ttl/4 after an error. At most MAX_METRIC_TTL_MS. */
  ttlMs: number
  partitionable?: boolean
  get(options?: InformerOptions): Promise<InformerResult>
}

export interface MonitorInit {
  /** Cluster name: part of the topic and of every signed message. */
  cluster: string
  /** This peer's name, for the built-in ping informer added when `informers` has no `ping`. */
  peername: string
  /** Seals gossip payloads like the pinset does (default: none). */
  secret?: ClusterSecret
  informers: Informer[]
  /** Whose metrics count (default: everyone's). This peer always counts. */
  isMember?: (peerId: string) => boolean
  /** How often expired metrics are turned into alerts (default 5 s). */
  checkIntervalMs?: number
  /** How long expired metrics but a lost peer's ping are kept (default 1 h). */
  retainExpiredMs?: number
  /** Alerts kept, newest first (default 1000). */
  maxAlerts?: number
  /**
   * Peers whose metrics are kept (default 5000). Anyone can sign metrics with a key of their own: past this, a
   * peer whose metrics have all expired makes room, and otherwise a new peer's metrics are dropped (`full`).
   * Trusted peers are let in past it (the config names them, so they are few).
   */
  maxPeers?: number
  /** Peers the cluster's config trusts: a table full of other identities never keeps them out. */
  isTrusted?: (peerId: string) => boolean
  /** Metric names kept per peer (default 32; a peer publishes ping, freespace, pinqueue and its tags). */
  maxNamesPerPeer?: number
}

export interface MonitorComponents {
  libp2p: Libp2p<{ pubsub: GossipSub }>
  privateKey: PrivateKey
  logger: ComponentLogger
}

export function createMonitor (init: MonitorInit, components: MonitorComponents): Monitor {
  return new PubsubMonitor(init, components)
}
