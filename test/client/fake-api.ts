// A small in-test HTTP server speaking IPFS Cluster's REST wire format for the routes a test gives it.
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import busboy from 'busboy'
import type { AddressInfo } from 'node:net'

export type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>

export interface Recorded {
  method: string
  path: string
  query: URLSearchParams
  headers: http.IncomingHttpHeaders
}

export interface FakeApi {
  /** 'http://127.0.0.1:<port>' */
  url: string
  port: number
  requests: Recorded[]
  close: () => Promise<void>
}

/** routes: 'METHOD /path' -> handler; anything else gets 404 {code, message}. */
export async function startFakeApi (routes: Record<string, Handler>): Promise<FakeApi> {
  const requests: Recorded[] = []
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x')
    requests.push({ method: req.method ?? '', path: url.pathname, query: url.searchParams, headers: req.headers })
    const handler = routes[`${req.method ?? ''} ${url.pathname}`]
    if (handler == null) {
      sendJson(res, 404, { code: 404, message: `no route ${req.method ?? ''} ${url.pathname}` })
      return
    }
    Promise.resolve(handler(req, res, url)).catch(err => {
      if (!res.headersSent) sendJson(res, 500, { code: 500, message: String(err) })
      else res.destroy()
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: async () => {
      server.closeAllConnections()
      await new Promise(resolve => server.close(resolve))
    }
  }
}

export function sendJson (res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end()
    return
  }
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

/** As IPFS Cluster streams: NDJSON, an X-Stream-Error trailer always declared, 204 when there is nothing. */
export function sendNdjson (res: ServerResponse, items: unknown[], streamError = ''): void {
  if (items.length === 0 && streamError === '') {
    res.writeHead(204).end()
    return
  }
  res.writeHead(200, { 'content-type': 'application/json', trailer: 'X-Stream-Error' })
  for (const item of items) res.write(JSON.stringify(item) + '\n')
  res.addTrailers({ 'X-Stream-Error': streamError })
  res.end()
}

export interface Part {
  /** The filename parameter as sent (url-encoded). */
  filename: string
  type: string
  content: Buffer
}

export async function readMultipart (req: IncomingMessage): Promise<Part[]> {
  const parts: Part[] = []
  const bb = busboy({ headers: req.headers, preservePath: true })
  bb.on('file', (_name, stream, info) => {
    const chunks: Buffer[] = []
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => parts.push({ filename: info.filename ?? '', type: info.mimeType, content: Buffer.concat(chunks) }))
  })
  await new Promise<void>((resolve, reject) => {
    bb.on('close', resolve)
    bb.on('error', reject)
    req.pipe(bb)
  })
  return parts
}

const TS = '2024-05-06T10:00:00Z'

export function samplePin (cid: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    replication_factor_min: -1,
    replication_factor_max: -1,
    name: 'site',
    mode: 'recursive',
    shard_size: 0,
    user_allocations: null,
    expire_at: '0001-01-01T00:00:00Z',
    metadata: {},
    pin_update: null,
    origins: [],
    cid,
    type: 'pin',
    allocations: [],
    max_depth: -1,
    reference: null,
    timestamp: TS,
    ...extra
  }
}

export function sampleStatus (cid: string, peers: Record<string, { peername: string, status: string, error?: string }>, name = 'site'): Record<string, unknown> {
  const peerMap: Record<string, unknown> = {}
  for (const [id, p] of Object.entries(peers)) {
    peerMap[id] = { peername: p.peername, ipfs_peer_id: id, status: p.status, timestamp: TS, error: p.error ?? '', attempt_count: 0, priority_pin: false }
  }
  return { cid, name, allocations: [], origins: [], created: TS, metadata: {}, peer_map: peerMap }
}
