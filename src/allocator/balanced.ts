// IPFS Cluster's balanced allocator (allocate.go + allocator/balanced/balanced.go): split peers into current,
// priority and candidates, partition each set by the allocate_by metrics in turn and pick round-robin across
// partitions, so copies spread over tag values and, inside a tag, go to the peers with the most free space.
import { InvalidParameterError, NotEnoughPeersError } from '../errors.js'
import type { Metric } from '../monitor/index.js'

/** IPFS Cluster's default `allocator.balanced.allocate_by`. */
export const DEFAULT_ALLOCATE_BY: readonly string[] = ['tag:group', 'freespace']

/** The tag value a peer without a tag metric gets (the tags informer's own default is group=default). */
export const DEFAULT_TAG_VALUE = 'default'

const TAG_PREFIX = 'tag:'
const FREESPACE = 'freespace'

export interface BalancedAllocateRequest {
  cid: string
  /** replication_factor_min, resolved from the cluster's defaults and checked: 1 <= min <= max, or -1 for both (everywhere). */
  min: number
  /** replication_factor_max, already resolved; -1 means everywhere. */
  max: number
  /** Peers the pin is allocated to now, kept first when still qualifying. */
  current: string[]
  /** user_allocations: preferred peers, best effort (unqualified ones are ignored). */
  priority: string[]
  /** Latest valid metrics per metric name, e.g. `{ 'tag:group': [...], freespace: [...] }`. */
  metrics: Record<string, Metric[]>
  /** Metric names to partition by, in order (default DEFAULT_ALLOCATE_BY). */
  allocateBy?: readonly string[]
  /** Peers never allocated to, not even when currently allocated (e.g. a peer that went down). */
  exclude?: ReadonlySet<string>
  /** With fewer than `min` peers qualifying, take every one that does instead of throwing NotEnoughPeersError. */
  bestEffort?: boolean
}

interface Partition {
  value: string
  weight: number
  aggregatedWeight: number
  /** Peers in this partition, in a fixed order so allocations are deterministic. */
  peers: string[]
  used: Set<string>
  sub?: PartitionedMetric
}

interface PartitionedMetric {
  partitions: Partition[]
  next: number
  exhausted: boolean
}

type MetricOf = (peer: string, name: string) => Metric

/**
 * Returns the peers to allocate `cid` to: the qualifying current allocations first, then new peers
 * (user_allocations before the balanced order). Returns [] for replication -1 (pin everywhere).
 * Throws NotEnoughPeersError when fewer than `min` peers qualify.
 */
export function allocateBalanced (req: BalancedAllocateRequest): string[] {
  if (req.min === -1 || req.max === -1) return []
  const allocateBy = req.allocateBy ?? DEFAULT_ALLOCATE_BY
  if (allocateBy.length === 0) throw new InvalidParameterError('allocate_by cannot be empty')

  const qualified = qualifyingPeers(req.metrics, allocateBy, req.exclude ?? new Set())
  const metricOf: MetricOf = (peer, name) => qualified.get(peer)?.get(name) ?? defaultTag(peer, name)

  const current = unique(req.current).filter(p => qualified.has(p))
  const needed = req.min - current.length
  const wanted = req.max - current.length
  // Above max: keep the oldest allocations. At or above min: keep them unchanged, so re-pinning is a no-op.
  if (wanted <= 0) return current.slice(0, req.max)
  if (needed <= 0) return current

  const taken = new Set(current)
  // A peer with no free space cannot take a new copy; one that already holds it stays in `current`.
  const hasRoom = (p: string): boolean => !allocateBy.includes(FREESPACE) || metricOf(p, FREESPACE).weight > 0
  const priority = unique(req.priority).filter(p => qualified.has(p) && !taken.has(p) && hasRoom(p))
  for (const p of priority) taken.add(p)
  const candidates = [...qualified.keys()].filter(p => !taken.has(p) && hasRoom(p)).sort()

  const available = priority.length + candidates.length
  if (available < needed && req.bestEffort !== true) {
    throw new NotEnoughPeersError(`not enough peers to allocate CID. Needed at least: ${needed}. Wanted at most: ${wanted}. Available candidates: ${available}. See logs for more info.`)
  }
  const ordered = [
    ...sortedPeers(partitionMetrics(priority, allocateBy, metricOf)),
    ...sortedPeers(partitionMetrics(candidates, allocateBy, metricOf))
  ]
  return [...current, ...ordered.slice(0, wanted)]
}

function unique (peers: string[]): string[] {
  return [...new Set(peers)]
}

function isTag (name: string): boolean {
  return name.startsWith(TAG_PREFIX)
}

function defaultTag (peer: string, name: string): Metric {
  if (!isTag(name)) throw new Error(`no ${name} metric for qualified peer ${peer}`) // unreachable: qualifyingPeers checked it
  return { name, peer, value: DEFAULT_TAG_VALUE, expire: 0, valid: true, weight: 0, partitionable: true, received_at: 0 }
}

/**
 * Peers with a valid metric for every allocate_by name (a missing tag counts as DEFAULT_TAG_VALUE), minus the
 * excluded ones, each with its metric per name (the latest-expiring one if a peer reported twice).
 */
function qualifyingPeers (metrics: Record<string, Metric[]>, allocateBy: readonly string[], exclude: ReadonlySet<string>): Map<string, Map<string, Metric>> {
  const byPeer = new Map<string, Map<string, Metric>>()
  for (const name of allocateBy) {
    for (const m of metrics[name] ?? []) {
      if (!m.valid || exclude.has(m.peer)) continue
      let mine = byPeer.get(m.peer)
      if (mine === undefined) {
        mine = new Map()
        byPeer.set(m.peer, mine)
      }
      const seen = mine.get(name)
      if (seen === undefined || m.expire > seen.expire) mine.set(name, { ...m, name })
    }
  }
  for (const [peer, mine] of byPeer) {
    if (!allocateBy.every(name => isTag(name) || mine.has(name))) byPeer.delete(peer)
  }
  return byPeer
}

/**
 * Groups peers by the first metric (partitionable metrics by value, others one partition per peer), each
 * group sub-partitioned by the remaining metrics, partitions sorted by weight, then aggregated weight, then value.
 */
function partitionMetrics (peers: string[], by: readonly string[], metricOf: MetricOf): PartitionedMetric {
  const [name, ...rest] = by
  const partitions: Partition[] = []
  const byValue = new Map<string, Partition>()
  for (const peer of peers) {
    const m = metricOf(peer, name)
    const shared = m.partitionable ? byValue.get(m.value) : undefined
    if (shared !== undefined) {
      shared.peers.push(peer)
      shared.weight += m.weight
      shared.aggregatedWeight += m.weight
      continue
    }
    const p: Partition = { value: m.value, weight: m.weight, aggregatedWeight: m.weight, peers: [peer], used: new Set() }
    if (m.partitionable) byValue.set(m.value, p)
    partitions.push(p)
  }
  if (rest.length > 0) {
    for (const p of partitions) {
      p.sub = partitionMetrics(p.peers, rest, metricOf)
      for (const s of p.sub.partitions) p.aggregatedWeight += s.aggregatedWeight
    }
  }
  partitions.sort((a, b) =>
    b.weight - a.weight ||
    b.aggregatedWeight - a.aggregatedWeight ||
    compare(a.value, b.value) ||
    compare(a.peers[0], b.peers[0]))
  return { partitions, next: 0, exhausted: false }
}

function compare (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** All peers, never taking twice from one partition while another still has peers. */
function sortedPeers (pm: PartitionedMetric): string[] {
  const out: string[] = []
  for (let peer = chooseNext(pm); peer !== undefined; peer = chooseNext(pm)) out.push(peer)
  return out
}

function chooseNext (pm: PartitionedMetric): string | undefined {
  const n = pm.partitions.length
  if (n === 0 || pm.exhausted) return undefined
  for (let tried = 0; tried < n; tried++) {
    const p = pm.partitions[pm.next]
    pm.next = (pm.next + 1) % n
    const peer = p.sub !== undefined ? chooseNext(p.sub) : p.peers.find(x => !p.used.has(x))
    if (peer !== undefined) {
      p.used.add(peer)
      return peer
    }
  }
  pm.exhausted = true
  return undefined
}
