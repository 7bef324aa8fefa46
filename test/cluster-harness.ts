// Starts N full cairn peers (Helia + libp2p + pinset + tracker + REST) in this process, on 127.0.0.1, with
// their own temp data dirs and a shared cluster config trusting all of them.
import { readFile, writeFile } from 'node:fs/promises'
import { createServer as createHttpServer, type Server } from 'node:http'
import { join } from 'node:path'
import { initPeer, loadConfig, type LoadedConfig } from '../src/config/index.js'
import { createPeer, type CairnPeer } from '../src/peer.js'
import { freePorts, quietLogger, tempDir } from './util.js'

export interface TestClusterOptions {
  name?: string
  /** Extra keys for the shared cluster config (or a function of the peers' ids returning them). */
  cluster?: Record<string, unknown> | ((ids: string[]) => Record<string, unknown>)
  /** Extra tracker settings for every peer. */
  tracker?: Record<string, unknown>
  /** Peers that are not trusted (followers), by index. */
  untrusted?: number[]
  /** Serve the shared config over HTTP on 127.0.0.1 and point the followers at its URL. */
  serveConfig?: boolean
  /** basic_auth_credentials for every peer's REST API. */
  basicAuth?: Record<string, string>
  /** Extra REST API settings of every peer (max_heavy_requests). */
  rest?: Record<string, unknown>
  /** Per-peer monitor settings (storage_max, tags, metric_ttl_ms). */
  monitor?: (i: number) => Record<string, unknown>
  /** Repo GC settings of every peer (interval_ms). */
  gc?: Record<string, unknown>
  /** Per-peer gateway settings (cache_max). */
  gateway?: (i: number) => Record<string, unknown>
  /** How soon a connected stranger is identified again (PeerInit.strangerRetryMs). */
  strangerRetryMs?: number
  /** Storage audit settings of every peer (interval_ms, grace_ms, ...). */
  audit?: Record<string, unknown>
  /** How long an add without a pin keeps repo GC off (PeerInit.noPinHoldMs; default 5 s). */
  noPinHoldMs?: number
  /** Disk settings of every peer (default: no reserve file, which would write 128 MiB per peer). */
  disk?: Record<string, unknown>
  /** Peers created (ids, ports, trusted in the config) but not started: a test starts them later (a peer joining). */
  deferred?: number[]
}

export interface TestCluster {
  /** The shared cluster config file (also what the HTTP server serves). */
  readonly clusterFile: string
  /** Its URL when served over HTTP. */
  readonly configUrl?: string
  /** Folder holding the peers' folders p0, p1, ... */
  readonly root: string
  readonly peers: Array<CairnPeer | undefined>
  readonly configs: LoadedConfig[]
  peer(i: number): CairnPeer
  /** http://127.0.0.1:port of peer i's REST API. */
  url(i: number): string
  start(i: number): Promise<CairnPeer>
  stop(i: number): Promise<void>
  close(): Promise<void>
}

export async function createTestCluster (n: number, options: TestClusterOptions = {}): Promise<TestCluster> {
  const root = await tempDir('cairn-cluster-')
  const clusterFile = join(root.path, 'cluster.config.json')
  const name = options.name ?? 'test'
  await writeFile(clusterFile, JSON.stringify({ name }))
  const ports = await freePorts(2 * n)
  const swarmPorts = ports.slice(0, n)
  const restPorts = ports.slice(n)
  const inits: LoadedConfig[] = []
  for (let i = 0; i < n; i++) {
    inits.push(await initPeer(join(root.path, `p${i}`), {
      peername: `peer-${i}`,
      cluster: clusterFile,
      rest_listen: `127.0.0.1:${restPorts[i]}`,
      swarm_listen: [`/ip4/127.0.0.1/tcp/${swarmPorts[i]}`],
      // port 0: the OS picks; peer.pinsvcAddress() etc. say which
      pinsvc_listen: '127.0.0.1:0',
      gateway_listen: '127.0.0.1:0',
      metrics_listen: '127.0.0.1:0',
      env: {}
    }))
  }
  const ids = inits.map(c => c.identity.peerId.toString())
  await writeFile(clusterFile, JSON.stringify({
    name,
    trusted_peers: ids.filter((_, i) => !(options.untrusted ?? []).includes(i)),
    bootstrap: ids.map((id, i) => `/ip4/127.0.0.1/tcp/${swarmPorts[i]}/p2p/${id}`),
    dht: { profile: 'lan', protocol: `/cairn-${name}/kad/1.0.0` },
    ...(typeof options.cluster === 'function' ? options.cluster(ids) : options.cluster)
  }, null, 2))
  let server: Server | undefined
  let configUrl: string | undefined
  if (options.serveConfig === true) {
    server = createHttpServer((_req, res) => {
      readFile(clusterFile).then(body => { res.writeHead(200, { 'content-type': 'application/json' }).end(body) },
        () => { res.writeHead(500).end() })
    })
    await new Promise<void>(resolve => server!.listen(0, '127.0.0.1', resolve))
    configUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/cluster.config.json`
    for (const i of options.untrusted ?? []) {
      const file = join(inits[i].path, 'peer.json')
      const json = JSON.parse(await readFile(file, 'utf8'))
      await writeFile(file, JSON.stringify({ ...json, cluster_config: configUrl }, null, 2))
    }
  }
  const configs: LoadedConfig[] = []
  for (const c of inits) {
    const loaded = await loadConfig(c.path, { env: {} })
    // Short retries, and a 4 s idle pin timeout instead of 2 min: a bitswap fetch can hang for good and the
    // tracker's timeout + retry is what recovers it (docs/DESIGN.md §10, "Stuck fetches").
    Object.assign(loaded.peer.tracker, { retry_base_ms: 200, retry_max_ms: 2000, pin_timeout_ms: 4000, ...options.tracker })
    if (options.basicAuth != null) loaded.peer.rest.basic_auth_credentials = options.basicAuth
    if (options.rest != null) Object.assign(loaded.peer.rest, options.rest)
    if (options.monitor != null) Object.assign(loaded.peer.monitor, options.monitor(configs.length))
    if (options.gc != null) Object.assign(loaded.peer.gc, options.gc)
    if (options.gateway != null) Object.assign(loaded.peer.gateway, options.gateway(configs.length))
    if (options.audit != null) Object.assign(loaded.peer.audit, options.audit)
    Object.assign(loaded.peer.disk, { reserve_bytes: 0, ...options.disk })
    configs.push(loaded)
  }
  const peers: Array<CairnPeer | undefined> = new Array(n).fill(undefined)

  const cluster: TestCluster = {
    clusterFile,
    configUrl,
    root: root.path,
    peers,
    configs,
    peer (i) {
      const p = peers[i]
      if (p == null) throw new Error(`peer ${i} is not running`)
      return p
    },
    url: i => `http://127.0.0.1:${restPorts[i]}`,
    async start (i) {
      if (peers[i] != null) return peers[i]
      const peer = createPeer({ config: configs[i], logger: quietLogger(`peer-${i}`), syncIntervalMs: 2000, configRefreshMs: 500, expiryIntervalMs: 500, noPinHoldMs: options.noPinHoldMs ?? 5000, strangerRetryMs: options.strangerRetryMs })
      await peer.start()
      peers[i] = peer
      return peer
    },
    async stop (i) {
      const p = peers[i]
      peers[i] = undefined
      await p?.stop()
    },
    async close () {
      await Promise.allSettled(peers.map(async (_, i) => { await cluster.stop(i) }))
      await new Promise(resolve => server?.close(resolve) ?? resolve(undefined))
      await root.cleanup()
    }
  }
  await Promise.all(Array.from({ length: n }, async (_, i) => { if (!(options.deferred ?? []).includes(i)) await cluster.start(i) }))
  return cluster
}
