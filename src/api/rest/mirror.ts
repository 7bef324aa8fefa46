// cairn's mirror route (not in IPFS Cluster):
//   GET /mirrors/{name}/status  MirrorStatus of the newest version of a mirror (src/mirror/status.ts); 404 when
//                               no version of that mirror is pinned
import { NotFoundError } from '../../errors.js'
import { mirrorVersions } from '../../mirror/meta.js'
import { mirrorStatus } from '../../mirror/status.js'
import { parseCid } from '../../utils/cid.js'
import { sendJson } from '../common.js'
import type { ClusterAPI } from '../../components.js'
import type { Express, RequestHandler, Response } from 'express'

export interface MirrorRoutesOptions {
  signalOf: (res: Response) => AbortSignal
  /** The cap on requests that walk the whole pinset. */
  heavy: RequestHandler
}

export function registerMirrorRoutes (app: Express, cluster: Pick<ClusterAPI, 'allocations' | 'status'>, options: MirrorRoutesOptions): void {
  app.get('/mirrors/:name/status', options.heavy, async (req, res) => {
    const name = String(req.params.name)
    const newest = mirrorVersions(cluster.allocations(new Set(['pin'])), name)[0]
    if (newest == null) throw new NotFoundError(`no mirror named "${name}" is pinned in this cluster`)
    const status = await cluster.status(parseCid(newest.pin.cid), { signal: options.signalOf(res) })
    sendJson(res, 200, mirrorStatus(newest, status))
  })
}
