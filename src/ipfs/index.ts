// The embedded IPFS node: Helia (bitswap) over the peer's libp2p host, blocks and datastore in level.
import type { FetchSession } from './fetch.js'
import type { PeerBlockstoreStats } from './peer-blockstore.js'
import { IpfsNodeImpl } from './ipfs.js'
import type { AbortOptions, AddEntry, AddParams, AddedOutput, IpfsConnector } from '../components.js'
import type { CairnServices, HostInit } from '../libp2p/index.js'
import type { BitswapSenderInit } from './bitswap-sender.js'
import type { BitswapTraffic } from './helia-internals.js'
import type { RepoStat, RepoVerify } from '../types/wire.js'
import type { Helia } from '@helia/interface'
import type { ComponentLogger, Libp2p } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import type { BlockCodec } from 'multiformats/codecs/interface'
import type { MultihashHasher } from 'multiformats/hashes/interface'

export type { BitswapTraffic, CairnServices, HostInit }
export { DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE } from './add.js'

export interface IpfsInit {
  /** Holds `blocks/` and `blocks-index/` (the blockstore) and `datastore/` (pins, peer store, DHT records), all level. */
  dataDir: string
  /** The libp2p host; its datastore is the node's own. */
  host: Omit<HostInit, 'datastore'>
  /** A cat that receives no block for this long starts again where it stopped (default 10 s). */
  catStallMs?: number
  /** Blocks fetched at once while pinning. Default 32. */
  fetchConcurrency?: number
  /**
   * While pinning, blocks below the root are first asked of connected peers only; after this many ms without
   * an answer a DHT provider lookup is started for the block too. Default 5000.
   */
  childLookupDelay?: number
  /** How this node answers other peers' bitswap wants (src/ipfs/bitswap-sender.ts). */
  bitswap?: BitswapSenderInit
  /**
   * Bytes of blocks fetched for reads, not pins (gateway requests, a cat of content not pinned here), kept at
   * most; the least recently used are evicted past it (gateway.cache_max). Default 4 GiB.
   */
  cacheMaxBytes?: number
  /** Bytes this peer offers (monitor.storage_max; 0: no bound): past 90% of it the cache gives way first. */
  storageMax?: number
  /** The block store starts a new segment file past this size (disk.segment_bytes). Default 256 MiB. */
  segmentBytes?: number
}

export interface IpfsNode extends IpfsConnector {
  /** Available after start(); throws NotStartedError before. */
  readonly helia: Helia & { libp2p: Libp2p<CairnServices> }
  /** Available after start(); throws NotStartedError before. */
  readonly libp2p: Libp2p<CairnServices>
  /**
   * Import files/dirs as UnixFS (Kubo/IPFS Cluster add semantics); yields one AddedOutput per file and
   * directory, the root last. Pins nothing. With `params.progress`, also yields progress lines
   * `{ name, cid: '', bytes }` (bytes read so far of that file): tell them apart by `cid === ''`.
   * `params.format === 'car'` imports the single entry given as a CAR (see addCar).
   * Empty input: InvalidParameterError('no files in the request').
   */
  addEntries(entries: AsyncIterable<AddEntry>, params: AddParams, options?: AbortOptions): AsyncGenerator<AddedOutput>
  /**
   * Import a CAR with exactly one root (else InvalidParameterError 'only CAR files with a single root are
   * supported'); every block is checked against its CID. Yields the root's AddedOutput (name '').
   */
  addCar(bytes: AsyncIterable<Uint8Array>, options?: AbortOptions): AsyncGenerator<AddedOutput>
  /**
   * Called after a pin is recorded locally (pinned: true; also when only its depth changed) or removed
   * (false), with the root as CIDv1. Returns an unsubscribe function.
   */
  onPinChange(listener: (cid: CID, pinned: boolean) => void): () => void
  /** Deletes those of the blocks that no local pin protects (a sharded add's blocks held for other peers). */
  dropUnpinned(cids: CID[], options?: AbortOptions): Promise<number>
  /**
   * Holds off repo GC until the returned release is called: for writes whose blocks are not pinned yet (an add,
   * until its pin is in the pinset). Waits while a GC runs.
   */
  holdBlocks(signal?: AbortSignal): Promise<() => void>
  /**
   * Repo GC: deletes every block that no local pin holds, that is not in the cache and none of `keep` reaches
   * here (past the high watermark of storage_max, the least recently used cache blocks first), once no pin is fetching
   * and no add importing. Returns the blocks deleted, as raw-codec CIDs. A GC asked for while one runs joins it
   * (its result, the first one's `keep` and `waitMs`). RepoBusyError when the writers do not finish within `waitMs`.
   */
  gc(options?: GcOptions): Promise<CID[]>
  /** Whether held bytes passed 90% of storage_max (never without one). */
  overHighWatermark(): boolean
  /** Repo GCs since start: for /metrics. */
  gcStats(): GcStats
  /** The bounded cache: what it holds, and what it evicted since start. */
  cacheStats(): CacheStats
  /** The value log: segment files, their bytes, compaction and migration (undefined while stopped). */
  storeStats(): PeerBlockstoreStats | undefined
  /** What the store holds by kind (pinned, cache, garbage) and on disk: reads every block (repo.ts). */
  repoStat(options?: AbortOptions): Promise<RepoStat>
  /** Pinned and garbage bytes as the last repoStat or repoVerify found them; undefined before the first. */
  lastRepoAccount(): { pinned: number, garbage: number } | undefined
  /**
   * Re-hashes every held block and looks for every pin's blocks: a corrupt block is deleted, and a pin's block
   * (corrupt or missing) fetched again from other peers. Returns what it found and did.
   */
  repoVerify(options?: AbortOptions): Promise<RepoVerify>
  /**
   * The start-up self-check: each block the pin records claim looked up in the store index, each one missing
   * fetched again from the peers holding it (`failed`: not found now). No block is read or re-hashed.
   */
  repairMissing(options?: AbortOptions): Promise<{ checked: number, missing: number, refetched: number, failed: number }>
  /** Bitswap block traffic since start, for /metrics; undefined when not counted (@helia/bitswap not recognised). */
  bitswapStats(): BitswapTraffic | undefined
  /**
   * The multihash of every block held here for a local pin, from the pin records' keys (no block is read): what
   * the reprovider's `pinned` strategy announces.
   */
  pinnedBlocks(options?: AbortOptions): AsyncIterable<Uint8Array>
  /** Stream the bytes of a UnixFS file or raw block (fetching missing blocks as getBlock does; cat.ts). */
  cat(cid: CID, options?: AbortOptions): AsyncIterable<Uint8Array>
  /**
   * A block's bytes: from the local store, else from connected peers over bitswap, with a DHT provider lookup
   * once `lookupDelayMs` passed (fetch.ts). A fetched block is stored (not pinned). With `offline`, a block not
   * held here is a NotFoundError.
   */
  getBlock(cid: CID, options?: GetBlockOptions): Promise<Uint8Array>
  /** The codec of a CID's code (dag-pb, raw, dag-cbor, ...); throws for one the node does not know. */
  getCodec(code: number): Promise<BlockCodec<any, any>>
  /** The hash function of a multihash code; throws for one the node does not know. */
  getHasher(code: number): Promise<MultihashHasher>
}

export interface GetBlockOptions extends AbortOptions {
  /** Read the local store only: a block not held here is a NotFoundError, never a fetch. */
  offline?: boolean
  /**
   * How long connected peers alone are asked for a missing block before a DHT provider lookup starts as well
   * (a lookup per block would make a large file crawl). 0: at once, for a first block no connected peer may
   * have. Default: IpfsInit.childLookupDelay.
   */
  lookupDelayMs?: number
  /** A fetch session (fetch.ts): a missing block is asked first of the peer that sent the session's last one. */
  session?: FetchSession
}

export interface GcStats {
  /** GCs that ran to the end. */
  runs: number
  /** GCs that failed (busy repo, stop, store errors). */
  failures: number
  blocks_deleted: number
  /** Bytes given back: garbage deleted and cache evicted by GCs. */
  bytes_reclaimed: number
  /** When the last GC ended (ms since epoch; 0 = none yet), and how long it took. */
  last_finished: number
  last_duration_ms: number
}

export interface CacheStats {
  /** Bytes and blocks in the cache now. */
  bytes: number
  blocks: number
  /** gateway.cache_max. */
  max_bytes: number
  /** Evicted since start. */
  evicted_blocks: number
  evicted_bytes: number
}

export interface GcOptions extends AbortOptions {
  /**
   * Roots whose blocks held here stay although not pinned here (yet): pins still to be pinned, content other peers
   * still fetch from here. Depth: Infinity for recursive. Asked once the GC holds the lock, so that an add that
   * finished meanwhile is in the answer.
   */
  keep?: () => Promise<Array<{ cid: CID, depth: number }>>
  /** How long to wait for pins fetching and adds importing to finish (new ones wait meanwhile). Default 60 s. */
  waitMs?: number
}

export interface IpfsComponents {
  /** Per-peer logger; defaults to init.host.logger, then to @libp2p/logger's default. */
  logger?: ComponentLogger
}

export function createIpfs (init: IpfsInit, components: IpfsComponents): IpfsNode {
  return new IpfsNodeImpl(init, components)
}
