// A spread pin held here: the skeleton of the tree (claimed block by block) and the files of this peer's
// partitions (each file's root claimed and its DAG counted by reference, as a recursive pin's; pin-records.ts).
// So versions that share files share their records, and dropping a partition releases exactly its files.
import pMap from 'p-map'
import { partitionOf, readLayout, type BlockReader, type Layout } from '../spread/layout.js'
import { blockId, scanLocalDag, type LocalDagInit } from './local-dag.js'
import { fetchDag, type FetchDagComponents, type FetchDagOptions, type FetchSession } from './fetch.js'
import type { Generation, PinBlock } from './pin-records.js'
import { CID } from 'multiformats/cid'
import { readLayoutIndex } from '../spread/index-block.js'
import type { AbortOptions, PinShare } from '../components.js'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PeerId } from '@libp2p/interface'

/** This peer's share of a spread pin: the partition count, the partitions it holds, the layout index. */
export type Share = PinShare

/** How a share is written in the pin record's metadata (and compared: a changed share is pinned again). */
export function shareString (share: Share): string {
  return `${share.partitions}:${[...share.mine].sort((a, b) => a - b).join(',')}${share.layout != null ? `@${share.layout}` : ''}`
}

export function parseShare (value: unknown): Share | undefined {
  if (typeof value !== 'string') return undefined
  const m = /^(\d+):([\d,]*)(?:@([a-z0-9]+))?$/.exec(value)
  if (m == null) return undefined
  return { partitions: Number(m[1]), mine: m[2] === '' ? [] : m[2].split(',').map(Number), ...(m[3] != null ? { layout: m[3] } : {}) }
}

/** The share's layout index, read: the skeleton's keys and the index's own blocks (claimed with the share). */
async function layoutOf (share: Share, read: BlockReader, options: AbortOptions): Promise<{ skeleton?: Set<string>, blocks: CID[] }> {
  if (share.layout == null) return { blocks: [] }
  return await readLayoutIndex(CID.parse(share.layout), read, options)
}

/** What a spread pin claims: every skeleton block, and the root of each of its files (the tops). */
export interface SpreadListing {
  blocks: PinBlock[]
  /** Skeleton blocks that are not the top of a file of this share: claimed, not counted deep. */
  claims: CID[]
  /** Roots of the files of this share: claimed, with everything below counted deep. */
  tops: CID[]
}

function select (layout: Layout, share: Share, indexBlocks: CID[] = []): { claims: CID[], tops: CID[] } {
  const mine = new Set(share.mine)
  const tops = layout.units.filter(u => mine.has(partitionOf(u.cid, share.partitions))).map(u => u.cid)
  const topIds = new Set(tops.map(t => blockId(t)))
  const claims = [...layout.skeleton.map(s => s.cid).filter(c => !topIds.has(blockId(c))), ...indexBlocks]
  return { claims, tops }
}

/** One of the peers holding a file's partition (at random: their load is spread), asked for it first. */
function pick (peers: string[]): PeerId | undefined {
  if (peers.length === 0) return undefined
  try {
    return peerIdFromString(peers[Math.floor(Math.random() * peers.length)])
  } catch {
    return undefined
  }
}

/** Files whose DAGs are fetched at once. */
const UNIT_CONCURRENCY = 8

/**
 * Fetches what this share lacks: the skeleton (through `read`, which fetches and stores a missing block), then
 * each file of the share. Returns the listing to record, and the generation the records were read at.
 */
export async function fetchSpread (root: CID, share: Share, read: BlockReader, components: FetchDagComponents, options: FetchDagOptions = {}): Promise<SpreadListing & { generation: Generation }> {
  const generation = components.records.generation
  const index = await layoutOf(share, read, { signal: options.signal })
  const layout = await readLayout(root, share.partitions, read, { signal: options.signal, skeleton: index.skeleton })
  const { claims, tops } = select(layout, share, index.blocks)
  const blocks: PinBlock[] = [...layout.skeleton.map(s => ({ cid: s.cid, links: s.links })), ...index.blocks.map(cid => ({ cid }))]
  let listed = blocks.length
  // a peer that sent a file of a partition it is not mapped to holds more than its share (the peer the version
  // was uploaded to, until its GC): it is asked first for the other files too
  let wide: PeerId | undefined
  const lists = await pMap(tops, async top => {
    const holders = share.holders?.[partitionOf(top, share.partitions)] ?? []
    const asked = wide ?? pick(holders)
    const session: FetchSession = { peer: asked }
    const got = await fetchDag(top, Infinity, components, {
      ...options,
      session,
      onProgress: n => { options.onProgress?.(listed + n) }
    })
    listed += got.blocks.length
    const sender = session.peer
    if (sender != null && !holders.includes(sender.toString())) wide = sender
    else if (asked != null && wide != null && asked.equals(wide) && sender != null && !sender.equals(wide)) wide = undefined
    return got.blocks
  }, { concurrency: UNIT_CONCURRENCY, signal: options.signal })
  for (const list of lists) blocks.push(...list)
  return { blocks, claims, tops, generation }
}

/**
 * The same from the local store only (every block held): to list a share again under the records' lock, and
 * to know what a spread pin claims when it is removed.
 */
export async function listSpreadLocal (root: CID, share: Share, dag: LocalDagInit, readLocal: BlockReader): Promise<SpreadListing> {
  const index = await layoutOf(share, readLocal, {})
  const layout = await readLayout(root, share.partitions, readLocal, { skeleton: index.skeleton })
  const { claims, tops } = select(layout, share, index.blocks)
  const blocks: PinBlock[] = [...layout.skeleton.map(s => ({ cid: s.cid, links: s.links })), ...index.blocks.map(cid => ({ cid }))]
  for (const top of tops) {
    const local = await scanLocalDag(top, Infinity, dag, { stopAtDeep: true })
    if (local.missing.length > 0) throw new Error(`block ${local.missing[0].cid.toString()} of ${root.toString()} was removed while the pin was being recorded`)
    blocks.push(...local.blocks)
  }
  return { blocks, claims, tops }
}

/** The blocks a spread pin claims (for its removal), read from the local store. */
export async function spreadClaims (root: CID, share: Share, readLocal: BlockReader): Promise<CID[]> {
  const index = await layoutOf(share, readLocal, {})
  const layout = await readLayout(root, share.partitions, readLocal, { skeleton: index.skeleton })
  const { claims, tops } = select(layout, share, index.blocks)
  return [...claims, ...tops]
}
