// The segment files of a value log: which exist, the open handle of each (kept for positioned reads), the one
// being appended to, and their deletion once compacted (after the last read using the file ends).
import { open, readdir, rm, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { insufficientStorage, isNoSpaceError } from '../../storage/disk.js'

const SUFFIX = '.seg'

export const segmentName = (id: number): string => String(id).padStart(6, '0') + SUFFIX

interface Segment {
  id: number
  fh: FileHandle
  /** Bytes written (and synced) so far: where the next record goes. */
  size: number
  /** Reads in progress. */
  readers: number
  /** Compacted: no new read may start; the file goes once `readers` is 0. */
  retired?: () => void
}

export interface SegmentsInit {
  dir: string
  /** A new segment is started once the current one holds this many bytes. */
  maxBytes: number
  /** Counts each fdatasync (tests and stats). */
  onSync?: () => void
}

export class Segments {
  private readonly init: SegmentsInit
  private readonly open = new Map<number, Segment>()
  private currentId = 0
  /** Bytes of every segment file together. */
  private total = 0

  constructor (init: SegmentsInit) {
    this.init = init
  }

  /** The ids of the segment files in the folder, ascending. */
  async list (): Promise<number[]> {
    const names = await readdir(this.init.dir)
    return names.filter(n => /^\d{6,}\.seg$/.test(n)).map(n => parseInt(n, 10)).sort((a, b) => a - b)
  }

  /** Opens every segment file; the newest becomes the one appended to (a first one is made if there is none). */
  async openAll (sizes: Map<number, number>): Promise<void> {
    const ids = await this.list()
    for (const id of ids) {
      const fh = await open(join(this.init.dir, segmentName(id)), 'r+')
      const size = sizes.get(id) ?? (await fh.stat()).size
      this.open.set(id, { id, fh, size, readers: 0 })
      this.total += size
    }
    if (ids.length === 0) await this.roll()
    else this.currentId = ids[ids.length - 1]
  }

  async closeAll (): Promise<void> {
    const all = [...this.open.values()]
    this.open.clear()
    this.total = 0
    await Promise.allSettled(all.map(async s => { await s.fh.close() }))
  }

  get current (): { id: number, size: number } {
    const s = this.require(this.currentId)
    return { id: s.id, size: s.size }
  }

  /** Bytes of every segment file together. */
  totalBytes (): number {
    return this.total
  }

  /** Bytes of every segment file, by id. */
  sizes (): Map<number, number> {
    return new Map([...this.open.values()].map(s => [s.id, s.size]))
  }

  private require (id: number): Segment {
    const s = this.open.get(id)
    if (s == null) throw new Error(`segment ${segmentName(id)} is not open`)
    return s
  }

  /** Starts a new segment file and makes its name durable (the folder is fsynced) before anything goes in it. */
  async roll (): Promise<void> {
    const id = this.currentId + 1
    const fh = await open(join(this.init.dir, segmentName(id)), 'wx+')
    this.open.set(id, { id, fh, size: 0, readers: 0 })
    this.currentId = id
    await this.syncDir()
  }

  private async syncDir (): Promise<void> {
    const dir = await open(this.init.dir, 'r')
    try {
      await dir.sync()
    } finally {
      await dir.close()
    }
  }

  /**
   * Writes buffers to the current segment at its end (not synced: see sync()). A failed write advances nothing:
   * the next one writes over whatever part of it landed. A write refused for want of space gives back what part of
   * it landed (the segment is cut at its start), for the pinset's and level's writes on the same disk.
   */
  async write (buffers: Uint8Array[]): Promise<{ segment: number, start: number }> {
    const s = this.require(this.currentId)
    const start = s.size
    const total = buffers.reduce((n, b) => n + b.byteLength, 0)
    try {
      let written = 0
      while (written < total) {
        // writev may write less than asked: go on from where it stopped
        let skip = written
        const rest: Uint8Array[] = []
        for (const b of buffers) {
          if (skip >= b.byteLength) { skip -= b.byteLength; continue }
          rest.push(skip > 0 ? b.subarray(skip) : b)
          skip = 0
        }
        const { bytesWritten } = await s.fh.writev(rest, start + written)
        written += bytesWritten
      }
    } catch (err) {
      if (isNoSpaceError(err)) {
        // shrinking a file needs no space; should it fail, the next write still goes over this one
        await s.fh.truncate(start).catch(() => {})
        throw insufficientStorage(this.init.dir, `${total} bytes of blocks were not stored; what is stored is intact`)
      }
      throw err
    }
    s.size = start + total
    this.total += total
    return { segment: s.id, start }
  }

  /** fdatasyncs a segment: once this resolves, what was written to it before is on disk. */
  async sync (id: number): Promise<void> {
    await this.require(id).fh.datasync()
    this.init.onSync?.()
  }

  /** Cuts a segment at `end` (a torn tail) and syncs the cut. */
  async truncate (id: number, end: number): Promise<void> {
    const s = this.require(id)
    await s.fh.truncate(end)
    await s.fh.datasync()
    this.total -= s.size - end
    s.size = end
  }

  /** `length` bytes at `offset` of a segment; undefined when the segment was compacted away meanwhile. */
  async read (id: number, offset: number, length: number): Promise<Uint8Array | undefined> {
    const s = this.open.get(id)
    if (s == null || s.retired != null) return undefined
    s.readers++
    try {
      // a Buffer, as level gave: callers compare blocks with Buffers; unfilled, as every byte is read into it
      const bytes = Buffer.allocUnsafe(length)
      let done = 0
      while (done < length) {
        const { bytesRead } = await s.fh.read(bytes, done, length - done, offset + done)
        if (bytesRead === 0) throw new Error(`segment ${segmentName(id)} ends before ${offset + length}`)
        done += bytesRead
      }
      return bytes
    } finally {
      this.release(s)
    }
  }

  private release (s: Segment): void {
    s.readers--
    if (s.readers === 0) s.retired?.()
  }

  /** Deletes a compacted segment once no read uses it (new reads find it gone and look the block up again). */
  async retire (id: number): Promise<void> {
    const s = this.require(id)
    if (id === this.currentId) throw new Error('the segment being appended to cannot be retired')
    await new Promise<void>(resolve => {
      s.retired = resolve
      if (s.readers === 0) resolve()
    })
    this.open.delete(id)
    this.total -= s.size
    await s.fh.close()
    await rm(join(this.init.dir, segmentName(id)), { force: true })
    await this.syncDir()
  }
}
