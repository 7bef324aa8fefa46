// HTTP transport of the REST client. node:http rather than fetch: fetch hides response trailers, and IPFS Cluster
// reports a failure in the middle of an NDJSON stream only in the X-Stream-Error trailer.
import http, { type IncomingMessage } from 'node:http'
import https from 'node:https'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'

/** An error answered by the API (status >= 400, code and message from its `{code, message}` body) or on the way to it (status 0). */
export class ClientError extends Error {
  static override name = 'ClientError'
  override name = 'ClientError'
  /** HTTP status; 0 when no response arrived. */
  readonly status: number
  /** `code` of the error body (IPFS Cluster repeats the status there); 0 when no response arrived. */
  readonly code: number
  /** Seconds the server asked to wait before trying again (its Retry-After), when it said. */
  retryAfter?: number

  constructor (message: string, status = 0, code = status, options?: ErrorOptions) {
    super(message, options)
    this.status = status
    this.code = code
  }
}

/** A GET answered 429 (the peer serves as many lists as it may at once) is sent again after Retry-After, this many times. */
const BUSY_RETRIES = 3
/** The longest Retry-After waited for; a longer one is reported instead. */
const MAX_RETRY_AFTER_S = 60

export interface HttpInit {
  base: URL
  headers: Record<string, string>
  timeoutMs?: number
  log?: (line: string) => void
}

export interface RequestSpec {
  method: 'GET' | 'POST' | 'DELETE'
  path: string
  query?: URLSearchParams
  headers?: Record<string, string>
  /** Streamed as a chunked request body. */
  body?: AsyncIterable<Uint8Array>
  signal?: AbortSignal
}

interface Exchange {
  res: IncomingMessage
  /** Turns an error seen while reading the body into the error to throw. */
  fail: (err: unknown) => unknown
}

export class Http {
  readonly origin: string
  private readonly init: HttpInit

  constructor (init: HttpInit) {
    this.init = init
    this.origin = init.base.origin
  }

  /** A JSON body, or undefined for 204 / an empty body. */
  async json<T> (spec: RequestSpec): Promise<T> {
    const { res, fail } = await this.open(spec)
    let text = ''
    try {
      res.setEncoding('utf8')
      for await (const chunk of res) text += chunk as string
    } catch (err) {
      throw fail(err)
    }
    if (text.trim() === '') return undefined as T
    try {
      return JSON.parse(text) as T
    } catch {
      throw new ClientError(`the cairn API at ${this.origin} answered ${spec.method} ${spec.path} with invalid JSON`, res.statusCode)
    }
  }

  /** Items of an NDJSON body, parsed as each line arrives (a JSON array line is flattened). */
  async * ndjson<T> (spec: RequestSpec): AsyncGenerator<T> {
    const { res, fail } = await this.open(spec)
    const parse = (line: string): T[] => {
      const value = JSON.parse(line) as T | T[]
      return Array.isArray(value) ? value : [value]
    }
    try {
      const decoder = new TextDecoder()
      let rest = ''
      for await (const chunk of res) {
        const lines = (rest + decoder.decode(chunk as Uint8Array, { stream: true })).split('\n')
        rest = lines.pop() ?? ''
        for (const line of lines) {
          if (line.trim() !== '') yield * parse(line)
        }
      }
      rest += decoder.decode()
      const streamError = res.trailers['x-stream-error']
      if (streamError != null && streamError !== '') throw new ClientError(streamError, 500)
      if (rest.trim() !== '') {
        let items: T[]
        try {
          items = parse(rest)
        } catch {
          // Without a trailer (a proxy may drop it) a cut stream shows as a last line that does not parse.
          throw new ClientError(`the cairn API at ${this.origin} cut the ${spec.path} stream short (incomplete last line)`, 500)
        }
        yield * items
      }
    } catch (err) {
      throw err instanceof SyntaxError
        ? new ClientError(`the cairn API at ${this.origin} sent an invalid NDJSON line on ${spec.path}`, 500)
        : fail(err)
    } finally {
      res.destroy()
    }
  }

  /**
   * Sends the request and waits for the response head; a status >= 400 becomes a ClientError. A GET the peer
   * refused as busy (429 with Retry-After) is sent again after that wait, up to BUSY_RETRIES times.
   */
  private async open (spec: RequestSpec): Promise<Exchange> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.send(spec)
      } catch (err) {
        const wait = err instanceof ClientError && err.status === 429 ? err.retryAfter : undefined
        if (wait === undefined || wait > MAX_RETRY_AFTER_S || attempt >= BUSY_RETRIES || spec.method !== 'GET' || spec.body != null) throw err
        this.init.log?.(`${spec.method} ${spec.path}: the peer is busy (429), trying again in ${wait} s`)
        await sleep(wait * 1000, undefined, { signal: spec.signal })
      }
    }
  }

  private async send (spec: RequestSpec): Promise<Exchange> {
    const url = new URL(this.init.base.pathname.replace(/\/$/, '') + spec.path, this.init.base)
    if (spec.query != null) url.search = spec.query.toString()
    const timeout = this.init.timeoutMs != null && this.init.timeoutMs > 0 ? AbortSignal.timeout(this.init.timeoutMs) : undefined
    const signals = [spec.signal, timeout].filter((s): s is AbortSignal => s != null)
    const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0]
    signal?.throwIfAborted()

    const started = Date.now()
    const req = (url.protocol === 'https:' ? https : http).request(url, {
      method: spec.method,
      headers: { accept: 'application/json', ...this.init.headers, ...spec.headers },
      signal
    })
    let sourceError: unknown
    let connected = false
    let responded = false
    req.once('socket', socket => {
      // a kept-alive socket is connected already; over TLS, connected means past the handshake
      if (!socket.connecting) connected = true
      else socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => { connected = true })
    })
    const fail = (err: unknown): unknown => {
      if (sourceError != null) return sourceError
      if (err instanceof ClientError) return err
      if (spec.signal?.aborted === true) return spec.signal.reason
      if (timeout?.aborted === true) {
        return new ClientError(`the cairn API at ${this.origin} did not ${responded ? 'finish' : 'answer'} ${spec.method} ${spec.path} within ${this.init.timeoutMs} ms`)
      }
      const e = err as NodeJS.ErrnoException
      const why = e.message !== '' ? e.message : e.code ?? String(err)
      if (!connected) {
        return new ClientError(`cannot reach the cairn API at ${this.origin}: ${e.code === 'ECONNREFUSED' ? 'connect ECONNREFUSED (is the daemon running?)' : why}`, 0, 0, { cause: err })
      }
      // connected, then cut off (the daemon stopped, say) before or while answering
      return new ClientError(`the cairn API at ${this.origin} broke off ${spec.method} ${spec.path}: ${why} (did the daemon stop?)`, 0, 0, { cause: err })
    }

    if (spec.body != null) {
      const body = spec.body
      const source = async function * (): AsyncGenerator<Uint8Array> {
        try {
          yield * body
        } catch (err) {
          sourceError = err
          throw err
        }
      }
      // Once the server has answered (say a 400 before reading everything) a failed upload is not the error to report.
      pipeline(Readable.from(source()), req).catch(() => {})
    } else {
      req.end()
    }

    let res: IncomingMessage
    try {
      [res] = await once(req, 'response') as [IncomingMessage]
    } catch (err) {
      throw fail(err)
    }
    responded = true
    this.init.log?.(`${spec.method} ${url.href} -> ${res.statusCode ?? 0} (${Date.now() - started} ms)`)
    const status = res.statusCode ?? 0
    if (status >= 400) {
      let text = ''
      try {
        res.setEncoding('utf8')
        for await (const chunk of res) text += chunk as string
      } catch {}
      req.destroy()
      let body: { code?: unknown, message?: unknown } = {}
      try {
        body = Object(JSON.parse(text))
      } catch {}
      const message = typeof body.message === 'string' && body.message !== ''
        ? body.message
        : text.trim() !== '' ? text.trim() : `${status} ${res.statusMessage ?? ''}`.trim()
      const error = new ClientError(message, status, typeof body.code === 'number' ? body.code : status)
      const retryAfter = res.headers['retry-after']
      if (retryAfter !== undefined && /^\d{1,9}$/.test(retryAfter)) error.retryAfter = Number(retryAfter)
      throw error
    }
    return { res, fail }
  }
}
