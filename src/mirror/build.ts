// Builds a mirror's UnixFS DAG on the client: files that changed are read and chunked, unchanged files come
// from the cache as (CID, Tsize) without being opened. Flat directories are made here; a tree with a directory
// the importer could shard (Kubo's layout: HAMT shards past 256 KiB of links) goes through the importer's own
// tree builder. Either way the CIDs are those a peer-side add would make.
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readFile } from 'node:fs/promises'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS, type Mtime } from 'ipfs-unixfs'
import { importer, type ImportCandidate, type ImporterOptions, type InProgressImportResult } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
// a file node of 2-4 GiB is written right only with this
import '../ipfs/protons-uint64.js'
import { DEFAULT_CHUNK_SIZE } from '../ipfs/add.js'
import { parseCid } from '../utils/cid.js'
import type { CachedDir, CachedFile } from './cache.js'
import type { TreeEntry } from './walk.js'

/** The importer's threshold (unixfs-v0-2015, 'links-bytes'): past it, a directory becomes a HAMT shard. */
const SHARD_SPLIT_THRESHOLD_BYTES = 262_144
/** Files read at once. */
const FILE_READ_CONCURRENCY = 8

/** Name of the root in the importer's paths; never stored (a root has no name in the DAG). */
const ROOT = 'root'

export interface BuildInit {
  /** Store mtime and mode in the UnixFS nodes (default true). Without, CIDs equal `cairn add -r -H --cid-version 1`. */
  metadata?: boolean
  chunkSize?: number
  /** The cached (CID, Tsize) of a file whose (size, mtime, mode) are unchanged; undefined to read it. */
  cached?: (entry: TreeEntry) => { cid: string, tsize: number } | undefined
  /** Tree blocks (directories, shards, symlinks) the cluster already has: not passed to `sink`. */
  known?: ReadonlySet<string>
  /**
   * The directories and files of the last build, by path. A directory whose fingerprint (see `fingerprints`)
   * is unchanged has the CID it had: it is not rebuilt, and its files are not looked at again. Only valid with
   * the `cached` files of the same build.
   */
  previous?: { dirs: Record<string, CachedDir>, files: Record<string, CachedFile> }
  /** Receives each block to upload, once; awaited, so a slow upload holds the reading back. */
  sink: (cid: CID, bytes: Uint8Array) => Promise<void>
  /** After each file: whether it was read, and its bytes (read or not). */
  onFile?: (entry: TreeEntry, read: boolean) => void
  /** Build every directory with the importer's tree builder, as for shardable ones (tests compare the two). */
  useImporter?: boolean
  signal?: AbortSignal
}

export interface BuildResult {
  root: CID
  /** Cumulative DAG size of the root (Tsize). */
  rootSize: number
  /** The cache entries of every file of the tree. */
  files: Record<string, CachedFile>
  /** The directories of the new tree, for the next build. */
  dirs: Record<string, CachedDir>
  /** The directory, shard and symlink blocks of the new tree (not those inside directories kept as they were). */
  treeBlocks: string[]
  filesRead: number
  /** Directories kept from the previous build without looking below them (nested ones not counted). */
  dirsKept: number
  bytesRead: number
  blocksSent: number
  bytesSent: number
}

function mtimeOf (ns: bigint): Mtime {
  const nsecs = Number(ns % 1_000_000_000n)
  return nsecs === 0 ? { secs: ns / 1_000_000_000n } : { secs: ns / 1_000_000_000n, nsecs }
}

/**
 * A fingerprint of every directory of a walk: a hash of its own mode and mtime and of each entry below it (name,
 * kind, size, mtime, mode, link target). The same fingerprint means the same directory CID, on the same
 * assumption as the file cache (a file with the same size, mtime and mode has the same content).
 */
export function fingerprints (entries: TreeEntry[]): Map<string, string> {
  const lines = new Map<string, string[]>()
  const out = new Map<string, string>()
  // the walk lists a directory before its entries: backwards, a directory comes after all of them
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]
    let line = `${e.kind}\0${e.path.slice(e.path.lastIndexOf('/') + 1)}\0${e.size}\0${e.mtimeNs}\0${e.mode}\0${e.link ?? ''}`
    if (e.kind === 'dir') {
      const fp = createHash('sha256').update(`${e.mtimeNs}\0${e.mode}\n`).update((lines.get(e.path) ?? []).join('\n')).digest('base64')
      out.set(e.path, fp)
      lines.delete(e.path)
      line += `\0${fp}`
    }
    if (e.path === '') continue
    const parent = e.path.lastIndexOf('/') === -1 ? '' : e.path.slice(0, e.path.lastIndexOf('/'))
    const list = lines.get(parent)
    if (list == null) lines.set(parent, [line])
    else list.push(line)
  }
  return out
}

/** Builds the DAG of the entries of one walk (the root directory first, as walkTree yields them). */
export async function buildTree (entries: Iterable<TreeEntry> | AsyncIterable<TreeEntry>, init: BuildInit): Promise<BuildResult> {
  const metadata = init.metadata ?? true
  const chunkSize = init.chunkSize ?? DEFAULT_CHUNK_SIZE
  const { signal } = init
  const sent = new Set<string>()
  const treeBlocks: string[] = []
  const files: Record<string, CachedFile> = {}
  const dirs: Record<string, CachedDir> = {}
  // directories kept from the previous build, by import path
  const kept = new Map<string, CachedDir>()
  const previous = init.previous
  // fingerprints need the whole walk, and cost ~30 ms per 10,000 entries
  const prints = Array.isArray(entries) ? fingerprints(entries) : undefined
  const unchanged = (e: TreeEntry): CachedDir | undefined => {
    const before = previous?.dirs[e.path]
    return before != null && prints?.get(e.path) === before[0] ? before : undefined
  }
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

  /** Keeps an unchanged directory as it was (its CID; the cache entries below it are carried over at the end). */
  const keep = (dir: TreeEntry, before: CachedDir): void => {
    kept.set(importPath(dir.path), before)
    dirs[dir.path] = before
    treeBlocks.push(before[1])
  }
  /** The cache entries of the directories and files below kept directories. */
  const carryOver = (): void => {
    if (kept.size === 0 || previous == null) return
    // whether a directory is a kept one or inside one, memoised per directory: files share their parent's answer
    const memo = new Map<string, boolean>([['', kept.has(ROOT)]])
    const inKept = (dir: string): boolean => {
      let v = memo.get(dir)
      if (v == null) {
        const slash = dir.lastIndexOf('/')
        v = kept.has(importPath(dir)) || inKept(slash === -1 ? '' : dir.slice(0, slash))
        memo.set(dir, v)
      }
      return v
    }
    const parentOf = (path: string): string => { const slash = path.lastIndexOf('/'); return slash === -1 ? '' : path.slice(0, slash) }
    for (const [path, d] of Object.entries(previous.dirs)) {
      if (path !== '' && inKept(parentOf(path))) { dirs[path] = d; treeBlocks.push(d[1]) }
    }
    for (const [path, f] of Object.entries(previous.files)) {
      if (inKept(parentOf(path))) files[path] = f
    }
  }

  async function * candidates (): AsyncGenerator<ImportCandidate> {
    let skipping: string | undefined
    for await (const e of entries) {
      signal?.throwIfAborted()
      if (skipping != null && e.path.startsWith(skipping)) continue
      skipping = undefined
      const path = importPath(e.path)
      const meta = metadata ? { mtime: mtimeOf(e.mtimeNs), mode: e.mode } : {}
      const before = e.kind === 'dir' && e.path !== '' ? unchanged(e) : undefined
      if (before != null) {
        // linked by name, CID and size like a file: the parent's node is the same either way
        keep(e, before)
        skipping = `${e.path}/`
        yield { path, content: [] }
      } else if (e.kind === 'dir') {
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
    const { cid, block } = await encodeNode(unixfs, [], opts.cidVersion)
    if (dir.path != null && emptyDirs.has(dir.path)) await treeStore.put(cid, block)
    return { cid, path: dir.path, unixfs, size: BigInt(block.length), originalPath: dir.originalPath, block }
  }

  const fileBuilder: NonNullable<ImporterOptions['fileBuilder']> = async (file) => {
    const path = file.path ?? ''
    const dir = kept.get(path)
    if (dir != null) return { cid: parseCid(dir[1]), size: BigInt(dir[2]), path: file.path, originalPath: file.originalPath }
    const entry = pendingFiles.get(path)
    if (entry == null) throw new Error(`mirror build: no entry for ${path}`)
    pendingFiles.delete(path)
    const { cid, size } = await fileNode(entry, file.mtime, file.mode)
    return { cid, size: BigInt(size), path: file.path, originalPath: file.originalPath }
  }

  /** A file's node: from the cache when unchanged, else read and imported; its cache entry and counts too. */
  async function fileNode (entry: TreeEntry, mtime: Mtime | undefined, mode: number | undefined): Promise<{ cid: CID, size: number }> {
    const hit = init.cached?.(entry)
    let cid: CID
    let size: number
    let cidString: string
    if (hit != null) {
      cid = parseCid(hit.cid)
      cidString = hit.cid
      size = hit.tsize
    } else {
      const imported = await importFile(entry, mtime, mode)
      cid = imported.cid
      cidString = cid.toString()
      size = Number(imported.size)
      stats.filesRead++
      stats.bytesRead += entry.size
    }
    files[entry.path] = [entry.size, entry.mtimeNs.toString(), entry.mode, cidString, size]
    init.onFile?.(entry, hit == null)
    return { cid, size }
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

  /**
   * The tree without the importer's tree builder, when no directory to build could become a HAMT shard: the
   * same nodes (flat UnixFS directories, links sorted by name, Tsize = node + links), made directly. The
   * importer took ~70 us per entry handed to it (kept directories and unchanged files included), ~250 ms of
   * a 10,000-file re-sync. Undefined, before anything is read or sent, when a directory has so many links
   * that the importer could shard it: the importer builds those.
   */
  async function buildFlat (all: TreeEntry[]): Promise<{ cid: CID, size: number } | undefined> {
    const parentOf = (path: string): string => { const slash = path.lastIndexOf('/'); return slash === -1 ? '' : path.slice(0, slash) }
    const nameOf = (path: string): string => path.slice(path.lastIndexOf('/') + 1)
    // the directories to build, with their entries; unchanged directories are kept whole, not looked into
    const children = new Map<string, TreeEntry[]>()
    const toBuild: TreeEntry[] = []
    const toKeep: Array<[TreeEntry, CachedDir]> = []
    let skipping: string | undefined
    for (const e of all) {
      if (skipping != null && e.path.startsWith(skipping)) continue
      skipping = undefined
      if (e.path !== '') children.get(parentOf(e.path))?.push(e)
      if (e.kind !== 'dir') continue
      const before = e.path !== '' ? unchanged(e) : undefined
      if (before != null) {
        toKeep.push([e, before])
        skipping = `${e.path}/`
        continue
      }
      children.set(e.path, [])
      toBuild.push(e)
    }
    // the importer shards a directory once its links' name and CID bytes pass the threshold (a CIDv1 of
    // sha2-256 is 36 bytes; 40 leaves room)
    for (const list of children.values()) {
      let bytes = 0
      for (const c of list) bytes += Buffer.byteLength(nameOf(c.path)) + 40
      if (bytes > SHARD_SPLIT_THRESHOLD_BYTES) return undefined
    }
    for (const [e, before] of toKeep) keep(e, before)
    const meta = (e: TreeEntry): { mtime?: Mtime, mode?: number } => metadata ? { mtime: mtimeOf(e.mtimeNs), mode: e.mode } : {}
    const links = new Map<string, { cid: CID, size: number }>()
    for (const [e, before] of toKeep) links.set(e.path, { cid: parseCid(before[1]), size: before[2] })

    // files: from the cache, or read (a few at once, as the importer does)
    const fileEntries: TreeEntry[] = []
    for (const list of children.values()) {
      for (const e of list) {
        if (e.kind === 'symlink') {
          const { cid, block } = await encodeNode(new UnixFS({ type: 'symlink', data: Buffer.from(e.link ?? ''), ...meta(e) }))
          await treeStore.put(cid, block)
          links.set(e.path, { cid, size: block.byteLength })
        } else if (e.kind === 'file') {
          fileEntries.push(e)
        }
      }
    }
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < fileEntries.length) {
        const e = fileEntries[next++]
        const { mtime, mode } = meta(e)
        links.set(e.path, await fileNode(e, mtime, mode))
      }
    }
    await Promise.all(Array.from({ length: Math.min(FILE_READ_CONCURRENCY, fileEntries.length) }, worker))

    // directories, deepest first (the walk lists a directory before its entries)
    for (let i = toBuild.length - 1; i >= 0; i--) {
      signal?.throwIfAborted()
      const dir = toBuild[i]
      const list = children.get(dir.path) ?? []
      const dirLinks = list.map(c => {
        const link = links.get(c.path)
        if (link == null) throw new Error(`mirror build: no node for ${c.path}`)
        return { Name: nameOf(c.path), Hash: link.cid, Tsize: link.size }
      })
      const { cid, block } = await encodeNode(new UnixFS({ type: 'directory', ...meta(dir) }), dirLinks)
      await treeStore.put(cid, block)
      const size = dirLinks.reduce((sum, l) => sum + l.Tsize, block.byteLength)
      links.set(dir.path, { cid, size })
      dirs[dir.path] = [prints?.get(dir.path) ?? '', cid.toString(), size]
    }
    return links.get('')
  }

  const options: ImporterOptions = {
    ...fileOptions(chunkSize, signal),
    wrapWithDirectory: false,
    // files are opened by fileBuilder; some in parallel keeps the disk busy while another one is hashed
    fileImportConcurrency: FILE_READ_CONCURRENCY,
    dirBuilder,
    fileBuilder
  }
  // nothing changed at all: the root is the one of the last build
  const rootEntry = Array.isArray(entries) ? entries[0] as TreeEntry | undefined : undefined
  const same = rootEntry?.path === '' ? unchanged(rootEntry) : undefined
  if (same != null && rootEntry != null) {
    keep(rootEntry, same)
    carryOver()
    return { root: parseCid(same[1]), rootSize: same[2], files, dirs, treeBlocks, dirsKept: kept.size, ...stats }
  }
  if (init.useImporter !== true && Array.isArray(entries) && rootEntry?.path === '') {
    const built = await buildFlat(entries as TreeEntry[])
    if (built != null) {
      carryOver()
      return { root: built.cid, rootSize: built.size, files, dirs, treeBlocks, dirsKept: kept.size, ...stats }
    }
  }
  let root: InProgressImportResult | undefined
  for await (const r of importer(candidates(), treeStore, options)) {
    if (r.path === ROOT) root = r
    const dirPath = r.path === ROOT ? '' : r.path?.slice(ROOT.length + 1)
    // directories built here (kept ones come back as files, and are in `dirs` already)
    if (dirPath != null && prints != null && r.unixfs?.isDirectory() === true) dirs[dirPath] = [prints.get(dirPath) ?? '', r.cid.toString(), Number(r.size)]
  }
  if (root == null) throw new Error('mirror build: the importer made no root')
  carryOver()
  return { root: root.cid, rootSize: Number(root.size), files, dirs, treeBlocks, dirsKept: kept.size, ...stats }
}

/** A dag-pb node holding `unixfs` (a directory or symlink), as the importer encodes them. */
async function encodeNode (unixfs: UnixFS, links: dagPb.PBLink[] = [], cidVersion: 0 | 1 = 1): Promise<{ cid: CID, block: Uint8Array }> {
  const block = dagPb.encode(dagPb.prepare({ Data: unixfs.marshal(), Links: links }))
  return { cid: CID.create(cidVersion, dagPb.code, await sha256.digest(block)), block }
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
