// Counted copies and trial copies (DESIGN §10 "Trust in storage"). Only peers whose storage is trusted (trusted
// peers, and peers that passed audits) count toward replication_factor_min: they are chosen first, balanced as
// usual. Peers on probation get extra copies on top, which do not count, so that they can be audited; each takes
// new ones only while it holds fewer than a bound, least loaded first, so that made-up identities claiming
// huge free space cannot take every trial copy.
import { allocateBalanced, type BalancedAllocateRequest } from './balanced.js'

export interface ProbationAllocateRequest extends BalancedAllocateRequest {
  /** Whether a copy on this peer counts toward min (trusted or proven). */
  counts: (peer: string) => boolean
  /** Allocations a peer that does not count holds now. */
  trialLoad: (peer: string) => number
  /** It takes a new trial copy only below this load (user allocations excepted). */
  trialLimit: number
}

export interface ProbationAllocation {
  /** Counted peers first, then trial copies. */
  allocations: string[]
  /** The allocations that count toward min. */
  counted: string[]
}

/**
 * Throws NotEnoughPeersError only when fewer than `min` peers qualify at all, counted or not; with fewer counted
 * peers than that, the pin gets every counted peer there is plus trial copies, and `counted` says how short it is.
 */
export function allocateWithProbation (req: ProbationAllocateRequest): ProbationAllocation {
  if (req.min === -1 || req.max === -1) return { allocations: [], counted: [] }
  const exclude = req.exclude ?? new Set<string>()
  const isTrial = (p: string): boolean => !exclude.has(p) && !req.counts(p)
  const trialPeers = new Set(Object.values(req.metrics).flatMap(ms => ms.map(m => m.peer)).filter(isTrial))
  if (trialPeers.size === 0) {
    const allocations = allocateBalanced(req)
    return { allocations, counted: allocations }
  }
  // enough peers at all? (the usual error, naming every candidate, when not)
  allocateBalanced(req)

  const only = (keep: (p: string) => boolean): BalancedAllocateRequest['metrics'] =>
    Object.fromEntries(Object.entries(req.metrics).map(([name, ms]) => [name, ms.filter(m => keep(m.peer))]))
  const counted = allocateBalanced({
    ...req, current: req.current.filter(req.counts), priority: req.priority.filter(req.counts), metrics: only(req.counts), bestEffort: true
  })

  const currentTrial = [...new Set(req.current)].filter(isTrial)
  const priorityTrial = [...new Set(req.priority)].filter(p => isTrial(p) && !currentTrial.includes(p))
  // every trial peer that qualifies, current ones first, then user allocations, then balanced
  const ranked = allocateBalanced({
    ...req, min: trialPeers.size, max: trialPeers.size, current: currentTrial, priority: priorityTrial, metrics: only(isTrial), bestEffort: true
  })
  const kept = ranked.filter(p => currentTrial.includes(p))
  const asked = ranked.filter(p => priorityTrial.includes(p))
  const fresh = ranked
    .filter(p => !currentTrial.includes(p) && !priorityTrial.includes(p) && req.trialLoad(p) < req.trialLimit)
    // stable: equal loads keep the balanced order
    .sort((a, b) => req.trialLoad(a) - req.trialLoad(b))
  // the places counted peers left up to max, and always one, so that a full set of counted peers still lets a
  // newcomer be tried
  const places = Math.max(1, req.max - counted.length)
  const trial = [...kept, ...asked, ...fresh].slice(0, places)
  return { allocations: [...counted, ...trial], counted }
}
