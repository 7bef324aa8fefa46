// Pin records, in Helia's keys: `/pin/<cid base36>` -> {depth, metadata} per pinned root and
// `/pinned-block/<multihash base36>` -> {pinCount, pinnedBy, ...} per block held for a pin. Helia's pins.ls/get/
// isPinned read them unchanged (isPinned: a block has a record), and so do the reprovider's key scan and the
// sharded add's cleanup. cairn never runs Helia's GC, whose pinCount-only view these records no longer fit.
//
// Helia claims every block of a pin in its record (pinCount, pinnedBy), so pinning a new version of a mirror
// rewrote one record per block of the whole tree (14,679 for a 10,000-file mirror of which 100 files changed).
// cairn counts recursive pins by reference instead, as a Merkle DAG allows:
// - a recursive pin claims its root only;
// - a *deep* record says that everything below the block is held and recorded, and that each distinct child
//   counts this block in its `refs`;
// - a block is kept while it has a claim or a ref. Pinning a DAG marks deep the blocks that are not yet, and
//   stops at deep ones: an unchanged subtree costs one ref on its top block. Unpinning releases the root when
//   nothing else holds it, and a released deep block releases its children in turn.
// So a new mirror version costs records in proportion to what changed, and so does dropping an old one.
// Depth-limited pins (direct, shard pins) claim every block within their depth, as Helia does. Pins recorded by
// an older cairn (claims on every block, no `deep` in the pin record) are released the same way.
// Writes go in bulk (level getMany, one batch per slice), one operation at a time per node, so two pins sharing
// blocks never lose a count.
import * as cborg from 'cborg'
import type { AbortOptions } from '../components.js'
import type { Datastore, Key } from 'interface-datastore'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { blockId } from './local-dag.js'
import { pinRecordKey, pinnedBlockKey as blockKey, PINNED_BLOCKS_PREFIX, pinnedBlockMultihash } from './helia-internals.js'

const SLICE = 2048
/** Listed blocks of the adds recorded together at most (a pin listing more is recorded alone). */
const GROUP_BLOCKS = SLICE

const equals = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0

/**
 * Helia's block record, plus what cairn adds: the codec the block was read with and the CIDs it links to (bytes),
 * for blocks with links. Helia reads pinCount and pinnedBy and ignores the rest. A record means the block is held
 * here (a pin is recorded only once all of it is), so with its links a pinned subtree is listed from records
 * alone, without reading its blocks again: that is what makes pinning a new version of a mirror cheap.
 */
export interface PinnedBlock {
  pinCount: number
  pinnedBy: Uint8Array[]
  codec?: number
  links?: Uint8Array[]
  /** Everything below is held and recorded, and each distinct child counts this block in its `refs`. */
  deep?: boolean
  /** Deep blocks that link to this one. */
  refs?: number
}

/** The pin record: Helia's, plus whether the pin was counted by reference (see above). */
interface PinRecord {
  depth: number
  metadata: Record<string, unknown>
  deep?: boolean
}

/** A block of a pin being recorded. */
export interface PinBlock {
  cid: CID
  /** The blocks it links to, when known (a raw block has none). */
  links?: CID[]
  /** Its record as read at `generation` (null: none), when read already. */
  record?: PinnedBlock | null
}

async function readRecord (datastore: Datastore, key: Key, options: AbortOptions): Promise<PinnedBlock | undefined> {
  try {
    return cborg.decode(await datastore.get(key, options)) as PinnedBlock
  } catch (err) {
    if ((err as Error).name === 'NotFoundError') return undefined
    throw err
  }
}

/**
 * What a listing of blocks was read against: records written since may be stale, and a listing that stopped at
 * deep blocks is wrong once a removal may have released one of them.
 */
export interface Generation {
  writes: number
  removes: number
}

/** A spread pin's claims (spread-pin.ts): skeleton blocks claimed one by one, file roots counted deep. */
export interface SpreadClaims {
  claims: CID[]
  tops: CID[]
  /** Written in the pin record's metadata: what removing the pin lists again. */
  share: string
}

export interface AddOptions extends AbortOptions {
  /** Records a spread pin: these claims instead of the root's. */
  spread?: SpreadClaims
  /** The `generation` the blocks' records were read at: they are re-read when records were written since. */
  generation?: Generation
  /**
   * Lists the blocks of a recursive pin again (under the lock) when a pin was removed since they were listed:
   * the deep blocks the listing stopped at may have been released meanwhile.
   */
  rescan?: () => Promise<PinBlock[]>
}

/** An add waiting for its group. */
interface PendingAdd {
  root: CID
  depth: number
  blocks: PinBlock[]
  options: AddOptions
  resolve: (written: number) => void
  reject: (err: unknown) => void
}

export class PinRecords {
  /** One record operation at a time: read-modify-write of shared block records must not interleave. */
  private tail: Promise<unknown> = Promise.resolve()
  private writes = 0
  private removes = 0
  /** Adds waiting for the next group, and whether a group is queued to take them. */
  private pending: PendingAdd[] = []
  private groupQueued = false

  /**
   * @param getMany reads many keys at once (level's getMany: one call instead of one per block); without it,
   * records are read one get each.
   */
  constructor (private readonly datastore: Datastore, private readonly getMany?: (keys: Key[]) => Promise<Array<Uint8Array | undefined>>) {}

  private async exclusive<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn)
    this.tail = run.catch(() => {})
    return await run
  }

  /** Where records stand now: pass it back to `add` with blocks listed from records read after this. */
  get generation (): Generation {
    return { writes: this.writes, removes: this.removes }
  }

  /**
   * The multihash of every block held for a pin: a key scan, with no record decoded (a pin is recorded only once
   * all its blocks are here).
   */
  async * blocks (options: AbortOptions = {}): AsyncGenerator<Uint8Array> {
    for await (const key of this.datastore.queryKeys({ prefix: PINNED_BLOCKS_PREFIX }, options)) {
      const mh = pinnedBlockMultihash(key)
      if (mh != null) yield mh
    }
  }

  /** The records of these blocks (undefined: none), as of `generation`. */
  async lookup (cids: CID[], options: AbortOptions = {}): Promise<Array<PinnedBlock | undefined>> {
    return await this.readRecords(cids, options)
  }

  /**
   * Records `root` as pinned to `depth`. `blocks` lists the blocks of the pin, root included, each with its links
   * (or a record holding them): for a recursive pin, at least every block not yet deep and the deep blocks they
   * link to (a listing may stop at deep blocks); for a depth-limited pin, every block within the depth. Records
   * given with the blocks are used when read at `options.generation` and nothing was written since. Returns the
   * number of block records written.
   *
   * Adds are group-committed: the adds that queue while a record operation runs are recorded together, with one
   * bulk read of their records and one batch (up to GROUP_BLOCKS listed blocks, so that the batch lands whole),
   * instead of a read and two writes each, one pin after the other (10 pins fetched at a time by the tracker,
   * thousands posted at once: each waited for every write queued before it).
   */
  async add (root: CID, depth: number, blocks: PinBlock[], options: AddOptions = {}): Promise<number> {
    return await new Promise<number>((resolve, reject) => {
      this.pending.push({ root, depth, blocks, options, resolve, reject })
      this.queueGroup()
    })
  }

  private queueGroup (): void {
    if (this.groupQueued || this.pending.length === 0) return
    this.groupQueued = true
    void this.exclusive(async () => {
      this.groupQueued = false
      // the adds waiting now, as many as fit a batch (a bigger pin alone); the rest go in a later group, behind
      // any removal queued meanwhile
      let listed = 0
      let n = 0
      while (n < this.pending.length && (n === 0 || listed + this.pending[n].blocks.length <= GROUP_BLOCKS)) listed += this.pending[n++].blocks.length
      const group = this.pending.splice(0, n)
      // addGroup settles each add itself; this catches only what it did not expect (settling twice is a no-op)
      await this.addGroup(group).catch(err => { for (const add of group) add.reject(err) })
      this.queueGroup()
    })
  }

  private async addGroup (group: PendingAdd[]): Promise<void> {
    const atStart = this.generation
    // each add's blocks (undefined: its rescan failed), and whether the records given with them are current
    const lists: Array<PinBlock[] | undefined> = []
    const fresh: boolean[] = []
    for (const add of group) {
      const given = add.options.generation
      let list: PinBlock[] | undefined = add.blocks
      let current = given != null && given.writes === atStart.writes
      if (add.depth === Infinity && add.options.rescan != null && (given == null || given.removes !== atStart.removes)) {
        try {
          list = await add.options.rescan()
          current = true
        } catch (err) {
          add.reject(err)
          list = undefined
        }
      }
      lists.push(list)
      fresh.push(current)
    }
    // one bulk read of the records not given fresh with the blocks
    const unread = new Map<string, CID>()
    group.forEach((_, g) => {
      for (const b of lists[g] ?? []) if (!(fresh[g] && b.record !== undefined)) unread.set(blockId(b.cid), b.cid)
    })
    const read = new Map<string, PinnedBlock | undefined>()
    const cids = [...unread.values()]
    try {
      for (let i = 0; i < cids.length; i += SLICE) {
        const slice = cids.slice(i, i + SLICE)
        const records = await this.readRecords(slice, {})
        slice.forEach((cid, j) => { read.set(blockId(cid), records[j]) })
      }
    } catch (err) {
      for (const add of group) add.reject(err)
      return
    }
    // each pin against the records as the pins before it in the group leave them
    const overlay = new Map<string, Update>()
    const pins: PendingAdd[] = []
    const counts: number[] = []
    group.forEach((add, g) => {
      const list = lists[g]
      if (list == null) return
      try {
        const records = list.map(b => {
          const id = blockId(b.cid)
          const updated = overlay.get(id)
          if (updated != null) return updated.record ?? undefined
          return fresh[g] && b.record !== undefined ? b.record ?? undefined : read.get(id)
        })
        const spread = add.options.spread
        const updates = spread != null ? markSpread(add.root, spread, list, records) : add.depth === Infinity ? markDeep(add.root, list, records) : claimAll(add.root, list, records)
        for (const u of updates) overlay.set(blockId(u.cid), u)
        pins.push(add)
        counts.push(updates.length)
      } catch (err) {
        add.reject(err)
      }
    })
    if (pins.length === 0) return
    try {
      // the pin records in the last batch: a pin whose blocks are not all recorded is never listed
      await this.write([...overlay.values()], {}, pins.map(add => ({
        key: pinRecordKey(add.root),
        value: cborg.encode(add.options.spread != null
          ? { depth: add.depth, metadata: { spread: add.options.spread.share } }
          : add.depth === Infinity ? { depth: add.depth, metadata: {}, deep: true } : { depth: add.depth, metadata: {} })
      })))
    } catch (err) {
      for (const add of pins) add.reject(err)
      return
    }
    pins.forEach((add, i) => { add.resolve(counts[i]) })
  }

  /**
   * Removes the pin of `root` and its claims: on the root (a pin counted by reference), or on every block within
   * its depth, listed by `blocksOf` (depth-limited pins, and pins recorded by an older cairn). A block left with
   * neither claim nor ref loses its record, and a deep one releases its children.
   */
  async remove (root: CID, blocksOf: (depth: number, metadata: Record<string, unknown>) => Promise<CID[]>, options: AbortOptions = {}): Promise<void> {
    await this.exclusive(async () => {
      let pin: PinRecord
      try {
        pin = cborg.decode(await this.datastore.get(pinRecordKey(root), options)) as PinRecord
      } catch (err) {
        if ((err as Error).name === 'NotFoundError') return
        throw err
      }
      const claimed = pin.deep === true ? [root] : await blocksOf(pin.depth, pin.metadata ?? {})
      // the pin record first: from here on the pin is gone, even if a slice below fails
      this.writes++
      this.removes++
      await this.datastore.delete(pinRecordKey(root), options)
      const released: Released[] = []
      for (let i = 0; i < claimed.length; i += SLICE) {
        const slice = claimed.slice(i, i + SLICE)
        const records = await this.readRecords(slice, options)
        const updates: Update[] = []
        slice.forEach((cid, j) => {
          const record = records[j]
          if (record == null) return
          const kept = record.pinnedBy.filter(by => !equals(by, root.bytes))
          if (kept.length === record.pinnedBy.length) return
          const next = { ...record, pinCount: Math.max(0, record.pinCount - 1), pinnedBy: kept }
          const gone = next.pinCount === 0 && (next.refs ?? 0) <= 0
          updates.push({ cid, record: gone ? null : next })
          if (gone) released.push({ cid, record: next })
        })
        await this.write(updates, options)
      }
      await this.release(released, options)
    })
  }

  /**
   * Released blocks (their records deleted already) take their refs off their children; a child left with
   * neither claim nor ref is released in turn. Each slice is written before the next is read.
   */
  private async release (queue: Released[], options: AbortOptions): Promise<void> {
    while (queue.length > 0) {
      const chunk = queue.splice(Math.max(0, queue.length - SLICE))
      const drops = new Map<string, { cid: CID, n: number }>()
      for (const { record } of chunk) {
        if (record.deep !== true) continue
        // a block linking a child twice took one ref on it
        const children = new Set<string>()
        for (const bytes of record.links ?? []) {
          const child = CID.decode(bytes)
          const id = blockId(child)
          if (children.has(id)) continue
          children.add(id)
          const d = drops.get(id)
          if (d == null) drops.set(id, { cid: child, n: 1 })
          else d.n++
        }
      }
      const children = [...drops.values()]
      for (let i = 0; i < children.length; i += SLICE) {
        const slice = children.slice(i, i + SLICE)
        const records = await this.readRecords(slice.map(c => c.cid), options)
        const updates: Update[] = []
        slice.forEach(({ cid, n }, j) => {
          const record = records[j]
          if (record == null) return
          const next = { ...record, refs: Math.max(0, (record.refs ?? 0) - n) }
          const gone = next.pinCount <= 0 && next.refs <= 0
          updates.push({ cid, record: gone ? null : next })
          if (gone) queue.push({ cid, record: next })
        })
        await this.write(updates, options)
      }
    }
  }

  /** Writes records (null: deleted) in batches of SLICE, in order; `last` goes in the last batch. */
  private async write (updates: Update[], options: AbortOptions, last: Array<{ key: Key, value: Uint8Array }> = []): Promise<void> {
    for (let i = 0; i < updates.length || (i === 0 && last.length > 0); i += SLICE) {
      const batch = this.datastore.batch()
      for (const { cid, record } of updates.slice(i, i + SLICE)) {
        if (record == null) batch.delete(blockKey(cid))
        else batch.put(blockKey(cid), cborg.encode(record))
      }
      if (i + SLICE >= updates.length) for (const { key, value } of last) batch.put(key, value)
      this.writes++
      await batch.commit(options)
    }
  }

  private async readRecords (slice: CID[], options: AbortOptions): Promise<Array<PinnedBlock | undefined>> {
    const keys = slice.map(blockKey)
    if (this.getMany != null) {
      options.signal?.throwIfAborted()
      return (await this.getMany(keys)).map(bytes => bytes == null ? undefined : cborg.decode(bytes) as PinnedBlock)
    }
    return await Promise.all(keys.map(async key => await readRecord(this.datastore, key, options)))
  }
}

/** A record to write (null: to delete). */
interface Update { cid: CID, record: PinnedBlock | null }

/** A block whose record was deleted, with that record (its links, whether it was deep). */
interface Released { cid: CID, record: PinnedBlock }

/** `root`'s claim added to a record (a copy), or undefined when the record has it already. */
function claimed (record: PinnedBlock | undefined, root: CID): PinnedBlock | undefined {
  if (record?.pinnedBy.some(by => equals(by, root.bytes)) === true) return undefined
  return { ...(record ?? { pinCount: 0, pinnedBy: [] }), pinCount: (record?.pinCount ?? 0) + 1, pinnedBy: [...(record?.pinnedBy ?? []), root.bytes] }
}

/** The links of a listed block: given, or from its record, or none for a raw block. */
function linksOf (block: PinBlock, record: PinnedBlock | undefined): CID[] | undefined {
  if (block.links != null) return block.links
  if (record?.links != null && record.codec === block.cid.code) return record.links.map(l => CID.decode(l))
  if (block.cid.code === raw.code) return []
  return undefined
}

/** With its links when known (so the block's subtree can be listed from records). */
function withLinks (next: PinnedBlock, block: PinBlock, links: CID[] | undefined): PinnedBlock {
  if (links != null && block.cid.code !== raw.code) {
    next.codec = block.cid.code
    next.links = links.map(l => l.bytes)
  }
  return next
}

/**
 * A recursive pin: the root claimed, the blocks below it that are not deep yet marked deep (from the root down,
 * stopping at deep blocks), and one ref on each distinct child of each newly deep block. Blocks are handled by
 * their position in the list (a map lookup per link, and typed arrays for the counts): the first version of
 * this, with maps keyed by multihash at every step, cost ~100 ms per 20,000 blocks.
 */
function markDeep (root: CID, list: PinBlock[], records: Array<PinnedBlock | undefined>): Update[] {
  return markDeepFrom(root, [root], list, records, positionsOf(list))
}

function positionsOf (list: PinBlock[]): Map<string, number> {
  const position = new Map<string, number>()
  list.forEach((b, i) => { const id = blockId(b.cid); if (!position.has(id)) position.set(id, i) })
  return position
}

/**
 * A spread pin: its file roots (tops) claimed by `root` and counted deep as a recursive pin's root is, and each
 * other skeleton block claimed, with its links.
 */
function markSpread (root: CID, spread: SpreadClaims, list: PinBlock[], records: Array<PinnedBlock | undefined>): Update[] {
  const position = positionsOf(list)
  const updates = spread.tops.length > 0 ? markDeepFrom(root, spread.tops, list, records, position) : []
  const byId = new Map(updates.map(u => [blockId(u.cid), u]))
  const extra: Update[] = []
  for (const cid of spread.claims) {
    const id = blockId(cid)
    const i = position.get(id)
    if (i == null) throw new Error(`cannot record the pin of ${root}: its block ${cid} was not listed`)
    const u = byId.get(id)
    const base = u != null ? u.record ?? undefined : records[i]
    const next = claimed(base, root)
    if (next == null) continue
    const record = base?.links != null && base.codec != null ? next : withLinks(next, list[i], list[i].links)
    if (u != null) u.record = record
    else extra.push({ cid, record })
  }
  return [...updates, ...extra]
}

/** Marks deep below each of `tops` (claimed by `root`); see markDeep. */
function markDeepFrom (root: CID, topCids: CID[], list: PinBlock[], records: Array<PinnedBlock | undefined>, position: Map<string, number>): Update[] {
  const tops = new Set<number>()
  for (const t of topCids) {
    const i = position.get(blockId(t))
    if (i == null) throw new Error(`cannot record the pin of ${root}: its block ${t} was not listed`)
    tops.add(i)
  }
  const visited = new Uint8Array(list.length)
  const refs = new Uint32Array(list.length)
  /** The last block that linked each block: a block linking a child twice counts it once. */
  const linkedBy = new Int32Array(list.length).fill(-1)
  const marked: Array<CID[] | undefined> = new Array(list.length)
  const stack = [...tops]
  for (const t of tops) visited[t] = 1
  while (stack.length > 0) {
    const i = stack.pop() as number
    const block = list[i]
    if (records[i]?.deep === true) continue
    const links = linksOf(block, records[i])
    if (links == null) throw new Error(`cannot record the pin of ${root}: the links of ${block.cid} are not known`)
    const children: CID[] = []
    for (const child of links) {
      const j = position.get(blockId(child))
      if (j == null) throw new Error(`cannot record the pin of ${root}: block ${child} below it was not listed`)
      if (linkedBy[j] === i) continue
      linkedBy[j] = i
      children.push(child)
      refs[j]++
      if (visited[j] === 0) {
        visited[j] = 1
        stack.push(j)
      }
    }
    marked[i] = children
  }
  const updates: Update[] = []
  for (let i = 0; i < list.length; i++) {
    const links = marked[i]
    if (!tops.has(i) && links == null && refs[i] === 0) continue
    const block = list[i]
    const record = records[i]
    const next: PinnedBlock = (tops.has(i) ? claimed(record, root) : undefined) ?? { ...(record ?? { pinCount: 0, pinnedBy: [] }) }
    if (links != null) {
      next.deep = true
      withLinks(next, block, links)
    }
    if (refs[i] > 0) next.refs = (record?.refs ?? 0) + refs[i]
    updates.push({ cid: block.cid, record: next })
  }
  // Written children first (the list has parents first), in slices that each land whole: a pin cut short (a
  // crash) can leave a child counted once too often, which keeps it longer, but never a deep block whose
  // children are not recorded, which a later pin would stop at and leave unrecorded.
  return updates.reverse()
}

/** A depth-limited pin: a claim on every listed block, as Helia records pins. */
function claimAll (root: CID, list: PinBlock[], records: Array<PinnedBlock | undefined>): Update[] {
  const updates: Update[] = []
  const seen = new Set<string>()
  for (let i = 0; i < list.length; i++) {
    const block = list[i]
    const id = blockId(block.cid)
    if (seen.has(id)) continue
    seen.add(id)
    const record = records[i]
    const next = claimed(record, root)
    if (next == null) continue
    updates.push({ cid: block.cid, record: record?.links != null && record.codec != null ? next : withLinks(next, block, block.links) })
  }
  return updates
}
