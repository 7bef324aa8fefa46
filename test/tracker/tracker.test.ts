// The pin tracker alone, over a fake IPFS and a fake pinset: retries and their backoff, the retry limit, a full
// queue, and an operation superseded by the opposite one. (Real peers exercise it in test/cluster.)
import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { QueueFullError } from '../../src/errors.js'
import { createTracker, type TrackerInit } from '../../src/tracker/index.js'
import { pinKey } from '../../src/utils/keys.js'
import { fakeCid, pinOf } from '../pinset/fixtures.js'
import { quietLogger, sleep, waitFor } from '../util.js'
import type { AbortOptions, IpfsConnector, Pin, PinsetChange, PinTracker } from '../../src/components.js'

/** What the fake IPFS is asked, and how it answers: pin() may be held open or made to fail by the test. */
class FakeIpfs implements IpfsConnector {
  readonly pinned = new Set<string>()
  /** Every pin() call: the CID and when (performance.now()). */
  readonly pinCalls: Array<{ cid: string, at: number, signal?: AbortSignal }> = []
  readonly unpinCalls: string[] = []
  /** pin() of a CID fails this many more times. */
  readonly failures = new Map<string, number>()
  /** pin() of a CID waits for the test to release it (or for its signal). */
  readonly held = new Map<string, () => void>()
  hold = false

  async start (): Promise<void> {}
  async stop (): Promise<void> {}

  async pin (cid: CID, options: AbortOptions = {}): Promise<void> {
    const key = pinKey(cid.toString())
    this.pinCalls.push({ cid: key, at: performance.now(), signal: options.signal })
    if (this.hold) {
      await new Promise<void>((resolve, reject) => {
        this.held.set(key, resolve)
        options.signal?.addEventListener('abort', () => { reject(options.signal?.reason) }, { once: true })
      }).finally(() => this.held.delete(key))
    }
    const left = this.failures.get(key) ?? 0
    if (left > 0) {
      this.failures.set(key, left - 1)
      throw new Error('no provider answered')
    }
    this.pinned.add(key)
  }

  async unpin (cid: CID): Promise<void> {
    const key = pinKey(cid.toString())
    this.unpinCalls.push(key)
    this.pinned.delete(key)
  }

  async isPinned (cid: CID): Promise<boolean> { return this.pinned.has(pinKey(cid.toString())) }
  holdsPin (key: string): boolean { return this.pinned.has(key) }
  heldShare (): undefined { return undefined }
  async * pinLs (): AsyncIterable<CID> { for (const key of [...this.pinned]) yield CID.parse(key) }
  async hasBlock (): Promise<boolean> { return false }
  async repoSize (): Promise<number> { return 0 }
  async quotaBytes (): Promise<number> { return 0 }
}

/** The pinset as the tracker sees it: a map and change listeners. */
class FakePinset {
  private readonly pins = new Map<string, Pin>()
  private readonly listeners = new Set<(change: PinsetChange) => void>()

  get (cid: string): Pin | undefined { return this.pins.get(cid) }
  list (): IterableIterator<Pin> { return this.pins.values() }
  size (): number { return this.pins.size }
  onChange (listener: (change: PinsetChange) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  put (...pins: Pin[]): void {
    for (const pin of pins) this.pins.set(pin.cid, pin)
    for (const l of this.listeners) l({ added: pins, removed: [], local: true })
  }

  remove (...cids: string[]): void {
    for (const cid of cids) this.pins.delete(cid)
    for (const l of this.listeners) l({ added: [], removed: cids, local: true })
  }
}

describe('pin tracker', () => {
  let running: PinTracker | undefined
  afterEach(async () => { await running?.stop(); running = undefined })

  async function start (init: Partial<TrackerInit> = {}): Promise<{ ipfs: FakeIpfs, pinset: FakePinset, tracker: PinTracker }> {
    const ipfs = new FakeIpfs()
    const pinset = new FakePinset()
    const tracker = createTracker({ peername: 'p', retryBaseMs: 20, retryMaxMs: 1000, ...init }, { ipfs, pinset, peerId: 'self', logger: quietLogger() })
    running = tracker
    await tracker.start()
    return { ipfs, pinset, tracker }
  }

  const status = async (t: PinTracker, cid: string): Promise<string> => (await t.status(pinKey(cid))).status

  it('retries a failed pin until it succeeds, counting the attempts', async () => {
    const { ipfs, pinset, tracker } = await start()
    const cid = await fakeCid('retry')
    ipfs.failures.set(cid, 2)
    pinset.put(pinOf(cid))
    await waitFor(async () => await status(tracker, cid) === 'pinned', { timeoutMs: 5000, message: 'the pin to succeed at its third attempt' })
    assert.equal(ipfs.pinCalls.length, 3)
  })

  it('backs off exponentially between attempts, capped at retry_max_ms', async () => {
    const base = 40
    const { ipfs, pinset, tracker } = await start({ retryBaseMs: base, retryMaxMs: 2 * base, maxRetries: 6 })
    const cid = await fakeCid('backoff')
    ipfs.failures.set(cid, 100)
    pinset.put(pinOf(cid))
    await waitFor(() => ipfs.pinCalls.length === 6, { timeoutMs: 10_000, message: 'six attempts' })
    const gaps = ipfs.pinCalls.slice(1).map((c, i) => c.at - ipfs.pinCalls[i].at)
    // delay n = min(base * 2^(n-1), max) * jitter in [0.75, 1.25]: lower bounds hold under any load
    const floors = [1, 2, 2, 2, 2].map(f => 0.75 * base * f - 2)
    gaps.forEach((gap, i) => { assert.ok(gap >= floors[i], `gap ${i + 1} is ${gap.toFixed(0)} ms, below ${floors[i]} ms (all: ${gaps.map(g => g.toFixed(0)).join(', ')})`) })
    // the cap: the last gap waits at most 1.25 x retry_max_ms = 100 ms, not base * 2^4 = 640 ms (at least 480 ms
    // with jitter): room left for a loaded machine
    assert.ok(gaps[4] < 400, `the capped gap took ${gaps[4].toFixed(0)} ms`)
    const info = await tracker.status(pinKey(cid))
    assert.equal(info.status, 'pin_error')
    assert.equal(info.attempt_count, 6)
    assert.match(info.error, /no provider answered/)
  })

  it('stops after max_retries and stays in error until recovered', async () => {
    const { ipfs, pinset, tracker } = await start({ maxRetries: 3 })
    const cid = await fakeCid('give-up')
    ipfs.failures.set(cid, 3)
    pinset.put(pinOf(cid))
    await waitFor(() => ipfs.pinCalls.length === 3, { timeoutMs: 5000, message: 'three attempts' })
    // proves a NOT: no fourth attempt within 10 x the largest backoff it could have picked (20 * 2^2 * 1.25 ms)
    await sleep(1000)
    assert.equal(ipfs.pinCalls.length, 3)
    const info = await tracker.status(pinKey(cid))
    assert.equal(info.status, 'pin_error')
    assert.equal(info.attempt_count, 3)
    // recover starts over (the fake now succeeds)
    await tracker.recover(pinKey(cid))
    await waitFor(async () => await status(tracker, cid) === 'pinned', { timeoutMs: 5000, message: 'the recovered pin to succeed' })
    assert.equal(ipfs.pinCalls.length, 4)
  })

  it('refuses an operation past max_queue_size with QueueFullError, and recovers it later', async () => {
    const { ipfs, pinset, tracker } = await start({ concurrentPins: 1, maxQueueSize: 2 })
    ipfs.hold = true
    const cids = await Promise.all([0, 1, 2, 3].map(async i => await fakeCid(`queue-${i}`)))
    pinset.put(pinOf(cids[0]))
    await waitFor(() => ipfs.held.has(cids[0]), { timeoutMs: 5000, message: 'the first pin to run' })
    pinset.put(...cids.slice(1).map(c => pinOf(c)))
    assert.equal(tracker.queueLength(), 2)
    assert.deepEqual(await Promise.all(cids.map(async c => await status(tracker, c))), ['pinning', 'pin_queued', 'pin_queued', 'pin_error'])
    assert.equal((await tracker.status(pinKey(cids[3]))).error, new QueueFullError().message)
    ipfs.hold = false
    ipfs.held.get(cids[0])?.()
    await waitFor(async () => await status(tracker, cids[2]) === 'pinned', { timeoutMs: 5000, message: 'the queue to drain' })
    assert.equal(await status(tracker, cids[3]), 'pin_error', 'a refused operation is not retried by itself')
    const recovered = []
    for await (const info of tracker.recoverAll()) recovered.push(info.cid)
    assert.deepEqual(recovered, [cids[3]])
    await waitFor(async () => await status(tracker, cids[3]) === 'pinned', { timeoutMs: 5000, message: 'the recovered pin' })
  })

  it('an unpin supersedes a running pin: the pin is aborted and the CID ends unpinned', async () => {
    const { ipfs, pinset, tracker } = await start()
    ipfs.hold = true
    const cid = await fakeCid('supersede')
    pinset.put(pinOf(cid))
    await waitFor(() => ipfs.held.has(cid), { timeoutMs: 5000, message: 'the pin to run' })
    pinset.remove(cid)
    const signal = ipfs.pinCalls[0].signal!
    await waitFor(() => signal.aborted, { timeoutMs: 5000, message: 'the running pin to be aborted' })
    assert.match(String(signal.reason), /superseded by unpin/)
    await waitFor(async () => await status(tracker, cid) === 'unpinned', { timeoutMs: 5000, message: 'the CID to end unpinned' })
    assert.equal(ipfs.pinned.has(cid), false)
    assert.equal(ipfs.pinCalls.length, 1)
  })

  it('a pin put back while its retry waits is not retried twice; a removed one is not retried at all', async () => {
    const { ipfs, pinset, tracker } = await start({ retryBaseMs: 300, retryMaxMs: 300 })
    const [again, gone] = await Promise.all([fakeCid('again'), fakeCid('gone')])
    ipfs.failures.set(again, 1)
    ipfs.failures.set(gone, 1)
    pinset.put(pinOf(again), pinOf(gone))
    await waitFor(async () => await status(tracker, again) === 'pin_error' && await status(tracker, gone) === 'pin_error', { timeoutMs: 5000, message: 'both first attempts to fail' })
    pinset.put(pinOf(again, 'renamed')) // an error is replaced by a fresh operation: it runs now, once
    pinset.remove(gone)
    await waitFor(async () => await status(tracker, again) === 'pinned', { timeoutMs: 5000, message: 'the re-put pin' })
    await waitFor(async () => await status(tracker, gone) === 'unpinned', { timeoutMs: 5000, message: 'the removed pin to go' })
    // proves a NOT: the cancelled retries (due within 375 ms) do not run
    await sleep(800)
    assert.equal(ipfs.pinCalls.filter(c => c.cid === again).length, 2)
    assert.equal(ipfs.pinCalls.filter(c => c.cid === gone).length, 1)
  })
})
