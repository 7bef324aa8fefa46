// The body of POST /add: Kubo-style multipart/form-data generated while walking the filesystem, so a tree of
// any size is streamed with a few buffers in memory.
import { closeSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, realpathSync, statSync, type Stats } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { InvalidParameterError } from '../errors.js'

export interface WalkOptions {
  recursive?: boolean
  /** Include entries whose name starts with '.' (below the given paths), as `ipfs add -H`. */
  hidden?: boolean
  /**
   * Follow every symlink, the given paths' and those inside directories, and add what they point to (Kubo's
   * `--dereference-symlinks`); a link whose target is missing is then an error. By default a symlink is added
   * as a UnixFS symlink holding its target, as `ipfs add` does, never followed.
   */
  dereferenceSymlinks?: boolean
  /**
   * Follow the given paths when they are symlinks, not the links inside directories (Kubo's older
   * `--dereference-args`). A followed path is named after its target, as Kubo names it.
   */
  dereferenceArgs?: boolean
}

export interface WalkEntry {
  /** '/'-separated path relative to the parent of the given path: its first segment is the given path's basename. */
  path: string
  abs: string
  /** undefined for a directory or a symlink. */
  size?: number
  /** A symlink's target, as readlink gives it. */
  link?: string
}

/** Read size: the importer's default chunk, so that a file's pieces become its blocks without being copied. */
const CHUNK = 256 * 1024

/**
 * Fails before any request is made when a path is missing, is a directory and recursive is not set, or is a
 * symlink to be followed whose target is missing.
 */
export async function checkPaths (paths: string[], options: WalkOptions): Promise<void> {
  if (paths.length === 0) throw new InvalidParameterError('nothing to add: no paths given')
  for (const p of paths) {
    let st: Stats
    try {
      st = lstatSync(p)
    } catch (err) {
      throw new InvalidParameterError(`cannot add ${p}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`)
    }
    if (st.isSymbolicLink() && followsArgs(options)) st = followed(p)
    if (st.isDirectory() && options.recursive !== true) throw new InvalidParameterError(`${p} is a directory: add it recursively (-r)`)
  }
}

const followsArgs = (options: WalkOptions): boolean => options.dereferenceSymlinks === true || options.dereferenceArgs === true

/** The stat of a symlink's target; InvalidParameterError naming the link and its target when there is none. */
function followed (abs: string): Stats {
  try {
    return statSync(abs)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    let target = '?'
    try { target = readlinkSync(abs) } catch {}
    const why = code === 'ENOENT' ? 'which does not exist' : code === 'ELOOP' ? 'which is a loop of symlinks' : `which cannot be read (${(err as Error).message})`
    throw new InvalidParameterError(`cannot follow the symlink ${abs}: it points to "${target}", ${why}`)
  }
}

/**
 * Every directory, file and symlink under the given paths, depth first, directory entries in name order.
 * Symlinks are entries of their own unless followed (see WalkOptions). The file system calls are synchronous: a
 * walk of 10,000 files through the thread pool (a round trip per stat and readdir) cost more than all of them
 * take here from the page cache.
 */
export async function * walk (paths: string[], options: WalkOptions): AsyncGenerator<WalkEntry> {
  for (const p of paths) {
    let abs = resolve(p)
    let st = lstatSync(abs)
    if (st.isSymbolicLink() && followsArgs(options)) {
      st = followed(abs)
      // named after what it points to, as Kubo names a followed argument (filepath.EvalSymlinks, then its base name)
      abs = realpathSync(abs)
    }
    yield * visit(abs, basename(abs), st, options, new Set())
  }
}

function * visit (abs: string, path: string, st: Stats, options: WalkOptions, ancestors: Set<string>): Generator<WalkEntry> {
  if (st.isFile()) {
    yield { path, abs, size: st.size }
    return
  }
  if (st.isSymbolicLink()) {
    // stored as it is, as `ipfs add` does: its target is never looked at, so a dangling link is fine
    yield { path, abs, link: readlinkSync(abs) }
    return
  }
  if (!st.isDirectory()) throw new InvalidParameterError(`cannot add ${abs}: not a regular file, directory or symlink`)
  if (options.recursive !== true) throw new InvalidParameterError(`${abs} is a directory: add it recursively (-r)`)
  const key = `${st.dev}:${st.ino}`
  if (ancestors.has(key)) throw new InvalidParameterError(`cannot add ${abs}: symlink loop (it is a directory above itself)`)
  yield { path, abs }
  const names = readdirSync(abs).filter(name => options.hidden === true || !name.startsWith('.')).sort()
  ancestors.add(key)
  for (const name of names) {
    const child = join(abs, name)
    const cst = lstatSync(child)
    yield * visit(child, `${path}/${name}`, cst.isSymbolicLink() && options.dereferenceSymlinks === true ? followed(child) : cst, options, ancestors)
  }
  ancestors.delete(key)
}

/** Sum of the sizes of the files a walk would send. */
export async function totalBytes (paths: string[], options: WalkOptions): Promise<number> {
  let total = 0
  for await (const entry of walk(paths, options)) total += entry.size ?? 0
  return total
}

/**
 * One part per entry (filename = url-encoded relative path, as go-ipfs-files writes it; a symlink as Kubo sends
 * one: type application/symlink, its target as the body); onBytes gets file bytes sent.
 */
export async function * multipartBody (entries: AsyncIterable<WalkEntry>, boundary: string, onBytes?: (n: number) => void): AsyncGenerator<Uint8Array> {
  const crlf = Buffer.from('\r\n')
  for await (const entry of entries) {
    const type = entry.link != null ? 'application/symlink' : entry.size == null ? 'application/x-directory' : 'application/octet-stream'
    yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${encodeURIComponent(entry.path)}"\r\nContent-Type: ${type}\r\n\r\n`)
    if (entry.link != null) {
      yield Buffer.from(entry.link)
    } else if (entry.size != null) {
      for (const chunk of readChunks(entry.abs, entry.size)) {
        yield chunk
        onBytes?.(chunk.byteLength)
      }
    }
    yield crlf
  }
  yield Buffer.from(`--${boundary}--\r\n`)
}

/**
 * A file's bytes in pieces of `chunkSize`, read synchronously until the end of the file (which may have moved
 * since `size` was taken). A stream per file cost a thread-pool round trip per open, read and close and a
 * 256 KiB buffer per read, whatever the file's size: most of a package tree is files of a few KB.
 */
export function * readChunks (abs: string, size: number, chunkSize = CHUNK): Generator<Buffer> {
  const fd = openSync(abs, 'r')
  try {
    let left = size
    while (true) {
      // past the size taken, a small read to find the end (or what was appended since)
      const buf = Buffer.allocUnsafe(left > 0 ? Math.min(left, chunkSize) : 4096)
      const n = readSync(fd, buf, 0, buf.byteLength, null)
      if (n === 0) return
      left -= n
      yield n === buf.byteLength ? buf : buf.subarray(0, n)
    }
  } finally {
    closeSync(fd)
  }
}
