// All contracts in one small file (the shape of IPFS Cluster's ipfscluster.go): the interfaces between
// components. Each component folder under src/ implements one of these; src/peer.ts wires them together. The JSON
// shapes they carry (IPFS Cluster's wire types) are in src/types/wire.ts.
import type { GcOptions } from './ipfs/index.js'
import type {
  AlertInfo, ConnectGraph, GlobalPinInfo, GlobalRepoGC, IDInfo, MetricInfo, Pin, PinInfo, PinMode, PinType,
  RepoStat, RepoVerify, ReprovideStatus, TrackerStatus, TrustState, AddedOutput
} from './types/wire.js'
import type { Helia } from '@helia/interface'
import type { CID } from 'multiformats/cid'
import type { PinKey } from './utils/keys.js'

// Modules not yet moved to src/types/wire.ts import the wire types from here.
export * from './types/wire.js'

export interface AbortOptions { signal?: AbortSignal }

/** This peer's share of a spread pin: the pin's partition count and the partitions this peer holds. */
export interface PinShare {
  partitions: number
  mine: number[]
  /** The pin's layout index (spread_map.layout), when it has one. */
  layout?: string
  /** The other peers holding each partition (from the pin's map): a file is asked of one of them first. Not part of the share's identity. */
  holders?: Record<number, string[]>
}

export interface Startable {
  start(): Promise<void>
  stop(): Promise<void>
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
  /** Spread the pin's files across its peers by partition (a UnixFS directory; docs/DESIGN.md §5). */
  spread?: boolean
}

// ---------------------------------------------------------------------------------------------------------
// Components

/** Embedded IPFS (Helia over the peer's libp2p host). CIDs are multiformats CIDs here. */
export interface IpfsConnector extends Startable {
  /** Pin locally, fetching missing blocks over bitswap. depth -1 = recursive, 0 = direct. */
  pin(cid: CID, options?: AbortOptions & { depth?: number, onProgress?: (blocks: number) => void, maxRepoBytes?: number, share?: PinShare }): Promise<void>
  unpin(cid: CID, options?: AbortOptions): Promise<void>
  /** Whether the CID is pinned here: with `share`, as that share of a spread pin; without, as a whole pin. */
  isPinned(cid: CID, options?: AbortOptions & { share?: PinShare }): Promise<boolean>
  /** Whether the pin with this pinset key (pinKey) is held here, from memory (false while stopped). */
  holdsPin(key: PinKey): boolean
  /** The share of a spread pin held here now (the whole of it fetched), from memory; undefined for none or a whole pin. */
  heldShare(key: PinKey): PinShare | undefined
  /** Every CID pinned locally (roots only). */
  pinLs(options?: AbortOptions): AsyncIterable<CID>
  hasBlock(cid: CID, options?: AbortOptions): Promise<boolean>
  /** Bytes held by the blockstore. */
  repoSize(options?: AbortOptions): Promise<number>
  /**
   * Held bytes that count against storage_max when a pin is fetched and for the freespace metric: all but the
   * cache, which gives way to pins (evicted past 90% of storage_max).
   */
  quotaBytes(options?: AbortOptions): Promise<number>
}

/** IPFS Cluster's Metric and Alert under the monitor's names. */
export type Metric = MetricInfo
export type Alert = AlertInfo

/** The peer monitor (src/monitor/): metrics gossiped with a TTL; the peerset is the peers with a live ping. */
export interface PeerInfo {
  peer_name: string
  addresses: string[]
}

/** A peer whose ping expired while this peer watched, and which has not come back nor been removed since. */
export interface LostPeer {
  peer: string
  /** When its ping was found expired (its ping alert's triggered_at), ISO 8601. */
  since: string
  /** From its last ping. */
  peer_name: string
  addresses: string[]
}

export interface Monitor extends Startable {
  /** Latest valid (unexpired) metric of each peer for a name, sorted by peer. */
  latest(name: string): Metric[]
  /** Every metric name held (GET /monitor/metrics), sorted. */
  names(): string[]
  /** Peers with a live `ping` metric (this peer included while started): the cluster peerset. */
  peerset(): string[]
  /** Peer name and addresses from the peer's last ping (also after it expired, until forgotten). */
  peerInfo(peer: string): PeerInfo | undefined
  /**
   * Peers whose ping expired (lost), sorted: kept until a fresh ping (the peer is back) or forgetLost, not
   * forgotten after an hour like other expired metrics (a table full of peers makes room by dropping them).
   */
  lost(): LostPeer[]
  /** Forgets a lost peer (`peers rm`); a live peer is left alone. Whether it was lost. */
  forgetLost(peer: string): boolean
  /** Newest first. */
  alerts(): Alert[]
  /** Called when a peer's metric expires (a ping expiry = peer lost). Returns an unsubscribe function. */
  onAlert(listener: (alert: Alert) => void): () => void
  /** Publishes every informer now (tests; after a config change). */
  publishNow(): Promise<void>
  /** Messages dropped, by reason: secret, malformed, cluster, peer, signature, sender, ttl (rejected); member, stale (ignored). */
  rejected(): Record<string, number>
}

/** Whose copies count (src/audit/): what the allocator, repo GC and sharded adds ask of the auditor. */export interface TrustView {
  trustOf(peer: string): TrustState
  /** Allocations a peer holds now (from the last scan plus what was allocated since); 0 on non-writers. */
  trialLoad(peer: string): number
  /** A peer on probation takes new extra copies only below this load. */
  readonly trialLimit: number
  /** Called when a peer fails an audit, and again at each round while a failed peer still has allocations. */
  onFailed(listener: (peer: string) => void): () => void
}

/** Chooses the peers a pin is allocated to (src/allocator/), from live metrics and the trust in each peer. */
export interface Allocator {
  /** The allocations ([] for replication -1: everywhere); NotEnoughPeersError when too few peers qualify. */
  allocate(request: AllocateRequest): string[]
  /**
   * Who holds which partition of a spread pin, among the candidates by their freespace metrics
   * (src/allocator/spread.ts); NotEnoughSpaceError naming what is missing when the shares do not fit.
   */
  allocateSpread(request: SpreadRequest): Record<string, number[]>
}

export interface SpreadRequest {
  cid: string
  min: number
  max: number
  partitionBytes: number[]
  skeletonBytes: number
  candidates: string[]
  /** The current map (peer -> partitions), kept where it still fits. */
  current?: Readonly<Record<string, number[]>>
  /** Even the load across peers (moving partitions); default: only without a current map. */
  even?: boolean
  /** With even: only when the fullest and emptiest peers' shares (held / room) are further apart than this. */
  evenFrom?: number
  /** Bytes of this pin a peer holds outside the current map (an upload), counted as its room. */
  credit?: ReadonlyMap<string, number>
}

export interface AllocateRequest {
  cid: string
  /** Replication factors resolved from the cluster's defaults: 1 <= min <= max, or both -1 (everywhere). */
  min: number
  max: number
  /** Peers the pin is allocated to now (kept first when re-pinning). */
  current: string[]
  /** user_allocations: preferred peers. */
  priority: string[]
  /** Peers that may take it (the peerset, less those leaving). */
  candidates: string[]
  /** Bytes promised to earlier shards of the same add, by peer: not free any more, though no metric says so yet. */
  debit?: ReadonlyMap<string, number>
}

/** What the cluster needs from the embedded IPFS node to add content and run repo GC (src/ipfs/). */
export interface Importer {
  addEntries(entries: AsyncIterable<AddEntry>, params: AddParams, options?: AbortOptions): AsyncIterable<AddedOutput>
  addCar(bytes: AsyncIterable<Uint8Array>, options?: AbortOptions): AsyncIterable<AddedOutput>
  /** Holds off repo GC (an add's blocks are not pinned until its pin is in the pinset); returns the release. */
  holdBlocks(signal?: AbortSignal): Promise<() => void>
  /** Repo GC (src/ipfs): deletes the blocks no local pin holds and none of `keep` reaches; the CIDs deleted. */
  gc(options?: GcOptions): Promise<CID[]>
  /** Whether held bytes passed the high watermark (90%) of storage_max: the scheduled GC then runs anyway. */
  overHighWatermark?(): boolean
  hasBlock(cid: CID, options?: AbortOptions): Promise<boolean>
  /** Held bytes that count against storage_max (IpfsConnector.quotaBytes). */
  quotaBytes?(options?: AbortOptions): Promise<number>
  /** Whether the pin with this pinset key is held here. */
  holdsPin(key: PinKey): boolean
  /** The local store, for sharded adds. */
  readonly helia: Pick<Helia, 'blockstore' | 'getCodec' | 'getHasher'>
  /** Deletes those of the blocks that no local pin protects; resolves with how many were deleted. */
  dropUnpinned(cids: CID[], options?: AbortOptions): Promise<number>
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
  /** A CID, or a CID string in any form (each form of one CID finds the same pin). */
  get(cid: CID | string): Pin | undefined
  has(cid: CID | string): boolean
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
  status(key: PinKey, options?: AbortOptions): Promise<PinInfo>
  /** This peer's status of every CID in the pinset (and of in-flight unpins). */
  statusAll(options?: AbortOptions): AsyncIterable<PinInfo>
  /** Re-queue a CID in an error state. */
  recover(key: PinKey, options?: AbortOptions): Promise<PinInfo>
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
/** What the REST API needs from the cluster: the orchestrator in src/cluster/ implements it. */
export interface ClusterAPI {
  id(options?: AbortOptions): Promise<IDInfo>
  /** The peerset's IDs, then those of lost peers (`error`: lostPeerError, with their last name and addresses). */
  peers(options?: AbortOptions): AsyncIterable<IDInfo>
  /** Validates options, writes the pin into the pinset (durable), returns it as committed. */
  pin(cid: CID, options: PinOptions, opts?: AbortOptions): Promise<Pin>
  /** Removes from the pinset; NotInPinsetError if absent. Returns the pin as it was. */
  unpin(cid: CID, opts?: AbortOptions): Promise<Pin>
  /** The pinset (GET /allocations), optionally filtered by type. */
  allocations(types?: Set<PinType>): Iterable<Pin>
  /** NotInPinsetError if absent. */
  allocation(cid: CID): Pin
  status(cid: CID, options?: AbortOptions & { local?: boolean }): Promise<GlobalPinInfo>
  statusAll(options?: AbortOptions & { local?: boolean, filter?: Set<TrackerStatus>, cids?: CID[] }): AsyncIterable<GlobalPinInfo>
  recover(cid: CID, options?: AbortOptions & { local?: boolean }): Promise<GlobalPinInfo>
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
/** What the REST API needs from the peer's IPFS repo (GET /ipfs/repo/stat, POST /ipfs/repo/verify). */
export interface RepoAPI {
  stat(options?: AbortOptions): Promise<RepoStat>
  verify(options?: AbortOptions): Promise<RepoVerify>
}

/** What the REST API, CLI and metrics need from the reprovider. */
export interface ReprovideAPI {
  status(): ReprovideStatus
  /** Starts a cycle now (or joins the running one); resolves when it ends. */
  reprovideNow(options?: AbortOptions & { onProgress?: (done: number, total: number) => void }): Promise<ReprovideStatus>
}
