// A real HTTP server on 127.0.0.1 that serves a cluster config the test can change, break or take down.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface ConfigServer {
  /** URL of the config, e.g. http://127.0.0.1:<port>/cluster.config.json. */
  readonly url: string
  readonly origin: string
  /** Requests answered so far. */
  readonly hits: number
  /** Serve this JSON from now on. */
  serveJson: (json: unknown) => void
  /** Serve this status and raw body from now on. */
  serveRaw: (status: number, body: string | Buffer, headers?: Record<string, string>) => void
  /** Replace the handler entirely (redirects, never answering...). */
  handle: (handler: (req: IncomingMessage, res: ServerResponse) => void) => void
  close: () => Promise<void>
}

export async function startConfigServer (json: unknown, path = '/cluster.config.json'): Promise<ConfigServer> {
  let handler: (req: IncomingMessage, res: ServerResponse) => void = () => {}
  let hits = 0
  const server = createServer((req, res) => {
    hits++
    if (req.url !== path && !(req.url ?? '').startsWith('/other')) {
      res.writeHead(404).end('not found')
      return
    }
    handler(req, res)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const serveRaw = (status: number, body: string | Buffer, headers: Record<string, string> = {}): void => {
    handler = (_req, res) => { res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(body) }
  }
  serveRaw(200, JSON.stringify(json))
  return {
    url: `${origin}${path}`,
    origin,
    get hits () { return hits },
    serveJson: json => { serveRaw(200, JSON.stringify(json, null, 2)) },
    serveRaw,
    handle: h => { handler = h },
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
    }
  }
}

/** A URL on a port nothing listens on (taken, then released). */
export async function closedUrl (path = '/cluster.config.json'): Promise<string> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>(resolve => server.close(() => { resolve() }))
  return `http://127.0.0.1:${port}${path}`
}
