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
  const { host, port } = peer.restAddress()
  report(`cairn peer ${peer.id} (${config.peer.peername}) is running`)
  report(`  cluster:  ${config.cluster.name} (${config.cluster.trusted_peers.includes(peer.id) ? 'trusted peer' : 'follower: read-only'})`)
  report(`  REST API: http://${host}:${port}`)
  const url = (a: { host: string, port: number }): string => `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`
  if (config.peer.pinsvc.enabled) report(`  pinning:  ${url(peer.pinsvcAddress())} (IPFS Pinning Services API)`)
  if (config.peer.gateway.enabled) report(`  gateway:  ${url(peer.gatewayAddress())}`)
  if (config.peer.metrics.enabled) report(`  metrics:  ${url(peer.metricsAddress())}/metrics`)
  for (const addr of peer.swarmAddresses()) report(`  swarm:    ${addr}`)
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
