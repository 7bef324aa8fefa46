// Repo GC against the writes that make blocks before their pin is recorded (a pin's fetch, an add until its pin
// is in the pinset): those hold the lock shared, a GC holds it alone. A GC waiting for the lock keeps new holders
// out (it would never find a quiet moment on a busy peer), for at most its wait: then it gives up and they go on.
import { RepoBusyError } from '../errors.js'
import { raceSignal } from 'race-signal'

export class GcLock {
  private holders = 0
  /** A GC waiting for the lock or running. */
  private gc = false
  /** Holders waiting for a GC to end. */
  private waiting: Array<() => void> = []
  private onIdle?: () => void

  /** Takes the lock shared (waits while a GC waits or runs); returns its release, to call once. */
  async acquire (signal?: AbortSignal): Promise<() => void> {
    while (this.gc) {
      await raceSignal(new Promise<void>(resolve => { this.waiting.push(resolve) }), signal)
    }
    this.holders++
    let released = false
    return () => {
      if (released) return
      released = true
      this.holders--
      if (this.holders === 0) this.onIdle?.()
    }
  }

  async shared<T> (fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const release = await this.acquire(signal)
    try {
      return await fn()
    } finally {
      release()
    }
  }

  /**
   * Runs `fn` alone: waits for another one alone to end (a cache eviction: IpfsNode.gc joins a GC running
   * already rather than waiting here), then up to `waitMs` for the holders to finish (RepoBusyError after that,
   * and they go on).
   */
  async exclusive<T> (fn: () => Promise<T>, options: { waitMs: number, signal?: AbortSignal }): Promise<T> {
    while (this.gc) {
      await raceSignal(new Promise<void>(resolve => { this.waiting.push(resolve) }), options.signal)
    }
    this.gc = true
    try {
      if (this.holders > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined
        try {
          await raceSignal(new Promise<void>((resolve, reject) => {
            this.onIdle = resolve
            timer = setTimeout(() => {
              reject(new RepoBusyError(`repo GC: ${this.holders} pins or adds were still writing blocks after ${options.waitMs} ms; try again later`))
            }, options.waitMs)
          }), options.signal)
        } finally {
          clearTimeout(timer)
          this.onIdle = undefined
        }
      }
      return await fn()
    } finally {
      this.end()
    }
  }

  /**
   * Runs `fn` alone if nobody holds the lock nor waits for it alone, at once; else runs nothing and returns
   * undefined (a cache eviction, tried again later, must not wait behind a pin fetching for hours).
   */
  async tryExclusive<T> (fn: () => Promise<T>): Promise<{ value: T } | undefined> {
    if (this.gc || this.holders > 0) return undefined
    this.gc = true
    try {
      return { value: await fn() }
    } finally {
      this.end()
    }
  }

  private end (): void {
    this.gc = false
    const waiting = this.waiting
    this.waiting = []
    for (const wake of waiting) wake()
  }
}
