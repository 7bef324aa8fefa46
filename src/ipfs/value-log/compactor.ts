// Compaction: a segment has its live records appended to the current segment (through the group commit, so they
// are synced and indexed like any put), then the index is synced (entries deleted since the last sync must not
// come back pointing into a file that is gone) and the segment is deleted once no read uses it. One segment at a
// time, in the background. Which: a segment whose live share fell below a threshold; and, while the segment files
// together hold more than a bound over their live records, the one with the lowest live share (the bound is what
// a disk holds at most against what is needed: a mirror's churn spreads garbage thinly over every segment, which
// the threshold alone would leave at up to 1/threshold times the live bytes; docs/DESIGN.md).
import { scanSegment } from './scan.js'
import { nameOf } from './index-db.js'
import type { Ref } from './ref.js'
import type { Segments } from './segments.js'
import type { Logger } from '@libp2p/interface'

/** Records moved at once: enough for group commits of many records. */
const IN_FLIGHT = 64
/**
 * The bound over the whole log is looked at once deletes pause this long (at most MAX_SETTLE_MS after the first):
 * a repo GC deletes slice by slice, and compacting in between would move records the next slice deletes.
 */
const SETTLE_MS = 200
const MAX_SETTLE_MS = 2000

export interface CompactionPolicy {
  /** A segment whose live share falls below this is compacted. */
  segmentBelow: number
  /** Dead bytes in the segment being appended to before the threshold above applies to it (it is rolled first). */
  minDeadCurrent: number
  /** While the segment files exceed their live records by more than this share of them, the emptiest goes. */
  maxDead: number
  /** ... once at least this many bytes are dead (a small store is not rewritten for a few blocks). */
  minDead: number
}

export interface CompactorComponents {
  segments: Segments
  log: Logger
  /** Moves one record unless the block was deleted or moved meanwhile. */
  relocate: (name: string, multihash: Uint8Array, payload: Uint8Array, from: Ref) => Promise<void>
  /** Makes every index write so far durable. */
  syncIndex: () => Promise<void>
  /** Bytes of the live records of a segment. */
  live: (id: number) => number
  /** Bytes of the live records of every segment. */
  liveTotal: () => number
  /** Resolves once everything appended so far is synced and indexed; with `roll`, after starting a new segment. */
  barrier: (roll: boolean) => Promise<void>
}

export class Compactor {
  private running: Promise<void> | undefined
  private readonly wanted = new Set<number>()
  private readonly controller = new AbortController()
  private settle?: { timer: NodeJS.Timeout, since: number }
  /** Segments compacted and bytes given back since open. */
  readonly stats = { segments: 0, bytes: 0 }

  constructor (private readonly components: CompactorComponents, private readonly policy: CompactionPolicy) {}

  /**
   * Looks at a segment after it lost blocks: queued for compaction when its live share is below the threshold;
   * and compaction starts when the whole log holds too much dead space.
   */
  consider (id: number): void {
    const { segments } = this.components
    if (this.controller.signal.aborted) return
    const size = segments.sizes().get(id)
    // the segment appended to is compacted too (a store smaller than a segment would never give space back), once
    // enough of it is dead to be worth a new segment: it is rolled first
    if (size !== undefined && this.components.live(id) < this.policy.segmentBelow * size &&
      (id !== segments.current.id || size - this.components.live(id) >= this.policy.minDeadCurrent)) this.wanted.add(id)
    if (this.wanted.size > 0) this.start()
    else if (this.overBound()) this.later()
  }

  private start (): void {
    this.running ??= this.run().finally(() => { this.running = undefined })
  }

  /** Starts compaction once deletes pause. */
  private later (): void {
    if (this.settle != null) {
      if (Date.now() - this.settle.since < MAX_SETTLE_MS) this.settle.timer.refresh()
      return
    }
    const timer = setTimeout(() => { this.flush() }, SETTLE_MS)
    timer.unref()
    this.settle = { timer, since: Date.now() }
  }

  private flush (): void {
    if (this.settle == null) return
    clearTimeout(this.settle.timer)
    this.settle = undefined
    if (!this.controller.signal.aborted) this.start()
  }

  /** The segment files hold more dead bytes than the bound allows. */
  private overBound (): boolean {
    const dead = this.components.segments.totalBytes() - this.components.liveTotal()
    return dead >= this.policy.minDead && dead > this.policy.maxDead * this.components.liveTotal()
  }

  /** The segment with the lowest live share (dead bytes in it), the one appended to included. */
  private emptiest (): number | undefined {
    let best: number | undefined
    let bestShare = 1
    for (const [id, size] of this.components.segments.sizes()) {
      const share = size === 0 ? 1 : this.components.live(id) / size
      if (share < bestShare) [best, bestShare] = [id, share]
    }
    return best
  }

  /** The next segment to compact: one queued, else the emptiest while the log is over its bound. */
  private next (): number | undefined {
    const [id] = this.wanted
    if (id !== undefined) {
      this.wanted.delete(id)
      return id
    }
    return this.overBound() ? this.emptiest() : undefined
  }

  /** Resolves once no compaction is running or queued. */
  async idle (): Promise<void> {
    this.flush()
    while (this.running != null) await this.running
  }

  async stop (): Promise<void> {
    this.controller.abort()
    this.flush()
    await this.running
  }

  private async run (): Promise<void> {
    for (let id = this.next(); id !== undefined; id = this.next()) {
      if (this.controller.signal.aborted) return
      try {
        await this.compact(id)
      } catch (err) {
        // a failure (a full disk) too: the next delete tries again
        this.components.log.error('compacting segment %d - %e', id, err)
        return
      }
    }
  }

  /** Compacts one segment (gone meanwhile: nothing to do; stopped: it stays for the next open). */
  private async compact (id: number): Promise<void> {
    const { segments, relocate, syncIndex, log, barrier } = this.components
    // records written to the segment but not indexed yet would not be moved: wait for them (and roll the segment
    // off when it is the one appended to)
    await barrier(id === segments.current.id)
    const size = segments.sizes().get(id)
    if (size === undefined) return
    const started = Date.now()
    let moved = 0
    let inFlight: Array<Promise<void>> = []
    const records = scanSegment(segments, id, 0, size)
    for (let next = await records.next(); next.done !== true; next = await records.next()) {
      // stopped: the segment stays, and the next open looks at it again
      if (this.controller.signal.aborted) {
        await Promise.all(inFlight)
        return
      }
      const r = next.value
      inFlight.push(relocate(nameOf(r.multihash), r.multihash, r.payload, { segment: id, offset: r.offset, length: r.payload.byteLength }))
      moved += r.payload.byteLength
      if (inFlight.length >= IN_FLIGHT) {
        await Promise.all(inFlight)
        inFlight = []
      }
    }
    await Promise.all(inFlight)
    await syncIndex()
    await segments.retire(id)
    this.stats.segments++
    this.stats.bytes += size
    log('compacted segment %d: %d bytes, %d bytes of records looked at, in %d ms', id, size, moved, Date.now() - started)
  }
}
