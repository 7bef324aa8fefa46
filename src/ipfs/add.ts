// Import of add requests: UnixFS (Kubo / IPFS Cluster semantics) and CAR. Stores blocks, pins nothing.
import { setMaxListeners } from 'node:events'
import { CarBlockIterator } from '@ipld/car/iterator'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { pushable } from 'it-pushable'
// a file node of 2-4 GiB is written right only with this
import './protons-uint64.js'
import { InvalidParameterError } from '../errors.js'
import { hashesTo } from '../utils/cid.js'
import type { AbortOptions, AddEntry, AddParams, AddedOutput } from '../components.js'
import type { BufferImporter, ImportCandidate, ImporterOptions, ImportResult } from 'ipfs-unixfs-importer'
import * as varint from 'uint8-varint'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import type { MultihashHasher } from 'multiformats/hashes/interface'

/** IPFS Cluster's and Kubo's default chunker: size-262144. */
export const DEFAULT_CHUNK_SIZE = 262_144
/** Kubo refuses chunks above 1 MiB: larger blocks would not travel over bitswap. */
export const MAX_CHUNK_SIZE = 1_048_576

export interface BlockSink {
  put(cid: CID, bytes: Uint8Array, options?: AbortOptions): unknown
}

export interface ResolvedAddParams {
  cidVersion: 0 | 1
  rawLeaves: boolean
  wrapWithDirectory: boolean
  chunkSize: number
  progress: boolean
}

/** Validates and applies defaults: cid_version 0, raw_leaves = (cid_version 1), chunk_size 256 KiB. */
export function resolveAddParams (params: AddParams): ResolvedAddParams {
  const cidVersion = params.cid_version ?? 0
  if (cidVersion !== 0 && cidVersion !== 1) {
    throw new InvalidParameterError(`cid_version must be 0 or 1, got ${String(cidVersion)}`)
  }
  const chunkSize = params.chunk_size ?? DEFAULT_CHUNK_SIZE
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) {
    throw new InvalidParameterError(`chunk_size must be an integer from 1 to ${MAX_CHUNK_SIZE}, got ${String(chunkSize)}`)
  }
  return {
    cidVersion,
    // as Kubo: CIDv1 implies raw leaves unless the request says otherwise
    rawLeaves: params.raw_leaves ?? cidVersion === 1,
    wrapWithDirectory: params.wrap_with_directory ?? false,
    chunkSize,
    progress: params.progress ?? false
  }
}

/** 'a//b/./c' -> 'a/b/c'; rejects '..' and empty paths, which could not name a place in the DAG. */
export function normalisePath (path: string): string {
  const parts = path.split('/').filter(p => p !== '' && p !== '.')
  if (parts.includes('..')) {
    throw new InvalidParameterError(`invalid path "${path}": ".." is not allowed`)
  }
  if (parts.length === 0) {
    throw new InvalidParameterError(`invalid path "${path}": empty file name`)
  }
  return parts.join('/')
}

/** Emit a progress line at most every this many bytes of one file (and at its end). */
const PROGRESS_STEP = 1_048_576

/**
 * Imports AddEntries as UnixFS into `blocks`. Yields one AddedOutput per file and directory (names relative to
 * the add root; the wrapping directory is named ''), the root last. `size` is the cumulative DAG size.
 * With `progress`, also yields `{ name, cid: '', bytes }` lines (bytes read so far of that file); AddedOutput
 * has `cid` required, so progress lines carry an empty one and callers tell them apart by `cid === ''`.
 */
export async function * importEntries (entries: AsyncIterable<AddEntry>, params: AddParams, blocks: BlockSink, options: AbortOptions = {}): AsyncGenerator<AddedOutput> {
  const resolved = resolveAddParams(params)
  const iterator = entries[Symbol.asyncIterator]()
  const first = await iterator.next()
  if (first.done === true) {
    throw new InvalidParameterError('no files in the request')
  }
  const controller = new AbortController()
  const signal = options.signal != null ? AbortSignal.any([controller.signal, options.signal]) : controller.signal
  // each block write in flight listens to it
  setMaxListeners(Infinity, signal)
  const progress = resolved.progress ? pushable<AddedOutput>({ objectMode: true }) : undefined

  async function * readContent (name: string, content: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    let bytes = 0
    let reported = 0
    for await (const chunk of content) {
      signal.throwIfAborted()
      bytes += chunk.byteLength
      if (progress != null && bytes - reported >= PROGRESS_STEP) {
        progress.push({ name, cid: '', bytes })
        reported = bytes
      }
      yield chunk
    }
    if (progress != null && (bytes !== reported || bytes === 0)) {
      progress.push({ name, cid: '', bytes })
    }
  }

  // The importer links explicitly given empty directories but never yields them below the top level (its
  // tree builder only yields directories it built itself): remember them to emit their lines ourselves.
  const explicitDirs = new Map<string, ImportResult>()
  const ancestors = new Set<string>()

  // paths given as files or symlinks (leaves): the importer keeps only the last entry of a name, so a second one
  // would silently drop the first from its directory
  const leaves = new Map<string, 'file' | 'symlink'>()
  const dirs = new Set<string>()
  const givenAsLeaf = (entry: AddEntry, path: string): InvalidParameterError =>
    new InvalidParameterError(`invalid path "${entry.path}": "${path}" was already given as a ${leaves.get(path) ?? 'file'}`)

  async function * candidates (): AsyncGenerator<ImportCandidate> {
    let next = first
    while (next.done !== true) {
      const entry = next.value
      const path = normalisePath(entry.path)
      const leaf = entry.content != null || entry.link != null
      if (leaves.has(path)) throw givenAsLeaf(entry, path)
      if (!leaf && ancestors.has(path)) {
        // already implied by an earlier entry: given again, the importer would replace it, contents and all
        next = await iterator.next()
        continue
      }
      if (leaf && (ancestors.has(path) || dirs.has(path))) {
        throw new InvalidParameterError(`invalid path "${entry.path}": "${path}" was already given as a directory`)
      }
      for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
        const parent = path.slice(0, i)
        if (leaves.has(parent)) throw givenAsLeaf(entry, parent)
        ancestors.add(parent)
      }
      if (entry.link != null) {
        // stored as a UnixFS symlink, as Kubo does: the target is never looked at, so a dangling one is fine
        leaves.set(path, 'symlink')
        yield { path, link: entry.link }
      } else if (entry.content != null) {
        leaves.set(path, 'file')
        yield { path, content: readContent(path, entry.content) }
      } else {
        dirs.add(path)
        yield { path }
      }
      next = await iterator.next()
    }
  }

  // the importer's own directory builder, plus a record of what it built
  const dirBuilder: NonNullable<ImporterOptions['dirBuilder']> = async (dir, blockstore, opts) => {
    const unixfs = new UnixFS({ type: 'directory', mtime: dir.mtime, mode: dir.mode })
    const block = dagPb.encode(dagPb.prepare({ Data: unixfs.marshal() }))
    const cid = CID.create(opts.cidVersion, dagPb.code, await sha256.digest(block))
    await blockstore.put(cid, block, opts)
    const result = { cid, path: dir.path, unixfs, size: BigInt(block.length), originalPath: dir.originalPath, block }
    if (dir.path != null) {
      explicitDirs.set(dir.path, result)
    }
    return result
  }
  const unyieldedEmptyDirs = (): ImportResult[] => [...explicitDirs.values()].filter(d => {
    const path = d.path ?? ''
    return !ancestors.has(path) && (resolved.wrapWithDirectory || path.includes('/'))
  })

  const importerOptions: ImporterOptions = {
    // Kubo's classic layout: balanced DAG, 174 links per node, HAMT directories past 256 KiB
    profile: 'unixfs-v0-2015',
    cidVersion: resolved.cidVersion,
    rawLeaves: resolved.rawLeaves,
    chunker: fixedSize({ chunkSize: resolved.chunkSize }),
    wrapWithDirectory: resolved.wrapWithDirectory,
    // entries of a multipart body arrive one after the other: the importer must finish reading one file before
    // it asks for the next, or it waits for an entry that waits for it (it pulls `fileImportConcurrency` first)
    fileImportConcurrency: 1,
    blockWriteConcurrency: 32,
    bufferImporter: leafImporter(resolved),
    dirBuilder
  }
  const writer = new WriteBehind(blocks, signal)
  const sink = { put: async (cid: CID, bytes: Uint8Array) => { await writer.put(cid, bytes); return cid } }
  const results = importer(candidates(), sink, importerOptions)
  const toOutput = (r: ImportResult): AddedOutput => ({ name: r.path ?? '', cid: r.cid.toString(), size: Number(r.size) })
  // directories come after every file, children before parents: empty ones go just before the first of them
  let emptyDirsDone = false
  async function * withEmptyDirs (): AsyncGenerator<ImportResult> {
    for await (const result of results) {
      if (!emptyDirsDone && result.unixfs?.isDirectory() === true) {
        emptyDirsDone = true
        yield * unyieldedEmptyDirs()
      }
      yield result
    }
    if (!emptyDirsDone) {
      yield * unyieldedEmptyDirs()
    }
  }
  // the last result (the root) is held back until every block write has landed: an add that answered its
  // root has stored all of its blocks
  async function * flushedBeforeRoot (): AsyncGenerator<ImportResult> {
    let last: ImportResult | undefined
    for await (const result of withEmptyDirs()) {
      if (last !== undefined) yield last
      last = result
    }
    await writer.flush()
    if (last !== undefined) yield last
  }

  try {
    if (progress == null) {
      for await (const result of flushedBeforeRoot()) {
        yield toOutput(result)
      }
      return
    }
    // progress lines are produced while the importer reads, results when it finishes a file: merge both
    const importing = (async () => {
      try {
        for await (const result of flushedBeforeRoot()) {
          progress.push(toOutput(result))
        }
        progress.end()
      } catch (err) {
        progress.end(err as Error)
      }
    })()
    try {
      yield * progress
    } finally {
      // not awaited: a consumer that stops early must not wait on a source that may never send more
      controller.abort()
      void importing
    }
  } finally {
    controller.abort()
    // writes still in flight after a failure or an early stop end (aborted) before the caller goes on
    await writer.settle()
  }
}

/**
 * The importer's leaf builder, with a dag-pb leaf encoded in one allocation: the default one marshals the UnixFS
 * message (a copy of the data) and then the dag-pb node around it (a second copy), which is most of what it
 * costs to import a tree of small files. The bytes are the same (test/ipfs/add.test.ts).
 */
export function leafImporter (params: Pick<ResolvedAddParams, 'cidVersion' | 'rawLeaves'>): BufferImporter {
  return async function * (file, blockstore) {
    for await (const chunk of file.content) {
      yield async () => {
        const block = params.rawLeaves ? chunk : encodeFileLeaf(chunk)
        const cid = CID.create(params.rawLeaves ? 1 : params.cidVersion, params.rawLeaves ? raw.code : dagPb.code, await sha256.digest(block))
        await blockstore.put(cid, block)
        const unixfs = params.rawLeaves ? undefined : new UnixFS({ type: 'file', data: chunk })
        return { cid, unixfs, size: BigInt(block.byteLength), block }
      }
    }
  }
}

/** dagPb.encode({ Data: new UnixFS({ type: 'file', data }).marshal(), Links: [] }), written directly. */
export function encodeFileLeaf (data: Uint8Array): Uint8Array {
  const n = data.byteLength
  // UnixFS Data: Type (field 1) = File (2); Data (field 2) unless empty; filesize (field 3)
  const unixfsLength = 2 + (n > 0 ? 1 + varint.encodingLength(n) + n : 0) + 1 + varint.encodingLength(n)
  // PBNode: Data (field 1), no Links
  const out = new Uint8Array(1 + varint.encodingLength(unixfsLength) + unixfsLength)
  let at = 0
  out[at++] = 0x0a
  varint.encode(unixfsLength, out, at)
  at += varint.encodingLength(unixfsLength)
  out[at++] = 0x08
  out[at++] = 0x02
  if (n > 0) {
    out[at++] = 0x12
    varint.encode(n, out, at)
    at += varint.encodingLength(n)
    out.set(data, at)
    at += n
  }
  out[at++] = 0x18
  varint.encode(n, out, at)
  return out
}

/** Block writes in flight at most, and their bytes: bounds the memory the write-behind holds. */
export const WRITE_BEHIND_BLOCKS = 256
export const WRITE_BEHIND_BYTES = 32 * 1024 * 1024

/**
 * Block writes that do not hold up the importer. The importer builds one file at a time (multipart entries
 * arrive one after the other), so waiting for each file's blocks to reach the store (a `has` and a `put`, each
 * a round trip to level's thread pool) before reading the next file would make a tree of small files as slow as
 * the sum of those round trips. Here a put returns as soon as the write is started, unless too many writes (or
 * bytes) are in flight; the first failure is thrown by the next put or by flush().
 */
export class WriteBehind {
  private readonly sink: BlockSink
  private readonly signal: AbortSignal
  private readonly inflight = new Set<Promise<void>>()
  private bytes = 0
  private failure: { error: unknown } | undefined

  /**
   * @param onFailure told of the first failed write at once (a walk that waits for blocks, not for the next put,
   * stops with it)
   */
  constructor (sink: BlockSink, signal: AbortSignal, private readonly onFailure?: (err: unknown) => void) {
    this.sink = sink
    this.signal = signal
  }

  /** The first write that failed, if one did. */
  get error (): { error: unknown } | undefined {
    return this.failure
  }

  async put (cid: CID, block: Uint8Array): Promise<void> {
    this.check()
    while (this.inflight.size > 0 && (this.inflight.size >= WRITE_BEHIND_BLOCKS || this.bytes + block.byteLength > WRITE_BEHIND_BYTES)) {
      await Promise.race(this.inflight)
      this.check()
    }
    const size = block.byteLength
    this.bytes += size
    const write: Promise<void> = Promise.resolve()
      .then(async () => { await this.sink.put(cid, block, { signal: this.signal }) })
      .catch(err => {
        if (this.failure !== undefined) return
        this.failure = { error: err }
        this.onFailure?.(err)
      })
      // always after the assignment: a then-callback never runs synchronously
      .finally(() => {
        this.inflight.delete(write)
        this.bytes -= size
      })
    this.inflight.add(write)
  }

  /** Resolves when every write started has landed; throws the first failure. */
  async flush (): Promise<void> {
    await this.settle()
    this.check()
  }

  /** Waits for the writes in flight, whatever their outcome. */
  async settle (): Promise<void> {
    while (this.inflight.size > 0) {
      await Promise.all(this.inflight)
    }
  }

  private check (): void {
    if (this.failure !== undefined) {
      throw this.failure.error
    }
  }
}

export interface CarImportComponents {
  blocks: BlockSink
  getHasher(code: number): MultihashHasher | Promise<MultihashHasher>
}

const IDENTITY = 0x00

/**
 * Imports a CAR with exactly one root, verifying every block against its CID. Yields the root's AddedOutput
 * (name '', size = bytes of the blocks in the CAR). Blocks are stored as they are read; a CAR that turns out
 * invalid half-way leaves the blocks read so far unpinned (garbage-collectable).
 */
export async function * importCar (bytes: AsyncIterable<Uint8Array>, components: CarImportComponents, options: AbortOptions = {}): AsyncGenerator<AddedOutput> {
  let car: CarBlockIterator
  try {
    car = await CarBlockIterator.fromIterable(bytes)
  } catch (err) {
    throw new InvalidParameterError(`invalid CAR: ${(err as Error).message}`)
  }
  const roots = await car.getRoots()
  if (roots.length !== 1) {
    throw new InvalidParameterError('only CAR files with a single root are supported')
  }
  const controller = new AbortController()
  const signal = options.signal != null ? AbortSignal.any([controller.signal, options.signal]) : controller.signal
  // each block write in flight listens to it
  setMaxListeners(Infinity, signal)
  // a CAR of a file tree is mostly small blocks: waiting for each one's store round trips before reading the next
  // made the CAR's import as slow as the sum of them
  const writer = new WriteBehind(components.blocks, signal)
  const blocks = car[Symbol.asyncIterator]()
  let size = 0
  try {
    while (true) {
      signal.throwIfAborted()
      let next: IteratorResult<{ cid: CID, bytes: Uint8Array }>
      try {
        next = await blocks.next()
      } catch (err) {
        throw new InvalidParameterError(`invalid CAR: ${(err as Error).message}`)
      }
      if (next.done === true) {
        break
      }
      const { cid, bytes: block } = next.value
      if (cid.multihash.code === IDENTITY) {
        // the data is in the CID itself; storing it would only duplicate it
        continue
      }
      let hasher: MultihashHasher
      try {
        hasher = await components.getHasher(cid.multihash.code)
      } catch {
        throw new InvalidParameterError(`invalid CAR: block ${cid} uses unsupported hash function 0x${cid.multihash.code.toString(16)}`)
      }
      if (!await hashesTo(hasher, cid, block)) {
        throw new InvalidParameterError(`invalid CAR: block ${cid} does not match its hash`)
      }
      await writer.put(cid, block)
      size += block.byteLength
    }
    await writer.flush()
  } finally {
    controller.abort()
    // writes still in flight after a failure end (aborted) before the caller goes on
    await writer.settle()
  }
  yield { name: '', cid: roots[0].toString(), size }
}
