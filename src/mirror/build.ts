// Builds a mirror's UnixFS DAG on the client: files that changed are read and chunked, unchanged files come
// from the cache as (CID, Tsize) without being opened, and the importer's own tree builder makes the directories
// (Kubo's layout: HAMT shards past 256 KiB of links), so the CIDs are those a peer-side add would make.
import { createReadStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS, type Mtime } from 'ipfs-unixfs'
import { importer, type ImportCandidate, type ImporterOptions, type InProgressImportResult } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { DEFAULT_CHUNK_SIZE } from '../ipfs/add.js'
import type { CachedFile } from './cache.js'
import type { TreeEntry } from './walk.js'

/** Name of the root in the importer's paths; never stored (a root has no name in the DAG). */
const ROOT = 'root'

export interface BuildInit {
  /** Store mtime and mode in the UnixFS nodes (default true). Without, CIDs equal `cairn add -r --cid-version 1`. */
  metadata?: boolean
  chunkSize?: number
  /** The cached (CID, Tsize) of a file whose (size, mtime, mode) are unchanged; undefined to read it. */
  cached?: (entry: TreeEntry) => { cid: string, tsize: number } | undefined
  /** Tree blocks (directories, shards, symlinks) the cluster already has: not passed to `sink`. */
  known?: ReadonlySet<string>
  /** Receives each block to upload, once; awaited, so a slow upload holds the reading back. */
  sink: (cid: CID, bytes: Uint8Array) => Promise<void>
  /** After each file: whether it was read, and its bytes (read or not). */
  onFile?: (entry: TreeEntry, read: boolean) => void
  signal?: AbortSignal
}

export interface BuildResult {
  root: CID
  /** Cumulative DAG size of the root (Tsize). */
  rootSize: number
  /** The cache entries of every file of the tree. */
  files: Record<string, CachedFile>
  /** Every directory, shard and symlink block of the new tree. */
  treeBlocks: string[]
  filesRead: number
  bytesRead: number
  blocksSent: number
  bytesSent: number
}

function mtimeOf (ns: bigint): Mtime {
  const nsecs = Number(ns % 1_000_000_000n)
  return nsecs === 0 ? { secs: ns / 1_000_000_000n } : { secs: ns / 1_000_000_000n, nsecs }
}

/** Builds the DAG of the entries of one walk (the root directory first, as walkTree yields them). */
export async function buildTree (entries: Iterable<TreeEntry> | AsyncIterable<TreeEntry>, init: BuildInit): Promise<BuildResult> {
  const metadata = init.metadata ?? true
  const chunkSize = init.chunkSize ?? DEFAULT_CHUNK_SIZE
  const { signal } = init
  const sent = new Set<string>()
  const treeBlocks: string[] = []
  const files: Record<string, CachedFile> = {}
  const pendingFiles = new Map<string, TreeEntry>()
  const emptyDirs = new Set<string>()
  const stats = { filesRead: 0, bytesRead: 0, blocksSent: 0, bytesSent: 0 }

  const emit = async (cid: CID, bytes: Uint8Array): Promise<void> => {
    const key = cid.toString()
    if (sent.has(key) || init.known?.has(key) === true) return
    sent.add(key)
    stats.blocksSent++
    stats.bytesSent += bytes.byteLength
    await init.sink(cid, bytes)
  }
  // the tree builder's blocks: directories, shards and symlinks
  const treeStore = {
    put: async (cid: CID, bytes: Uint8Array) => {
      signal?.throwIfAborted()
      treeBlocks.push(cid.toString())
      await emit(cid, bytes)
      return cid
    }
  }
  const importPath = (path: string): string => path === '' ? ROOT : `${ROOT}/${path}`

  async function * candidates (): AsyncGenerator<ImportCandidate> {
    for await (const e of entries) {
      signal?.throwIfAborted()
      const path = importPath(e.path)
      const meta = metadata ? { mtime: mtimeOf(e.mtimeNs), mode: e.mode } : {}
      if (e.kind === 'dir') {
        if (e.empty === true) emptyDirs.add(path)
        yield { path, ...meta }
      } else if (e.kind === 'symlink') {
        yield { path, link: e.link ?? '', ...meta }
      } else {
        pendingFiles.set(path, e)
        // never read: the file builder below opens the file itself, and only when it has changed
        yield { path, content: [], ...meta }
      }
    }
  }

  // Only empty directories need their own node: the tree builder makes the others from their children (the
  // metadata of this one is copied onto it), so theirs would be an orphan block.
  const dirBuilder: NonNullable<ImporterOptions['dirBuilder']> = async (dir, _blockstore, opts) => {
    const unixfs = new UnixFS({ type: 'directory', mtime: dir.mtime, mode: dir.mode })
    const block = dagPb.encode(dagPb.prepare({ Data: unixfs.marshal() }))
    const cid = CID.create(opts.cidVersion, dagPb.code, await sha256.digest(block))
    if (dir.path != null && emptyDirs.has(dir.path)) await treeStore.put(cid, block)
    return { cid, path: dir.path, unixfs, size: BigInt(block.length), originalPath: dir.originalPath, block }
  }

  const fileBuilder: NonNullable<ImporterOptions['fileBuilder']> = async (file) => {
    const path = file.path ?? ''
    const entry = pendingFiles.get(path)
    if (entry == null) throw new Error(`mirror build: no entry for ${path}`)
    pendingFiles.delete(path)
    const hit = init.cached?.(entry)
    let cid: CID
    let size: bigint
    if (hit != null) {
      cid = CID.parse(hit.cid)
      size = BigInt(hit.tsize)
    } else {
      ({ cid, size } = await importFile(entry, file.mtime, file.mode))
      stats.filesRead++
      stats.bytesRead += entry.size
    }
    files[entry.path] = [entry.size, entry.mtimeNs.toString(), entry.mode, cid.toString(), Number(size)]
    init.onFile?.(entry, hit == null)
    return { cid, size, path: file.path, originalPath: file.originalPath }
  }

  /** Imports one file; forwards its blocks but the raw leaf the importer wraps (and orphans) to hold metadata. */
  async function importFile (entry: TreeEntry, mtime: Mtime | undefined, mode: number | undefined): Promise<{ cid: CID, size: bigint }> {
    let held: Array<[CID, Uint8Array]> | undefined = []
    const store = {
      put: async (cid: CID, bytes: Uint8Array) => {
        signal?.throwIfAborted()
        if (held == null) {
          await emit(cid, bytes)
          return cid
        }
        held.push([cid, bytes])
        // a single-leaf file writes at most two blocks (leaf, metadata node); past that all are part of the DAG
        if (held.length > 2) {
          const all = held
          held = undefined
          for (const [c, b] of all) await emit(c, b)
        }
        return cid
      }
    }
    // one read for a file that fits a chunk (most of a package tree); a stream's 256 KiB buffer each would be GC work
    const content = entry.size <= chunkSize ? [await readFile(entry.abs, { signal })] : createReadStream(entry.abs, { highWaterMark: chunkSize, signal })
    let result: { cid: CID, size: bigint } | undefined
    for await (const r of importer([{ content, mtime, mode }], store, fileOptions(chunkSize, signal))) result = r
    if (result == null) throw new Error(`mirror build: nothing imported for ${entry.path}`)
    if (held != null) {
      const rootCid = result.cid
      const links = rootCid.code === dagPb.code
        ? new Set(dagPb.decode(held.find(([c]) => c.equals(rootCid))?.[1] ?? new Uint8Array()).Links.map(l => l.Hash.toString()))
        : new Set<string>()
      for (const [c, b] of held) {
        if (c.equals(rootCid) || links.has(c.toString()) || c.code !== raw.code) await emit(c, b)
      }
    }
    return result
  }

  const options: ImporterOptions = {
    ...fileOptions(chunkSize, signal),
    wrapWithDirectory: false,
    // files are opened by fileBuilder; some in parallel keeps the disk busy while another one is hashed
    fileImportConcurrency: 8,
    dirBuilder,
    fileBuilder
  }
  let root: InProgressImportResult | undefined
  for await (const r of importer(candidates(), treeStore, options)) {
    if (r.path === ROOT) root = r
  }
  if (root == null) throw new Error('mirror build: the importer made no root')
  return { root: root.cid, rootSize: Number(root.size), files, treeBlocks, ...stats }
}

/** The settings of POST /add with cid-version=1: Kubo's layout, CIDv1, raw leaves, fixed-size chunks. */
function fileOptions (chunkSize: number, signal?: AbortSignal): ImporterOptions {
  return {
    profile: 'unixfs-v0-2015',
    cidVersion: 1,
    rawLeaves: true,
    chunker: fixedSize({ chunkSize }),
    blockWriteConcurrency: 8,
    signal
  } as ImporterOptions
}
