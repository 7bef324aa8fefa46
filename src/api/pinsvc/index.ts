// The IPFS Pinning Services API v1.0.0 (specs/ipfs-pinning-service.yaml) over the cluster: its route
// table on the base shared with the REST API (auth, listener, error mapping, CID parsing).
import { join } from 'node:path'
import express from 'express'
import { authenticate, tokenHandler } from '../auth.js'
import { errorHandler, heavyRequests, jsonContentType, notFound, queryOf, requestSignals, sendJson, strictSlash } from '../common.js'
import { pinsvcErrorBody } from '../errors.js'
import { parseListen } from '../rest/index.js'
import { parseListQuery, parsePinBody } from './query.js'
import { RequestIndex } from './request-index.js'
import { PinService } from './service.js'
import type { ClusterAPI, Pinset } from '../../components.js'
import type { Credentials } from '../auth.js'
import type { HeavyRequests } from '../common.js'
import { createAppServer, type AppServer } from '../server.js'
import type { ComponentLogger, Logger } from '@libp2p/logger'
import type { Express } from 'express'

export type { PinResults, PinStatus } from './service.js'
export { peerAddresses } from './addresses.js'

export interface PinningApiInit {
  /** host:port, default 127.0.0.1:9097 (port 0 = any free port). */
  listen: string
  /** The peer's data dir: this peer's request index lives in <dataDir>/pinsvc. */
  dataDir: string
  /** user -> password (the REST API's basic_auth_credentials); none = open. Basic or Bearer JWT from POST /token. */
  basicAuth?: Credentials | null
}

export interface PinningApiComponents {
  logger?: ComponentLogger
  /** The peer's cap on heavy requests, shared with the REST API (default: a cap of its own). */
  heavy?: HeavyRequests
  cluster: ClusterAPI
  pinset: Pick<Pinset, 'get' | 'list' | 'onChange'>
  /** This peer's id. */
  peerId: string
  /** A cluster peer's IPFS multiaddrs (with /p2p/<id>), for PinStatus.delegates; [] when unknown. */
  addressesOf: (peer: string) => Promise<string[]>
}

/** Started: the request index open and the app listening. */
export type PinningApi = AppServer

export interface PinningAppInit {
  basicAuth?: Credentials | null
  /** Aborted when the API stops: ends in-flight requests so that the server can close. */
  signal?: AbortSignal
}

export interface PinningAppComponents {
  service: PinService
  log?: Logger
  /** The cap on requests that walk the whole pinset: GET /pins (default: DEFAULT_MAX_HEAVY_REQUESTS of its own). */
  heavy?: HeavyRequests
}

/** The express app alone: the route table of the spec. */
export function createPinningApp (init: PinningAppInit, components: PinningAppComponents): Express {
  const { basicAuth, signal: stop } = init
  const { service, log } = components
  const app = express()
  app.disable('x-powered-by')
  app.set('case sensitive routing', true)
  app.use(jsonContentType, strictSlash, authenticate(basicAuth))
  const signalOf = requestSignals(stop)
  // any content type: clients do not all send application/json; a bad body is a 400 from the error middleware
  const body = express.json({ type: () => true, limit: '1mb', strict: false })

  app.post('/token', tokenHandler(basicAuth))
  app.get('/pins', (components.heavy ?? heavyRequests()).limit, async (req, res) => {
    sendJson(res, 200, await service.list(parseListQuery(queryOf(req)), { signal: signalOf(res) }))
  })
  app.post('/pins', body, async (req, res) => {
    sendJson(res, 202, await service.create(parsePinBody(req.body), { signal: signalOf(res) }))
  })
  app.get('/pins/:requestid', async (req, res) => {
    sendJson(res, 200, await service.get(String(req.params.requestid), { signal: signalOf(res) }))
  })
  app.post('/pins/:requestid', body, async (req, res) => {
    const requestid = String(req.params.requestid)
    sendJson(res, 202, await service.replace(requestid, parsePinBody(req.body), { signal: signalOf(res) }))
  })
  app.delete('/pins/:requestid', async (req, res) => {
    await service.remove(String(req.params.requestid), { signal: signalOf(res) })
    res.removeHeader('Content-Type')
    res.status(202).end()
  })

  app.use(notFound(pinsvcErrorBody))
  app.use(errorHandler(pinsvcErrorBody, log))
  return app
}

/** The Pinning Service API as a Startable: the request index, then the listener on `init.listen`. */
export function createPinningApi (init: PinningApiInit, components: PinningApiComponents): PinningApi {
  const { host, port } = parseListen(init.listen)
  const log = components.logger?.forComponent('cairn:api:pinsvc')
  return createAppServer({ host, port, name: 'the pinning service API' }, {
    log,
    open: async signal => {
      const index = new RequestIndex(join(init.dataDir, 'pinsvc'), components.pinset, log)
      await index.start()
      const { cluster, pinset, peerId, addressesOf } = components
      const service = new PinService({ cluster, pinset, peerId, addressesOf, index, log })
      const unwatch = service.watch()
      return {
        app: createPinningApp({ basicAuth: init.basicAuth, signal }, { service, log, heavy: components.heavy }),
        close: async () => {
          unwatch()
          await index.stop()
        }
      }
    }
  })
}
