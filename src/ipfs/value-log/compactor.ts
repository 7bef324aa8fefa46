// Compaction: a segment whose live share fell below the threshold has its live records appended to the current
// segment (through the group commit, so they are synced and indexed like any put), then the index is synced
// (entries deleted since the last sync must not come back pointing into a file that is gone) and the segment is
// deleted once no read uses it. One segment at a time, in the background.
import { scanSegment } from './scan.js'
import { nameOf } from './index-db.js'
import type { Ref } from './ref.js'
import type { Segments } from './segments.js'
import type { Logger } from '@libp2p/interface'

/** Records moved at once: enough for group commits of many records. */
const IN_FLIGHT = 64

export interface CompactorComponents {
  segments: Segments
  log: Logger
  /** Moves one record unless the block was deleted or moved meanwhile. */
  relocate: (name: string, multihash: Uint8Array, payload: Uint8Array, from: Ref) => Promise<void>
  /** Makes every index write so far durable. */
  syncIndex: () => Promise<void>
  /** Live payload bytes of a segment. */
  live: (id: number) => number
  /** Resolves once everything appended so far is synced and indexed; with `roll`, after starting a new segment. */
  barrier: (roll: boolean) => Promise<void>
}

export class Compactor {
  private running: Promise<void> | undefined
  private readonly wanted = new Set<number>()
  private readonly controller = new AbortController()
  /** Segments compacted and bytes given back since open. */
  readonly stats = { segments: 0, bytes: 0 }

  constructor (private readonly components: CompactorComponents, private readonly threshold: number, private readonly minDeadCurrent: number) {}

  /** Looks at a segment after it lost blocks: queued for compaction when its live share is below the threshold. */
  consider (id: number): void {
    const { segments } = this.components
    if (this.controller.signal.aborted) return
    const size = segments.sizes().get(id)
    if (size === undefined || this.components.live(id) >= this.threshold * size) return
    // the segment appended to is compacted too (a store smaller than a segment would never give space back), once
    // enough of it is dead to be worth a new segment: it is rolled first
    if (id === segments.current.id && size - this.components.live(id) < this.minDeadCurrent) return
    this.wanted.add(id)
    this.running ??= this.run().finally(() => { this.running = undefined })
  }

  /** Resolves once no compaction is running or queued. */
  async idle (): Promise<void> {
    while (this.running != null) await this.running
  }

  async stop (): Promise<void> {
    this.controller.abort()
    await this.running
  }

  private async run (): Promise<void> {
    for (const id of this.wanted) {
      this.wanted.delete(id)
      if (this.controller.signal.aborted) return
      try {
        await this.compact(id)
      } catch (err) {
        this.components.log.error('compacting segment %d - %e', id, err)
      }
    }
  }

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
