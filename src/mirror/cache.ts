// The local cache of a mirror sync: what each file hashed to last time, keyed by (path, size, mtime, mode), so a
// re-sync reads only new and changed files. A cache, not a source of truth: deleting it costs one full re-read.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'

/** Bumped when the layout changes; other formats are ignored (full re-read). */
const FORMAT = 1

/** [size, mtime in ns (decimal string), mode, CID, Tsize (cumulative DAG size)] */
export type CachedFile = [number, string, number, string, number]

/** [fingerprint of the directory's entries (build.ts), CID, Tsize] */
export type CachedDir = [string, string, number]

export interface MirrorCache {
  format: number
  mirror: string
  /** The API the last sync went to (informational). */
  api: string
  /** Root pinned by the last sync; its blocks are in the cluster while it stays pinned. */
  root: string
  version: number
  synced_at: string
  /** The import settings the CIDs were made with: another setting makes every entry stale. */
  params: { metadata: boolean, chunk_size: number }
  files: Record<string, CachedFile>
  /** Directories by path ('' for the root); missing in caches of older versions (every directory is rebuilt). */
  dirs?: Record<string, CachedDir>
  /** Directory, HAMT shard and symlink blocks of the last root: not uploaded again when they recur. */
  tree_blocks: string[]
}

/** $XDG_CACHE_HOME/cairn/mirror/<name>.json, else ~/.cache/cairn/mirror/<name>.json. */
export function defaultCachePath (mirror: string, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME != null && env.XDG_CACHE_HOME !== '' ? env.XDG_CACHE_HOME : join(homedir(), '.cache')
  return join(base, 'cairn', 'mirror', `${mirror}.json`)
}

/** The cache at `file`, or undefined (with the reason) when it is missing, unreadable or of another format. */
export async function loadCache (file: string): Promise<{ cache?: MirrorCache, problem?: string }> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    return { problem: `cannot read the mirror cache ${file}: ${(err as Error).message}` }
  }
  try {
    const cache = JSON.parse(text) as MirrorCache
    if (cache?.format !== FORMAT || typeof cache.files !== 'object' || cache.files == null || !Array.isArray(cache.tree_blocks)) {
      return { problem: `ignoring the mirror cache ${file}: not a format ${FORMAT} cache` }
    }
    return { cache }
  } catch {
    return { problem: `ignoring the mirror cache ${file}: invalid JSON` }
  }
}

/** Writes the cache atomically (temp file + rename): an interrupted write leaves the previous one. */
export async function saveCache (file: string, cache: Omit<MirrorCache, 'format'>): Promise<void> {
  await mkdir(dirname(file), { recursive: true })
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, JSON.stringify({ format: FORMAT, ...cache }))
  await rename(tmp, file)
}
