// cairn's mirror routes (not in IPFS Cluster):
//   GET /mirrors                every mirror in the pinset (name order) with its versions (newest first) and the
//                               URL of this peer's gateway serving its newest version; [] when there is none
//   GET /mirrors/{name}/status  MirrorStatus of the newest version of a mirror (src/mirror/status.ts); 404 when
//                               no version of that mirror is pinned
import { NotFoundError } from '../../errors.js'
import { mirrorVersions, type MirrorVersion } from '../../mirror/meta.js'
import { mirrorStatus } from '../../mirror/status.js'
import { parseCid } from '../../utils/cid.js'
import { sendJson } from '../common.js'
import type { ClusterAPI } from '../../components.js'
import type { Express, Request, RequestHandler, Response } from 'express'

export interface MirrorRoutesOptions {
  signalOf: (res: Response) => AbortSignal
  /** The cap on requests that walk the whole pinset. */
  heavy: RequestHandler
  /** The gateway's bound address (undefined: no gateway running). */
  gateway?: () => { host: string, port: number } | undefined
}

/** One version in GET /mirrors. */
export interface MirrorVersionEntry {
  version: number
  cid: string
  name: string
  /** When the version was pinned (the pin's timestamp). */
  created: string
  allocations: string[]
  replication_factor_min: number
  replication_factor_max: number
  spread: boolean
  /** Bytes of a spread version (files and skeleton); 0 when not known (a version pinned whole). */
  bytes: number
}

/** One line of GET /mirrors. */
export interface MirrorEntry {
  mirror: string
  /** http://host:port/mirror/<name>/ on this peer's gateway; '' when it runs none. */
  gateway_url: string
  versions: MirrorVersionEntry[]
}

function versionEntry (v: MirrorVersion): MirrorVersionEntry {
  const map = v.pin.spread === true ? v.pin.spread_map : undefined
  return {
    version: v.version, cid: v.pin.cid, name: v.pin.name, created: v.pin.timestamp, allocations: v.pin.allocations,
    replication_factor_min: v.pin.replication_factor_min, replication_factor_max: v.pin.replication_factor_max,
    spread: map != null,
    bytes: map == null ? 0 : map.partition_bytes.reduce((a, b) => a + b, map.skeleton_bytes)
  }
}

/** The gateway's base URL as the client can reach it: a wildcard listen address is reached on the host it asked. */
function gatewayBase (req: Request, address: { host: string, port: number } | undefined): string {
  if (address == null) return ''
  const wildcard = address.host === '0.0.0.0' || address.host === '::'
  const host = wildcard ? req.hostname : address.host
  return `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${address.port}`
}

export function registerMirrorRoutes (app: Express, cluster: Pick<ClusterAPI, 'allocations' | 'status'>, options: MirrorRoutesOptions): void {
  app.get('/mirrors', options.heavy, (req, res) => {
    let address: { host: string, port: number } | undefined
    try {
      address = options.gateway?.()
    } catch {
      // the gateway is stopping: no URL to give
    }
    const base = gatewayBase(req, address)
    const mirrors = new Map<string, MirrorEntry>()
    for (const v of mirrorVersions(cluster.allocations(new Set(['pin'])))) {
      let m = mirrors.get(v.mirror)
      if (m == null) mirrors.set(v.mirror, m = { mirror: v.mirror, gateway_url: base === '' ? '' : `${base}/mirror/${v.mirror}/`, versions: [] })
      m.versions.push(versionEntry(v))
    }
    sendJson(res, 200, [...mirrors.values()])
  })
  app.get('/mirrors/:name/status', options.heavy, async (req, res) => {
    const name = String(req.params.name)
    const newest = mirrorVersions(cluster.allocations(new Set(['pin'])), name)[0]
    if (newest == null) throw new NotFoundError(`no mirror named "${name}" is pinned in this cluster`)
    const status = await cluster.status(parseCid(newest.pin.cid), { signal: options.signalOf(res) })
    sendJson(res, 200, mirrorStatus(newest, status))
  })
}
