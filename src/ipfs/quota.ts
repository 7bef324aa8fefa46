// A pin's storage quota (the peer's storage_max): refused before any transfer when its UnixFS sizes say it cannot
// fit, stopped as soon as the store holds more than the quota while it fetches.
import * as dagPb from '@ipld/dag-pb'
import { QuotaExceededError } from '../errors.js'
import type { BlockFetcher } from './fetch.js'
import type { LocalBlockstore } from './blockstore.js'
import type { AbortOptions } from '../components.js'
import type { CID } from 'multiformats/cid'

/**
 * Bytes held that count against a pin's quota: all but the cache, which gives way to pins (past 90% of
 * storage_max it is evicted, least recently used first).
 */
export type QuotaCount = () => number

/**
 * Blocks already held add nothing, so the check is on what the store holds now: a pin whose new blocks push it
 * past the quota stops there (its fetched blocks stay cached; every other pin is untouched).
 */
export function checkQuota (counted: QuotaCount, root: CID, max: number | undefined): void {
  if (max == null || max <= 0) return
  const used = counted()
  if (used >= max) {
    throw new QuotaExceededError(`quota exceeded: pinning ${root} would take this peer past its storage_max of ${max} bytes (it holds ${used} bytes)`)
  }
}

export interface QuotaEstimateComponents {
  blockstore: Pick<LocalBlockstore, 'has'>
  counted: QuotaCount
  fetcher: Pick<BlockFetcher, 'localBlock' | 'getBlock'>
}

/**
 * Before fetching a UnixFS DAG: its root's links carry the size of each subtree, so a pin that cannot fit is
 * refused before any transfer. Subtrees whose top block is held here are assumed held (a pin update).
 */
export async function checkQuotaEstimate (root: CID, max: number | undefined, components: QuotaEstimateComponents, options: AbortOptions = {}): Promise<void> {
  if (max == null || max <= 0 || root.code !== dagPb.code) return
  const { blockstore, fetcher, counted } = components
  const signal = options.signal
  const local = await fetcher.localBlock(root, signal)
  // the root itself is fetched with a provider lookup at once, as the pin's walk would
  const bytes = local ?? await fetcher.getBlock(root, { signal, lookupDelayMs: 0 })
  let need = local == null ? bytes.byteLength : 0
  for (const link of dagPb.decode(bytes).Links) {
    if (link.Tsize != null && !(await blockstore.has(link.Hash))) need += link.Tsize
  }
  const used = counted()
  if (used + need > max) {
    throw new QuotaExceededError(`quota exceeded: pinning ${root} needs about ${need} more bytes, this peer holds ${used} of its storage_max of ${max} bytes`)
  }
}
