// Which peers hold which partitions of a spread pin (docs/DESIGN.md §5 "Spread pins"). Every partition goes to
// `copies` distinct peers; a peer's share (its partitions, plus the skeleton every allocated peer keeps) must fit
// the space it offers. The previous version's map is kept wherever it still fits (a new version of a mirror moves
// only what changed), partitions of peers gone go to the peers with the most room left, and partitions then move
// from the most loaded peers to the least loaded only while that evens the load (a peer joining takes about its
// fair share; nothing else moves).
import { NotEnoughPeersError, NotEnoughSpaceError } from '../errors.js'

export interface SpreadAllocateRequest {
  cid: string
  /** Bytes of each partition. */
  partitionBytes: number[]
  /** Bytes every allocated peer holds besides its partitions. */
  skeletonBytes: number
  /** replication_factor_min and max, resolved (>= 1). */
  min: number
  max: number
  /** Peers that may take a share, with the bytes each can still take (its freespace metric). */
  free: ReadonlyMap<string, number>
  /** The current map (peer -> partitions), kept where it still fits. */
  current?: Readonly<Record<string, number[]>>
  /**
   * Bytes of this pin a peer holds outside the current map, counted as room (its freespace metric counts them
   * as used): the version uploaded to that peer, of which it keeps only its share.
   */
  credit?: ReadonlyMap<string, number>
  /** Bytes each peer offers in all (its `offer` metric): its share and skeleton never go past it. */
  offer?: ReadonlyMap<string, number>
  /**
   * Move partitions from the most to the least loaded peers until even (default: only when there is no current
   * map). A new version or a peer lost moves only what must move; a rebalance (a peer joined) evens the load.
   */
  even?: boolean
  /**
   * With `even`: move nothing unless the fullest and the emptiest peer's shares (held / room) are further apart
   * than this (0.25: 25 points); once moving, even out fully. Keeps a periodic rebalance from moving partitions
   * for metrics that wobble (default 0).
   */
  evenFrom?: number
}

export interface SpreadAllocation {
  /** peer -> the partitions it holds (sorted). */
  shares: Record<string, number[]>
  /** How many peers hold each partition. */
  copies: number
}

const MiB = 1024 * 1024

function fmt (bytes: number): string {
  return bytes >= 1024 * MiB ? `${(bytes / 1024 / MiB).toFixed(1)} GiB` : `${(bytes / MiB).toFixed(1)} MiB`
}

export function allocateSpread (req: SpreadAllocateRequest): SpreadAllocation {
  const peers = [...req.free.keys()].sort()
  const n = req.partitionBytes.length
  if (peers.length < req.min) {
    throw new NotEnoughPeersError(`not enough peers to spread ${req.cid}: ${peers.length} live peers, replication_factor_min is ${req.min}`)
  }
  const copies = Math.min(req.max, peers.length)
  const total = req.partitionBytes.reduce((a, b) => a + b, 0)
  // what a peer already holds of the current map counts as room: its bytes are in use by this very mirror
  const held = new Map<string, Set<number>>()
  for (const [peer, parts] of Object.entries(req.current ?? {})) {
    if (req.free.has(peer)) held.set(peer, new Set(parts.filter(p => p >= 0 && p < n)))
  }
  const room = new Map<string, number>()
  for (const peer of peers) {
    let r = (req.free.get(peer) ?? 0) + (req.credit?.get(peer) ?? 0) - req.skeletonBytes
    for (const p of held.get(peer) ?? []) r += req.partitionBytes[p]
    // never past what it offers in all (its freespace stops at 0 when it lowered storage_max below what it holds)
    const offer = req.offer?.get(peer)
    if (offer != null) r = Math.min(r, offer - req.skeletonBytes)
    room.set(peer, r)
  }
  const offered = [...room.values()].reduce((a, b) => a + Math.max(0, b), 0)
  const needed = total * copies
  if (offered < needed) {
    throw new NotEnoughSpaceError(`cannot spread ${req.cid} on ${copies} copies: it needs ${fmt(needed)} (${fmt(total)} x ${copies}, plus ${fmt(req.skeletonBytes)} of directories on each peer) and the ${peers.length} peers offer ${fmt(offered)}: ${fmt(needed - offered)} missing`)
  }
  const holders: Array<Set<string>> = Array.from({ length: n }, () => new Set())
  const load = new Map<string, number>(peers.map(p => [p, 0]))
  const left = (peer: string): number => (room.get(peer) ?? 0) - (load.get(peer) ?? 0)
  const give = (p: number, peer: string): void => {
    holders[p].add(peer)
    load.set(peer, (load.get(peer) ?? 0) + req.partitionBytes[p])
  }
  const take = (p: number, peer: string): void => {
    holders[p].delete(peer)
    load.set(peer, (load.get(peer) ?? 0) - req.partitionBytes[p])
  }
  // biggest partitions first: they are the hardest to fit
  const order = [...Array(n).keys()].sort((a, b) => req.partitionBytes[b] - req.partitionBytes[a] || a - b)
  // 1. keep what the current map says, while it fits and the partition has fewer than `copies`
  for (const p of order) {
    for (const peer of peers) {
      if (holders[p].size >= copies) break
      if (held.get(peer)?.has(p) === true && left(peer) >= req.partitionBytes[p]) give(p, peer)
    }
  }
  // 2. fill each partition up to `copies` with the peers with the most room left
  let short = 0
  for (const p of order) {
    while (holders[p].size < copies) {
      let best: string | undefined
      for (const peer of peers) {
        if (holders[p].has(peer) || left(peer) < req.partitionBytes[p]) continue
        if (best == null || left(peer) > left(best)) best = peer
      }
      if (best == null) break
      give(p, best)
    }
    if (holders[p].size < req.min) short += req.partitionBytes[p] * (req.min - holders[p].size)
  }
  if (short > 0) {
    throw new NotEnoughSpaceError(`cannot spread ${req.cid}: ${fmt(short)} of its partitions fit on no peer with room for them (${fmt(offered)} offered in all, ${fmt(needed)} needed)`)
  }
  // 3. even the load: move a partition from a more to a less loaded peer (relative to room) while that brings
  // both nearer each other, the most loaded and least loaded pair first, the next pair when no partition of the
  // first fits; each move is a partition fetched once and dropped once
  const share = (peer: string): number => (room.get(peer) ?? 0) > 0 ? (load.get(peer) ?? 0) / (room.get(peer) ?? 1) : Infinity
  const roomy = peers.filter(p => (room.get(p) ?? 0) > 0)
  const meanRoom = roomy.reduce((a, p) => a + (room.get(p) ?? 0), 0) / Math.max(1, roomy.length)
  // within one partition of even is even: a new version's slightly different sizes move nothing
  const even = Math.max(0, ...req.partitionBytes) / Math.max(1, meanRoom)
  const gap = (): number => {
    const s = roomy.map(share)
    return s.length === 0 ? 0 : Math.max(...s) - Math.min(...s)
  }
  /** The partition whose move from hi to lo best evens the two, or -1 when none does. */
  const bestMove = (hi: string, lo: string): number => {
    let bestP = -1
    let bestGap = Math.abs(share(hi) - share(lo))
    for (const p of order) {
      if (!holders[p].has(hi) || holders[p].has(lo) || left(lo) < req.partitionBytes[p]) continue
      const b = req.partitionBytes[p]
      const after = Math.abs(((load.get(hi) ?? 0) - b) / (room.get(hi) ?? 1) - ((load.get(lo) ?? 0) + b) / (room.get(lo) ?? 1))
      if (after < bestGap - 1e-9) { bestGap = after; bestP = p }
    }
    return bestP
  }
  const moveLimit = (req.even ?? req.current == null) && gap() > (req.evenFrom ?? 0) ? n * copies : 0
  for (let moves = 0; moves < moveLimit; moves++) {
    const ranked = roomy.sort((a, b) => share(b) - share(a))
    let moved = false
    for (let i = 0; i < ranked.length && !moved; i++) {
      for (let j = ranked.length - 1; j > i && !moved; j--) {
        const [hi, lo] = [ranked[i], ranked[j]]
        if (share(hi) - share(lo) <= even) break
        const p = bestMove(hi, lo)
        if (p < 0) continue
        take(p, hi)
        give(p, lo)
        moved = true
      }
    }
    if (!moved) break
  }
  const shares: Record<string, number[]> = {}
  holders.forEach((set, p) => { for (const peer of set) (shares[peer] ??= []).push(p) })
  for (const parts of Object.values(shares)) parts.sort((a, b) => a - b)
  return { shares, copies }
}
