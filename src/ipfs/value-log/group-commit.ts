// Group commit: appends queued while one is being written go together as the next one: one write of all their
// records, ONE fdatasync, one index batch. An append resolves once its bytes are synced and its index entry
// written, never before.
import { encodeRecord, HEAD_BYTES, recordBytes } from './record.js'
import { nameOf, type IndexDb } from './index-db.js'
import type { Ref } from './ref.js'
import type { Segments } from './segments.js'

interface Queued {
  multihash: Uint8Array
  payload: Uint8Array
  resolve: (ref: Ref) => void
  reject: (err: unknown) => void
}

export class GroupCommit {
  private queue: Queued[] = []
  private rolls: Array<{ resolve: () => void, reject: (err: unknown) => void }> = []
  private running: Promise<void> | undefined

  constructor (private readonly segments: Segments, private readonly index: IndexDb, private readonly maxSegmentBytes: number) {}

  /** Appends a record and indexes it: resolves with where its payload is, once both are done. */
  async append (multihash: Uint8Array, payload: Uint8Array): Promise<Ref> {
    return await new Promise<Ref>((resolve, reject) => {
      this.queue.push({ multihash, payload, resolve, reject })
      this.running ??= this.drain()
    })
  }

  /**
   * Starts a new segment between two groups (never while one is being written), so that the one appended to so far
   * can be compacted.
   */
  async roll (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.rolls.push({ resolve, reject })
      this.running ??= this.drain()
    })
  }

  /** Resolves once nothing is queued or being written. */
  async idle (): Promise<void> {
    while (this.running != null) await this.running
  }

  private async drain (): Promise<void> {
    try {
      while (this.queue.length > 0 || this.rolls.length > 0) {
        if (this.rolls.length > 0) {
          const rolls = this.rolls
          this.rolls = []
          try {
            if (this.segments.current.size > 0) await this.segments.roll()
            for (const r of rolls) r.resolve()
          } catch (err) {
            for (const r of rolls) r.reject(err)
          }
          continue
        }
        const group = await this.take()
        try {
          const refs = await this.commit(group)
          group.forEach((q, i) => { q.resolve(refs[i]) })
        } catch (err) {
          for (const q of group) q.reject(err)
        }
      }
    } finally {
      this.running = undefined
    }
  }

  /**
   * The queued appends that fit in the current segment (at least one), which is rolled first when even the first
   * does not fit: a segment stays near its size, so that compaction rewrites little at a time.
   */
  private async take (): Promise<Queued[]> {
    const bytes = (q: Queued): number => recordBytes(q.multihash.byteLength, q.payload.byteLength)
    if (this.segments.current.size > 0 && this.segments.current.size + bytes(this.queue[0]) > this.maxSegmentBytes) {
      await this.segments.roll()
    }
    let room = this.maxSegmentBytes - this.segments.current.size
    let n = 0
    while (n < this.queue.length && (n === 0 || bytes(this.queue[n]) <= room)) room -= bytes(this.queue[n++])
    return this.queue.splice(0, n)
  }

  private async commit (group: Queued[]): Promise<Ref[]> {
    const { segment, start } = await this.segments.append(group.flatMap(q => encodeRecord(q.multihash, q.payload)))
    const refs: Ref[] = []
    let at = start
    for (const q of group) {
      refs.push({ segment, offset: at + HEAD_BYTES + q.multihash.byteLength, length: q.payload.byteLength })
      at += recordBytes(q.multihash.byteLength, q.payload.byteLength)
    }
    await this.index.write(group.map((q, i) => ({ type: 'put' as const, name: nameOf(q.multihash), ref: refs[i] })), { segment, end: at })
    return refs
  }
}
