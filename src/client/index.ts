// Typed client of cairn's (IPFS-Cluster-compatible) REST API, used by the CLI and the tests.
import { RestClient } from './client.js'
import type { MirrorStatus } from '../mirror/status.js'
import type { AbortOptions, PinOptions } from '../components.js'
import type { AddedOutput, AlertInfo, ConnectGraph, GlobalPinInfo, GlobalRepoGC, IDInfo, RepoStat, RepoVerify, MetricInfo, Pin, PinType, ReprovideStatus, TrackerStatus } from '../types/wire.js'

export { ClientError } from './http.js'
export { apiUrl } from './address.js'

export interface ClientInit {
  /** 'http://127.0.0.1:9094', '127.0.0.1:9094' or '/ip4/127.0.0.1/tcp/9094' (default '127.0.0.1:9094'). */
  api?: string
  /** 'user:password' for HTTP basic auth. */
  basicAuth?: string
  /** A JWT from POST /token, sent as a bearer token (wins over basicAuth). */
  token?: string
  /** Deadline of each call, streaming included (default: none). */
  timeoutMs?: number
  /** Called with one line per HTTP exchange (the CLI's --debug). */
  log?: (line: string) => void
}

export interface ClientPinOptions extends PinOptions {
  /** Go duration (e.g. '24h'); the server turns it into expire_at. */
  expire_in?: string
}

export interface LocalOptions extends AbortOptions {
  /** Only this peer's view (one entry in peer_map). */
  local?: boolean
}

export interface StatusAllOptions extends LocalOptions {
  /** Statuses to keep, plus the groups 'error' and 'queued'. Ignored by the server when cids is given. */
  filter?: Array<TrackerStatus | 'error' | 'queued'>
  cids?: string[]
}

export interface AddOptions extends ClientPinOptions, AbortOptions {
  recursive?: boolean
  /** Include dot-files below the given directories. */
  hidden?: boolean
  /**
   * Follow every symlink (given paths and those inside directories) and add what it points to, as Kubo's
   * `--dereference-symlinks`. Default: a symlink is added as a UnixFS symlink holding its target, never followed.
   */
  dereferenceSymlinks?: boolean
  /** Follow the given paths when they are symlinks, not those inside directories (Kubo's `--dereference-args`). */
  dereferenceArgs?: boolean
  wrapWithDirectory?: boolean
  cidVersion?: 0 | 1
  rawLeaves?: boolean
  format?: 'unixfs' | 'car'
  /** e.g. 'size-262144'. */
  chunker?: string
  /** Put the blocks on the receiving peer only, then pin normally. */
  local?: boolean
  noPin?: boolean
  /** Split the DAG into shards of at most shard_size bytes, each on its own allocations. */
  shard?: boolean
  /** File bytes sent so far, out of the total found by walking the paths first (the walk runs only when this is set). */
  onProgress?: (bytesSent: number, totalBytes: number) => void
  /**
   * What goes to the peer: 'files' (default), a Kubo-style multipart body from which the peer builds the DAG, as
   * ipfs-cluster-ctl sends it; or 'blocks', the DAG built here with the peer's importer and parameters and its
   * blocks sent as a CAR, then the root pinned by CID: the same CIDs and lines, a fraction of the peer's work.
   * A sharded add and format 'car' always send files.
   */
  upload?: 'files' | 'blocks'
}

export interface AddCarOptions extends ClientPinOptions, AbortOptions {
  /** Store the blocks without pinning the CAR's root. */
  noPin?: boolean
}

export interface Client {
  /** Origin of the API, e.g. 'http://127.0.0.1:9094'. */
  readonly url: string
  id(options?: AbortOptions): Promise<IDInfo>
  version(options?: AbortOptions): Promise<{ version: string }>
  peers(options?: AbortOptions): Promise<IDInfo[]>
  peersStream(options?: AbortOptions): AsyncIterable<IDInfo>
  /** POST /pins/ipfs/{cid}; cid may also be a path such as /ipfs/<cid>/dir or /ipns/<name>. Resolves with the pin as committed. */
  pin(cid: string, options?: ClientPinOptions & AbortOptions): Promise<Pin>
  /** Resolves with the pin as it was before removal. */
  unpin(cid: string, options?: AbortOptions): Promise<Pin>
  /** Pins `to` with the allocations and options of `from` (which stays pinned). */
  pinUpdate(from: string, to: string, options?: ClientPinOptions & AbortOptions): Promise<Pin>
  /** The pinset (pin ls). */
  allocations(options?: AbortOptions & { filter?: Array<PinType | 'all'> }): AsyncIterable<Pin>
  allocation(cid: string, options?: AbortOptions): Promise<Pin>
  status(cid: string, options?: LocalOptions): Promise<GlobalPinInfo>
  statusAll(options?: StatusAllOptions): AsyncIterable<GlobalPinInfo>
  recover(cid: string, options?: LocalOptions): Promise<GlobalPinInfo>
  /** Yields the items actually re-queued. */
  recoverAll(options?: LocalOptions): AsyncIterable<GlobalPinInfo>
  /** POST /ipfs/gc: repo GC on every peer (local: the one asked only); the blocks each deleted. */
  repoGC(options?: LocalOptions): Promise<GlobalRepoGC>
  /** GET /ipfs/repo/stat: what the peer's store holds, by kind (pinned, cache, garbage) and on disk. */
  repoStat(options?: AbortOptions): Promise<RepoStat>
  /** POST /ipfs/repo/verify: every held block re-hashed; corrupt and missing ones, and what was done. */
  repoVerify(options?: AbortOptions): Promise<RepoVerify>
  /** Uploads files and directories (streamed from disk) and yields the AddedOutput lines, the root last. */
  add(paths: string[], options?: AddOptions): AsyncIterable<AddedOutput>
  /** POST /add?format=car with a CAR streamed from memory (one root, blocks verified by the peer); yields its root line. */
  addCar(car: AsyncIterable<Uint8Array>, options?: AddCarOptions): AsyncIterable<AddedOutput>
  /** Names of the metrics known to the peer. */
  metrics(options?: AbortOptions): Promise<string[]>
  /** GET /monitor/metrics/{name}: the latest valid metric of each peer. */
  latestMetrics(name: string, options?: AbortOptions): Promise<MetricInfo[]>
  /** GET /health/alerts: expired-metric alerts, newest first. */
  alerts(options?: AbortOptions): Promise<AlertInfo[]>
  /** Resolves when GET /health answers 204. */
  health(options?: AbortOptions): Promise<void>
  /** GET /reprovide/status: the peer's DHT reprovider. */
  /** GET /mirrors/{name}/status: where the newest version of a mirror is (cairn's, not IPFS Cluster's). */
  mirrorStatus(name: string, options?: AbortOptions): Promise<MirrorStatus>
  reprovideStatus(options?: AbortOptions): Promise<ReprovideStatus>
  /** POST /reprovide/now: runs a reprovide cycle (or joins the running one); onProgress gets each snapshot; resolves with the final status. */
  reprovideNow(options?: AbortOptions & { onProgress?: (status: ReprovideStatus) => void }): Promise<ReprovideStatus>
  /** GET /health/graph. */
  graph(options?: AbortOptions): Promise<ConnectGraph>
  /** DELETE /peers/{id}: the peer's pins are re-allocated to other peers. */
  peerRemove(peer: string, options?: AbortOptions): Promise<{ peer: string, reallocated: number }>
}

export function createClient (init: ClientInit = {}): Client {
  return new RestClient(init)
}
