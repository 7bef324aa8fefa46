// The blockstore: blocks in a level database, kept in the order they were written, with a byte count.
//
// Two level databases (keys utf8, values bytes):
//   <path>          /d/<seq>: a block's bytes; <seq> is 12 hex digits, one more for each block written.
//                   Also /<multihash>: blocks written by an earlier version (blockstore-level's layout), which
//                   are read, counted and deleted, never written.
//   <path>-index    /i/<multihash>: where a block is; <multihash> in base32upper, the value "<seq><length>"
//                   (hex, as ASCII).
// The index is a database of its own so that a memtable of blocks holds nothing but increasing keys: a table
// file written from it overlaps no other, and LevelDB moves it down the levels whole instead of merging it.
// A block's bytes are written before its index entry, and its index entry deleted before its bytes: a crash in
// between leaves bytes no index entry points to (at most the writes in flight), never an entry without bytes.
// Those of puts are numbered above every indexed block, and the first open after the crash deletes them; those
// of deletes (at most the deletes in flight) stay.
//
// Why not blockstore-level's layout (each block under its multihash): LevelDB keeps keys sorted, so blocks under
// random keys are merged and rewritten at every level as the store grows; measured on this project's machine,
// writing 2 GB of 256 KiB blocks took 15.9 s and 295 compactions that way, and 7.3 s and none with keys in
// written order (each table file of blocks is moved down whole). The index entries (~40 bytes) still have
// random keys, but rewriting those costs little. `npm run bench -- blockstore` compares the two (2 GB: 2.7-3.8x,
// 8 GB: 4.5x). See docs/DESIGN.md §10, "Blocks in the order written".
//
// Deleted blocks keep their space until the ranges they were in are compacted: see deleted().
// The count is persisted in the datastore on a clean close and removed while open: after a crash the key is
// missing and the count is rebuilt once by reading the index (and any earlier-layout blocks).
import { BaseBlockstore } from 'blockstore-core/base'
import { Key } from 'interface-datastore'
import type { Level } from 'level'
import { base32upper } from 'multiformats/bases/base32'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import * as Digest from 'multiformats/hashes/digest'
import { NotFoundError } from '../errors.js'
import { guardedLevel, type GuardedLevel } from '../storage/guarded-level.js'
import { concatChunks } from '../utils/bytes.js'
import { Grouped } from '../utils/grouped.js'
import { KeyedLock } from '../utils/keyed-lock.js'
import type { Logger } from '@libp2p/interface'
import type { LocalBlockstore } from './blockstore.js'
import type { Pair } from 'interface-blockstore'
import type { Datastore } from 'interface-datastore'
import type { AbortOptions } from '../components.js'

const SIZE_KEY = new Key('/cairn/ipfs/repo-size')

const DATA = '/d/'
const INDEX = '/i/'
/** Upper bounds of the two ranges ('0' follows '/'). */
const DATA_END = '/d0'
const INDEX_END = '/i0'
/** Every key of the earlier layout: '/' then base32upper, which sorts before '/d/' and '/i/'. */
const LEGACY = { gt: '/', lt: '/[' }
const SEQ_DIGITS = 12
/** Bytes deleted before the ranges they were in are looked at for compaction, so that level gives the space back. */
const RECLAIM_BYTES = 64 * 1024 * 1024
/** Deleted blocks further apart than this many sequence numbers are in different ranges. */
const RUN_GAP = 256
/** A range is compacted when at least this share of what level holds there was deleted (rewriting costs 1/share). */
const RECLAIM_DENSITY = 0.25
/** Deleted blocks remembered at most (the oldest are forgotten past it: their space waits for a later compaction). */
const MAX_PENDING = 200_000
/** Where the deleted blocks not compacted yet are kept across a restart. */
const PENDING_KEY = new Key('/cairn/ipfs/blocks-deleted')
/** Unindexed blocks a crash can leave above the highest indexed one: far more than any write-behind keeps in flight. */
const MAX_ORPHANS = 10_000
/** Table files of blocks: a memtable's worth (files of blocks are rarely rewritten, so they stay that size). */
const MAX_FILE_SIZE = 64 * 1024 * 1024

export interface SizedBlockstoreInit {
  /** Directory of the level database. */
  path: string
  /** Where the count is persisted (already open before open() and until after close()). */
  datastore: Datastore
  log: Logger
  /** LevelDB memtable size. Default 64 MiB. */
  writeBufferSize?: number
  /** Bytes deleted before their range is compacted to give the space back. Default 64 MiB. */
  reclaimBytes?: number
}

/**
 * LevelDB's default 4 MiB memtable turns 256 KiB blocks into constant compactions: measured on this project's
 * machines, writing 1 GiB of blocks took 32 s with it and 7 s with 64 MiB (the disk does 600 MB/s).
 */
export const DEFAULT_WRITE_BUFFER_SIZE = 64 * 1024 * 1024

interface Ref {
  /** The block's data key. */
  key: string
  length: number
}

type Op = { type: 'put', key: string, value: Uint8Array } | { type: 'del', key: string }

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const hexSeq = (seq: number): string => seq.toString(16).padStart(SEQ_DIGITS, '0')

/** A block's data key, from its sequence number. */
const dataKey = (seq: number): string => DATA + hexSeq(seq)

/** The sequence number of a data key. */
const seqOf = (key: string): number => parseInt(key.slice(DATA.length), 16)

function encodeRef (seq: number, length: number): Uint8Array {
  return encoder.encode(hexSeq(seq) + length.toString(16))
}

function decodeRef (value: Uint8Array): Ref {
  const s = decoder.decode(value)
  return { key: DATA + s.slice(0, SEQ_DIGITS), length: parseInt(s.slice(SEQ_DIGITS), 16) }
}

export class SizedBlockstore extends BaseBlockstore implements LocalBlockstore {
  private readonly db: GuardedLevel<string, Uint8Array>
  private readonly index: GuardedLevel<string, Uint8Array>
  private readonly datastore: Datastore
  private readonly log: Logger
  private readonly path: string
  private readonly writeBufferSize: number
  private readonly reclaimBytes: number
  private bytes = 0
  private opened = false
  /** The next block's sequence number. */
  private seq = 0
  /** Whether blocks of the earlier layout may be held (found at open; never written again). */
  private legacy = false
  /** Puts and deletes in flight, by key: keeps the count exact when the same block is written twice at once. */
  private readonly inflight = new KeyedLock()
  /** Deleted blocks whose space level has not given back yet: [sequence number, length]. */
  private pending: Array<[number, number]> = []
  /** Bytes deleted since the ranges were last looked at. */
  private fresh = 0
  private compacting: Promise<void> | undefined
  /**
   * Index lookups, grouped: one level read (a thread-pool round trip) for all the lookups made while the
   * previous one ran; a lone lookup waits for nothing. Gets rather than an iterator: classic-level builds an
   * iterator on the main thread, which cost ~2 ms per lookup while compactions were behind.
   */
  private readonly refs = new Grouped<string, Uint8Array | undefined>(async keys => await this.index.getMany(keys))
  /**
   * Writes, grouped into one level batch per database: a write each cost a thread-pool round trip and a log write
   * of its own (0.7-1.5 s of the peer's CPU in the 10,000-file add benchmark). The two stages run side by side: a
   * group's data is written while the group before it updates the index, instead of one waiting for the other
   * (334 MB of 26 KB blocks put 32 at a time: 1.62-1.77 s in turn, 1.36-1.60 s side by side; under a
   * write-behind of 256 puts, as the add's, the two are within a few percent).
   */
  private readonly dataWrites: Grouped<Op, undefined>
  private readonly indexWrites: Grouped<Op, undefined>

  constructor (init: SizedBlockstoreInit) {
    super()
    this.path = init.path
    this.writeBufferSize = init.writeBufferSize ?? DEFAULT_WRITE_BUFFER_SIZE
    this.reclaimBytes = init.reclaimBytes ?? RECLAIM_BYTES
    this.db = guardedLevel<string, Uint8Array>(init.path, { keyEncoding: 'utf8', valueEncoding: 'view' })
    this.index = guardedLevel<string, Uint8Array>(`${init.path}-index`, { keyEncoding: 'utf8', valueEncoding: 'view' })
    this.dataWrites = batched(this.db)
    this.indexWrites = batched(this.index)
    this.datastore = init.datastore
    this.log = init.log
  }

  async open (): Promise<void> {
    await this.db.open({ createIfMissing: true, compression: false, writeBufferSize: this.writeBufferSize, maxFileSize: MAX_FILE_SIZE } as never)
    try {
      await this.index.open({ createIfMissing: true } as never)
    } catch (err) {
      await this.db.close()
      throw err
    }
    for await (const key of this.db.keys({ gt: DATA, lt: DATA_END, reverse: true, limit: 1 })) {
      this.seq = seqOf(key) + 1
    }
    for await (const _ of this.db.keys({ ...LEGACY, limit: 1 })) this.legacy = true
    this.pending = await this.readPending()
    this.fresh = this.pending.reduce((n, [, length]) => n + length, 0)
    const saved = await this.readSaved()
    if (saved != null) {
      this.bytes = saved
      await this.datastore.delete(SIZE_KEY)
    } else {
      const started = Date.now()
      let total = 0
      let top = -1
      for await (const value of this.index.values({ gt: INDEX, lt: INDEX_END })) {
        const ref = decodeRef(value)
        total += ref.length
        top = Math.max(top, seqOf(ref.key))
      }
      for await (const value of this.db.values(LEGACY)) total += value.byteLength
      this.bytes = total
      this.log('repo size rebuilt: %d bytes in %d ms', total, Date.now() - started)
      await this.dropOrphans(top)
    }
    this.opened = true
  }

  /**
   * After a crash: blocks are numbered in the order written and indexed in that order, after their bytes, so the
   * bytes numbered above the highest indexed block were in flight (a write-behind window's worth at most), and no
   * index entry will ever point to them. They are deleted, and their range compacted so the space comes back.
   */
  private async dropOrphans (top: number): Promise<void> {
    const range = { gt: top < 0 ? DATA : dataKey(top), lt: DATA_END }
    let count = 0
    let bytes = 0
    for await (const value of this.db.values(range)) {
      count++
      bytes += value.byteLength
    }
    if (count === 0) return
    if (count > MAX_ORPHANS) {
      // more than writes in flight could leave: an index that is not this store's, say; nothing is deleted
      this.log.error('%d blocks (%d bytes) are numbered above the highest indexed one, more than a crash leaves: kept (is %s-index this store\'s index?)', count, bytes, this.path)
      return
    }
    await this.db.clear(range)
    await ranges(this.db).compactRange(range.gt, range.lt)
    this.log('dropped %d blocks (%d bytes) written just before a crash and never indexed', count, bytes)
  }

  async close (): Promise<void> {
    if (!this.opened) {
      return
    }
    this.opened = false
    await this.inflight.settled()
    await this.compacting
    try {
      if (this.pending.length > 0) await this.datastore.put(PENDING_KEY, encoder.encode(JSON.stringify(this.pending)))
      // after a failed write (a full disk) bytes may be left unindexed: no count, so that the next open looks
      if (this.db.guard.writable && this.index.guard.writable) await this.datastore.put(SIZE_KEY, encoder.encode(String(this.bytes)))
    } finally {
      await Promise.all([this.db.close(), this.index.close()])
    }
  }

  /** Bytes held (block payloads; level's own overhead is not counted). */
  size (): number {
    return this.bytes
  }

  /** A value saved in the datastore by the last clean close, as text; undefined when there is none. */
  private async readText (key: Key): Promise<string | undefined> {
    try {
      return decoder.decode(await this.datastore.get(key))
    } catch (err) {
      if ((err as Error).name === 'NotFoundError') {
        return undefined
      }
      throw err
    }
  }

  private async readSaved (): Promise<number | undefined> {
    const text = await this.readText(SIZE_KEY)
    if (text === undefined) return undefined
    const n = Number(text)
    return Number.isSafeInteger(n) && n >= 0 ? n : undefined
  }

  /** The deleted blocks saved by the last clean close (an unclean one loses them: their space waits). */
  private async readPending (): Promise<Array<[number, number]>> {
    const text = await this.readText(PENDING_KEY)
    if (text === undefined) return []
    await this.datastore.delete(PENDING_KEY)
    let pending: unknown
    try {
      pending = JSON.parse(text)
    } catch {
      return []
    }
    return Array.isArray(pending) ? pending.filter((p): p is [number, number] => Array.isArray(p) && p.length === 2 && p.every(n => Number.isSafeInteger(n))) : []
  }

  private async exclusive<T> (key: string, fn: () => Promise<T>): Promise<T> {
    return await this.inflight.run(key, fn)
  }

  private name (cid: CID): string {
    return base32upper.encoder.encode(cid.multihash.bytes)
  }

  /** Where each block is, by name (undefined when not held): its data key and length, or its earlier-layout key. */
  private async locate (names: string[]): Promise<Array<Ref | undefined>> {
    // a lone lookup joins the others made meanwhile; a bulk one (bitswap's sender, a DAG scan) is one read itself
    const values = names.length === 1 ? [await this.refs.call(INDEX + names[0])] : await this.index.getMany(names.map(name => INDEX + name))
    const refs: Array<Ref | undefined> = values.map(v => v === undefined ? undefined : decodeRef(v))
    if (this.legacy) {
      const missing = refs.flatMap((r, i) => r === undefined ? [i] : [])
      if (missing.length > 0) {
        const keys = missing.map(i => '/' + names[i])
        const found = await this.db.getMany(keys)
        missing.forEach((i, j) => {
          const value = found[j]
          if (value !== undefined) refs[i] = { key: keys[j], length: value.byteLength }
        })
      }
    }
    return refs
  }

  override async has (cid: CID, options?: AbortOptions): Promise<boolean> {
    options?.signal?.throwIfAborted()
    return (await this.locate([this.name(cid)]))[0] !== undefined
  }

  /** Whether each block is held, in one index read. */
  async hasBlocks (cids: CID[], options?: AbortOptions): Promise<boolean[]> {
    options?.signal?.throwIfAborted()
    return (await this.locate(cids.map(cid => this.name(cid)))).map(r => r !== undefined)
  }

  /** The bytes of each block (undefined when missing), in one index read and one data read. */
  async getBlocks (cids: CID[], options?: AbortOptions): Promise<Array<Uint8Array | undefined>> {
    options?.signal?.throwIfAborted()
    const refs = await this.locate(cids.map(cid => this.name(cid)))
    const keys = refs.flatMap(r => r === undefined ? [] : [r.key])
    const values = keys.length > 0 ? await this.db.getMany(keys) : []
    let next = 0
    // a block deleted between the two reads reads as missing
    return refs.map(r => r === undefined ? undefined : values[next++])
  }

  override async put (cid: CID, value: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, options?: AbortOptions): Promise<CID> {
    const block = value instanceof Uint8Array ? value : await concatChunks(value)
    const name = this.name(cid)
    return this.exclusive(name, async () => {
      options?.signal?.throwIfAborted()
      if ((await this.locate([name]))[0] !== undefined) {
        return cid
      }
      // numbered here, in call order, so that batches carry increasing keys
      const seq = this.seq++
      // the bytes before the index entry: a crash in between orphans bytes, never indexes missing ones
      await this.dataWrites.call({ type: 'put', key: dataKey(seq), value: block })
      await this.indexWrites.call({ type: 'put', key: INDEX + name, value: encodeRef(seq, block.byteLength) })
      this.bytes += block.byteLength
      this.onStored?.(cid)
      return cid
    })
  }

  /**
   * Told of each block written, once it is readable: bitswap's sender answers wants parked for it. (Helia tells
   * its block brokers of a new block before it writes it, so a read at that moment still finds nothing.)
   */
  onStored?: (cid: CID) => void

  override async * get (cid: CID, options?: AbortOptions): AsyncGenerator<Uint8Array> {
    const [bytes] = await this.getBlocks([cid], options)
    if (bytes === undefined) {
      throw new NotFoundError(`block ${cid} is not held here`)
    }
    yield bytes
  }

  override async delete (cid: CID, options?: AbortOptions): Promise<void> {
    const name = this.name(cid)
    await this.exclusive(name, async () => {
      options?.signal?.throwIfAborted()
      const [ref] = await this.locate([name])
      if (ref === undefined) {
        return
      }
      const indexed = ref.key.startsWith(DATA)
      // the index entry before the bytes, for the same reason
      if (indexed) await this.indexWrites.call({ type: 'del', key: INDEX + name })
      await this.dataWrites.call({ type: 'del', key: ref.key })
      this.bytes -= ref.length
      if (indexed) this.deleted(ref)
    })
  }

  /**
   * Level gives the space of deleted blocks back only when it compacts the files that held them, and files of
   * blocks in written order are otherwise moved down whole, never rewritten. Once reclaimBytes were deleted, the
   * deleted blocks are grouped into ranges (no two more than RUN_GAP blocks apart: a mirror version's own blocks
   * were written together), and each range where at least RECLAIM_DENSITY of what level holds was deleted is
   * compacted, in the background, one range at a time; the others wait for more deletes around them.
   */
  private deleted (ref: Ref): void {
    this.pending.push([seqOf(ref.key), ref.length])
    if (this.pending.length > MAX_PENDING) this.pending.splice(0, this.pending.length - MAX_PENDING)
    this.fresh += ref.length
    this.compactDeleted()
  }

  private compactDeleted (): void {
    if (this.fresh < this.reclaimBytes || this.compacting != null || !this.opened) return
    this.fresh = 0
    const pending = this.pending.sort((a, b) => a[0] - b[0])
    this.pending = []
    const runs: Array<Array<[number, number]>> = []
    for (const p of pending) {
      const run = runs.at(-1)
      if (run != null && p[0] - run[run.length - 1][0] <= RUN_GAP) run.push(p)
      else runs.push([p])
    }
    const db = ranges(this.db)
    this.compacting = (async () => {
      for (const run of runs) {
        const from = dataKey(run[0][0])
        const to = dataKey(run[run.length - 1][0]) + '~'
        const deleted = run.reduce((n, [, length]) => n + length, 0)
        try {
          const held = await db.approximateSize(from, to)
          if (!this.opened || deleted < RECLAIM_DENSITY * held) {
            for (const p of run) this.pending.push(p)
            continue
          }
          const started = Date.now()
          await db.compactRange(from, to)
          this.log('compacted %s..%s, %d of ~%d bytes deleted, in %d ms', from, to, deleted, held, Date.now() - started)
        } catch (err) {
          this.log.error('compacting %s..%s - %e', from, to, err)
        }
      }
    })().finally(() => {
      this.compacting = undefined
      // what was deleted meanwhile
      this.compactDeleted()
    })
  }

  /**
   * Every block held when called, as raw-codec CIDs, in slices of up to `size`: index keys only (and the keys of
   * earlier-layout blocks), no block is read. Blocks written or deleted meanwhile may be left out or listed.
   */
  async * cidSlices (size: number, options?: AbortOptions): AsyncGenerator<CID[]> {
    const cid = (name: string): CID => CID.createV1(raw.code, Digest.decode(base32upper.decoder.decode(name)))
    const ranges: Array<[Level<string, Uint8Array>, { gt: string, lt: string }, number]> = [[this.index, { gt: INDEX, lt: INDEX_END }, INDEX.length]]
    if (this.legacy) ranges.push([this.db, LEGACY, 1])
    for (const [db, range, prefix] of ranges) {
      let slice: CID[] = []
      for await (const key of db.keys({ ...range, signal: options?.signal } as never)) {
        slice.push(cid((key as string).slice(prefix)))
        if (slice.length >= size) {
          yield slice
          slice = []
        }
      }
      if (slice.length > 0) yield slice
    }
  }

  /** Every block, as raw-codec CIDs (a blockstore knows multihashes only), in index order. */
  override async * getAll (options?: AbortOptions): AsyncGenerator<Pair> {
    const block = (name: string, bytes: Uint8Array): Pair => ({
      cid: CID.createV1(raw.code, Digest.decode(base32upper.decoder.decode(name))),
      bytes: (async function * () { yield bytes })()
    })
    for await (const [key, value] of this.index.iterator({ gt: INDEX, lt: INDEX_END, signal: options?.signal } as never)) {
      const [bytes] = await this.db.getMany([decodeRef(value).key])
      if (bytes !== undefined) yield block(key.slice(INDEX.length), bytes)
    }
    if (this.legacy) {
      for await (const [key, bytes] of this.db.iterator({ ...LEGACY, signal: options?.signal } as never)) yield block(key.slice(1), bytes)
    }
  }
}

/** classic-level's range calls; level's type (shared with browser-level) does not say it has them. */
function ranges (db: Level<string, Uint8Array>): {
  compactRange: (start: string, end: string) => Promise<void>
  approximateSize: (start: string, end: string) => Promise<number>
} {
  return db as unknown as ReturnType<typeof ranges>
}

/** Writes to `db`, grouped into one batch. */
function batched (db: Level<string, Uint8Array>): Grouped<Op, undefined> {
  return new Grouped<Op, undefined>(async ops => {
    await db.batch(ops)
    return ops.map(() => undefined)
  })
}
