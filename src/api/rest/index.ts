// The IPFS-Cluster-compatible REST API: IPFS Cluster's route table (api/rest/restapi.go) over express 5.
// Paths, JSON field names, status codes and streaming rules are IPFS Cluster's; see the shared reference §1.
import { peerIdFromString } from '@libp2p/peer-id'
import express from 'express'
import { ConfigError, InvalidParameterError } from '../../errors.js'
import { VERSION } from '../../version.js'
import { authenticate, tokenHandler } from '../auth.js'
import { registerDashboard } from '../dashboard/index.js'
import {
  errorHandler, heavyRequests, jsonContentType, notFound, queryOf, requestSignals, sendJson, sendNdjson,
  strictSlash
} from '../common.js'
import { restErrorBody } from '../errors.js'
import { parseStatusFilter, parseTypeFilter } from './filters.js'
import { registerMirrorRoutes } from './mirror.js'
import { registerReprovideRoutes } from './reprovide.js'
import { registerRepoRoutes } from './repo.js'
import { registerBitswapRoutes } from './bitswap.js'
import { parseMultipart, singleFile } from './multipart.js'
import { parseAddQuery, parseBool, parsePinOptions } from './pin-options.js'
import { parseCid } from '../../utils/cid.js'
import type { ClusterAPI, RepoAPI, ReprovideAPI } from '../../components.js'
import type { BitswapTraffic } from '../../ipfs/index.js'
import type { Credentials } from '../auth.js'
import type { HeavyRequests } from '../common.js'
import { createAppServer, type AppServer } from '../server.js'
import type { ComponentLogger, Logger } from '@libp2p/logger'
import type { Express, Request, RequestHandler, Response } from 'express'
import type { CID } from 'multiformats/cid'

export interface RestApiInit {
  /** host:port to listen on, e.g. 127.0.0.1:9094 or [::1]:0. */
  listen: string
  /** user -> password; when set, every route but GET /health and OPTIONS needs Basic or Bearer auth. */
  basicAuth?: Credentials | null
}

export interface RestApiComponents {
  cluster: ClusterAPI
  logger?: ComponentLogger
  /** Called when each request ends (the /metrics latency histogram). */
  observe?: RestAppComponents['observe']
  /** The DHT reprovider behind /reprovide/*; those routes answer 404 without it. */
  reprovider?: ReprovideAPI
  /** The peer's IPFS repo behind /ipfs/repo/*; those routes answer 404 without it. */
  repo?: RepoAPI
  /** The peer's cap on heavy requests, shared with the pinning service API (default: a cap of its own). */
  heavy?: HeavyRequests
  /** The gateway's bound address, for the mirrors' URLs in GET /mirrors (undefined: no gateway running). */
  gateway?: () => { host: string, port: number } | undefined
  /** The IPFS node's bitswap counters behind GET /ipfs/bitswap/stat; that route answers 404 without it. */
  bitswap?: () => BitswapTraffic | undefined
}

export type RestApi = AppServer

export interface RestAppInit {
  basicAuth?: Credentials | null
  /** Aborted when the API stops: ends in-flight streams so that the server can close. */
  signal?: AbortSignal
}

export interface RestAppComponents {
  cluster: ClusterAPI
  log?: Logger
  /** Called when each request ends, with the matched route pattern ('unmatched' when none matched). */
  observe?: (method: string, route: string, status: number, seconds: number) => void
  /** The DHT reprovider behind /reprovide/*; those routes answer 404 without it. */
  reprovider?: ReprovideAPI
  /** The peer's IPFS repo behind /ipfs/repo/*; those routes answer 404 without it. */
  repo?: RepoAPI
  /** The cap on requests that walk the whole pinset (default: DEFAULT_MAX_HEAVY_REQUESTS of its own). */
  heavy?: HeavyRequests
  /** The gateway's bound address, for the mirrors' URLs in GET /mirrors. */
  gateway?: () => { host: string, port: number } | undefined
  /** The IPFS node's bitswap counters behind GET /ipfs/bitswap/stat. */
  bitswap?: () => BitswapTraffic | undefined
}

/** Splits "host:port" or "[v6]:port"; ConfigError names the bad value. */
export function parseListen (value: string): { host: string, port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value)
  const port = m === null ? NaN : Number(m[3])
  if (m === null || port > 65535) throw new ConfigError(`REST API listen address "${value}" is not host:port`)
  return { host: m[1] ?? m[2], port }
}

/** The express app alone (tests and embedding); createRestApi adds the listener. */
export function createRestApp (init: RestAppInit, components: RestAppComponents): Express {
  const { basicAuth, signal: stop } = init
  const { cluster, log } = components
  const app = express()
  app.disable('x-powered-by')
  app.set('case sensitive routing', true)
  if (components.observe != null) app.use(observeRequests(components.observe))
  // the page and its assets carry no cluster data: they load without credentials, then ask for them (../dashboard/)
  registerDashboard(app, {}, { log })
  app.use(jsonContentType, strictSlash, authenticate(basicAuth))

  const signalOf = requestSignals(stop)
  // lists of the whole pinset: capped (429 past it); /health, /id and pin writes never are
  const heavy = (components.heavy ?? heavyRequests()).limit
  // parsed here once; the cluster echoes it as IPFS Cluster does (Go's cid.String()): CIDv0 and base32 CIDv1 as
  // given, CIDv1 in other bases in base32
  const cidOf = (req: Request): CID => parseCid(String(req.params.cid))
  const localOf = (req: Request): boolean => parseBool(queryOf(req), 'local') ?? false

  app.get('/health', (_req, res) => { res.status(204).end() })
  app.post('/token', tokenHandler(basicAuth))
  app.get('/id', async (_req, res) => { sendJson(res, 200, await cluster.id({ signal: signalOf(res) })) })
  app.get('/version', (_req, res) => { sendJson(res, 200, { version: VERSION }) })
  app.get('/peers', async (_req, res) => {
    const signal = signalOf(res)
    await sendNdjson(res, cluster.peers({ signal }), { signal, log })
  })
  app.get('/monitor/metrics', (_req, res) => { sendJson(res, 200, cluster.metricNames()) })
  app.get('/monitor/metrics/:name', (req, res) => { sendJson(res, 200, cluster.metrics(String(req.params.name))) })
  app.get('/health/alerts', (_req, res) => { sendJson(res, 200, cluster.alerts()) })
  app.get('/health/graph', async (_req, res) => { sendJson(res, 200, await cluster.graph({ signal: signalOf(res) })) })
  // IPFS Cluster answers 200 with no body; cairn vacates (re-allocates the peer's pins) and says how many moved
  app.delete('/peers/:peer', async (req, res) => {
    const peer = String(req.params.peer)
    try {
      peerIdFromString(peer)
    } catch {
      throw new InvalidParameterError(`invalid peer ID "${peer}"`)
    }
    sendJson(res, 200, { peer, reallocated: await cluster.vacate(peer, { signal: signalOf(res) }) })
  })

  app.get('/allocations', heavy, async (req, res) => {
    const types = parseTypeFilter(queryOf(req).get('filter'))
    await sendNdjson(res, cluster.allocations(types), { signal: signalOf(res), log })
  })
  app.get('/allocations/:cid', (req, res) => { sendJson(res, 200, cluster.allocation(cidOf(req))) })

  app.get('/pins', heavy, async (req, res) => {
    const q = queryOf(req)
    const local = localOf(req)
    const cidsParam = q.get('cids') ?? ''
    // as IPFS Cluster: an explicit CID list ignores the status filter
    const cids = cidsParam === '' ? undefined : cidsParam.split(',').filter(c => c !== '').map(c => parseCid(c))
    const filter = cids === undefined ? parseStatusFilter(q.get('filter')) : undefined
    const signal = signalOf(res)
    await sendNdjson(res, cluster.statusAll({ signal, local, filter, cids }), { signal, log })
  })
  // registered before /pins/:cid so that "recover" is never read as a CID
  app.post('/pins/recover', heavy, async (req, res) => {
    const signal = signalOf(res)
    await sendNdjson(res, cluster.recoverAll({ signal, local: localOf(req) }), { signal, log })
  })
  app.get('/pins/:cid', async (req, res) => {
    sendJson(res, 200, await cluster.status(cidOf(req), { signal: signalOf(res), local: localOf(req) }))
  })
  app.post('/pins/:cid/recover', async (req, res) => {
    sendJson(res, 200, await cluster.recover(cidOf(req), { signal: signalOf(res), local: localOf(req) }))
  })
  app.post('/ipfs/gc', async (req, res) => {
    sendJson(res, 200, await cluster.repoGC({ signal: signalOf(res), local: localOf(req) }))
  })

  const pin = async (req: Request, res: Response): Promise<void> => {
    const cid = cidOf(req)
    sendJson(res, 200, await cluster.pin(cid, parsePinOptions(queryOf(req)), { signal: signalOf(res) }))
  }
  const unpin = async (req: Request, res: Response): Promise<void> => {
    sendJson(res, 200, await cluster.unpin(cidOf(req), { signal: signalOf(res) }))
  }
  app.post('/pins/:cid', pin)
  app.delete('/pins/:cid', unpin)
  for (const ns of ['ipfs', 'ipld']) {
    app.post(`/pins/${ns}/:cid`, pin)
    app.delete(`/pins/${ns}/:cid`, unpin)
    app.all(`/pins/${ns}/:cid/*rest`, (req) => {
      const path = `/${ns}/${String(req.params.cid)}/${(req.params.rest as unknown as string[]).join('/')}`
      throw new InvalidParameterError(`paths are not supported, pin the CID: "${path}"`)
    })
  }
  app.all('/pins/ipns/*name', () => { throw new InvalidParameterError('IPNS paths are not supported, pin the CID') })

  app.post('/add', async (req, res) => {
    const { params, streamChannels } = parseAddQuery(queryOf(req))
    const signal = signalOf(res)
    const parsed = parseMultipart(req, { signal })
    const entries = params.format === 'car' ? singleFile(parsed) : parsed
    // IPFS Cluster's add headers: keep-alive breaks clients when the body is not fully read
    res.setHeader('Cache-Control', 'no-cache')
    res.setHeader('Connection', 'close')
    if (!streamChannels) {
      const out = []
      for await (const line of cluster.add(entries, params, { signal })) out.push(line)
      sendJson(res, 200, out)
      return
    }
    res.setHeader('X-Chunked-Output', '1')
    // unlike IPFS Cluster, the 200 waits for the first output line, so a bad body is still a 400
    await sendNdjson(res, cluster.add(entries, params, { signal }), { signal, log })
  })

  registerReprovideRoutes(app, components.reprovider, { signalOf, log })
  registerMirrorRoutes(app, cluster, { signalOf, heavy, gateway: components.gateway })
  registerRepoRoutes(app, components.repo, { signalOf })
  registerBitswapRoutes(app, components.bitswap)

  app.use(notFound(restErrorBody))
  app.use(errorHandler(restErrorBody, log))
  return app
}

/** Times each request until its response closes; labels it by route pattern so that CIDs do not become series. */
function observeRequests (observe: NonNullable<RestAppComponents['observe']>): RequestHandler {
  return (req, res, next) => {
    const start = process.hrtime.bigint()
    res.once('close', () => {
      const route = (req.route as { path?: unknown } | undefined)?.path
      observe(req.method, typeof route === 'string' ? route : 'unmatched', res.statusCode, Number(process.hrtime.bigint() - start) / 1e9)
    })
    next()
  }
}

/** The REST API as a Startable component: createRestApp behind a listener on `init.listen`. */
export function createRestApi (init: RestApiInit, components: RestApiComponents): RestApi {
  const { host, port } = parseListen(init.listen)
  const log = components.logger?.forComponent('cairn:api:rest')
  return createAppServer({ host, port, name: 'the REST API' }, {
    log,
    open: async signal => ({
      app: createRestApp({ basicAuth: init.basicAuth, signal }, { cluster: components.cluster, log, observe: components.observe, reprovider: components.reprovider, repo: components.repo, heavy: components.heavy, gateway: components.gateway, bitswap: components.bitswap })
    })
  })
}
