// How one peer's pin status is shown in a cluster-wide answer (IPFS Cluster's GlobalPinInfo and PinInfoShort),
// and who is to hold a pin: pure functions shared by the status fan-out, repo GC and sharded adds.
import { createHash } from 'node:crypto'
import { lostPeerError, ZERO_TIME } from '../types/wire.js'
import type { LostPeer } from '../components.js'
import type { PinKey } from '../utils/keys.js'
import type { GlobalPinInfo, Pin, PinInfo, PinInfoShort, TrackerStatus } from '../types/wire.js'

export function toShort (info: PinInfo): PinInfoShort {
  return {
    peername: info.peername,
    ipfs_peer_id: info.ipfs_peer_id,
    status: info.status,
    timestamp: info.timestamp,
    error: info.error,
    attempt_count: info.attempt_count,
    priority_pin: info.priority_pin,
    ...(info.share_held != null ? { share_held: info.share_held } : {})
  }
}

export function globalFrom (cid: string, pin: Pin | undefined, peerMap: Record<string, PinInfoShort>): GlobalPinInfo {
  return {
    cid: pin?.cid ?? cid,
    name: pin?.name ?? '',
    allocations: pin?.allocations ?? [],
    origins: pin?.origins ?? [],
    created: pin?.timestamp ?? ZERO_TIME,
    metadata: pin?.metadata ?? null,
    peer_map: peerMap
  }
}

/** A peer's entry when it was not asked (not allocated: `remote`) or did not answer (`cluster_error`). */
export function remoteShort (peer: string, peername: string, pin: Pin | undefined, status: TrackerStatus = 'remote', error = ''): PinInfoShort {
  return {
    peername,
    ipfs_peer_id: peer,
    status,
    timestamp: pin?.timestamp ?? new Date().toISOString(),
    error,
    attempt_count: 0,
    priority_pin: false
  }
}

/** A lost peer's entry in the status of a pin allocated to it. */
export function lostShort (l: LostPeer): PinInfoShort {
  return { peername: l.peer_name, ipfs_peer_id: l.peer, status: 'cluster_error', timestamp: l.since, error: lostPeerError(l.since), attempt_count: 0, priority_pin: false }
}

export function isAllocated (pin: Pin | undefined, peer: string): boolean {
  return pin == null || pin.allocations.length === 0 || pin.allocations.includes(peer)
}

/** Whether the peer is to hold the pin (a meta-pin is held by no one: its shards are). */
export function holds (pin: Pin, peer: string): boolean {
  return pin.type !== 'meta-pin' && isAllocated(pin, peer)
}

/** The peer XOR-closest to a CID (sha256 of its PinKey and of each peer ID), so every trusted peer agrees on who acts for it. */
export function closestPeer (cid: PinKey, peers: string[]): string | undefined {
  const key = createHash('sha256').update(cid).digest()
  let best: string | undefined
  let bestDist: Buffer | undefined
  for (const p of peers) {
    const h = createHash('sha256').update(p).digest()
    const d = Buffer.alloc(32)
    for (let i = 0; i < 32; i++) d[i] = h[i] ^ key[i]
    if (bestDist == null || Buffer.compare(d, bestDist) < 0) { best = p; bestDist = d }
  }
  return best
}
