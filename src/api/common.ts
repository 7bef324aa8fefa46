// The base shared by the REST API and the Pinning Service API: JSON responses, the strict-slash
// redirect, error middleware, NDJSON streaming (IPFS Cluster's StreamResponse), the cap on heavy requests and the
// listener.
import { raceSignal } from 'race-signal'
import { createServer } from 'node:http'
import { DEFAULT_MAX_HEAVY_REQUESTS } from '../config/schema.js'
import { ConfigError, TooManyRequestsError } from '../errors.js'
import { turnBudget } from '../utils/turns.js'
import { restErrorBody, toHttpError } from './errors.js'
import type { AbortOptions } from '../components.js'
import type { Logger } from '@libp2p/logger'
import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express'
import type { RequestListener } from 'node:http'
import type { Socket } from 'node:net'

/** The request's query as Go's url.Values sees it, independent of express's query parser setting. */
export function queryOf (req: Request): URLSearchParams {
  const i = req.originalUrl.indexOf('?')
  return new URLSearchParams(i < 0 ? '' : req.originalUrl.slice(i + 1))
}

/** Sends one JSON document the way Go's json.Encoder does (trailing newline), keeping the exact content type. */
export function sendJson (res: Response, status: number, body: unknown): void {
  res.status(status).setHeader('Content-Type', 'application/json')
  res.end(JSON.stringify(body) + '\n')
}

/** Every response is JSON, including errors and empty ones (IPFS Cluster's SetHeaders). */
export const jsonContentType: RequestHandler = (_req, res, next) => {
  res.setHeader('Content-Type', 'application/json')
  next()
}

/** 307 to the same path without its trailing slash: 301 would turn POST into GET in most clients. */
export const strictSlash: RequestHandler = (req, res, next) => {
  const [path, query] = splitUrl(req.originalUrl)
  if (path.length <= 1 || !path.endsWith('/')) { next(); return }
  // collapse leading slashes so "//host/" cannot become a protocol-relative redirect elsewhere
  const target = path.slice(0, -1).replace(/^\/+/, '/')
  res.status(307).setHeader('Location', target + query)
  res.end()
}

function splitUrl (url: string): [string, string] {
  const i = url.indexOf('?')
  return i < 0 ? [url, ''] : [url.slice(0, i), url.slice(i)]
}

/** The 404 for unknown routes. */
export function notFound (body: (status: number, message: string) => unknown): RequestHandler {
  return (_req, res) => { sendJson(res, 404, body(404, 'not found')) }
}

/**
 * The client went away (the request's signal then aborts with "client disconnected"): there is nobody to answer,
 * and nothing went wrong here, so an error handler neither answers nor logs.
 */
export function clientGone (req: Request, res: Response): boolean {
  return res.destroyed || req.socket?.destroyed === true
}

/** The one error middleware: error names -> status via ./errors.ts, body in the API's own shape. */
export function errorHandler (body: (status: number, message: string) => unknown, log?: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    if (clientGone(req, res)) return
    const { status, message, retryAfter } = toHttpError(err, log)
    // a streaming response already sent its status: cutting the connection is the only signal left
    if (res.headersSent) { res.destroy(); return }
    const send = (): void => {
      if (clientGone(req, res) || res.headersSent) return
      try {
        if (retryAfter !== undefined) res.setHeader('Retry-After', String(retryAfter))
        sendJson(res, status, body(status, message))
      } catch (sendErr) {
        log?.error('could not send the error response: %e', sendErr)
        res.destroy()
      }
    }
    // An error while the client is still sending (a full disk half-way through an upload): answering at once and
    // closing would make its next write fail (EPIPE) before it reads the answer, so the rest of the body is read
    // and dropped first, up to a bound, as Go's net/http server does.
    if (req.complete || req.readableEnded) send()
    else void drainBody(req).then(send)
  }
}

/** Bytes and time an error answer waits for the rest of a request body. */
const DRAIN_MAX_BYTES = 64 * 1024 * 1024
const DRAIN_MAX_MS = 10_000

/** Reads and drops the rest of a request body; resolves when it ended, the client left, or past the bounds. */
async function drainBody (req: Request): Promise<void> {
  await new Promise<void>(resolve => {
    let bytes = 0
    const done = (): void => {
      clearTimeout(timer)
      req.off('data', onData)
      req.off('end', done)
      req.off('close', done)
      req.off('error', done)
      resolve()
    }
    const onData = (chunk: Buffer): void => {
      bytes += chunk.byteLength
      if (bytes > DRAIN_MAX_BYTES) done()
    }
    const timer = setTimeout(done, DRAIN_MAX_MS)
    req.on('data', onData)
    req.once('end', done)
    req.once('close', done)
    req.once('error', done)
    req.resume()
  })
}

/**
 * The signals of one API's requests: each aborts when its client goes away before the response is complete,
 * or when `stop` aborts. One listener on `stop` serves every request in flight.
 */
export function requestSignals (stop?: AbortSignal): (res: Response) => AbortSignal {
  const live = new Set<AbortController>()
  stop?.addEventListener('abort', () => {
    for (const controller of live) controller.abort(stop.reason)
    live.clear()
  }, { once: true })
  return res => {
    const controller = new AbortController()
    if (stop?.aborted === true) {
      controller.abort(stop.reason)
      return controller.signal
    }
    live.add(controller)
    res.once('close', () => {
      live.delete(controller)
      if (!res.writableFinished) controller.abort(new Error('client disconnected'))
    })
    return controller.signal
  }
}

export interface StreamOptions {
  signal?: AbortSignal
  log?: Logger
}

/** NDJSON goes out in pieces of about this many bytes: one write (one HTTP chunk) per piece, not per line. */
const NDJSON_PIECE_BYTES = 64 * 1024

/**
 * IPFS Cluster's StreamResponse: NDJSON, one item per line. The first item decides 200; no item and no error is
 * a 204; an error before the first item is an error status with a JSON body; an error after it goes in the
 * X-Stream-Error trailer, which is always sent (empty on success). Node forbids trailers without a body, so a
 * 204 carries no Trailer declaration.
 *
 * Lines are written in pieces of NDJSON_PIECE_BYTES; a slow source's lines go out at the end of the event-loop
 * turn they arrived in, so progress still shows as it happens. The stream waits for the client to drain what it
 * was sent (a slow reader holds one piece, not the whole list) and gives the event loop back after about a
 * millisecond of work (../utils/turns.ts): a list of any length never holds the peer's other work up for
 * longer than that. A synchronous source (the pinset) is read without a promise per item.
 */
export async function sendNdjson<T> (res: Response, items: AsyncIterable<T> | Iterable<T>, options: StreamOptions = {}): Promise<void> {
  const { signal, log } = options
  const sync = !(Symbol.asyncIterator in items)
  const it = sync ? (items as Iterable<T>)[Symbol.iterator]() : (items as AsyncIterable<T>)[Symbol.asyncIterator]()
  // Node throws on a Trailer declaration without a chunked body (HEAD, HTTP/1.0 without TE)
  const trailers = res.useChunkedEncodingByDefault && res.req.method !== 'HEAD'
  const end = (message: string): void => {
    if (trailers) res.addTrailers({ 'X-Stream-Error': trailerValue(message) })
    res.end()
  }
  let started = false
  const start = (): void => {
    if (started) return
    started = true
    res.status(200)
    if (trailers) res.setHeader('Trailer', 'X-Stream-Error')
  }
  let piece = ''
  let flushTimer: NodeJS.Immediate | undefined
  const flush = (): void => {
    clearImmediate(flushTimer)
    flushTimer = undefined
    if (piece === '' || res.destroyed) return
    res.write(Buffer.from(piece))
    piece = ''
  }

  const turn = turnBudget()
  let failure: unknown
  let finished = false
  try {
    while (!res.destroyed) {
      signal?.throwIfAborted()
      const next = sync ? (it as Iterator<T>).next() : await raceSignal((it as AsyncIterator<T>).next(), signal)
      if (next.done === true) { finished = true; break }
      start()
      piece += JSON.stringify(next.value) + '\n'
      if (piece.length >= NDJSON_PIECE_BYTES) flush()
      else if (!sync) flushTimer ??= setImmediate(flush)
      if (res.writableNeedDrain) await drained(res, signal)
      if (turn.spent()) await turn.yield()
    }
  } catch (err) {
    failure = err
  }
  clearImmediate(flushTimer)
  // stop the producer when we leave early; not awaited, since it may be blocked on its own pending step
  if (!finished) Promise.resolve(it.return?.()).catch(() => {})
  if (res.destroyed) return

  if (!started) {
    if (failure === undefined) { res.status(204).end(); return }
    const { status, message } = toHttpError(failure, log)
    res.status(status)
    if (trailers) res.setHeader('Trailer', 'X-Stream-Error')
    res.write(JSON.stringify(restErrorBody(status, message)) + '\n')
    end(message)
    return
  }
  flush()
  end(failure === undefined ? '' : toHttpError(failure, log).message)
}

/** Header values are latin1 on the wire: pass UTF-8 bytes through as Go does, and drop control characters. */
function trailerValue (message: string): string {
  return Buffer.from(message, 'utf8').toString('latin1').replace(/[^\t\x20-\x7e\x80-\xff]/g, ' ')
}

async function drained (res: Response, signal?: AbortSignal): Promise<void> {
  await raceSignal(new Promise<void>(resolve => {
    const done = (): void => { res.off('drain', done); res.off('close', done); resolve() }
    res.on('drain', done)
    res.on('close', done)
  }), signal)
}

/** The cap on heavy requests of one peer, shared by its APIs. */
export interface HeavyRequests {
  /**
   * Route middleware: holds one of the peer's slots for heavy requests until the response closes, or answers 429
   * (TooManyRequestsError) with a Retry-After header when they are all taken.
   */
  readonly limit: RequestHandler
  /** Heavy requests being served now. */
  inFlight(): number
}

/** Retry-After bounds, seconds. */
const RETRY_AFTER_MIN_S = 1
const RETRY_AFTER_MAX_S = 60

/**
 * A counting semaphore over requests that walk the whole pinset (GET /allocations, GET /pins, the pinning
 * service's list): each costs CPU in proportion to the pinset and holds memory while its client reads. Past
 * `max`, a request is refused at once rather than queued, so a client can never pile work up on a peer.
 * Retry-After is when a slot is expected to free: the recent mean duration of a heavy request over `max`.
 */
export function heavyRequests (max = DEFAULT_MAX_HEAVY_REQUESTS, setting = 'rest.max_heavy_requests'): HeavyRequests {
  if (!Number.isSafeInteger(max) || max < 1) throw new ConfigError(`${setting} must be a positive integer, got ${max}`)
  let inFlight = 0
  let meanS = 0
  return {
    limit: (_req, res, next) => {
      if (inFlight >= max) {
        const wait = Math.min(RETRY_AFTER_MAX_S, Math.max(RETRY_AFTER_MIN_S, Math.ceil(meanS / max)))
        next(new TooManyRequestsError(`this peer is already serving ${max} lists of the whole pinset (${setting}): try again in ${wait} s`, wait))
        return
      }
      inFlight++
      const started = performance.now()
      res.once('close', () => {
        inFlight--
        const s = (performance.now() - started) / 1000
        meanS = meanS === 0 ? s : 0.8 * meanS + 0.2 * s
      })
      next()
    },
    inFlight: () => inFlight
  }
}

export interface Listener {
  address: { host: string, port: number }
  /** Stops accepting, closes idle keep-alive sockets, and resolves once in-flight requests have finished. */
  close(): Promise<void>
}

/** Listens on host:port (0 = any free port). `signal` closes the server, as Node's listen option does. */
export async function listen (app: RequestListener, host: string, port: number, options: AbortOptions = {}): Promise<Listener> {
  // no deadline for a whole request: a large add over a slow link may take longer than Node's default 5 min
  const server = createServer({ requestTimeout: 0 }, app)
  // Sockets are tracked by hand (issue 18 item 9 tried Node's closeIdleConnections()): a connection that has sent
  // no request yet is not idle to Node, so close() waited for it (3 s more in the heavy-requests test, where a
  // client leaves a socket open); here every socket without a request in flight is destroyed at close.
  const inFlight = new Map<Socket, number>()
  let closing = false
  server.on('connection', socket => {
    inFlight.set(socket, 0)
    socket.once('close', () => inFlight.delete(socket))
  })
  server.on('request', (req, res) => {
    const socket = req.socket
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1)
    res.once('close', () => {
      const n = (inFlight.get(socket) ?? 1) - 1
      inFlight.set(socket, n)
      // a keep-alive socket going idle while we close would otherwise hold close() until its timeout
      if (closing && n === 0) socket.destroy()
    })
  })

  options.signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const fail = (err: unknown): void => {
      server.off('listening', ok)
      const code = (err as NodeJS.ErrnoException)?.code
      if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
        const why = code === 'EADDRINUSE' ? 'the address is already in use (another program or cairn peer holds it)' : code === 'EACCES' ? 'permission denied' : 'no such local address'
        reject(new ConfigError(`cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}: ${why}; change its listen setting in peer.json (or the CAIRN_<SECTION>_LISTEN variable), or set that service's enabled to false`))
      } else {
        reject(err)
      }
    }
    const aborted = (): void => { fail(options.signal?.reason) }
    const ok = (): void => { server.off('error', fail); server.off('close', aborted); resolve() }
    server.once('error', fail)
    server.once('close', aborted)
    server.once('listening', ok)
    server.listen({ host, port, signal: options.signal })
  })
  const bound = server.address()
  if (bound == null || typeof bound === 'string') throw new Error(`unexpected listen address ${String(bound)}`)

  let closed: Promise<void> | undefined
  return {
    address: { host: bound.address, port: bound.port },
    async close () {
      closed ??= new Promise<void>((resolve, reject) => {
        closing = true
        server.close(err => {
          // ERR_SERVER_NOT_RUNNING: already closed by the signal, which is fine
          if (err != null && (err as NodeJS.ErrnoException).code !== 'ERR_SERVER_NOT_RUNNING') reject(err)
          else resolve()
        })
        for (const [socket, n] of inFlight) if (n === 0) socket.destroy()
      })
      await closed
    }
  }
}
