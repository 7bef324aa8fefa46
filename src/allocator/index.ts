// Chooses the peers a pin is allocated to (the Allocator contract of src/components.ts): IPFS Cluster's
// balanced allocator over live metrics, and, with an auditor, only trusted and proven peers count toward min.
import { allocateBalanced, DEFAULT_ALLOCATE_BY } from './balanced.js'
import { allocateWithProbation } from './probation.js'
import { allocateSpread } from './spread.js'
import type { AllocateRequest, Allocator, Monitor, TrustView } from '../components.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export { allocateBalanced, DEFAULT_ALLOCATE_BY, DEFAULT_TAG_VALUE } from './balanced.js'
export type { BalancedAllocateRequest } from './balanced.js'
export { allocateWithProbation } from './probation.js'
export { allocateSpread } from './spread.js'
export type { SpreadAllocateRequest, SpreadAllocation } from './spread.js'
export type { ProbationAllocateRequest, ProbationAllocation } from './probation.js'
export type { AllocateRequest, Allocator } from '../components.js'

export interface AllocatorInit {
  /** Metric names to partition by, in order (default DEFAULT_ALLOCATE_BY: tag:group, then freespace). */
  allocateBy?: readonly string[]
}

export interface AllocatorComponents {
  monitor: Pick<Monitor, 'latest'>
  /** Whose copies count toward replication_factor_min (src/audit/); without it every peer's do. */
  trust?: Pick<TrustView, 'trustOf' | 'trialLoad' | 'trialLimit'>
  logger: ComponentLogger
}

/** Whether a peer's copies count toward replication_factor_min (every peer's without an auditor). */
export function copiesCount (trust: Pick<TrustView, 'trustOf'> | undefined, peer: string): boolean {
  const t = trust?.trustOf(peer)
  return t == null || t === 'trusted' || t === 'proven' || t === 'unknown'
}

export function createAllocator (init: AllocatorInit, components: AllocatorComponents): Allocator {
  const { monitor, trust } = components
  const log: Logger = components.logger.forComponent('cairn:allocator')
  const allocateBy = init.allocateBy ?? DEFAULT_ALLOCATE_BY
  return {
    allocate ({ cid, min, max, current, priority, candidates, debit }: AllocateRequest): string[] {
      if (max === -1) return []
      // Balanced by live metrics: spread over tag groups, most free space first, full peers never chosen.
      const metrics = Object.fromEntries(allocateBy.map(name => [name, monitor.latest(name).filter(m => candidates.includes(m.peer)).map(m => {
        // space promised to earlier shards of the same add is not free any more, though no metric says so yet
        const owed = name === 'freespace' ? debit?.get(m.peer) ?? 0 : 0
        return owed === 0 ? m : { ...m, weight: Math.max(0, m.weight - owed), value: String(Math.max(0, m.weight - owed)) }
      })]))
      if (trust == null) return allocateBalanced({ cid, min, max, current, priority, metrics, allocateBy })
      // only trusted and proven peers count toward min; peers on probation get extra copies; failed ones none
      const chosen = allocateWithProbation({
        cid, min, max, current, priority, metrics, allocateBy,
        exclude: new Set(candidates.filter(p => trust.trustOf(p) === 'failed')),
        counts: p => copiesCount(trust, p),
        trialLoad: p => trust.trialLoad(p),
        trialLimit: trust.trialLimit
      })
      if (chosen.counted.length < min) {
        log('%s: %d trusted or proven peers among its allocations, below replication_factor_min %d: under-replicated until peers on probation prove themselves', cid, chosen.counted.length, min)
      }
      return chosen.allocations
    },

    allocateSpread ({ cid, min, max, partitionBytes, skeletonBytes, candidates, current, even, evenFrom, credit }) {
      // a peer that failed an audit takes no share; others by the room their freespace metric says they have
      const free = new Map<string, number>()
      for (const m of monitor.latest('freespace')) {
        if (!candidates.includes(m.peer) || trust?.trustOf(m.peer) === 'failed') continue
        free.set(m.peer, Math.max(0, m.weight))
      }
      // a live peer holding a share whose freespace metric lapsed meanwhile keeps what it holds and takes nothing
      // new (its partitions would otherwise move for a late metric)
      for (const [peer, parts] of Object.entries(current ?? {})) {
        if (!free.has(peer) && candidates.includes(peer) && trust?.trustOf(peer) !== 'failed') {
          free.set(peer, skeletonBytes + parts.reduce((a, p) => a + (partitionBytes[p] ?? 0), 0))
        }
      }
      // a peer given credit measured its room just now (src/cluster/cluster.ts uploadRoom), counting a lapsed
      // freespace metric as 0: it is a candidate even when that metric is missing (seen under load, 2 s TTL)
      for (const peer of credit?.keys() ?? []) {
        if (!free.has(peer) && candidates.includes(peer) && trust?.trustOf(peer) !== 'failed') free.set(peer, 0)
      }
      const offer = new Map(monitor.latest('offer').map(m => [m.peer, Math.max(0, m.weight)]))
      const { shares } = allocateSpread({ cid, min, max, partitionBytes, skeletonBytes, free, current, even, evenFrom, credit, offer })
      log('%s spread over %d peers', cid, Object.keys(shares).length)
      return shares
    }
  }
}
