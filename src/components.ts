// All contracts in one small file (the shape of IPFS Cluster's ipfscluster.go). Each component folder under
// src/ implements one of these; src/peer.ts wires them together. JSON field names are IPFS Cluster's.
import type { CID } from 'multiformats/cid'

export interface AbortOptions { signal?: AbortSignal }

export interface Startable {
  start(): Promise<void>
  stop(): Promise<void>
}

// ---------------------------------------------------------------------------------------------------------
// Data model (wire-compatible with IPFS Cluster 1.x, see ../shared/reference/ipfs-cluster.md)

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
}

/** The options a user may set on a pin (query parameters of POST /pins/{cid}, or CLI flags). */
export interface PinOptions {
  name?: string
  mode?: PinMode
  replication_factor_min?: number
  replication_factor_max?: number
  shard_size?: number
  user_allocations?: string[]
  expire_at?: string
  metadata?: Record<string, string>
  origins?: string[]
  pin_update?: string
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

// ---------------------------------------------------------------------------------------------------------
// Components

/** Embedded IPFS (Helia over the peer's libp2p host). CIDs are multiformats CIDs here. */
export interface IpfsConnector extends Startable {
  /** Pin locally, fetching missing blocks over bitswap. depth -1 = recursive, 0 = direct. */
  pin(cid: CID, options?: AbortOptions & { depth?: number, onProgress?: (blocks: number) => void, maxRepoBytes?: number }): Promise<void>
  unpin(cid: CID, options?: AbortOptions): Promise<void>
  isPinned(cid: CID, options?: AbortOptions): Promise<boolean>
  /** Whether the pin with this pinset key (cidKey) is held here, from memory (false while stopped). */
  holdsPin(key: string): boolean
  /** Every CID pinned locally (roots only). */
  pinLs(options?: AbortOptions): AsyncIterable<CID>
  hasBlock(cid: CID, options?: AbortOptions): Promise<boolean>
  /** Bytes held by the blockstore. */
  repoSize(options?: AbortOptions): Promise<number>
}

export interface PinsetChange {
  /** Pins added or whose options changed. */
  added: Pin[]
  /** CIDs removed from the pinset. */
  removed: string[]
  /** true when the change was written by this peer. */
  local: boolean
}

export interface PinsetStats {
  pins: number
  envelopes: number
  envelopes_rejected: number
  /**
   * Rejections by reason: signature, untrusted, sender, malformed, cluster, checkpoint, secret, rate (over a
   * sender's gossip rate), unpromised (a catch-up envelope not offered or not asked for), frame (a catch-up frame
   * too long for its kind).
   */
  rejected_by_reason: Record<string, number>
  /** Envelopes received again (gossip echoes, replays): ignored, not counted as rejected. */
  envelopes_duplicate: number
  /** Envelopes from other peers applied one by one (not through a checkpoint). */
  envelopes_applied: number
  checkpoints_loaded: number
  checkpoints_made: number
  /** Payload bytes received and sent over catch-up streams. */
  sync_bytes_in: number
  sync_bytes_out: number
  /** The newest checkpoint this peer holds. */
  checkpoint?: CheckpointInfo
}

export interface CheckpointInfo {
  author: string
  created: string
  version_vector: Record<string, number>
  bytes: number
}

/** The shared pinset (Yjs over gossipsub + catch-up streams). */
export interface Pinset extends Startable {
  get(cid: string): Pin | undefined
  has(cid: string): boolean
  size(): number
  list(): IterableIterator<Pin>
  /** Adds or replaces pins. Durable (fsynced) and broadcast before it resolves. */
  put(pins: Pin[], options?: AbortOptions): Promise<void>
  /** Removes pins. Durable and broadcast before it resolves. */
  remove(cids: string[], options?: AbortOptions): Promise<void>
  /** Called after every change, local or remote. Returns an unsubscribe function. */
  onChange(listener: (change: PinsetChange) => void): () => void
  /** author -> highest contiguous seq applied. */
  versionVector(): Record<string, number>
  /** Pull what a peer has and we lack. Resolves with the number of envelopes applied. */
  syncWith(peerId: string, options?: AbortOptions): Promise<number>
  stats(): PinsetStats
  /** Makes a signed checkpoint now (trusted peers only; undefined elsewhere). */
  checkpoint(options?: AbortOptions): Promise<CheckpointInfo | undefined>
}

export interface StatusFilter {
  statuses?: Set<TrackerStatus>
}

/** Reconciles the pinset with what the local IPFS holds. */
export interface PinTracker extends Startable {
  /** This peer's status of one CID. */
  status(cid: string, options?: AbortOptions): Promise<PinInfo>
  /** This peer's status of every CID in the pinset (and of in-flight unpins). */
  statusAll(options?: AbortOptions): AsyncIterable<PinInfo>
  /** Re-queue a CID in an error state. */
  recover(cid: string, options?: AbortOptions): Promise<PinInfo>
  /** Re-queue every CID in an error state; yields those re-queued. */
  recoverAll(options?: AbortOptions): AsyncIterable<PinInfo>
  queueLength(): number
}

/** A file or directory entry of an add request, as parsed from Kubo-style multipart. */
export interface AddEntry {
  /** Relative path, '/'-separated, as given in the multipart filename. */
  path: string
  /** A file's bytes; undefined for a directory or a symlink. */
  content?: AsyncIterable<Uint8Array>
  /** A symlink's target, stored as it is (a UnixFS symlink, never followed). */
  link?: string
}

export interface AddParams extends PinOptions {
  format?: 'unixfs' | 'car'
  cid_version?: 0 | 1
  raw_leaves?: boolean
  wrap_with_directory?: boolean
  /** Chunk size in bytes (from chunker=size-N). */
  chunk_size?: number
  /** Do not pin the root after adding. */
  no_pin?: boolean
  /** Report progress lines ({name, bytes}). */
  progress?: boolean
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

/** What the REST API needs from the cluster: the orchestrator in src/cluster.ts implements it. */
export interface ClusterAPI {
  id(options?: AbortOptions): Promise<IDInfo>
  /** The peerset's IDs, then those of lost peers (`error`: lostPeerError, with their last name and addresses). */
  peers(options?: AbortOptions): AsyncIterable<IDInfo>
  /** Validates options, writes the pin into the pinset (durable), returns it as committed. */
  pin(cid: string, options: PinOptions, opts?: AbortOptions): Promise<Pin>
  /** Removes from the pinset; NotInPinsetError if absent. Returns the pin as it was. */
  unpin(cid: string, opts?: AbortOptions): Promise<Pin>
  /** The pinset (GET /allocations), optionally filtered by type. */
  allocations(types?: Set<PinType>): Iterable<Pin>
  /** NotInPinsetError if absent. */
  allocation(cid: string): Pin
  status(cid: string, options?: AbortOptions & { local?: boolean }): Promise<GlobalPinInfo>
  statusAll(options?: AbortOptions & { local?: boolean, filter?: Set<TrackerStatus>, cids?: string[] }): AsyncIterable<GlobalPinInfo>
  recover(cid: string, options?: AbortOptions & { local?: boolean }): Promise<GlobalPinInfo>
  recoverAll(options?: AbortOptions & { local?: boolean }): AsyncIterable<GlobalPinInfo>
  /** Imports entries (or one CAR), pins the root unless no_pin; yields AddedOutput lines. */
  add(entries: AsyncIterable<AddEntry>, params: AddParams, options?: AbortOptions): AsyncIterable<AddedOutput>
  /** Names of the metrics known (GET /monitor/metrics). */
  metricNames(): string[]
  /** The latest valid metric of each peer for a name (GET /monitor/metrics/{name}). */
  metrics(name: string): MetricInfo[]
  /** Expired-metric alerts, newest first (GET /health/alerts). */
  alerts(): AlertInfo[]
  /** Whether this peer may write the pinset (false on followers). */
  readonly writable: boolean
  /** Who is connected to whom (GET /health/graph). */
  graph(options?: AbortOptions): Promise<ConnectGraph>
  /**
   * DELETE /peers/{id}: re-allocates every pin allocated to the peer to other peers (as repin on peer loss),
   * and has every peer forget it if it is lost; UnknownPeerError when it is neither in the peerset, nor lost,
   * nor in any allocation. Resolves with the pins moved.
   */
  vacate(peerId: string, options?: AbortOptions): Promise<number>
  /**
   * POST /ipfs/gc: repo GC on every peer of the peerset (local: this one only), each deleting the blocks none of
   * its pins holds. A follower runs it only from its own API, and a peer's failure is its entry's `error`.
   */
  repoGC(options?: AbortOptions & { local?: boolean }): Promise<GlobalRepoGC>
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

/** What the REST API, CLI and metrics need from the reprovider. */
export interface ReprovideAPI {
  status(): ReprovideStatus
  /** Starts a cycle now (or joins the running one); resolves when it ends. */
  reprovideNow(options?: AbortOptions & { onProgress?: (done: number, total: number) => void }): Promise<ReprovideStatus>
}
