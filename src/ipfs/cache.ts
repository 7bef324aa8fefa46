// The bounded cache's bookkeeping: blocks fetched for anything but a pin (gateway requests, a cat of content not
// pinned here), with their size and last use, least recently used first. Kept in the datastore (level) as well
// as in memory, so that a restart knows which held blocks are cache and which are garbage (docs/DESIGN.md §10,
// "Cache, pinned and garbage"). Which blocks go, and when, is the node's (ipfs.ts): this file only keeps the list.
import { Key } from 'interface-datastore'
import { base32 } from 'multiformats/bases/base32'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import * as Digest from 'multiformats/hashes/digest'
import { blockId } from './local-dag.js'
import type { AbortOptions } from '../components.js'
import type { Datastore } from 'interface-datastore'

const PREFIX = '/cairn/ipfs/cache/'
/** A use is written to the datastore at most this often per block (the order in memory is always exact). */
const TOUCH_WRITE_MS = 60_000
/** Entries checked against the store at once when loading. */
const LOAD_SLICE = 2048

interface Entry {
  cid: CID
  bytes: number
  /** Last use, ms since epoch. */
  used: number
  /** The last use written to the datastore. */
  saved: number
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const keyOf = (cid: CID): Key => new Key(PREFIX + base32.encode(cid.multihash.bytes))

export interface BlockCacheComponents {
  datastore: Datastore
  /** Whether each block is still held (entries for blocks gone are dropped at load). */
  hasBlocks: (cids: CID[], options?: AbortOptions) => Promise<boolean[]>
}

export class BlockCache {
  /** By blockId, least recently used first (a Map keeps insertion order; a use moves an entry to the end). */
  private readonly entries = new Map<string, Entry>()
  private total = 0

  constructor (private readonly components: BlockCacheComponents) {}

  /** Bytes of the blocks in the cache. */
  get bytes (): number {
    return this.total
  }

  get size (): number {
    return this.entries.size
  }

  has (cid: CID): boolean {
    return this.entries.has(blockId(cid))
  }

  /** Reads the entries saved in the datastore, least recently used first; those whose block is gone are dropped. */
  async load (options: AbortOptions = {}): Promise<void> {
    const found: Entry[] = []
    const stale: Key[] = []
    for await (const { key, value } of this.components.datastore.query({ prefix: PREFIX }, options)) {
      const [bytes, used] = decoder.decode(value).split(' ').map(Number)
      let cid: CID | undefined
      try {
        cid = CID.createV1(raw.code, Digest.decode(base32.decode(key.toString().slice(PREFIX.length))))
      } catch {}
      if (cid == null || !Number.isSafeInteger(bytes) || !Number.isSafeInteger(used)) stale.push(key)
      else found.push({ cid, bytes, used, saved: used })
    }
    found.sort((a, b) => a.used - b.used)
    for (let i = 0; i < found.length; i += LOAD_SLICE) {
      const slice = found.slice(i, i + LOAD_SLICE)
      const held = await this.components.hasBlocks(slice.map(e => e.cid), options)
      slice.forEach((e, j) => {
        if (held[j]) this.set(e)
        else stale.push(keyOf(e.cid))
      })
    }
    if (stale.length > 0) {
      const batch = this.components.datastore.batch()
      for (const key of stale) batch.delete(key)
      await batch.commit(options)
    }
  }

  /** A block fetched for a read: into the cache, as the most recently used. */
  async fetched (cid: CID, bytes: number): Promise<void> {
    const now = Date.now()
    this.remove(blockId(cid))
    this.set({ cid, bytes, used: now, saved: now })
    await this.components.datastore.put(keyOf(cid), encoder.encode(`${bytes} ${now}`))
  }

  /** A cached block read again: the most recently used (written to the datastore once a minute at most). */
  async used (cid: CID): Promise<void> {
    const id = blockId(cid)
    const entry = this.entries.get(id)
    if (entry == null) return
    this.entries.delete(id)
    this.entries.set(id, entry)
    entry.used = Date.now()
    if (entry.used - entry.saved < TOUCH_WRITE_MS) return
    entry.saved = entry.used
    await this.components.datastore.put(keyOf(entry.cid), encoder.encode(`${entry.bytes} ${entry.used}`))
  }

  /** The least recently used blocks to let go so that the cache holds at most `limit` bytes. */
  victims (limit: number): CID[] {
    const out: CID[] = []
    let left = this.total
    for (const entry of this.entries.values()) {
      if (left <= limit) break
      out.push(entry.cid)
      left -= entry.bytes
    }
    return out
  }

  /** Blocks that are no longer cache: evicted, deleted, or pinned now. Returns the bytes they were. */
  async forget (cids: Iterable<CID>, options: AbortOptions = {}): Promise<number> {
    const batch = this.components.datastore.batch()
    let bytes = 0
    let n = 0
    for (const cid of cids) {
      const entry = this.remove(blockId(cid))
      if (entry == null) continue
      batch.delete(keyOf(cid))
      bytes += entry.bytes
      n++
    }
    if (n > 0) await batch.commit(options)
    return bytes
  }

  private set (entry: Entry): void {
    this.entries.set(blockId(entry.cid), entry)
    this.total += entry.bytes
  }

  private remove (id: string): Entry | undefined {
    const entry = this.entries.get(id)
    if (entry == null) return undefined
    this.entries.delete(id)
    this.total -= entry.bytes
    return entry
  }
}
