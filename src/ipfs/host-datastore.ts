// The datastore as the libp2p host sees it. libp2p.stop() resolves with work still to come: writes its own
// stopping set off, and timers it never clears (libp2p 3's address manager patches the peer store from a 1 s
// debounce it does not cancel). This view lets stop() wait for the operations in flight and then cut the host
// off, so that nothing reaches the level store after it closes.
import { setImmediate as nextTurn } from 'node:timers/promises'
import { NotFoundError } from '../errors.js'
import type { AbortOptions } from '../components.js'
import type { Logger } from '@libp2p/interface'
import type { Batch, Datastore, Key, KeyQuery, Pair, Query } from 'interface-datastore'

export class HostDatastore implements Datastore {
  private readonly inner: Datastore
  private readonly log: Logger
  private readonly pending = new Set<Promise<unknown>>()
  private closed = false

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
    return this.closed ? false : this.track(this.inner.has(key, options))
  }

  put (key: Key, val: Uint8Array, options?: AbortOptions): Key | Promise<Key> {
    if (this.closed) {
      this.dropped('put', key)
      return key
    }
    return this.track(this.inner.put(key, val, options))
  }

  get (key: Key, options?: AbortOptions): Uint8Array | Promise<Uint8Array> {
    if (this.closed) {
      return Promise.reject(new NotFoundError(`libp2p is stopped: ${key.toString()} not read`))
    }
    return this.track(this.inner.get(key, options))
  }

  delete (key: Key, options?: AbortOptions): void | Promise<void> {
    if (this.closed) {
      this.dropped('delete', key)
      return
    }
    return this.track(this.inner.delete(key, options))
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
      yield * this.trackEach(this.inner.query(query, options))
    }
  }

  async * queryKeys (query: KeyQuery, options?: AbortOptions): AsyncGenerator<Key> {
    if (!this.closed) {
      yield * this.trackEach(this.inner.queryKeys(query, options))
    }
  }

  batch (): Batch {
    const batch = this.inner.batch()
    return {
      put: (key, value) => { batch.put(key, value) },
      delete: (key) => { batch.delete(key) },
      commit: async (options) => {
        if (this.closed) {
          this.dropped('batch')
          return
        }
        await this.track(Promise.resolve(batch.commit(options)))
      }
    }
  }
}
