// The datastore as the libp2p host sees it. libp2p.stop() resolves with work still to come: writes its own
// stopping set off, and timers it never clears (libp2p 3's address manager patches the peer store from a 1 s
// debounce it does not cancel). This view lets stop() wait for the operations in flight and then cut the host
// off, so that nothing reaches the level store after it closes.
//
// When the disk is full the store refuses writes (src/storage/guarded-level.ts) until a restart. libp2p's peer
// records are a cache it reads back at once (a dial merges the addresses it was given, then reads them): with
// its writes failing, dials and identify failed, and a full peer could neither fetch nor serve. Writes the store
// refuses for lack of space are kept here in memory instead, and read back from here, until the restart.
import { setImmediate as nextTurn } from 'node:timers/promises'
import { Key as DatastoreKey } from 'interface-datastore'
import { NotFoundError } from '../errors.js'
import { isNoSpaceError } from '../storage/disk.js'
import type { AbortOptions } from '../components.js'
import type { Logger } from '@libp2p/interface'
import type { Batch, Datastore, Key, KeyQuery, Pair, Query } from 'interface-datastore'

/** Writes kept in memory at most (peer records, ~0.5 KB each); the oldest are forgotten past it. */
const MAX_KEPT = 20_000

export class HostDatastore implements Datastore {
  private readonly inner: Datastore
  private readonly log: Logger
  private readonly pending = new Set<Promise<unknown>>()
  private closed = false
  /** Writes the store refused for lack of space, by key (null: a delete). */
  private readonly kept = new Map<string, Uint8Array | null>()
  private warned = false

  constructor (inner: Datastore, log: Logger) {
    this.inner = inner
    this.log = log
  }

  /**
   * Waits until no operation has been in flight for a whole event-loop turn, then stops passing operations
   * on: a stopped host reads nothing (NotFound, false, empty) and its writes are dropped, each logged.
   */
  async close (): Promise<void> {
    for (;;) {
      await nextTurn()
      if (this.pending.size === 0) {
        break
      }
      await Promise.allSettled([...this.pending])
    }
    this.closed = true
  }

  /**
   * Waits for a write; if the store refused it for lack of space, keeps it in memory instead. A write that
   * reached the store supersedes what was kept.
   */
  private async orKeep<T> (write: Promise<T> | T, entries: Array<[string, Uint8Array | null]>, result: T): Promise<T> {
    try {
      const out = await write
      for (const [key] of entries) this.kept.delete(key)
      return out
    } catch (err) {
      if (!isNoSpaceError(err)) throw err
      if (!this.warned) {
        this.warned = true
        this.log.error('the datastore takes no writes (%e): libp2p\'s peer records are kept in memory until the peer restarts', err)
      }
      for (const [key, value] of entries) {
        this.kept.delete(key)
        this.kept.set(key, value)
      }
      for (const key of this.kept.keys()) {
        if (this.kept.size <= MAX_KEPT) break
        this.kept.delete(key)
      }
      return result
    }
  }

  /** What was kept for `key`: bytes, null when deleted, undefined when nothing was. */
  private keptValue (key: Key): Uint8Array | null | undefined {
    return this.kept.size === 0 ? undefined : this.kept.get(key.toString())
  }

  /** The store's pairs under `prefix` with the kept writes laid over them (filters, order and paging as in Query). */
  private async * withKept (query: Query, options?: AbortOptions): AsyncGenerator<Pair> {
    const prefix = query.prefix ?? ''
    const kept = new Map([...this.kept].filter(([key]) => key.startsWith(prefix)))
    let pairs: Pair[] = []
    for await (const pair of this.inner.query({ prefix }, options)) {
      if (!kept.has(pair.key.toString())) pairs.push(pair)
    }
    for (const [key, value] of kept) if (value != null) pairs.push({ key: new DatastoreKey(key), value })
    for (const f of query.filters ?? []) pairs = pairs.filter(p => f(p))
    for (const order of query.orders ?? []) pairs.sort(order)
    yield * pairs.slice(query.offset ?? 0, query.limit != null ? (query.offset ?? 0) + query.limit : undefined)
  }

  private dropped (op: string, key?: Key): void {
    this.log('libp2p is stopped: %s %s dropped', op, key?.toString() ?? '')
  }

  private track<T> (result: T | Promise<T>): T | Promise<T> {
    if (!(result instanceof Promise)) {
      return result
    }
    this.pending.add(result)
    const done = (): void => { this.pending.delete(result) }
    result.then(done, done)
    return result
  }

  /** Tracks each step of an iteration, not the iteration: a consumer may leave one open without holding stop. */
  private async * trackEach<T> (source: Iterable<T> | AsyncIterable<T>): AsyncGenerator<T> {
    const it = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]()
    let done = false
    try {
      for (;;) {
        const next = await this.track(Promise.resolve(it.next()))
        if (next.done === true) {
          done = true
          return
        }
        yield next.value
      }
    } finally {
      if (!done) {
        await it.return?.()
      }
    }
  }

  has (key: Key, options?: AbortOptions): boolean | Promise<boolean> {
    if (this.closed) return false
    const kept = this.keptValue(key)
    return kept !== undefined ? kept != null : this.track(this.inner.has(key, options))
  }

  put (key: Key, val: Uint8Array, options?: AbortOptions): Key | Promise<Key> {
    if (this.closed) {
      this.dropped('put', key)
      return key
    }
    return this.track(this.orKeep(this.inner.put(key, val, options), [[key.toString(), val]], key))
  }

  get (key: Key, options?: AbortOptions): Uint8Array | Promise<Uint8Array> {
    if (this.closed) {
      return Promise.reject(new NotFoundError(`libp2p is stopped: ${key.toString()} not read`))
    }
    const kept = this.keptValue(key)
    if (kept === null) return Promise.reject(new NotFoundError(`${key.toString()} was deleted`))
    if (kept !== undefined) return kept
    return this.track(this.inner.get(key, options))
  }

  delete (key: Key, options?: AbortOptions): void | Promise<void> {
    if (this.closed) {
      this.dropped('delete', key)
      return
    }
    return this.track(this.orKeep(this.inner.delete(key, options), [[key.toString(), null]], undefined))
  }

  async * putMany (source: Iterable<Pair> | AsyncIterable<Pair>, options?: AbortOptions): AsyncGenerator<Key> {
    if (this.closed) {
      for await (const { key } of source) {
        this.dropped('put', key)
        yield key
      }
      return
    }
    yield * this.trackEach(this.inner.putMany(source, options))
  }

  async * getMany (source: Iterable<Key> | AsyncIterable<Key>, options?: AbortOptions): AsyncGenerator<Pair> {
    if (this.closed) {
      for await (const key of source) {
        yield { key, value: await this.get(key) }
      }
      return
    }
    yield * this.trackEach(this.inner.getMany(source, options))
  }

  async * deleteMany (source: Iterable<Key> | AsyncIterable<Key>, options?: AbortOptions): AsyncGenerator<Key> {
    if (this.closed) {
      for await (const key of source) {
        this.dropped('delete', key)
        yield key
      }
      return
    }
    yield * this.trackEach(this.inner.deleteMany(source, options))
  }

  async * query (query: Query, options?: AbortOptions): AsyncGenerator<Pair> {
    if (!this.closed) {
      yield * this.trackEach(this.kept.size === 0 ? this.inner.query(query, options) : this.withKept(query, options))
    }
  }

  async * queryKeys (query: KeyQuery, options?: AbortOptions): AsyncGenerator<Key> {
    if (this.closed) return
    if (this.kept.size === 0) {
      yield * this.trackEach(this.inner.queryKeys(query, options))
      return
    }
    const pairs = this.withKept({
      prefix: query.prefix,
      filters: query.filters?.map(f => (p: Pair) => f(p.key)),
      orders: query.orders?.map(o => (a: Pair, b: Pair) => o(a.key, b.key)),
      offset: query.offset,
      limit: query.limit
    }, options)
    for await (const { key } of this.trackEach(pairs)) yield key
  }

  batch (): Batch {
    const batch = this.inner.batch()
    const entries: Array<[string, Uint8Array | null]> = []
    return {
      put: (key, value) => { batch.put(key, value); entries.push([key.toString(), value]) },
      delete: (key) => { batch.delete(key); entries.push([key.toString(), null]) },
      commit: async (options) => {
        if (this.closed) {
          this.dropped('batch')
          return
        }
        await this.track(this.orKeep(batch.commit(options), entries, undefined))
      }
    }
  }
}
