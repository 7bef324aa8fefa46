// The HTTP gateway: /ipfs/<cid>/<path> and /mirror/<name>/<path> over the peer's IPFS node, so that apt, npm or
// pacman can fetch a mirror from a nearby peer over plain HTTP. Read-only, no auth (the content is public).
import { ConfigError } from '../errors.js'
import { createAppServer, type AppServer } from '../api/server.js'
import { parseListen } from '../api/rest/index.js'
import { createGatewayApp, DEFAULT_TIMEOUT_MS } from './app.js'
import { mirrorIndex, type MirrorPinset } from './mirrors.js'
import type { GatewayIpfs } from './blocks.js'
import type { ComponentLogger } from '@libp2p/logger'

export { DEFAULT_TIMEOUT_MS, IMMUTABLE_CACHE, MIRROR_CACHE } from './app.js'

export interface GatewayInit {
  /** host:port, e.g. 127.0.0.1:8080 (port 0: any free port). */
  listen: string
  /** A request fails with 504 when a block it needs does not arrive within this many ms. Default 60 000. */
  timeoutMs?: number
}

export interface GatewayComponents {
  /** Blocks (fetching missing ones over bitswap), codecs and hash functions. */
  ipfs: GatewayIpfs
  /** Mirror versions, for /mirror/<name>/. */
  pinset: MirrorPinset
  logger?: ComponentLogger
}

export type Gateway = AppServer

export function createGateway (init: GatewayInit, components: GatewayComponents): Gateway {
  let bind: { host: string, port: number }
  try {
    bind = parseListen(init.listen)
  } catch {
    throw new ConfigError(`gateway.listen "${init.listen}" is not host:port`)
  }
  const log = components.logger?.forComponent('cairn:gateway')
  const mirrors = mirrorIndex(components.pinset)
  return createAppServer({ ...bind, name: 'the gateway' }, {
    log,
    open: async signal => {
      const app = createGatewayApp({ ipfs: components.ipfs, mirrors, timeoutMs: init.timeoutMs ?? DEFAULT_TIMEOUT_MS, log, signal })
      mirrors.start()
      return { app, close: () => { mirrors.stop() } }
    }
  })
}
