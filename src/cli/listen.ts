// The listener flags of `init` and `follow init`: one per service a peer listens on. Bad values are reported by
// the config check (naming the flag's key), before anything is written.
import type { Command } from 'commander'
import { parseList } from './parse.js'
import type { FollowerListen } from '../config/index.js'

export interface ListenFlags {
  swarmListen?: string[]
  restListen?: string
  pinsvcListen?: string
  gatewayListen?: string
  metricsListen?: string
}

/** The listen settings of InitPeerOptions that the flags give (the others keep their defaults). */
export type ListenSettings = Partial<FollowerListen>

/**
 * The defaults as the help shows them. Written out rather than imported: the config schema costs every
 * command ~0.2 s to load (test/cli checks these against DEFAULT_*_LISTEN and FOLLOWER_PORTS).
 */
export const PEER_LISTEN_DEFAULTS: Record<keyof ListenSettings, string> = {
  swarm_listen: '/ip4/0.0.0.0/tcp/9096',
  rest_listen: '127.0.0.1:9094',
  pinsvc_listen: '127.0.0.1:9097',
  gateway_listen: '127.0.0.1:8080',
  metrics_listen: '127.0.0.1:8888'
}

const NEXT = ', +10 for each other follower'
export const FOLLOWER_LISTEN_DEFAULTS: Record<keyof ListenSettings, string> = {
  swarm_listen: `/ip4/0.0.0.0/tcp/10096${NEXT}`,
  rest_listen: `127.0.0.1:10094${NEXT}`,
  pinsvc_listen: `127.0.0.1:10097${NEXT}`,
  gateway_listen: `127.0.0.1:9080${NEXT}`,
  metrics_listen: `127.0.0.1:9888${NEXT}`
}

/** Adds --swarm-listen, --rest-listen, --pinsvc-listen, --gateway-listen and --metrics-listen; `defaults` names each default. */
export function listenOptions (cmd: Command, defaults: Record<keyof ListenSettings, string>): Command {
  return cmd
    .option('--swarm-listen <multiaddrs>', `comma-separated libp2p listen multiaddrs (default: ${defaults.swarm_listen})`, parseList)
    .option('--rest-listen <host:port>', `REST API listen address (default: ${defaults.rest_listen})`)
    .option('--pinsvc-listen <host:port>', `Pinning Services API listen address (default: ${defaults.pinsvc_listen})`)
    .option('--gateway-listen <host:port>', `HTTP gateway listen address (default: ${defaults.gateway_listen})`)
    .option('--metrics-listen <host:port>', `Prometheus /metrics listen address (default: ${defaults.metrics_listen})`)
}

/** The settings of the flags given, and only those: spread over defaults, they replace just what was given. */
export function listenSettings (o: ListenFlags): ListenSettings {
  const all: ListenSettings = {
    swarm_listen: o.swarmListen,
    rest_listen: o.restListen,
    pinsvc_listen: o.pinsvcListen,
    gateway_listen: o.gatewayListen,
    metrics_listen: o.metricsListen
  }
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined))
}
