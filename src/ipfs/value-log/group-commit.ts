// Group commit: appends queued while a group is being written go together as the next group (one positioned
// write of all their records), and every group written while a sync ran shares the next one: ONE fdatasync, then
// one index batch with the checkpoint. Writing and syncing overlap (a group is written while the groups before it
// are synced). An append resolves once its bytes are synced and its index entry written, never before.
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

interface Waiter { resolve: () => void, reject: (err: unknown) => void }

/** Written and waiting for a sync: a group, or a barrier (resolved once everything written before it is synced). */
type Written = { group: Queued[], refs: Ref[], segment: number, end: number } | { barrier: Waiter }

export class GroupCommit {
  private queue: Queued[] = []
  /** Barriers asked for, each after a roll when `roll` is set; taken between two writes. */
  private requests: Array<Waiter & { roll: boolean }> = []
  private written: Written[] = []
  private writing: Promise<void> | undefined
  private syncing: Promise<void> | undefined

  constructor (private readonly segments: Segments, private readonly index: IndexDb, private readonly maxSegmentBytes: number) {}

  /** Appends a record and indexes it: resolves with where its payload is, once both are done. */
  async append (multihash: Uint8Array, payload: Uint8Array): Promise<Ref> {
    return await new Promise<Ref>((resolve, reject) => {
      this.queue.push({ multihash, payload, resolve, reject })
      this.kickWriter()
    })
  }

  /**
   * Resolves once everything appended before it is synced and indexed; with `roll`, a new segment is started
   * first (between two writes), so that the one appended to so far can be compacted.
   */
  async barrier (roll = false): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.requests.push({ resolve, reject, roll })
      this.kickWriter()
    })
  }

  /** Resolves once nothing is queued, being written or waiting for a sync. */
  async idle (): Promise<void> {
    while (this.writing != null || this.syncing != null) await (this.writing ?? this.syncing)
  }

  private kickWriter (): void {
    this.writing ??= this.writeLoop().finally(() => {
      this.writing = undefined
      if (this.queue.length > 0 || this.requests.length > 0) this.kickWriter()
    })
  }

  private kickSyncer (): void {
    this.syncing ??= this.syncLoop().finally(() => {
      this.syncing = undefined
      if (this.written.length > 0) this.kickSyncer()
    })
  }

  private async writeLoop (): Promise<void> {
    while (this.queue.length > 0 || this.requests.length > 0) {
      if (this.requests.length > 0) {
        const requests = this.requests
        this.requests = []
        try {
          if (requests.some(r => r.roll) && this.segments.current.size > 0) await this.segments.roll()
          for (const barrier of requests) this.written.push({ barrier })
        } catch (err) {
          for (const r of requests) r.reject(err)
        }
        this.kickSyncer()
        continue
      }
      let group: Queued[] = []
      try {
        group = await this.take()
        const { segment, start } = await this.segments.write(group.flatMap(q => encodeRecord(q.multihash, q.payload)))
        const refs: Ref[] = []
        let at = start
        for (const q of group) {
          refs.push({ segment, offset: at + HEAD_BYTES + q.multihash.byteLength, length: q.payload.byteLength })
          at += recordBytes(q.multihash.byteLength, q.payload.byteLength)
        }
        this.written.push({ group, refs, segment, end: at })
        this.kickSyncer()
      } catch (err) {
        // a failed roll (take) fails what is queued; a failed write, its group
        for (const q of group.length > 0 ? group : this.queue.splice(0)) q.reject(err)
      }
    }
  }

  /** Syncs the segments of every group written so far, indexes them in one batch, then tells their callers. */
  private async syncLoop (): Promise<void> {
    while (this.written.length > 0) {
      const items = this.written
      this.written = []
      const groups = items.flatMap(w => 'group' in w ? [w] : [])
      try {
        for (const segment of new Set(groups.map(g => g.segment))) await this.segments.sync(segment)
        const last = groups.at(-1)
        if (last != null) {
          await this.index.write(groups.flatMap(g => g.group.map((q, i) => ({ type: 'put' as const, name: nameOf(q.multihash), ref: g.refs[i] }))), { segment: last.segment, end: last.end })
        }
        for (const w of items) {
          if ('group' in w) w.group.forEach((q, i) => { q.resolve(w.refs[i]) })
          else w.barrier.resolve()
        }
      } catch (err) {
        for (const w of items) {
          if ('group' in w) for (const q of w.group) q.reject(err)
          else w.barrier.reject(err)
        }
      }
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
}
