// cairn's repo routes (not in IPFS Cluster), on the peer the API belongs to:
//   GET  /ipfs/repo/stat    RepoStat: held bytes by kind (pinned, cache, garbage), on disk, GC and cache counters
//   POST /ipfs/repo/verify  RepoVerify: every held block re-hashed, every pin's block looked for; corrupt blocks
//                           deleted, a pin's corrupt or missing blocks fetched again from other peers
// Both answer 404 when the API has no IPFS node behind it.
import { NotFoundError } from '../../errors.js'
import { sendJson } from '../common.js'
import type { RepoAPI } from '../../components.js'
import type { Express, Response } from 'express'

export function registerRepoRoutes (app: Express, repo: RepoAPI | undefined, options: { signalOf: (res: Response) => AbortSignal }): void {
  const need = (): RepoAPI => {
    if (repo == null) throw new NotFoundError('this API has no IPFS repo behind it')
    return repo
  }
  app.get('/ipfs/repo/stat', async (_req, res) => {
    sendJson(res, 200, await need().stat({ signal: options.signalOf(res) }))
  })
  app.post('/ipfs/repo/verify', async (_req, res) => {
    sendJson(res, 200, await need().verify({ signal: options.signalOf(res) }))
  })
}
