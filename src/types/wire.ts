// Wire types: the JSON shapes cairn shares with IPFS Cluster 1.x (REST API bodies, RPC answers, the pins stored
// in the pinset), see ../shared/reference/ipfs-cluster.md. Field names are IPFS Cluster's. Contracts between
// components (who calls whom) are in src/components.ts; nothing here does I/O.

export type PinType = 'pin' | 'meta-pin' | 'clusterdag-pin' | 'shard-pin'
export type PinMode = 'recursive' | 'direct'

/** The zero time: IPFS Cluster's encoding of "never" for expire_at. */
export const ZERO_TIME = '0001-01-01T00:00:00Z'

export interface Pin {
  cid: string
  type: PinType
  name: string
  mode: PinMode
  replication_factor_min: number
  replication_factor_max: number
  /** [] when pinned everywhere (replication -1). */
  allocations: string[]
  shard_size: number
  max_depth: number
  reference: string | null
  expire_at: string
  metadata: Record<string, string> | null
  origins: string[]
  pin_update: string | null
  user_allocations: string[] | null
  timestamp: string
  /**
   * A spread pin (cairn's, absent on others): every allocated peer holds the directories and file roots, and
   * each file's DAG is on the peers of its partition only (docs/DESIGN.md §5). IPFS Cluster clients ignore it.
   */
  spread?: true
  spread_map?: SpreadMap
}

/** Who holds which partition of a spread pin, and how big each is. */
export interface SpreadMap {
  /** Bytes of each partition's files; its length is the partition count. */
  partition_bytes: number[]
  /** Bytes of the directories and file roots every allocated peer holds. */
  skeleton_bytes: number
  /** Peer id -> the partitions it holds (sorted). Its keys are the pin's allocations. */
  shares: Record<string, number[]>
  /** CID of the layout index (src/spread/index-block.ts): the skeleton's blocks, so peers read no file to find it. */
  layout?: string
}

export type TrackerStatus =
  | 'pin_queued' | 'pinning' | 'pinned' | 'pin_error'
  | 'unpin_queued' | 'unpinning' | 'unpinned' | 'unpin_error'
  | 'remote' | 'sharded' | 'unexpectedly_unpinned' | 'cluster_error' | 'undefined'

export const TRACKER_STATUSES: readonly TrackerStatus[] = [
  'pin_queued', 'pinning', 'pinned', 'pin_error', 'unpin_queued', 'unpinning', 'unpinned', 'unpin_error',
  'remote', 'sharded', 'unexpectedly_unpinned', 'cluster_error', 'undefined'
]

export interface PinInfoShort {
  peername: string
  ipfs_peer_id?: string
  ipfs_peer_addresses?: string[]
  status: TrackerStatus
  timestamp: string
  error: string
  attempt_count: number
  priority_pin: boolean
  /**
   * cairn: of a spread pin, the partitions this peer holds now, fetched in full (its previous share while it
   * fetches a new one); IPFS Cluster clients ignore it.
   */
  share_held?: number[]
}

/** One peer's view of one CID. */
export interface PinInfo extends PinInfoShort {
  cid: string
  name: string
  peer: string
  allocations: string[]
  origins: string[]
  created: string
  metadata: Record<string, string> | null
}

export interface GlobalPinInfo {
  cid: string
  name: string
  allocations: string[]
  origins: string[]
  created: string
  metadata: Record<string, string> | null
  peer_map: Record<string, PinInfoShort>
}

export interface IPFSID {
  id: string
  addresses: string[]
  error: string
}

/** GET /id and each line of GET /peers. */
export interface IDInfo {
  id: string
  addresses: string[]
  cluster_peers: string[]
  cluster_peers_addresses: string[]
  version: string
  commit: string
  rpc_protocol_version: string
  error: string
  ipfs: IPFSID
  peername: string
  /** cairn extension: whether this peer is in trusted_peers. */
  trusted?: boolean
  /** cairn extension, in GET /peers: how the answering peer judges this peer's storage (src/audit/). */
  trust?: TrustState
  /** cairn extension, in GET /peers: its audits by the answering peer (`last`: ISO time, '' when never). */
  audits?: { passed: number, failed: number, last: string, error: string }
}

/**
 * How a trusted peer judges another's storage: trusted (in trusted_peers), proven (passed its audits, or admitted
 * by a closed cluster's config), probation (its copies do not count yet), failed (failed an audit, left out
 * for a cool-down), unknown (the answering peer does not audit: a follower).
 */
export type TrustState = 'trusted' | 'proven' | 'probation' | 'failed' | 'unknown'

/** IPFS Cluster's Metric: expire (set by the publisher: now + TTL) and received_at (set by the receiver) in unix ns. */
export interface MetricInfo {
  name: string
  peer: string
  value: string
  expire: number
  valid: boolean
  weight: number
  partitionable: boolean
  received_at: number
}

export interface AlertInfo extends MetricInfo {
  triggered_at: string
}

/** GET /health/graph (IPFS Cluster's ConnectGraph). Links map a peer to the peers it is connected to. */
export interface ConnectGraph {
  cluster_id: string
  id_to_peername: Record<string, string>
  ipfs_links: Record<string, string[]>
  cluster_links: Record<string, string[]>
  cluster_trust_links: Record<string, boolean>
  cluster_to_ipfs: Record<string, string>
}

/** One line of POST /add output. */
export interface AddedOutput {
  name: string
  cid: string
  bytes?: number
  size?: number
  allocations?: string[]
}

/**
 * The `error` of a lost peer (its ping expired, it has not come back nor been removed): on its `ID` in
 * GET /peers, and as its `cluster_error` entry in the status of each pin allocated to it. IPFS Cluster's wire
 * types carry it unchanged; clients may match the prefix.
 */
export const LOST_PEER_ERROR = 'peer lost since'

export function lostPeerError (since: string): string {
  return `${LOST_PEER_ERROR} ${since}`
}

export function isLostPeerError (error: string | undefined): boolean {
  return error?.startsWith(`${LOST_PEER_ERROR} `) === true
}

/** IPFS Cluster's RepoGC: the blocks one peer's GC deleted (`error` only when it failed). */
export interface RepoGC {
  peer: string
  peername: string
  keys: Array<{ key: string, error?: string }>
  error?: string
}

/** IPFS Cluster's GlobalRepoGC, by peer id. */
export interface GlobalRepoGC {
  peer_map: Record<string, RepoGC>
}

/**
 * What one peer's store holds (GET /ipfs/repo/stat, `cairn repo stat`): every held block is pinned (it has a pin
 * record), cache (fetched for a read) or garbage (neither: the next repo GC deletes it). Bytes are block payloads;
 * `disk_bytes` is what the peer's IPFS folder takes on disk, overhead and space not given back yet included.
 */
export interface RepoStat {
  peer: string
  blocks: number
  held_bytes: number
  pinned_bytes: number
  cache_bytes: number
  garbage_bytes: number
  disk_bytes: number
  /** monitor.storage_max (0: no bound) and gateway.cache_max. */
  storage_max: number
  cache_max: number
  gc_runs: number
  gc_bytes_reclaimed: number
  cache_evicted_bytes: number
  /** The value log: segment files and their bytes (live records and dead ones not compacted yet). */
  segments: number
  segment_bytes: number
  /** Segment bytes compaction gave back since start. */
  compacted_bytes: number
  /** Bytes still in the earlier level block layout, being moved to the value log. */
  unmigrated_bytes: number
}

/** A block `repo verify` found wrong: corrupt (its bytes do not hash to its CID) or missing (a pin's, not held). */
export interface RepoVerifyProblem {
  /** The block, as a raw-codec CIDv1 (a store knows multihashes only). */
  cid: string
  problem: 'corrupt' | 'missing'
  /** Held for a local pin. */
  pinned: boolean
  /** What was done: a pin's block fetched again from other peers, another block deleted. */
  action: 'refetched' | 'deleted' | 'none'
  error?: string
}

/** POST /ipfs/repo/verify, `cairn repo verify`: every held block re-hashed, every pin's block looked for. */
export interface RepoVerify {
  peer: string
  blocks_checked: number
  problems: RepoVerifyProblem[]
}

/** The DHT reprovider's progress (GET /reprovide/status, `cairn reprovide status`, Prometheus /metrics). */
export interface ReprovideStatus {
  strategy: 'roots' | 'entities' | 'pinned'
  interval_ms: number
  validity_ms: number
  /** A cycle is running now. */
  running: boolean
  /** Position in the running cycle (CIDs done of total), when running. */
  cycle_done: number
  cycle_total: number
  /** ISO times; '' when never. */
  last_cycle_started: string
  last_cycle_finished: string
  last_cycle_duration_ms: number
  /** CIDs announced in the last finished cycle. */
  last_cycle_cids: number
  next_cycle_at: string
  /** Counters since this peer started. */
  cids_announced_total: number
  fast_provides_total: number
  failures_total: number
  /** Cycles that did not finish within their interval (reported, not skipped). */
  cycles_overrun_total: number
  cycles_total: number
}
