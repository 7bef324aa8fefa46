// Chooses the peers a pin is allocated to. Issue 2 needs only the ordering below; the balanced allocator
// (metrics, tags, free space) replaces the candidate order without changing this contract.
import { NotEnoughPeersError } from '../errors.js'

export { allocateBalanced, DEFAULT_ALLOCATE_BY, DEFAULT_TAG_VALUE } from './balanced.js'
export type { BalancedAllocateRequest } from './balanced.js'
export { allocateWithProbation } from './probation.js'
export type { ProbationAllocateRequest, ProbationAllocation } from './probation.js'

export interface AllocateRequest {
  cid: string
  min: number
  max: number
  /** Peers the pin is allocated to now (kept first when re-pinning). */
  current: string[]
  /** user_allocations: preferred peers. */
  priority: string[]
  /** Peers able to take it, best first. */
  candidates: string[]
}

/** Returns the allocation list ([] for replication -1, meaning everywhere). */
export function allocate (req: AllocateRequest): string[] {
  if (req.max === -1) return []
  const eligible = new Set(req.candidates)
  const ordered: string[] = []
  for (const p of [...req.current, ...req.priority, ...req.candidates]) {
    if (eligible.has(p) && !ordered.includes(p)) ordered.push(p)
  }
  if (ordered.length < req.min) {
    throw new NotEnoughPeersError(`not enough peers to allocate CID. Needed at least: ${req.min}. Wanted at most: ${req.max}. Available candidates: ${ordered.length}. See logs for more info.`)
  }
  return ordered.slice(0, req.max)
}
