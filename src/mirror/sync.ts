// `cairn mirror sync`: push a new version of a directory tree to the cluster, paying for what changed only.
// 1. walk the tree (lstat only); 2. build the UnixFS DAG locally, reading only files whose (size, mtime, mode)
// changed since the cached sync; 3. stream the new blocks as one CAR to POST /add?format=car&no-pin=true;
// 4. pin the root as version N with pin-update=<version N-1> (same allocations: peers fetch only new blocks);
// 5. wait until its allocations have pinned it; 6. unpin versions older than the last `keep`.
import { resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { InvalidParameterError } from '../errors.js'
import { buildTree, type BuildResult } from './build.js'
import { defaultCachePath, loadCache, saveCache, type MirrorCache } from './cache.js'
import { isMirrorName, mirrorPinOptions, mirrorVersions, type MirrorVersion } from './meta.js'
import { BlockQueue } from './upload.js'
import { walkTree, type TreeEntry } from './walk.js'
import { DEFAULT_CHUNK_SIZE } from '../ipfs/add.js'
import type { Client } from '../client/index.js'
import { isLostPeerError, type AbortOptions, type AddedOutput, type GlobalPinInfo, type Pin } from '../components.js'

export const DEFAULT_KEEP = 3
/** How long to wait for the new version to be pinned on its allocations (10 min). */
export const DEFAULT_PIN_TIMEOUT_MS = 600_000

export type MirrorSyncEvent =
  | { phase: 'scan', files: number, bytes: number }
  | { phase: 'hash', files_done: number, files_to_read: number, bytes_read: number, bytes_to_read: number, bytes_sent: number }
  | { phase: 'pin', cid: string, version: number }
  | { phase: 'wait', cid: string, pinned: number, peers: number }
  | { phase: 'unpin', cid: string, version: number }

export interface MirrorSyncOptions extends AbortOptions {
  /** Keep this many newest versions pinned (default 3, at least 1). */
  keep?: number
  /** The cache file (default: $XDG_CACHE_HOME/cairn/mirror/<name>.json, see defaultCachePath). */
  cacheFile?: string
  /** Store mtime and mode in the DAG (default true). */
  metadata?: boolean
  /** Replication of the new version (default: that of the previous version, else the cluster's). */
  replication_factor_min?: number
  replication_factor_max?: number
  /** Pin the version spread across the peers (default: as the previous version). */
  spread?: boolean
  /** Give up waiting for the new version to be pinned after this long (default 10 min). */
  pinTimeoutMs?: number
  /** Status poll interval while waiting (default 1 s). */
  pollMs?: number
  env?: NodeJS.ProcessEnv
  onProgress?: (event: MirrorSyncEvent) => void
}

export interface MirrorSyncResult {
  mirror: string
  version: number
  root: string
  previous: { version: number, root: string } | null
  /** The tree hashed to the newest version's root: nothing uploaded or pinned. */
  unchanged: boolean
  files: { total: number, added: number, changed: number, removed: number, unchanged: number }
  /** Entries left out: sockets, fifos and devices cannot be stored in UnixFS. */
  skipped: string[]
  /** Files opened and hashed (new and changed ones; all of them without a usable cache). */
  files_read: number
  /** Unchanged directories taken from the cache whole (their files not looked at again). */
  dirs_kept: number
  bytes_read: number
  /** Blocks and bytes uploaded. */
  blocks_uploaded: number
  bytes_uploaded: number
  /** Cumulative DAG size of the new root. */
  dag_size: number
  /** 'used', 'none' or why it was not used. */
  cache: string
  cache_file: string
  /** Peers that reported the new root pinned when the wait ended. */
  pinned_on: string[]
  /** Allocated peers that could not be asked (down): they catch up from the pinset when back. */
  unreachable: string[]
  unpinned: Array<{ version: number, root: string }>
  duration_ms: number
  /** Where the time went: listing versions + walking, hashing + uploading, pin request, waiting, unpinning. */
  phases_ms: { scan: number, build_upload: number, pin: number, wait: number, cleanup: number }
}

export interface MirrorSyncParams extends MirrorSyncOptions {
  /** The directory to publish. */
  dir: string
  /** The mirror's name (letters, digits, '.', '_', '-'). */
  name: string
}

/** Syncs `dir` as the next version of mirror `name` through a peer's REST API. */
export async function syncMirror (client: Client, params: MirrorSyncParams): Promise<MirrorSyncResult> {
  const started = Date.now()
  const { name, signal, onProgress } = params
  if (!isMirrorName(name)) throw new InvalidParameterError(`invalid mirror name "${name}": use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit`)
  const keep = params.keep ?? DEFAULT_KEEP
  if (!Number.isSafeInteger(keep) || keep < 1) throw new InvalidParameterError(`keep must be an integer >= 1, got ${keep}`)
  const metadata = params.metadata ?? true
  const dir = resolve(params.dir)
  const cacheFile = params.cacheFile ?? defaultCachePath(name, params.env)

  // what the cluster holds of this mirror, and the cache: both asked for while the tree is walked (a bad API
  // address or credentials still fail before anything is read or sent)
  const listing = listVersions(client, name, { signal })
  const loading = loadCache(cacheFile)
  listing.catch(() => {})
  loading.catch(() => {})

  // 1. walk
  const skipped: string[] = []
  const entries: TreeEntry[] = []
  let totalBytes = 0
  for await (const e of walkTree(dir, skipped)) {
    signal?.throwIfAborted()
    entries.push(e)
    if (e.kind === 'file') totalBytes += e.size
  }
  const versions = await listing
  const newest = versions[0]
  const loaded = await loading
  const cache = loaded.cache?.mirror === name ? loaded.cache : undefined
  let cacheState = loaded.problem ?? (loaded.cache == null ? 'none' : cache == null ? `it is the cache of mirror "${loaded.cache.mirror}"` : 'used')
  let reuse = cache
  if (cache != null) {
    if (cache.params?.metadata !== metadata || cache.params?.chunk_size !== DEFAULT_CHUNK_SIZE) {
      cacheState = 'not used: it was made with other import settings'
      reuse = undefined
    } else if (!versions.some(v => v.pin.cid === cache.root)) {
      // the cached CIDs are only worth something while their blocks are held by the cluster
      cacheState = `not used: its root ${cache.root} (version ${cache.version}) is no longer pinned in the cluster`
      reuse = undefined
    }
  }

  const fileEntries = entries.filter(e => e.kind === 'file')
  onProgress?.({ phase: 'scan', files: fileEntries.length, bytes: totalBytes })
  let mark = Date.now()
  const phases = { scan: mark - started, build_upload: 0, pin: 0, wait: 0, cleanup: 0 }
  const lap = (): number => { const now = Date.now(); const ms = now - mark; mark = now; return ms }

  const unchangedOf = (e: TreeEntry): { cid: string, tsize: number } | undefined => {
    const c = reuse?.files[e.path]
    return c != null && c[0] === e.size && c[1] === e.mtimeNs.toString() && c[2] === e.mode ? { cid: c[3], tsize: c[4] } : undefined
  }
  const counts = { total: fileEntries.length, added: 0, changed: 0, removed: 0, unchanged: 0 }
  let filesToRead = 0
  let bytesToRead = 0
  const seen = new Set<string>()
  for (const e of fileEntries) {
    seen.add(e.path)
    const before = cache?.files[e.path]
    if (before == null) counts.added++
    else if (before[0] === e.size && before[1] === e.mtimeNs.toString() && before[2] === e.mode) counts.unchanged++
    else counts.changed++
    if (unchangedOf(e) == null) { filesToRead++; bytesToRead += e.size }
  }
  for (const path of Object.keys(cache?.files ?? {})) if (!seen.has(path)) counts.removed++

  // 2 + 3. build and upload at once; the request starts with the first new block
  const controller = new AbortController()
  const buildSignal = signal != null ? AbortSignal.any([signal, controller.signal]) : controller.signal
  const queue = new BlockQueue()
  let upload: Promise<AddedOutput[]> | undefined
  const startUpload = (): Promise<AddedOutput[]> => {
    const p = (async () => {
      const out: AddedOutput[] = []
      for await (const line of client.addCar(queue, { noPin: true, signal: buildSignal })) out.push(line)
      return out
    })()
    // an upload refused or broken off (401, 403 follower mode, the peer gone) stops the build: a build waiting
    // for room in the queue would otherwise wait forever, and the process would end with nothing said
    p.catch(err => {
      queue.fail(err)
      controller.abort(err)
    })
    return p
  }
  let filesDone = 0
  let bytesRead = 0
  let bytesSent = 0
  let lastReport = 0
  const report = (force = false): void => {
    const now = Date.now()
    if (!force && now - lastReport < 100) return
    lastReport = now
    onProgress?.({ phase: 'hash', files_done: filesDone, files_to_read: filesToRead, bytes_read: bytesRead, bytes_to_read: bytesToRead, bytes_sent: bytesSent })
  }
  let built: BuildResult
  try {
    built = await buildTree(entries, {
      metadata,
      chunkSize: DEFAULT_CHUNK_SIZE,
      cached: unchangedOf,
      known: new Set(reuse?.tree_blocks ?? []),
      previous: reuse?.dirs != null ? { dirs: reuse.dirs, files: reuse.files } : undefined,
      signal: buildSignal,
      sink: async (cid, bytes) => {
        upload ??= startUpload()
        bytesSent += bytes.byteLength
        await queue.put(cid, bytes)
      },
      onFile: (e, read) => {
        if (!read) return
        filesDone++
        bytesRead += e.size
        report()
      }
    })
    report(true)
    queue.end()
    await upload
  } catch (err) {
    queue.fail(err)
    await upload?.catch(() => {})
    // the upload's own error says more than the build's abort it caused
    throw controller.signal.aborted && signal?.aborted !== true ? controller.signal.reason : err
  }
  const root = built.root.toString()
  phases.build_upload = lap()

  const result: MirrorSyncResult = {
    mirror: name,
    version: newest?.version ?? 0,
    root,
    previous: newest != null ? { version: newest.version, root: newest.pin.cid } : null,
    unchanged: newest?.pin.cid === root,
    files: counts,
    skipped,
    files_read: built.filesRead,
    dirs_kept: built.dirsKept,
    bytes_read: built.bytesRead,
    blocks_uploaded: built.blocksSent,
    bytes_uploaded: built.bytesSent,
    dag_size: built.rootSize,
    cache: cacheState,
    cache_file: cacheFile,
    pinned_on: [],
    unreachable: [],
    unpinned: [],
    duration_ms: 0,
    phases_ms: phases
  }
  const nextCache = (version: number): Omit<MirrorCache, 'format'> => ({
    mirror: name,
    api: client.url,
    root,
    version,
    synced_at: new Date().toISOString(),
    params: { metadata, chunk_size: DEFAULT_CHUNK_SIZE },
    files: built.files,
    dirs: built.dirs,
    tree_blocks: built.treeBlocks
  })

  let pin: Pin
  if (result.unchanged && newest != null) {
    pin = newest.pin
  } else {
    // 4. pin as the next version
    result.version = (newest?.version ?? 0) + 1
    onProgress?.({ phase: 'pin', cid: root, version: result.version })
    pin = await client.pin(root, {
      ...mirrorPinOptions(name, result.version),
      replication_factor_min: params.replication_factor_min,
      replication_factor_max: params.replication_factor_max,
      pin_update: newest?.pin.cid,
      spread: params.spread,
      signal
    })
  }
  // the root is in the pinset and its new blocks on the peer: the cache is good from here on (written while
  // the peers pin, and before this returns or throws)
  const saving = saveCache(cacheFile, nextCache(result.version))
  saving.catch(() => {})
  phases.pin = lap()

  // 5. wait until pinned on its allocations
  let waited: Awaited<ReturnType<typeof waitPinned>>
  try {
    waited = await waitPinned(client, pin, {
      timeoutMs: params.pinTimeoutMs ?? DEFAULT_PIN_TIMEOUT_MS,
      pollMs: params.pollMs ?? 1000,
      signal,
      onProgress: (pinned, peers) => { onProgress?.({ phase: 'wait', cid: root, pinned, peers }) }
    })
  } finally {
    await saving
  }
  result.pinned_on = waited.pinned
  result.unreachable = waited.unreachable
  phases.wait = lap()

  // 6. unpin what is beyond the last `keep` versions
  const after = await listVersions(client, name, { signal })
  for (const v of after.slice(keep)) {
    if (v.pin.cid === root) continue
    onProgress?.({ phase: 'unpin', cid: v.pin.cid, version: v.version })
    await client.unpin(v.pin.cid, { signal })
    result.unpinned.push({ version: v.version, root: v.pin.cid })
  }
  phases.cleanup = lap()
  result.duration_ms = Date.now() - started
  return result
}

/** The versions of one mirror in the pinset, newest first. */
export async function listVersions (client: Client, name: string, options: AbortOptions = {}): Promise<MirrorVersion[]> {
  const pins: Pin[] = []
  for await (const pin of client.allocations({ signal: options.signal })) pins.push(pin)
  return mirrorVersions(pins, name)
}

export interface WaitPinnedOptions extends AbortOptions {
  timeoutMs: number
  pollMs: number
  /** How long a peer must stay unreachable to be left out (default UNREACHABLE_GRACE_MS, at least three polls). */
  unreachableGraceMs?: number
  onProgress?: (pinned: number, peers: number) => void
}

/** A peer that cannot be asked is left out only after this long: a peer busy fetching can miss a status call. */
const UNREACHABLE_GRACE_MS = 10_000
/**
 * For this long after the pin request, the status is asked every QUICK_POLL_MS (when pollMs is longer): a re-sync
 * that changed little is pinned a few hundred ms after the request, and a whole poll interval on top of that was
 * a third of a re-sync's time. A global status call costs each peer one local lookup.
 */
const QUICK_POLL_FOR_MS = 1000
const QUICK_POLL_MS = 20

/**
 * Polls the global status until every peer that should hold the pin (its allocations, or every peer when it is
 * pinned everywhere) reports `pinned`: every 20 ms for the first second, then every `pollMs`. Peers that
 * cannot be asked (down) for UNREACHABLE_GRACE_MS (or three polls), or lost at once, are left out as long as one has pinned it:
 * they catch up from the pinset. Errors are retried by the trackers, so they only show in the timeout message.
 */
export async function waitPinned (client: Client, pin: Pin, options: WaitPinnedOptions): Promise<{ pinned: string[], unreachable: string[] }> {
  const deadline = AbortSignal.timeout(options.timeoutMs)
  const signal = options.signal != null ? AbortSignal.any([options.signal, deadline]) : deadline
  let last: GlobalPinInfo | undefined
  /** Since when each peer has answered cluster_error, poll after poll. */
  const unreachableSince = new Map<string, number>()
  const started = Date.now()
  try {
    for (;;) {
      const status = await client.status(pin.cid, { signal })
      last = status
      const peers = Object.keys(status.peer_map).filter(id =>
        status.peer_map[id].status !== 'remote' && (pin.allocations.length === 0 || pin.allocations.includes(id)))
      const pinned = peers.filter(id => status.peer_map[id].status === 'pinned')
      const now = Date.now()
      for (const id of peers) {
        if (status.peer_map[id].status !== 'cluster_error') unreachableSince.delete(id)
        // a lost peer (its ping expired) is known to be down: no grace
        else if (!unreachableSince.has(id)) unreachableSince.set(id, isLostPeerError(status.peer_map[id].error) ? -Infinity : now)
      }
      const grace = Math.max(options.unreachableGraceMs ?? UNREACHABLE_GRACE_MS, 3 * options.pollMs)
      const unreachable = peers.filter(id => now - (unreachableSince.get(id) ?? now) >= grace)
      options.onProgress?.(pinned.length, peers.length)
      if (pinned.length > 0 && pinned.length + unreachable.length === peers.length) return { pinned, unreachable }
      await sleep(now - started < QUICK_POLL_FOR_MS ? Math.min(options.pollMs, QUICK_POLL_MS) : options.pollMs, undefined, { signal })
    }
  } catch (err) {
    if (deadline.aborted && options.signal?.aborted !== true) {
      throw new Error(`gave up after ${Math.round(options.timeoutMs / 1000)} s waiting for ${pin.cid} to be pinned: ${describe(last)}; ` +
        'the version is in the pinset and the cluster keeps pinning it; older versions were not unpinned')
    }
    throw err
  }
}

function describe (status: GlobalPinInfo | undefined): string {
  if (status == null) return 'no status yet'
  return Object.entries(status.peer_map)
    .filter(([, p]) => p.status !== 'remote')
    .map(([id, p]) => `${p.peername !== '' ? p.peername : id.slice(-8)} ${p.status}${p.error !== '' && p.error != null ? ` (${p.error})` : ''}`)
    .join(', ')
}
