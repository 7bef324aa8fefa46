// `cairn mirror status <name>` and `GET /mirrors/{name}/status`: where the newest version of a mirror is. For a
// spread version: the bytes each peer holds (its partitions plus the skeleton), how many copies each partition
// has now (peers whose share is pinned), which partitions are under-replicated and which peers are still
// fetching. For a version pinned whole: the same with the version as one part.
import type { GlobalPinInfo, TrackerStatus } from '../types/wire.js'
import type { MirrorVersion } from './meta.js'

export interface MirrorPeerStatus {
  peer: string
  peername: string
  status: TrackerStatus
  /** Partitions in its share (0 for a version pinned whole). */
  partitions: number
  /** Bytes its share holds (its partitions' files and the skeleton), or the whole version's. */
  bytes: number
  error: string
}

export interface MirrorStatus {
  mirror: string
  version: number
  cid: string
  spread: boolean
  replication_factor_min: number
  replication_factor_max: number
  /** Bytes of the version: its files and skeleton (0 when not known: a version pinned whole). */
  bytes: number
  /** Parts the version is cut into: its partitions, or 1 for a version pinned whole. */
  parts: number
  /** How many parts have k copies now (pinned), by k. */
  copies: Record<string, number>
  /** Parts with fewer copies pinned than replication_factor_min. */
  under_replicated: number[]
  /** Peers still fetching their share (queued or pinning). */
  moving: string[]
  peers: MirrorPeerStatus[]
}

const MOVING: ReadonlySet<TrackerStatus> = new Set(['pin_queued', 'pinning'])

export function mirrorStatus (v: MirrorVersion, status: GlobalPinInfo): MirrorStatus {
  const pin = v.pin
  const map = pin.spread === true ? pin.spread_map : undefined
  const parts = map?.partition_bytes.length ?? 1
  const files = map?.partition_bytes.reduce((a, b) => a + b, 0) ?? 0
  const copies = new Array<number>(parts).fill(0)
  const peers: MirrorPeerStatus[] = []
  const allocated = pin.allocations.length > 0 ? pin.allocations : Object.keys(status.peer_map)
  for (const peer of allocated) {
    const info = status.peer_map[peer]
    const share = map?.shares[peer] ?? (map == null ? [0] : [])
    const state: TrackerStatus = info?.status ?? 'undefined'
    // a copy is a partition held in full now: what the peer says it holds (its previous share while it fetches a
    // new one, or gives some up), else its share once pinned
    const held = map != null ? info?.share_held : undefined
    if (held != null) {
      for (const p of held) if (p >= 0 && p < parts) copies[p]++
    } else if (state === 'pinned') for (const p of share) copies[p]++
    peers.push({
      peer,
      peername: info?.peername ?? '',
      status: state,
      partitions: map == null ? 0 : share.length,
      bytes: map == null ? 0 : share.reduce((a, p) => a + (map.partition_bytes[p] ?? 0), map.skeleton_bytes),
      error: info?.error ?? ''
    })
  }
  const histogram: Record<string, number> = {}
  for (const n of copies) histogram[String(n)] = (histogram[String(n)] ?? 0) + 1
  const min = pin.replication_factor_min < 0 ? allocated.length : pin.replication_factor_min
  return {
    mirror: v.mirror,
    version: v.version,
    cid: pin.cid,
    spread: map != null,
    replication_factor_min: pin.replication_factor_min,
    replication_factor_max: pin.replication_factor_max,
    bytes: map == null ? 0 : files + map.skeleton_bytes,
    parts,
    copies: histogram,
    under_replicated: copies.flatMap((n, p) => n < min ? [p] : []),
    moving: peers.filter(p => MOVING.has(p.status)).map(p => p.peer),
    peers: peers.sort((a, b) => a.peername.localeCompare(b.peername) || a.peer.localeCompare(b.peer))
  }
}
