// Helia's pin records, written in batches. Helia keeps `/pin/<cid base36>` -> {depth, metadata} per pinned root
// and `/pinned-block/<multihash base36>` -> {pinCount, pinnedBy} per block, and its pins.add/rm update the block
// records one get + put after the other: pinning a 15,000-block mirror version took ~8 s, though only a few
// hundred blocks were new. This writes the same records (Helia's pins.ls/get/isPinned and its GC read them
// unchanged) with one bulk read (level getMany) and one level batch per slice of blocks, one operation at a
// time per node, so two pins sharing blocks never lose a count. It also removes the root from `pinnedBy` on
// unpin, which Helia 7's rm does not (its filter keeps only that root).
import * as cborg from 'cborg'
import { Key } from 'interface-datastore'
import { base36 } from 'multiformats/bases/base36'
import * as raw from 'multiformats/codecs/raw'
import type { AbortOptions } from '../components.js'
import type { Datastore } from 'interface-datastore'
import type { CID } from 'multiformats/cid'

const SLICE = 2048

const equals = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0

/**
 * Helia's block record, plus what cairn adds: the codec the block was read with and the CIDs it links to (bytes),
 * for blocks with links. Helia reads pinCount and pinnedBy and ignores the rest. A record means the block is held
 * here (a pin is recorded only once all of it is), so with its links a pinned subtree is listed from records
 * alone, without reading its blocks again: that is what makes pinning a new version of a mirror cheap.
 */
export interface PinnedBlock {
  pinCount: number
  pinnedBy: Uint8Array[]
  codec?: number
  links?: Uint8Array[]
}

/** A block of a pin being recorded. */
export interface PinBlock {
  cid: CID
  /** The blocks it links to, when known (a raw block has none). */
  links?: CID[]
  /** Its record as read at `generation` (null: none), when read already. */
  record?: PinnedBlock | null
}

export function pinKey (cid: CID): Key {
  return new Key(`/pin/${(cid.version === 0 ? cid.toV1() : cid).toString(base36)}`)
}

function blockKey (cid: CID): Key {
  return new Key(`/pinned-block/${toBase36(cid.multihash.bytes)}`, false)
}

/**
 * multibase base36 ('k' + base36 digits, one '0' per leading zero byte), as multiformats' base36.encode writes
 * it. That one (base-x) is quadratic in JavaScript and was the largest cost of recording a 15,000-block pin;
 * BigInt's toString(36) is native.
 */
export function toBase36 (bytes: Uint8Array): string {
  let zeros = 0
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++
  const rest = zeros === bytes.length ? '' : BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`).toString(36)
  return `k${'0'.repeat(zeros)}${rest}`
}

async function readRecord (datastore: Datastore, key: Key, options: AbortOptions): Promise<PinnedBlock | undefined> {
  try {
    return cborg.decode(await datastore.get(key, options)) as PinnedBlock
  } catch (err) {
    if ((err as Error).name === 'NotFoundError') return undefined
    throw err
  }
}

export class PinRecords {
  /** One record operation at a time: read-modify-write of shared block records must not interleave. */
  private tail: Promise<unknown> = Promise.resolve()
  private writes = 0

  /**
   * @param getMany reads many keys at once (level's getMany: one call instead of one per block); without it,
   * records are read one get each.
   */
  constructor (private readonly datastore: Datastore, private readonly getMany?: (keys: Key[]) => Promise<Array<Uint8Array | undefined>>) {}

  private async exclusive<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn)
    this.tail = run.catch(() => {})
    return await run
  }

  /** Counts record writes: records read at an earlier generation may be stale. */
  get generation (): number {
    return this.writes
  }

  /** The records of these blocks (undefined: none), as of `generation`. */
  async lookup (cids: CID[], options: AbortOptions = {}): Promise<Array<PinnedBlock | undefined>> {
    return await this.readRecords(cids, options)
  }

  /**
   * Records `root` as pinned to `depth`, over `blocks` (every distinct block of it, root included). Records
   * given with the blocks are used when read at `generation` and nothing was written since.
   */
  async add (root: CID, depth: number, blocks: PinBlock[], options: AbortOptions & { generation?: number } = {}): Promise<number> {
    return await this.exclusive(async () => {
      const fresh = options.generation === this.writes
      for (let i = 0; i < blocks.length; i += SLICE) {
        const slice = blocks.slice(i, i + SLICE)
        const unread = fresh ? slice.filter(b => b.record === undefined) : slice
        const read = unread.length > 0 ? await this.readRecords(unread.map(b => b.cid), options) : []
        const found = new Map<PinBlock, PinnedBlock | undefined>(unread.map((b, j) => [b, read[j]]))
        const batch = this.datastore.batch()
        for (const block of slice) {
          const record = found.has(block) ? found.get(block) : block.record ?? undefined
          if (record?.pinnedBy.some(by => equals(by, root.bytes)) === true) continue
          const next: PinnedBlock = {
            pinCount: (record?.pinCount ?? 0) + 1,
            pinnedBy: [...(record?.pinnedBy ?? []), root.bytes]
          }
          if (record?.links != null && record.codec != null) {
            next.codec = record.codec
            next.links = record.links
          } else if (block.links != null && block.cid.code !== raw.code) {
            next.codec = block.cid.code
            next.links = block.links.map(l => l.bytes)
          }
          batch.put(blockKey(block.cid), cborg.encode(next))
        }
        this.writes++
        await batch.commit(options)
      }
      // the root record last: a pin whose blocks are not all recorded is never listed
      this.writes++
      await this.datastore.put(pinKey(root), cborg.encode({ depth, metadata: {} }), options)
      return blocks.length
    })
  }

  /**
   * Removes the pin of `root` and its claim on each block (the record goes when no pin is left). `blocksOf` lists
   * the blocks of the pin, given its recorded depth.
   */
  async remove (root: CID, blocksOf: (depth: number) => Promise<CID[]>, options: AbortOptions = {}): Promise<void> {
    await this.exclusive(async () => {
      let depth: number
      try {
        depth = (cborg.decode(await this.datastore.get(pinKey(root), options)) as { depth: number }).depth
      } catch (err) {
        if ((err as Error).name === 'NotFoundError') return
        throw err
      }
      const blocks = await blocksOf(depth)
      // the root record first: from here on the pin is gone, even if a slice below fails
      this.writes++
      await this.datastore.delete(pinKey(root), options)
      for (let i = 0; i < blocks.length; i += SLICE) {
        const slice = blocks.slice(i, i + SLICE)
        const records = await this.readRecords(slice, options)
        const batch = this.datastore.batch()
        slice.forEach((cid, i) => {
          const record = records[i]
          if (record == null) return
          const kept = record.pinnedBy.filter(by => !equals(by, root.bytes))
          if (kept.length === record.pinnedBy.length) return
          const next = { ...record, pinCount: Math.max(0, record.pinCount - 1), pinnedBy: kept }
          if (next.pinCount === 0) batch.delete(blockKey(cid))
          else batch.put(blockKey(cid), cborg.encode(next))
        })
        this.writes++
        await batch.commit(options)
      }
    })
  }

  private async readRecords (slice: CID[], options: AbortOptions): Promise<Array<PinnedBlock | undefined>> {
    const keys = slice.map(blockKey)
    if (this.getMany != null) {
      options.signal?.throwIfAborted()
      return (await this.getMany(keys)).map(bytes => bytes == null ? undefined : cborg.decode(bytes) as PinnedBlock)
    }
    return await Promise.all(keys.map(async key => await readRecord(this.datastore, key, options)))
  }
}
