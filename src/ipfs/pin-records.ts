// Helia's pin records, written in batches. Helia keeps `/pin/<cid base36>` -> {depth, metadata} per pinned root
// and `/pinned-block/<multihash base36>` -> {pinCount, pinnedBy} per block, and its pins.add/rm update the block
// records one get + put after the other: pinning a 15,000-block mirror version took ~8 s, though only a few
// hundred blocks were new. This writes the same records (Helia's pins.ls/get/isPinned and its GC read them
// unchanged) with parallel reads and one level batch per slice, one operation at a time per node, so two pins
// sharing blocks never lose a count. It also removes the root from `pinnedBy` on unpin, which Helia 7's rm
// does not (its filter keeps only that root).
import * as cborg from 'cborg'
import { Key } from 'interface-datastore'
import { base36 } from 'multiformats/bases/base36'
import type { AbortOptions } from '../components.js'
import type { GraphWalker } from '@helia/interface'
import type { Datastore } from 'interface-datastore'
import type { CID } from 'multiformats/cid'

const SLICE = 2048

const equals = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0

interface PinnedBlock {
  pinCount: number
  pinnedBy: Uint8Array[]
}

export function pinKey (cid: CID): Key {
  return new Key(`/pin/${(cid.version === 0 ? cid.toV1() : cid).toString(base36)}`)
}

function blockKey (cid: CID): Key {
  return new Key(`/pinned-block/${base36.encode(cid.multihash.bytes)}`)
}

async function readRecord (datastore: Datastore, key: Key, options: AbortOptions): Promise<PinnedBlock | undefined> {
  try {
    return cborg.decode(await datastore.get(key, options)) as PinnedBlock
  } catch (err) {
    if ((err as Error).name === 'NotFoundError') return undefined
    throw err
  }
}

export class PinRecords {
  /** One record operation at a time: read-modify-write of shared block records must not interleave. */
  private tail: Promise<unknown> = Promise.resolve()

  constructor (private readonly datastore: Datastore) {}

  private async exclusive<T> (fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn)
    this.tail = run.catch(() => {})
    return await run
  }

  /** Records `root` (walked with `walker` to `depth`) as pinned. Resolves with the blocks recorded. */
  async add (root: CID, depth: number, walker: GraphWalker, options: AbortOptions = {}): Promise<number> {
    return await this.exclusive(async () => {
      let blocks = 0
      await this.forSlices(root, depth, walker, options, async slice => {
        const records = await Promise.all(slice.map(async cid => await readRecord(this.datastore, blockKey(cid), options)))
        const batch = this.datastore.batch()
        slice.forEach((cid, i) => {
          const record = records[i] ?? { pinCount: 0, pinnedBy: [] }
          if (record.pinnedBy.some(by => equals(by, root.bytes))) return
          record.pinCount++
          record.pinnedBy.push(root.bytes)
          batch.put(blockKey(cid), cborg.encode(record))
        })
        await batch.commit(options)
        blocks += slice.length
      })
      // the root record last: a pin whose blocks are not all recorded is never listed
      await this.datastore.put(pinKey(root), cborg.encode({ depth, metadata: {} }), options)
      return blocks
    })
  }

  /** Removes the pin of `root` and its claim on each block (the record goes when no pin is left). */
  async remove (root: CID, walker: GraphWalker, options: AbortOptions = {}): Promise<void> {
    await this.exclusive(async () => {
      let depth: number
      try {
        depth = (cborg.decode(await this.datastore.get(pinKey(root), options)) as { depth: number }).depth
      } catch (err) {
        if ((err as Error).name === 'NotFoundError') return
        throw err
      }
      // the root record first: from here on the pin is gone, even if a slice below fails
      await this.datastore.delete(pinKey(root), options)
      await this.forSlices(root, depth, walker, options, async slice => {
        const records = await Promise.all(slice.map(async cid => await readRecord(this.datastore, blockKey(cid), options)))
        const batch = this.datastore.batch()
        slice.forEach((cid, i) => {
          const record = records[i]
          if (record == null) return
          const kept = record.pinnedBy.filter(by => !equals(by, root.bytes))
          if (kept.length === record.pinnedBy.length) return
          const next = { pinCount: Math.max(0, record.pinCount - 1), pinnedBy: kept }
          if (next.pinCount === 0) batch.delete(blockKey(cid))
          else batch.put(blockKey(cid), cborg.encode(next))
        })
        await batch.commit(options)
      })
    })
  }

  /** Walks the DAG and hands its distinct blocks over in slices. */
  private async forSlices (root: CID, depth: number, walker: GraphWalker, options: AbortOptions, fn: (slice: CID[]) => Promise<void>): Promise<void> {
    const seen = new Set<string>()
    let slice: CID[] = []
    for await (const node of walker.walk(root, { ...options, depth })) {
      const cid = node.block.cid
      const key = base36.encode(cid.multihash.bytes)
      if (seen.has(key)) continue
      seen.add(key)
      slice.push(cid)
      if (slice.length >= SLICE) { await fn(slice); slice = [] }
    }
    if (slice.length > 0) await fn(slice)
  }
}
