// `cairn daemon`: load (or create) the peer in a folder, run it until SIGINT/SIGTERM, stop it cleanly.
import { initPeer, loadConfig, peerExists, type LoadedConfig } from './config/index.js'
import { createPeer, exposedWithoutAuth, type CairnPeer } from './peer.js'

export interface DaemonOptions {
  path: string
  /** Create the peer first when the folder has none (what `npm start` does). */
  init: boolean
  env?: NodeJS.ProcessEnv
  /** Human-readable status lines (the CLI prints them). */
  report?: (line: string) => void
  /** Resolves when the daemon should stop (default: the first SIGINT or SIGTERM). */
  until?: Promise<unknown>
  /** A config the caller already loaded (`follow run`), so a URL source is not fetched twice. */
  config?: LoadedConfig
}

function signals (report: (line: string) => void): Promise<string> {
  return new Promise(resolve => {
    const onSignal = (sig: string): void => {
      report(`received ${sig}, shutting down (send it again to exit at once)`)
      process.once(sig as NodeJS.Signals, () => { process.exit(130) })
      resolve(sig)
    }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
  })
}

/** Where a running peer's services are bound (a service turned off is absent). */
export interface ServiceUrls {
  /** The REST API, 'http://127.0.0.1:9094'. */
  api: string
  pinsvc?: string
  gateway?: string
  /** Prometheus text, '.../metrics'. */
  metrics?: string
  swarm: string[]
}

export function serviceUrls (peer: CairnPeer, config: LoadedConfig): ServiceUrls {
  const url = (a: { host: string, port: number }): string => `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`
  return {
    api: url(peer.restAddress()),
    pinsvc: config.peer.pinsvc.enabled ? url(peer.pinsvcAddress()) : undefined,
    gateway: config.peer.gateway.enabled ? url(peer.gatewayAddress()) : undefined,
    metrics: config.peer.metrics.enabled ? `${url(peer.metricsAddress())}/metrics` : undefined,
    swarm: peer.swarmAddresses()
  }
}

export async function startDaemon (options: Omit<DaemonOptions, 'until'>): Promise<CairnPeer> {
  const report = options.report ?? (() => {})
  const env = options.env ?? process.env
  if (options.init && !(await peerExists(options.path))) {
    const created = await initPeer(options.path, { env })
    report(`initialised a new peer ${created.identity.peerId.toString()} in ${options.path}`)
  }
  const config = options.config ?? await loadConfig(options.path, { env, report })
  const peer = createPeer({ config })
  await peer.start()
  const urls = serviceUrls(peer, config)
  report(`cairn peer ${peer.id} (${config.peer.peername}) is running`)
  report(`  cluster:  ${config.cluster.name} (${config.cluster.trusted_peers.includes(peer.id) ? 'trusted peer' : 'follower: read-only'})`)
  report(`  REST API: ${urls.api}`)
  if (urls.pinsvc != null) report(`  pinning:  ${urls.pinsvc} (IPFS Pinning Services API)`)
  if (urls.gateway != null) report(`  gateway:  ${urls.gateway}`)
  if (urls.metrics != null) report(`  metrics:  ${urls.metrics}`)
  for (const addr of urls.swarm) report(`  swarm:    ${addr}`)
  const exposed = exposedWithoutAuth(config)
  if (exposed != null) report(exposed)
  return peer
}

export async function runDaemon (options: DaemonOptions): Promise<void> {
  const report = options.report ?? (() => {})
  const until = options.until ?? signals(report)
  const peer = await startDaemon(options)
  await until
  await peer.stop()
  report('stopped')
}
