// The peer's blockstore: the value log (src/ipfs/value-log/) in <peer folder>/blocks-vlog. A peer folder written
// by an earlier version keeps its blocks in level (<peer folder>/blocks and blocks-index, sized-blockstore.ts):
// that store is opened too, read through (a block not in the value log is looked for there) and migrated in the
// background, a slice of blocks at a time: each is put into the value log (synced) before it is deleted from
// level, so a crash or a stop part-way loses nothing and the next start goes on. Once level holds nothing, its
// folders are removed. New blocks always go to the value log.
import { BaseBlockstore } from 'blockstore-core/base'
import { access, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { KeyedLock } from '../utils/keyed-lock.js'
import { SizedBlockstore } from './sized-blockstore.js'
import { ValueLogBlockstore, type ValueLogStats } from './value-log/index.js'
import type { LocalBlockstore } from './blockstore.js'
import type { AbortOptions } from '../components.js'
import type { Logger } from '@libp2p/interface'
import type { Pair } from 'interface-blockstore'
import type { Datastore } from 'interface-datastore'
import type { CID } from 'multiformats/cid'

export interface PeerBlockstoreInit {
  /** The peer folder. */
  dataDir: string
  /** Where the earlier layout kept its count (open before open() and until after close()). */
  datastore: Datastore
  log: Logger
  /** Blocks migrated at once. Default 256. */
  migrateSlice?: number
  /** The value log starts a new segment file past this size. Default 256 MiB. */
  segmentBytes?: number
}

export interface PeerBlockstoreStats extends ValueLogStats {
  /** Bytes still in the earlier layout, waiting to be migrated. */
  unmigratedBytes: number
}

const LEVEL_FOLDERS = ['blocks', 'blocks-index']

export class PeerBlockstore extends BaseBlockstore implements LocalBlockstore {
  private readonly init: PeerBlockstoreInit
  private readonly vlog: ValueLogBlockstore
  /** The earlier layout, while it holds blocks. */
  private level?: SizedBlockstore
  private readonly locks = new KeyedLock()
  private migration?: { controller: AbortController, done: Promise<void> }
  /** Calls using the earlier layout's store: it is closed only once none is left. */
  private levelUsers = 0
  private levelIdle?: () => void

  constructor (init: PeerBlockstoreInit) {
    super()
    this.init = init
    this.vlog = new ValueLogBlockstore({ path: join(init.dataDir, 'blocks-vlog'), log: init.log, segmentBytes: init.segmentBytes })
  }

  get onStored (): ((cid: CID) => void) | undefined {
    return this.vlog.onStored
  }

  set onStored (fn: ((cid: CID) => void) | undefined) {
    this.vlog.onStored = fn
  }

  async open (): Promise<void> {
    await this.vlog.open()
    const exists = await access(join(this.init.dataDir, 'blocks', 'CURRENT')).then(() => true, () => false)
    if (!exists) return
    const level = new SizedBlockstore({ path: join(this.init.dataDir, 'blocks'), datastore: this.init.datastore, log: this.init.log })
    try {
      await level.open()
    } catch (err) {
      await this.vlog.close()
      throw err
    }
    this.level = level
    this.init.log('blocks of the earlier layout (%d bytes) are read where they are and moved to the value log in the background', level.size())
    const controller = new AbortController()
    this.migration = {
      controller,
      done: this.migrate(level, controller.signal).catch(err => {
        if (!controller.signal.aborted) this.init.log.error('moving blocks to the value log - %e', err)
      })
    }
  }

  /** Moves every block of the earlier layout into the value log, then removes that layout's folders. */
  private async migrate (level: SizedBlockstore, signal: AbortSignal): Promise<void> {
    const started = Date.now()
    let moved = 0
    for await (const slice of level.cidSlices(this.init.migrateSlice ?? 256, { signal })) {
      await Promise.all(slice.map(async cid => {
        await this.locks.run(cid.multihash.toString(), async () => {
          signal.throwIfAborted()
          const [bytes] = await level.getBlocks([cid])
          if (bytes === undefined) return
          // into the value log (synced) before out of level: a crash in between leaves a copy in each
          await this.vlog.put(cid, bytes)
          await level.delete(cid)
          moved++
        })
      }))
    }
    if (level.size() > 0) return
    this.level = undefined
    if (this.levelUsers > 0) await new Promise<void>(resolve => { this.levelIdle = resolve })
    await level.close()
    for (const name of LEVEL_FOLDERS) await rm(join(this.init.dataDir, name), { recursive: true, force: true })
    this.init.log('moved %d blocks of the earlier layout to the value log in %d ms; its folders are removed', moved, Date.now() - started)
  }

  /** Resolves once the blocks of the earlier layout are all moved (or the move stopped). */
  async migrated (): Promise<void> {
    await this.migration?.done
  }

  /** fn on the earlier layout's store, kept open until it returns; `none` when there is no such store. */
  private async withLevel<T> (none: T, fn: (level: SizedBlockstore) => Promise<T>): Promise<T> {
    const level = this.level
    if (level == null) return none
    this.levelUsers++
    try {
      return await fn(level)
    } finally {
      if (--this.levelUsers === 0) this.levelIdle?.()
    }
  }

  /** Every slice of the earlier layout's store (kept open meanwhile). */
  private async * levelSlices (size: number, options?: AbortOptions): AsyncGenerator<CID[]> {
    const level = this.level
    if (level == null) return
    this.levelUsers++
    try {
      yield * level.cidSlices(size, options)
    } finally {
      if (--this.levelUsers === 0) this.levelIdle?.()
    }
  }

  async close (): Promise<void> {
    this.migration?.controller.abort()
    await this.migration?.done
    this.migration = undefined
    try {
      await this.level?.close()
    } finally {
      this.level = undefined
      await this.vlog.close()
    }
  }

  size (): number {
    return this.vlog.size() + (this.level?.size() ?? 0)
  }

  stats (): PeerBlockstoreStats {
    return { ...this.vlog.stats(), unmigratedBytes: this.level?.size() ?? 0 }
  }

  override async has (cid: CID, options?: AbortOptions): Promise<boolean> {
    return (await this.hasBlocks([cid], options))[0]
  }

  async hasBlocks (cids: CID[], options?: AbortOptions): Promise<boolean[]> {
    const found = await this.vlog.hasBlocks(cids, options)
    const missing = cids.filter((_, i) => !found[i])
    if (missing.length === 0) return found
    const there = await this.withLevel(missing.map(() => false), async level => await level.hasBlocks(missing, options))
    let next = 0
    return found.map(f => f || there[next++])
  }

  async getBlocks (cids: CID[], options?: AbortOptions): Promise<Array<Uint8Array | undefined>> {
    const found = await this.vlog.getBlocks(cids, options)
    const missing = cids.filter((_, i) => found[i] === undefined)
    if (missing.length === 0 || this.level == null) return found
    const there = await this.withLevel(missing.map(() => undefined), async level => await level.getBlocks(missing, options))
    let next = 0
    // a block moved between the two reads is in neither answer: read the value log again for it
    return await Promise.all(found.map(async (f, i) => f ?? there[next++] ?? (await this.vlog.getBlocks([cids[i]], options))[0]))
  }

  override async put (cid: CID, bytes: Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>, options?: AbortOptions): Promise<CID> {
    // a block still in the earlier layout is held: the move will bring it over
    if (await this.withLevel(false, async level => await level.has(cid, options))) return cid
    return await this.vlog.put(cid, bytes, options)
  }

  override async * get (cid: CID, options?: AbortOptions): AsyncGenerator<Uint8Array> {
    if (this.level == null || await this.vlog.has(cid, options)) {
      yield * this.vlog.get(cid, options)
      return
    }
    const [bytes] = await this.getBlocks([cid], options)
    yield * (bytes === undefined ? this.vlog.get(cid, options) : [bytes])
  }

  override async delete (cid: CID, options?: AbortOptions): Promise<void> {
    // under the block's lock, so that a move in progress does not bring it back
    await this.locks.run(cid.multihash.toString(), async () => {
      await this.vlog.delete(cid, options)
      await this.withLevel(undefined, async level => { await level.delete(cid, options) })
    })
  }

  async * cidSlices (size: number, options?: AbortOptions): AsyncGenerator<CID[]> {
    yield * this.vlog.cidSlices(size, options)
    yield * this.levelSlices(size, options)
  }

  override async * getAll (options?: AbortOptions): AsyncGenerator<Pair> {
    yield * this.vlog.getAll(options)
    for await (const slice of this.levelSlices(256, options)) {
      const blocks = await this.getBlocks(slice, options)
      for (const [i, cid] of slice.entries()) {
        const bytes = blocks[i]
        if (bytes !== undefined) yield { cid, bytes: (function * () { yield bytes })() }
      }
    }
  }
}
