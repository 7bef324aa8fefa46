// The Pinning Service status of a CID across its allocations, from the cluster's GlobalPinInfo.
// pinned: the pin's replication_factor_min peers report pinned (-1: every reachable peer);
// failed: errors leave too few peers that could still pin it; pinning: some peer is fetching; else queued.
import type { GlobalPinInfo, Pin, TrackerStatus } from '../../types/wire.js'

export const SVC_STATUSES = ['queued', 'pinning', 'pinned', 'failed'] as const
export type SvcStatus = typeof SVC_STATUSES[number]

export interface SvcStatusInfo {
  status: SvcStatus
  /** Human summary for PinStatus.info.status_details. */
  details: string
  /** Peers that hold the pin now, then those that will (allocations): the delegates, in that order. */
  delegates: string[]
}

const ERROR_STATUSES: ReadonlySet<TrackerStatus> = new Set(['pin_error', 'unpin_error', 'cluster_error'])

export function svcStatusOf (gpi: GlobalPinInfo, pin: Pin | undefined): SvcStatusInfo {
  if (pin === undefined) {
    return { status: 'failed', details: 'the CID is no longer in the cluster pinset', delegates: [] }
  }
  const everywhere = pin.replication_factor_min === -1 || pin.allocations.length === 0
  // peers expected to pin it: its allocations, or for a pin-everywhere every peer that answered
  const targets = everywhere
    ? Object.entries(gpi.peer_map).filter(([, s]) => s.status !== 'remote').map(([p]) => p)
    : pin.allocations
  const statusOf = (peer: string): TrackerStatus | undefined => gpi.peer_map[peer]?.status
  const pinned = targets.filter(p => statusOf(p) === 'pinned')
  const failed = targets.filter(p => ERROR_STATUSES.has(statusOf(p) ?? 'undefined'))
  // a peer that cannot be reached does not count against a pin-everywhere (it pins when it is back)
  const need = everywhere
    ? Math.max(1, targets.filter(p => statusOf(p) !== 'cluster_error').length)
    : Math.max(1, Math.min(pin.replication_factor_min, targets.length))
  const delegates = [...new Set([...pinned, ...targets])]
  const errors = failed.map(p => `${peerLabel(gpi, p)}: ${gpi.peer_map[p]?.error !== '' ? gpi.peer_map[p]?.error : statusOf(p)}`)
  const counts = `pinned on ${pinned.length} of ${need} peer${need === 1 ? '' : 's'} needed`

  if (pinned.length >= need) return { status: 'pinned', details: counts, delegates }
  if (targets.length - failed.length < need) {
    return { status: 'failed', details: `${counts}; ${errors.join('; ')}`, delegates }
  }
  const fetching = targets.some(p => statusOf(p) === 'pinning')
  return {
    status: fetching ? 'pinning' : 'queued',
    details: errors.length > 0 ? `${counts}; ${errors.join('; ')}` : counts,
    delegates
  }
}

function peerLabel (gpi: GlobalPinInfo, peer: string): string {
  const name = gpi.peer_map[peer]?.peername
  return name != null && name !== '' ? name : peer
}

/**
 * Delegate multiaddrs: each peer's addresses ending in /p2p/<peer>, at most 20 (the spec's maxItems),
 * never empty (this peer's own when nothing else is known).
 */
export async function delegateAddresses (peers: string[], addressesOf: (peer: string) => Promise<string[]>, self: string): Promise<string[]> {
  const out = new Set<string>()
  const add = async (peer: string): Promise<void> => {
    for (const a of await addressesOf(peer)) {
      if (out.size >= 20) return
      out.add(a.includes('/p2p/') ? a : `${a}/p2p/${peer}`)
    }
  }
  for (const p of peers) await add(p)
  if (out.size === 0) await add(self)
  if (out.size === 0) out.add(`/p2p/${self}`)
  return [...out]
}
