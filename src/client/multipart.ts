// The body of POST /add: Kubo-style multipart/form-data generated while walking the filesystem, so a tree of
// any size is streamed with a few buffers in memory.
import { closeSync, openSync, readdirSync, readSync, statSync, type Stats } from 'node:fs'
import { stat } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import { InvalidParameterError } from '../errors.js'

export interface WalkOptions {
  recursive?: boolean
  /** Include entries whose name starts with '.' (below the given paths), as `ipfs add -H`. */
  hidden?: boolean
}

export interface WalkEntry {
  /** '/'-separated path relative to the parent of the given path: its first segment is the given path's basename. */
  path: string
  abs: string
  /** undefined for a directory. */
  size?: number
}

/** Read size: the importer's default chunk, so that a file's pieces become its blocks without being copied. */
const CHUNK = 256 * 1024

/** Fails before any request is made when a path is missing, or is a directory and recursive is not set. */
export async function checkPaths (paths: string[], options: WalkOptions): Promise<void> {
  if (paths.length === 0) throw new InvalidParameterError('nothing to add: no paths given')
  for (const p of paths) {
    let st: Stats
    try {
      st = await stat(p)
    } catch (err) {
      throw new InvalidParameterError(`cannot add ${p}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`)
    }
    if (st.isDirectory() && options.recursive !== true) throw new InvalidParameterError(`${p} is a directory: add it recursively (-r)`)
  }
}

/**
 * Every directory and file under the given paths, depth first, directory entries in name order. Symlinks are
 * followed. The file system calls are synchronous: a walk of 10,000 files through the thread pool (a round
 * trip per stat and readdir) cost more than all of them take here from the page cache.
 */
export async function * walk (paths: string[], options: WalkOptions): AsyncGenerator<WalkEntry> {
  for (const p of paths) {
    const abs = resolve(p)
    yield * visit(abs, basename(abs), statSync(abs), options, new Set())
  }
}

function * visit (abs: string, path: string, st: Stats, options: WalkOptions, ancestors: Set<string>): Generator<WalkEntry> {
  if (st.isFile()) {
    yield { path, abs, size: st.size }
    return
  }
  if (!st.isDirectory()) throw new InvalidParameterError(`cannot add ${abs}: not a regular file or directory`)
  if (options.recursive !== true) throw new InvalidParameterError(`${abs} is a directory: add it recursively (-r)`)
  const key = `${st.dev}:${st.ino}`
  if (ancestors.has(key)) throw new InvalidParameterError(`cannot add ${abs}: symlink loop`)
  yield { path, abs }
  const names = readdirSync(abs).filter(name => options.hidden === true || !name.startsWith('.')).sort()
  ancestors.add(key)
  for (const name of names) {
    const child = join(abs, name)
    yield * visit(child, `${path}/${name}`, statSync(child), options, ancestors)
  }
  ancestors.delete(key)
}

/** Sum of the sizes of the files a walk would send. */
export async function totalBytes (paths: string[], options: WalkOptions): Promise<number> {
  let total = 0
  for await (const entry of walk(paths, options)) total += entry.size ?? 0
  return total
}

/** One part per entry (filename = url-encoded relative path, as go-ipfs-files writes it); onBytes gets file bytes sent. */
export async function * multipartBody (entries: AsyncIterable<WalkEntry>, boundary: string, onBytes?: (n: number) => void): AsyncGenerator<Uint8Array> {
  const crlf = Buffer.from('\r\n')
  for await (const entry of entries) {
    const type = entry.size == null ? 'application/x-directory' : 'application/octet-stream'
    yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${encodeURIComponent(entry.path)}"\r\nContent-Type: ${type}\r\n\r\n`)
    if (entry.size != null) {
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
