// The disk under the peer's folder: how much is free, which mount it is, and the error a write gets when it is
// full (InsufficientStorageError, 507 on the APIs), worded so that an operator knows which disk to free.
import { readFileSync, statfsSync } from 'node:fs'
import { readdir, stat, statfs } from 'node:fs/promises'
import { join, resolve, sep } from 'node:path'
import type { Dirent } from 'node:fs'
import { InsufficientStorageError } from '../errors.js'
import { formatBytes } from '../utils/bytes.js'

const NO_SPACE_CODES = new Set(['ENOSPC', 'EDQUOT'])
/** LevelDB's and libc's wording ("IO error: <file>: No space left on device"), also inside wrapped messages. */
const NO_SPACE_TEXT = /No space left on device|Disk quota exceeded|ENOSPC|EDQUOT|InsufficientStorageError/

/**
 * Whether a write failed for lack of space: node's ENOSPC/EDQUOT, LevelDB's IO error, or either one wrapped by a
 * library that kept only the message (datastore-level's PutFailedError), or cairn's own InsufficientStorageError.
 */
export function isNoSpaceError (err: unknown): boolean {
  for (let e = err, depth = 0; e != null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (typeof e !== 'object') return NO_SPACE_TEXT.test(String(e))
    const { name, code, message } = e as { name?: unknown, code?: unknown, message?: unknown }
    if (name === 'InsufficientStorageError' || NO_SPACE_CODES.has(String(code))) return true
    if (typeof message === 'string' && NO_SPACE_TEXT.test(message)) return true
  }
  return false
}

/** Bytes an unprivileged writer may still use on the disk holding `path`. */
export async function freeBytes (path: string): Promise<number> {
  const fs = await statfs(path)
  return Number(fs.bavail) * Number(fs.bsize)
}

/** The mount holding `path` (Linux: the longest matching entry of /proc/self/mounts), when known. */
export function mountOf (path: string): { device: string, dir: string } | undefined {
  let mounts: string
  try {
    mounts = readFileSync('/proc/self/mounts', 'utf8')
  } catch {
    return undefined
  }
  const target = resolve(path)
  let best: { device: string, dir: string } | undefined
  for (const line of mounts.split('\n')) {
    // fields are space-separated, spaces inside them written as \040
    const [device, dir] = line.split(' ').map(f => f.replace(/\\040/g, ' '))
    if (device == null || dir == null) continue
    const inside = dir === '/' || target === dir || target.startsWith(dir + sep)
    if (inside && (best == null || dir.length > best.dir.length)) best = { device, dir }
  }
  return best
}

/** "the disk holding <path> (mounted at <mount>, <n> free)", as far as it can be known. */
export function describeDisk (path: string): string {
  const mount = mountOf(path)
  let free: string
  try {
    const fs = statfsSync(path)
    free = `${formatBytes(Number(fs.bavail) * Number(fs.bsize))} free`
  } catch {
    free = 'free space unknown'
  }
  return `the disk holding ${path} (${mount != null ? `${mount.device} mounted at ${mount.dir}, ` : ''}${free})`
}

/**
 * The error for a write to `path` that found no space: names the disk and what it has free, says what was
 * refused (`what`) and what to do.
 */
export function insufficientStorage (path: string, what: string): InsufficientStorageError {
  return new InsufficientStorageError(`insufficient storage: ${describeDisk(path)} is full: ${what}`)
}

/**
 * A write failure for lack of space as an InsufficientStorageError (the error itself when it is one), whatever
 * wrapped it (datastore-level keeps only `String(err)`); undefined for any other error.
 */
export function asInsufficientStorage (err: unknown): InsufficientStorageError | undefined {
  if (err instanceof InsufficientStorageError) return err
  if (!isNoSpaceError(err)) return undefined
  const message = (err instanceof Error ? err.message : String(err)).replace(/^(\w*Error: )+/, '')
  return new InsufficientStorageError(message.startsWith('insufficient storage') ? message : `insufficient storage: ${message}`)
}

/** Bytes the files under `dir` take on disk (allocated blocks, as `du`); a file gone meanwhile counts 0. */
export async function diskUsage (dir: string): Promise<number> {
  let total = 0
  let entries: Dirent[]
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch {
    return 0
  }
  for (const entry of entries) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) {
      total += await diskUsage(path)
    } else if (entry.isFile()) {
      total += await stat(path).then(s => s.blocks * 512, () => 0)
    }
  }
  return total
}
