// The value-log blockstore: block bytes appended to segment files (segments.ts, framed by record.ts), an index
// in level (index-db.ts), group commit (group-commit.ts), recovery at open (recover.ts) and compaction
// (compactor.ts). This file ties them together behind LocalBlockstore: lookups, per-block ordering of puts and
// deletes, the byte count and the live bytes of each segment.
//
// Folder: <path>/NNNNNN.seg (segments) and <path>/index (level). Durability: a put resolves once its record is
// fdatasynced and its index entry written (docs/DESIGN.md, "The value-log blockstore").
import { BaseBlockstore } from 'blockstore-core/base'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import * as Digest from 'multiformats/hashes/digest'
import { NotFoundError } from '../../errors.js'
import { concatChunks } from '../../utils/bytes.js'
import { KeyedLock } from '../../utils/keyed-lock.js'
import { Compactor } from './compactor.js'
import { GroupCommit } from './group-commit.js'
import { IndexDb, multihashOf, nameOf } from './index-db.js'
import { recordBytes } from './record.js'
import { recoverSegments } from './recover.js'
import { sameRef, type Ref } from './ref.js'
import { Segments } from './segments.js'
import type { AbortOptions } from '../../components.js'
import type { LocalBlockstore } from '../blockstore.js'
import type { Logger } from '@libp2p/interface'
import type { Pair } from 'interface-blockstore'

export interface ValueLogInit {
  /** The store's folder (created if missing). */
  path: string
  log: Logger
  /** A new segment is started past this size. Default 256 MiB. */
  segmentBytes?: number
  /** A segment is compacted once its live share falls below this. Default 0.5. */
  compactBelow?: number
  /**
   * The segment files are compacted, emptiest first, while they exceed their live records by more than this share
   * of them. Default 0.2: what the store takes on disk stays within ~1.2x what it holds.
   */
  maxDead?: number
}

export const DEFAULT_SEGMENT_BYTES = 256 * 1024 * 1024
export const DEFAULT_COMPACT_BELOW = 0.5
export const DEFAULT_MAX_DEAD = 0.2

export interface ValueLogStats {
  /** fdatasyncs of segment files since open. */
  syncs: number
  segments: number
  /** Bytes of the segment files. */
  segmentBytes: number
  compactedSegments: number
  compactedBytes: number
}

/**
 * Dead bytes in the segment being appended to before it is rolled and compacted (its live share must be below the
 * threshold too, so the move copies less than it gives back). Small: a store of a few tens of MiB whose pins were
 * removed must give the space back, and rolling costs only a new file.
 */
const MIN_DEAD_CURRENT = 4 * 1024 * 1024
/** Dead bytes in all segments before the maxDead bound applies. */
const MIN_DEAD = 1024 * 1024

/** How many times a read looks a block up again after finding its segment compacted away. */
const READ_RETRIES = 3

export class ValueLogBlockstore extends BaseBlockstore implements LocalBlockstore {
  private readonly path: string
  private readonly log: Logger
  private readonly segments: Segments
  private readonly index: IndexDb
  private readonly writer: GroupCommit
  private readonly compactor: Compactor
  private readonly locks = new KeyedLock()
  /** Bytes of the live records (framing included) by segment, and of all of them. */
  private readonly live = new Map<number, number>()
  private liveRecords = 0
  /** Live payload bytes (the store's size). */
  private bytes = 0
  private syncs = 0
  private opened = false

  onStored?: (cid: CID) => void

  constructor (init: ValueLogInit) {
    super()
    this.path = init.path
    this.log = init.log
    const segmentBytes = init.segmentBytes ?? DEFAULT_SEGMENT_BYTES
    this.segments = new Segments({ dir: init.path, maxBytes: segmentBytes, onSync: () => { this.syncs++ } })
    this.index = new IndexDb(join(init.path, 'index'))
    this.writer = new GroupCommit(this.segments, this.index, segmentBytes)
    this.compactor = new Compactor({
      segments: this.segments,
      log: this.log,
      relocate: async (name, multihash, payload, from) => { await this.relocate(name, multihash, payload, from) },
      syncIndex: async () => { await this.index.write([], undefined, true) },
      live: id => this.live.get(id) ?? 0,
      liveTotal: () => this.liveRecords,
      barrier: async roll => { await this.writer.barrier(roll) }
    }, {
      segmentBelow: init.compactBelow ?? DEFAULT_COMPACT_BELOW,
      minDeadCurrent: Math.min(MIN_DEAD_CURRENT, segmentBytes / 4),
      maxDead: init.maxDead ?? DEFAULT_MAX_DEAD,
      minDead: MIN_DEAD
    })
  }

  async open (): Promise<void> {
    await mkdir(this.path, { recursive: true })
    await this.index.open()
    try {
      await this.segments.openAll(new Map())
      await recoverSegments(this.segments, this.index, this.log)
      const started = Date.now()
      let count = 0
      for await (const [name, ref] of this.index.entries()) {
        this.addLive(name, ref, 1)
        count++
      }
      this.log('value log at %s: %d blocks, %d bytes, %d segments (counted in %d ms)', this.path, count, this.bytes, this.segments.sizes().size, Date.now() - started)
    } catch (err) {
      await this.segments.closeAll()
      await this.index.close()
      throw err
    }
    this.opened = true
    for (const id of this.segments.sizes().keys()) this.compactor.consider(id)
  }

  async close (): Promise<void> {
    if (!this.opened) return
    this.opened = false
    await this.compactor.stop()
    await this.locks.settled()
    await this.writer.idle()
    await this.segments.closeAll()
    await this.index.close()
  }

  size (): number {
    return this.bytes
  }

  stats (): ValueLogStats {
    const sizes = [...this.segments.sizes().values()]
    return {
      syncs: this.syncs,
      segments: sizes.length,
      segmentBytes: sizes.reduce((a, b) => a + b, 0),
      compactedSegments: this.compactor.stats.segments,
      compactedBytes: this.compactor.stats.bytes
    }
  }

  /** Resolves once no compaction is running or queued (tests, benchmarks). */
  async compacted (): Promise<void> {
    await this.compactor.idle()
  }

  private addLive (name: string, ref: Ref, sign: 1 | -1): void {
    this.bytes += sign * ref.length
    // the multihash's length from its name (a multibase prefix, then unpadded base32): not decoded, as open counts
    // every entry this way
    const bytes = sign * recordBytes(Math.floor((name.length - 1) * 5 / 8), ref.length)
    this.liveRecords += bytes
    this.live.set(ref.segment, (this.live.get(ref.segment) ?? 0) + bytes)
  }

  private async relocate (name: string, multihash: Uint8Array, payload: Uint8Array, from: Ref): Promise<void> {
    await this.locks.run(name, async () => {
      if (!sameRef(await this.index.get(name), from)) return
      const to = await this.writer.append(multihash, payload)
      this.addLive(name, from, -1)
      this.addLive(name, to, 1)
    })
  }

  private async read (cid: CID, ref: Ref | undefined): Promise<Uint8Array | undefined> {
    const name = nameOf(cid.multihash.bytes)
    for (let i = 0; ref !== undefined; i++) {
      const bytes = await this.segments.read(ref.segment, ref.offset, ref.length)
      if (bytes !== undefined || i >= READ_RETRIES) return bytes
      // its segment was compacted after the lookup: the index points to the block's new place
      ref = await this.index.get(name)
    }
    return undefined
  }

  override async has (cid: CID, options?: AbortOptions): Promise<boolean> {
    options?.signal?.throwIfAborted()
    return (await this.index.get(nameOf(cid.multihash.bytes))) !== undefined
  }

  async hasBlocks (cids: CID[], options?: AbortOptions): Promise<boolean[]> {
    options?.signal?.throwIfAborted()
    return (await this.index.getMany(cids.map(c => nameOf(c.multihash.bytes)))).map(r => r !== undefined)
  }

  async getBlocks (cids: CID[], options?: AbortOptions): Promise<Array<Uint8Array | undefined>> {
    options?.signal?.throwIfAborted()
    const refs = await this.index.getMany(cids.map(c => nameOf(c.multihash.bytes)))
    return await Promise.all(cids.map(async (cid, i) => await this.read(cid, refs[i])))
  }

  override async put (cid: CID, value: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, options?: AbortOptions): Promise<CID> {
    const block = value instanceof Uint8Array ? value : await concatChunks(value)
    const multihash = cid.multihash.bytes
    const name = nameOf(multihash)
    return await this.locks.run(name, async () => {
      options?.signal?.throwIfAborted()
      if (!this.opened) throw new Error(`the blockstore at ${this.path} is closed`)
      if ((await this.index.get(name)) !== undefined) return cid
      this.addLive(name, await this.writer.append(multihash, block), 1)
      this.onStored?.(cid)
      return cid
    })
  }

  override async * get (cid: CID, options?: AbortOptions): AsyncGenerator<Uint8Array> {
    const [bytes] = await this.getBlocks([cid], options)
    if (bytes === undefined) throw new NotFoundError(`block ${cid} is not held here`)
    yield bytes
  }

  override async delete (cid: CID, options?: AbortOptions): Promise<void> {
    const name = nameOf(cid.multihash.bytes)
    await this.locks.run(name, async () => {
      options?.signal?.throwIfAborted()
      const ref = await this.index.get(name)
      if (ref === undefined) return
      await this.index.write([{ type: 'del', name }])
      this.addLive(name, ref, -1)
      this.compactor.consider(ref.segment)
    })
  }

  async * cidSlices (size: number, options?: AbortOptions): AsyncGenerator<CID[]> {
    let slice: CID[] = []
    for await (const name of this.index.names(options)) {
      slice.push(CID.createV1(raw.code, Digest.decode(multihashOf(name))))
      if (slice.length >= size) {
        yield slice
        slice = []
      }
    }
    if (slice.length > 0) yield slice
  }

  override async * getAll (options?: AbortOptions): AsyncGenerator<Pair> {
    for await (const [name, ref] of this.index.entries(options)) {
      const cid = CID.createV1(raw.code, Digest.decode(multihashOf(name)))
      const bytes = await this.read(cid, ref)
      if (bytes !== undefined) yield { cid, bytes: (async function * () { yield bytes })() }
    }
  }
}
