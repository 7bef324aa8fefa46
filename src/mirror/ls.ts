// `cairn mirror ls`: the mirrors in the pinset and their versions, with a summary of each version's status.
import { mirrorVersions } from './meta.js'
import type { Client } from '../client/index.js'
import type { AbortOptions, Pin, TrackerStatus } from '../components.js'

export interface MirrorVersionInfo {
  mirror: string
  version: number
  root: string
  /** When the version was pinned (the pin's timestamp). */
  created: string
  /** Peers per status, e.g. { pinned: 3 } (remote peers left out); empty when the status could not be read. */
  status: Partial<Record<TrackerStatus, number>>
  pin: Pin
}

export interface MirrorInfo {
  mirror: string
  /** Newest first. */
  versions: MirrorVersionInfo[]
}

/** Every mirror (or one), in name order, versions newest first. */
export async function listMirrors (client: Client, options: AbortOptions & { name?: string, status?: boolean } = {}): Promise<MirrorInfo[]> {
  const pins: Pin[] = []
  for await (const pin of client.allocations({ signal: options.signal })) pins.push(pin)
  const versions = mirrorVersions(pins, options.name)
  const status = new Map<string, Partial<Record<TrackerStatus, number>>>()
  if (options.status !== false && versions.length > 0) {
    for await (const g of client.statusAll({ cids: versions.map(v => v.pin.cid), signal: options.signal })) {
      const counts: Partial<Record<TrackerStatus, number>> = {}
      for (const p of Object.values(g.peer_map)) if (p.status !== 'remote') counts[p.status] = (counts[p.status] ?? 0) + 1
      status.set(g.cid, counts)
    }
  }
  const mirrors = new Map<string, MirrorInfo>()
  for (const v of versions) {
    let m = mirrors.get(v.mirror)
    if (m == null) mirrors.set(v.mirror, m = { mirror: v.mirror, versions: [] })
    m.versions.push({ mirror: v.mirror, version: v.version, root: v.pin.cid, created: v.pin.timestamp, status: status.get(v.pin.cid) ?? {}, pin: v.pin })
  }
  return [...mirrors.values()]
}

/** '3 pinned, 1 pinning' */
export function formatStatusCounts (status: Partial<Record<TrackerStatus, number>>): string {
  const parts = Object.entries(status).map(([s, n]) => `${n} ${s}`)
  return parts.length > 0 ? parts.join(', ') : 'unknown'
}
