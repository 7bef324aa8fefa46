// The orchestrator (IPFS Cluster's Cluster): pin/unpin/add flows over the pinset, global status across peers
// over RPC. request -> validate -> allocate -> pinset (durable, gossiped) -> every peer's tracker -> ipfs.
// Each job is a module of this folder (membership, peer info, pins, status, expiry, rebalance, repo GC) or of
// src/adder/; ./cluster.ts only wires them.
import { ClusterOrchestrator } from './cluster.js'
import type { AuditorAPI } from '../audit/index.js'
import type { AbortOptions, ClusterAPI, Importer, Monitor, Pinset, PinTracker, Startable } from '../components.js'
import type { ClusterSecret } from '../secret.js'
import type { ComponentLogger, Libp2p } from '@libp2p/interface'

export interface ClusterInit {
  cluster: string
  peername: string
  replicationFactorMin: number
  replicationFactorMax: number
  isTrusted: (peerId: string) => boolean
  /** false on followers: the API refuses writes. Asked on every write, so trust changes apply at once. */
  isWriter: () => boolean
  /** How long to wait for a peer's answer (default 15 s, as IPFS Cluster). */
  rpcTimeoutMs?: number
  /** Re-allocate the pins of a peer whose ping expired (default true; IPFS Cluster's default is off). */
  repinOnPeerLoss?: boolean
  /** How often expired pins (expire_at passed) are looked for (default 10 s). */
  expiryIntervalMs?: number
  /** How long an add without a pin keeps repo GC off after it ends (default 30 s; its pin comes next). */
  noPinHoldMs?: number
  /** A connected stranger is identified again after this, then with doubling gaps, 5 times (default 5 s). */
  strangerRetryMs?: number
  /** A repo GC this often when the pinset changed since the last one (default 0: none). */
  gcIntervalMs?: number
  /** This peer's monitor.storage_max (0: the disk's free space), for the room a spread version uploaded here leaves. */
  storageMax?: number
  /** How often spread pins are evened out across the peers (default 10 min; 0: never). */
  spreadRebalanceIntervalMs?: number
  secret?: ClusterSecret
  /**
   * Whether a peer may take part at all (default: anyone). A closed cluster's allow-list: others are neither in
   * the peerset nor answered over RPC. Asked at every use, so a config change applies at once.
   */
  isMember?: (peerId: string) => boolean
}

export interface ClusterComponents {
  /** Peers with a live ping, their names and metrics. */
  monitor: Pick<Monitor, 'peerset' | 'peerInfo' | 'names' | 'latest' | 'alerts' | 'onAlert' | 'lost' | 'forgetLost' | 'publishNow'>
  pinset: Pinset
  tracker: PinTracker
  importer: Importer
  libp2p: Libp2p
  logger: ComponentLogger
  /**
   * Whose copies count toward replication_factor_min (src/audit/); without it every peer's do. Peers on
   * probation get extra copies only, failed ones none, and a peer that fails an audit has its pins moved.
   */
  trust?: Pick<AuditorAPI, 'trustOf' | 'trialLoad' | 'trialLimit' | 'onFailed' | 'alerts' | 'peerTrust'>
}

export interface Cluster extends ClusterAPI, Startable {
  /** Peers taking part in the cluster now (this one included), by id. */
  peerset(): Promise<string[]>
  /**
   * One check of the spread pins this peer writes (what runs every spread_rebalance_interval_ms): moves
   * partitions to even the peers' shares, make-before-break. Resolves with the pins changed.
   */
  balanceSpread(options?: AbortOptions): Promise<number>
}

export function createCluster (init: ClusterInit, components: ClusterComponents): Cluster {
  return new ClusterOrchestrator(init, components)
}
