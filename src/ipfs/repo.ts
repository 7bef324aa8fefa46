// What the store holds, by kind (pinned, cache, garbage), read from the blocks themselves; with `verify`, each
// block is hashed again and the blocks of pins are looked for (`cairn repo stat`, `cairn repo verify`).
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import * as Digest from 'multiformats/hashes/digest'
import { hashesTo } from '../utils/cid.js'
import type { BlockCache } from './cache.js'
import type { PinRecords } from './pin-records.js'
import type { LocalBlockstore } from './blockstore.js'
import type { AbortOptions } from '../components.js'
import type { MultihashHasher } from 'multiformats/hashes/interface'

/** Blocks read at once (256 KiB blocks: 64 MiB). */
const SLICE = 256

export interface RepoAccountComponents {
  blockstore: Pick<LocalBlockstore, 'cidSlices' | 'getBlocks' | 'hasBlocks'>
  records: Pick<PinRecords, 'lookup' | 'blocks'>
  cache: Pick<BlockCache, 'has'>
  getHasher: (code: number) => Promise<MultihashHasher>
}

export interface RepoAccount {
  blocks: number
  pinned_bytes: number
  cache_bytes: number
  garbage_bytes: number
  /** With verify: blocks whose bytes do not hash to their CID, and whether a pin holds them. */
  corrupt: Array<{ cid: CID, pinned: boolean }>
  /** With verify: blocks of pins (by their records) not held. */
  missing: CID[]
}

export async function accountRepo (components: RepoAccountComponents, options: AbortOptions & { verify?: boolean } = {}): Promise<RepoAccount> {
  const { blockstore, records, cache } = components
  const out: RepoAccount = { blocks: 0, pinned_bytes: 0, cache_bytes: 0, garbage_bytes: 0, corrupt: [], missing: [] }
  for await (const slice of blockstore.cidSlices(SLICE, options)) {
    const [recs, blocks] = await Promise.all([records.lookup(slice, options), blockstore.getBlocks(slice, options)])
    if (options.verify === true) await findUnreadable(blockstore, slice, blocks, recs, out, options)
    for (const [i, cid] of slice.entries()) {
      const bytes = blocks[i]
      // deleted since the slice was listed (a GC, an eviction), or unreadable (counted corrupt above)
      if (bytes === undefined) continue
      out.blocks++
      const pinned = recs[i] !== undefined
      if (pinned) out.pinned_bytes += bytes.byteLength
      else if (cache.has(cid)) out.cache_bytes += bytes.byteLength
      else out.garbage_bytes += bytes.byteLength
      if (options.verify === true) {
        if (!await hashesTo(await components.getHasher(cid.multihash.code), cid, bytes)) out.corrupt.push({ cid, pinned })
      }
    }
  }
  if (options.verify === true) out.missing = (await findMissing(components, options)).missing
  return out
}

/** The blocks pin records claim that the store does not hold (index lookups only: no block is read). */
export async function findMissing (components: Pick<RepoAccountComponents, 'blockstore' | 'records'>, options: AbortOptions = {}): Promise<{ checked: number, missing: CID[] }> {
  const { blockstore, records } = components
  const missing: CID[] = []
  let checked = 0
  let batch: CID[] = []
  const check = async (): Promise<void> => {
    const held = await blockstore.hasBlocks(batch, options)
    missing.push(...batch.filter((_, i) => !held[i]))
    checked += batch.length
    batch = []
  }
  for await (const mh of records.blocks(options)) {
    batch.push(CID.createV1(raw.code, Digest.decode(mh)))
    if (batch.length >= 2048) await check()
  }
  if (batch.length > 0) await check()
  return { checked, missing }
}

/**
 * Blocks listed as held whose bytes cannot be read (an index entry left pointing into a segment file that is gone,
 * by a fault or by hand): still listed once read again, they are corrupt, so that verify deletes the entry and
 * fetches a pin's block again. A block deleted since the slice was listed (a GC) is no longer held and is skipped.
 */
async function findUnreadable (blockstore: RepoAccountComponents['blockstore'], slice: CID[], blocks: Array<Uint8Array | undefined>,
  recs: unknown[], out: RepoAccount, options: AbortOptions): Promise<void> {
  const unread = slice.flatMap((cid, i) => blocks[i] === undefined ? [{ cid, pinned: recs[i] !== undefined }] : [])
  if (unread.length === 0) return
  const held = await blockstore.hasBlocks(unread.map(u => u.cid), options)
  const suspects = unread.filter((_, i) => held[i])
  if (suspects.length === 0) return
  // read once more: a block deleted and put again between the two looks reads now
  const again = await blockstore.getBlocks(suspects.map(u => u.cid), options)
  out.corrupt.push(...suspects.filter((_, i) => again[i] === undefined))
}
