// A level blockstore that keeps a running byte count, so repoSize (freespace metrics) is O(1).
// The count is persisted in the datastore on a clean close and removed while open: after a crash the key is
// missing and the count is rebuilt once by iterating the store.
import { Key } from 'interface-datastore'
import { LevelBlockstore } from 'blockstore-level'
import { base32upper } from 'multiformats/bases/base32'
import type { Logger } from '@libp2p/interface'
import type { Blockstore, InputPair, Pair } from 'interface-blockstore'
import type { Datastore } from 'interface-datastore'
import type { AbortOptions } from '../components.js'
import type { CID } from 'multiformats/cid'
import { concatChunks } from '../utils/bytes.js'

const SIZE_KEY = new Key('/cairn/ipfs/repo-size')

export interface SizedBlockstoreInit {
  /** Directory of the level database. */
  path: string
  /** Where the count is persisted (already open before open() and until after close()). */
  datastore: Datastore
  log: Logger
  /** LevelDB memtable size. Default 64 MiB. */
  writeBufferSize?: number
}

/**
 * LevelDB's default 4 MiB memtable turns 256 KiB blocks into constant compactions: measured on this project's
 * machines, writing 1 GiB of blocks took 32 s with it and 7 s with 64 MiB (the disk does 600 MB/s).
 */
export const DEFAULT_WRITE_BUFFER_SIZE = 64 * 1024 * 1024

export class SizedBlockstore implements Blockstore {
  private readonly store: LevelBlockstore
  /** The store's level database, for key-only lookups (LevelBlockstore.has reads and copies the whole block). */
  private readonly db: LevelBlockstore['db']
  private readonly datastore: Datastore
  private readonly log: Logger
  private bytes = 0
  private opened = false
  /** Puts and deletes in flight, by key: keeps the count exact when the same block is written twice at once. */
  private readonly inflight = new Map<string, Promise<unknown>>()
  /**
   * Existence checks, grouped: each level lookup builds a LevelDB iterator on the main thread (a merge over the
   * memtables and every table file), which made lookups the largest cost of an add; one iterator per group makes
   * them cheap, and a lone lookup waits for nothing.
   */
  private readonly lookups = new Grouped<string, boolean>(async keys => await this.db.hasMany(keys))
  /**
   * The check before a write, grouped, with level gets instead: classic-level builds that iterator on the main
   * thread, which cost ~2 ms per lookup while compactions were behind after a large import (188 ms of a mirror
   * re-sync's 242-block upload), where a get of a missing key costs ~0.02 ms. A block being written is rarely
   * held already, and copying one that is costs less than the iterator.
   */
  private readonly present = new Grouped<string, boolean>(async keys => (await this.db.getMany(keys)).map(v => v !== undefined))
  /**
   * Block writes, grouped into one level batch: a write each cost a thread-pool round trip and a log write of its
   * own (0.7-1.5 s of the peer's CPU in the 10,000-file add benchmark).
   */
  private readonly writes = new Grouped<{ key: string, value: Uint8Array }, undefined>(async puts => {
    await this.db.batch(puts.map(({ key, value }) => ({ type: 'put' as const, key, value })))
    return puts.map(() => undefined)
  })

  constructor (init: SizedBlockstoreInit) {
    this.store = new LevelBlockstore(init.path, { writeBufferSize: init.writeBufferSize ?? DEFAULT_WRITE_BUFFER_SIZE })
    this.db = this.store.db
    this.datastore = init.datastore
    this.log = init.log
  }

  async open (): Promise<void> {
    await this.store.open()
    const saved = await this.readSaved()
    if (saved != null) {
      this.bytes = saved
      await this.datastore.delete(SIZE_KEY)
    } else {
      const started = Date.now()
      let total = 0
      for await (const { bytes } of this.store.getAll()) {
        for await (const chunk of bytes) {
          total += chunk.byteLength
        }
      }
      this.bytes = total
      this.log('repo size rebuilt by iteration: %d bytes in %d ms', total, Date.now() - started)
    }
    this.opened = true
  }

  async close (): Promise<void> {
    if (!this.opened) {
      return
    }
    this.opened = false
    await Promise.allSettled([...this.inflight.values()])
    await this.datastore.put(SIZE_KEY, new TextEncoder().encode(String(this.bytes)))
    await this.store.close()
  }

  /** Bytes held (block payloads; level's own overhead is not counted). */
  size (): number {
    return this.bytes
  }

  private async readSaved (): Promise<number | undefined> {
    try {
      const n = Number(new TextDecoder().decode(await this.datastore.get(SIZE_KEY)))
      return Number.isSafeInteger(n) && n >= 0 ? n : undefined
    } catch (err) {
      if ((err as Error).name === 'NotFoundError') {
        return undefined
      }
      throw err
    }
  }

  private async exclusive<T> (key: string, fn: () => Promise<T>): Promise<T> {
    for (let prior = this.inflight.get(key); prior != null; prior = this.inflight.get(key)) {
      await prior.catch(() => {})
    }
    const p = fn()
    this.inflight.set(key, p)
    try {
      return await p
    } finally {
      this.inflight.delete(key)
    }
  }

  /** LevelBlockstore's key: '/' + the multihash in multibase base32upper. */
  private key (cid: CID): string {
    return `/${base32upper.encoder.encode(cid.multihash.bytes)}`
  }

  async has (cid: CID, options?: AbortOptions): Promise<boolean> {
    options?.signal?.throwIfAborted()
    return await this.lookups.call(this.key(cid))
  }

  /** Whether each block is held, in one level lookup. */
  async hasBlocks (cids: CID[], options?: AbortOptions): Promise<boolean[]> {
    options?.signal?.throwIfAborted()
    return await this.db.hasMany(cids.map(cid => this.key(cid)))
  }

  /** The bytes of each block (undefined when missing), in one level read. */
  async getBlocks (cids: CID[], options?: AbortOptions): Promise<Array<Uint8Array | undefined>> {
    options?.signal?.throwIfAborted()
    return await this.db.getMany(cids.map(cid => this.key(cid)))
  }

  async put (cid: CID, value: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, options?: AbortOptions): Promise<CID> {
    const block = value instanceof Uint8Array ? value : await concatChunks(value)
    const key = this.key(cid)
    return this.exclusive(key, async () => {
      options?.signal?.throwIfAborted()
      if (await this.present.call(key)) {
        return cid
      }
      await this.writes.call({ key, value: block })
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

  async * putMany (source: Iterable<InputPair> | AsyncIterable<InputPair>, options?: AbortOptions): AsyncGenerator<CID> {
    for await (const { cid, bytes } of source) {
      yield await this.put(cid, bytes, options)
    }
  }

  async * get (cid: CID, options?: AbortOptions): AsyncGenerator<Uint8Array> {
    yield * this.store.get(cid, options)
  }

  async * getMany (source: Iterable<CID> | AsyncIterable<CID>, options?: AbortOptions): AsyncGenerator<Pair> {
    for await (const cid of source) {
      yield { cid, bytes: this.store.get(cid, options) }
    }
  }

  async delete (cid: CID, options?: AbortOptions): Promise<void> {
    await this.exclusive(this.key(cid), async () => {
      let length: number
      try {
        length = (await concatChunks(this.store.get(cid, options))).byteLength
      } catch (err) {
        if ((err as Error).name === 'NotFoundError') {
          return
        }
        throw err
      }
      await this.store.delete(cid, options)
      this.bytes -= length
    })
  }

  async * deleteMany (source: Iterable<CID> | AsyncIterable<CID>, options?: AbortOptions): AsyncGenerator<CID> {
    for await (const cid of source) {
      await this.delete(cid, options)
      yield cid
    }
  }

  async * getAll (options?: AbortOptions): AsyncGenerator<Pair> {
    yield * this.store.getAll(options)
  }
}

/**
 * Calls grouped while one is in flight: a call made with none in flight runs at once; those made meanwhile wait
 * and run together, as the next one, when it returns.
 */
class Grouped<I, O> {
  private queue: Array<{ input: I, resolve: (output: O) => void, reject: (err: unknown) => void }> = []
  private running = false

  constructor (private readonly run: (inputs: I[]) => Promise<O[]>) {}

  async call (input: I): Promise<O> {
    return await new Promise<O>((resolve, reject) => {
      this.queue.push({ input, resolve, reject })
      if (!this.running) this.flush()
    })
  }

  private flush (): void {
    const group = this.queue
    this.queue = []
    this.running = true
    this.run(group.map(q => q.input)).then(outputs => {
      group.forEach((q, i) => { q.resolve(outputs[i]) })
    }, err => {
      for (const q of group) q.reject(err)
    }).finally(() => {
      this.running = false
      if (this.queue.length > 0) this.flush()
    })
  }
}
