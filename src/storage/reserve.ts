// Room for the databases to open on a full disk. LevelDB replays its log at open and writes it out as a table
// before it deletes the log, so opening needs about as much free space as the logs hold: up to the block store's
// 64 MiB memtable, more than an operator frees by deleting a few files. Without it a full peer could not start
// again, and each failed start used up what had been freed.
//
// So a peer keeps a file of `reserve_bytes` (`reserve` in its folder) while the disk has room for it twice over.
// Before the databases open, prepare() adds up their logs; when the disk has less free than that (plus a margin),
// the reserve is deleted, and when that is still not enough the start is refused before anything is written,
// with the number of bytes to free. The reserve is made again once the disk has room for it twice over.
import { randomFillSync } from 'node:crypto'
import { open, readdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { repeatingTask, type RepeatingTask } from '@libp2p/utils'
import { describeDisk, freeBytes, isNoSpaceError } from './disk.js'
import { InsufficientStorageError } from '../errors.js'
import { formatBytes } from '../utils/bytes.js'
import type { AbortOptions, Startable } from '../components.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export const RESERVE_FILE = 'reserve'
/** Free space kept beyond the logs at start: new MANIFEST and log files, the first writes. */
const START_MARGIN = 8 * 1024 * 1024
const CHUNK = 1024 * 1024
/** A LevelDB log file: <number>.log. */
const LOG_FILE = /^\d+\.log$/

export interface DiskReserveInit {
  /** The peer folder: the reserve file and the level databases are in it. */
  path: string
  /** Size of the reserve file; 0 = none. */
  bytes: number
  /** How often a missing reserve is made again when the disk has room (default 60 s). */
  checkIntervalMs?: number
}

export interface DiskReserveComponents {
  logger: ComponentLogger
}

export interface DiskReserve extends Startable {
  /**
   * Before the databases open: makes room for them to replay their logs (deleting the reserve if need be), or
   * throws InsufficientStorageError naming the disk and how much to free on it. Writes nothing.
   */
  prepare: (options?: AbortOptions) => Promise<void>
  /**
   * Makes the reserve when it is missing (or short) and the disk has room for it twice over; resolves with
   * whether the reserve is there. start() calls it, then every checkIntervalMs, in the background.
   */
  ensure: () => Promise<boolean>
}

export function createDiskReserve (init: DiskReserveInit, components: DiskReserveComponents): DiskReserve {
  return new Reserve(init, components)
}

/** The bytes the level databases in `dir` (and one level below) would write to open: their logs, replayed. */
export async function replayBytes (dir: string): Promise<number> {
  let total = 0
  const visit = async (path: string, depth: number): Promise<void> => {
    let entries
    try {
      entries = await readdir(path, { withFileTypes: true })
    } catch {
      return
    }
    const isDb = entries.some(e => e.isFile() && e.name === 'CURRENT')
    for (const e of entries) {
      if (isDb && e.isFile() && LOG_FILE.test(e.name)) total += (await stat(join(path, e.name))).size
      else if (e.isDirectory() && depth < 2) await visit(join(path, e.name), depth + 1)
    }
  }
  await visit(dir, 0)
  return total
}

class Reserve implements DiskReserve {
  private readonly log: Logger
  private readonly file: string
  private task?: RepeatingTask
  /** The reserve being made (one at a time). */
  private making?: Promise<void>
  private readonly shutdown = new AbortController()

  constructor (private readonly init: DiskReserveInit, components: DiskReserveComponents) {
    this.log = components.logger.forComponent('cairn:storage:reserve')
    this.file = join(init.path, RESERVE_FILE)
  }

  private async held (): Promise<number> {
    try {
      return (await stat(this.file)).size
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0
      throw err
    }
  }

  async prepare (options: AbortOptions = {}): Promise<void> {
    // a reserve a stop or crash left half made
    await rm(`${this.file}.tmp`, { force: true })
    const need = await replayBytes(this.init.path) + START_MARGIN
    let free = await freeBytes(this.init.path)
    if (free >= need) return
    options.signal?.throwIfAborted()
    const held = await this.held()
    if (held > 0) {
      await rm(this.file, { force: true })
      free = await freeBytes(this.init.path)
      this.log.error('deleted the %s reserve file %s: the databases need about %s to open and the disk had %s free (it is made again once the disk has %s free)',
        formatBytes(held), this.file, formatBytes(need), formatBytes(free - held), formatBytes(2 * this.init.bytes))
      if (free >= need) return
    }
    throw new InsufficientStorageError(`insufficient storage: cannot start: opening the databases in ${this.init.path} needs about ${formatBytes(need)} free (LevelDB writes its logs out as tables at open), more than ${describeDisk(this.init.path)} has: free at least ${formatBytes(need - free)} on it, then start again`)
  }

  async start (): Promise<void> {
    if (this.init.bytes <= 0) {
      // a reserve left from a larger setting would hold space for nothing
      await rm(this.file, { force: true })
      return
    }
    this.check()
    this.task = repeatingTask(() => { this.check() }, this.init.checkIntervalMs ?? 60_000)
    this.task.start()
  }

  async stop (): Promise<void> {
    this.task?.stop()
    this.shutdown.abort()
    await this.making?.catch(() => {})
  }

  private check (): void {
    this.ensure().catch(err => { this.log.error('making the reserve file %s failed: %e', this.file, err) })
  }

  async ensure (): Promise<boolean> {
    this.making ??= this.make().finally(() => { this.making = undefined })
    await this.making
    return await this.held() >= this.init.bytes
  }

  private async make (): Promise<void> {
    const bytes = this.init.bytes
    const held = await this.held()
    if (bytes <= 0 || held >= bytes) return
    if (await freeBytes(this.init.path) + held < 2 * bytes) return
    const tmp = `${this.file}.tmp`
    const signal = this.shutdown.signal
    const fh = await open(tmp, 'w')
    let done = false
    try {
      // random bytes: a compressing file system would store zeros in nothing
      const chunk = new Uint8Array(CHUNK)
      for (let written = 0; written < bytes; written += CHUNK) {
        if (signal.aborted) return
        randomFillSync(chunk)
        await fh.write(chunk, 0, Math.min(CHUNK, bytes - written))
      }
      await fh.sync()
      done = true
    } catch (err) {
      // the disk filled meanwhile: no reserve this time
      if (!isNoSpaceError(err)) throw err
    } finally {
      await fh.close()
      if (!done) await rm(tmp, { force: true })
    }
    if (!done) return
    await rename(tmp, this.file)
    this.log('made the %s reserve file %s', formatBytes(bytes), this.file)
  }
}
