// cairn's reprovider routes (not in IPFS Cluster):
//   GET  /reprovide/status  ReprovideStatus as JSON
//   POST /reprovide/now     starts a cycle (or joins the running one); NDJSON of ReprovideStatus snapshots, one
//                           at once, then about every 250 ms while the cycle runs, the last once it has ended
// Both answer 404 when the peer runs no reprovider.
import { NotFoundError } from '../../errors.js'
import { sendJson, sendNdjson } from '../common.js'
import type { ReprovideAPI } from '../../components.js'
import type { ReprovideStatus } from '../../types/wire.js'
import type { Logger } from '@libp2p/logger'
import type { Express, Response } from 'express'

const PROGRESS_EVERY_MS = 250

export interface ReprovideRoutesOptions {
  signalOf: (res: Response) => AbortSignal
  log?: Logger
}

export function registerReprovideRoutes (app: Express, reprovider: ReprovideAPI | undefined, options: ReprovideRoutesOptions): void {
  const need = (): ReprovideAPI => {
    if (reprovider == null) throw new NotFoundError('this peer runs no DHT reprovider')
    return reprovider
  }
  app.get('/reprovide/status', (_req, res) => { sendJson(res, 200, need().status()) })
  app.post('/reprovide/now', async (_req, res) => {
    const r = need()
    const signal = options.signalOf(res)
    await sendNdjson(res, progressLines(r, signal), { signal, log: options.log })
  })
}

/** Status snapshots while a cycle runs: the first at once, then throttled, then the final one. */
async function * progressLines (reprovider: ReprovideAPI, signal: AbortSignal): AsyncGenerator<ReprovideStatus> {
  let latest: ReprovideStatus | undefined
  let lastSent = 0
  let wake: (() => void) | undefined
  let outcome: { status: ReprovideStatus } | { error: unknown } | undefined
  reprovider.reprovideNow({
    signal,
    onProgress: () => {
      latest = reprovider.status()
      wake?.()
    }
  }).then(status => { outcome = { status } }, error => { outcome = { error } }).finally(() => { wake?.() })
  yield reprovider.status()
  lastSent = Date.now()
  // eslint-disable-next-line no-unmodified-loop-condition -- set by the cycle's promise above
  while (outcome == null) {
    const waitMs = latest != null ? Math.max(0, lastSent + PROGRESS_EVERY_MS - Date.now()) : undefined
    await new Promise<void>(resolve => {
      wake = resolve
      if (waitMs != null) setTimeout(resolve, waitMs)
    })
    wake = undefined
    if (outcome == null && latest != null && Date.now() - lastSent >= PROGRESS_EVERY_MS) {
      const line = latest
      latest = undefined
      lastSent = Date.now()
      yield line
    }
  }
  if ('error' in outcome) throw outcome.error
  yield outcome.status
}
