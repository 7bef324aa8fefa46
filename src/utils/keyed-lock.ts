// Operations on the same key, one after the other (a blockstore's puts and deletes of one block).

export class KeyedLock {
  private readonly inflight = new Map<string, Promise<unknown>>()

  /** Runs fn once no earlier operation on `key` is in flight. */
  async run<T> (key: string, fn: () => Promise<T>): Promise<T> {
    for (let prior = this.inflight.get(key); prior != null; prior = this.inflight.get(key)) {
      await prior.catch(() => {})
    }
    const p = fn()
    this.inflight.set(key, p)
    try {
      return await p
    } finally {
      if (this.inflight.get(key) === p) this.inflight.delete(key)
    }
  }

  /** Resolves once the operations in flight when called have ended. */
  async settled (): Promise<void> {
    await Promise.allSettled([...this.inflight.values()])
  }
}
