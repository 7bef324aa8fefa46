// The HTTP gateway: /ipfs/<cid>/<path> and /mirror/<name>/<path> over the peer's IPFS node, so that apt, npm or
// pacman can fetch a mirror from a nearby peer over plain HTTP. Read-only, no auth (the content is public).
import { ConfigError, NotStartedError, ShuttingDownError } from '../errors.js'
import { listen, type Listener } from '../api/common.js'
import { parseListen } from '../api/rest/index.js'
import { createGatewayApp, DEFAULT_TIMEOUT_MS } from './app.js'
import { mirrorIndex, type MirrorPinset } from './mirrors.js'
import type { Startable } from '../components.js'
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

export interface Gateway extends Startable {
  /** The bound address (the real port when listening on port 0). */
  address(): { host: string, port: number }
}

export function createGateway (init: GatewayInit, components: GatewayComponents): Gateway {
  let bind: { host: string, port: number }
  try {
    bind = parseListen(init.listen)
  } catch {
    throw new ConfigError(`gateway.listen "${init.listen}" is not host:port`)
  }
  const log = components.logger?.forComponent('cairn:gateway')
  const mirrors = mirrorIndex(components.pinset)
  let listener: Listener | undefined
  let stopping: AbortController | undefined

  return {
    async start () {
      if (listener !== undefined) return
      stopping = new AbortController()
      const app = createGatewayApp({
        ipfs: components.ipfs,
        mirrors,
        timeoutMs: init.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        log,
        signal: stopping.signal
      })
      mirrors.start()
      try {
        listener = await listen(app, bind.host, bind.port)
      } catch (err) {
        mirrors.stop()
        throw err
      }
      log?.('listening on %s:%d', listener.address.host, listener.address.port)
    },
    async stop () {
      stopping?.abort(new ShuttingDownError())
      await listener?.close()
      listener = undefined
      mirrors.stop()
    },
    address () {
      if (listener === undefined) throw new NotStartedError('the gateway is not listening')
      return { ...listener.address }
    }
  }
}
