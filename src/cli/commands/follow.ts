// `cairn follow`: join a published cluster as a volunteer (a peer that is not in trusted_peers), as
// ipfs-cluster-follow does. Each followed cluster gets a peer folder under $CAIRN_FOLLOW_PATH or ~/.cairn-follow.
// Heavy modules load lazily: `cairn pin ls` must not pay for libp2p and Helia.
import type { Command } from 'commander'
import { ConfigError } from '../../errors.js'
import { Session, type CliIO } from '../session.js'
import type { Pin, TrackerStatus } from '../../types/wire.js'
import type { ApiFile, PeerConfig } from '../../config/index.js'
import { FOLLOWER_LISTEN_DEFAULTS, listenOptions, listenSettings, type ListenFlags } from '../listen.js'

/** One line of `cairn follow list`. */
export interface FollowListItem {
  cid: string
  name: string
  status: TrackerStatus
  error?: string
  /** True when read from the stores of a stopped follower rather than from its API. */
  offline: boolean
}

interface FollowerInfo {
  name: string
  path: string
  id: string
  peername: string
  source: string
  cluster: { name: string, trusted_peers: number } | null
  role: 'follower' | 'trusted peer' | null
  config: { origin: 'fetched' | 'file' | 'last-good', fetched_at?: string, fetch_error?: string } | { error: string }
  running: boolean
  api?: string
  pid?: number
  /** Where its services listen: as bound while it runs, else as configured. */
  urls: FollowerUrls
}

/** A follower's services; null when turned off. */
interface FollowerUrls {
  api: string
  pinsvc: string | null
  gateway: string | null
  metrics: string | null
  swarm: string[]
}

/** The URLs peer.json gives (port 0: a free port chosen at each start). */
function configuredUrls (peer: PeerConfig): FollowerUrls {
  const on = (service: { enabled: boolean, listen: string }, path = ''): string | null => service.enabled ? `http://${service.listen}${path}` : null
  return {
    api: `http://${peer.rest.listen}`,
    pinsvc: on(peer.pinsvc),
    gateway: on(peer.gateway),
    metrics: on(peer.metrics, '/metrics'),
    swarm: [...peer.swarm.listen]
  }
}

/** The URLs a running follower wrote to api.json; what it did not write, as configured. */
function runningUrls (api: ApiFile, configured: FollowerUrls): FollowerUrls {
  return {
    api: api.url,
    pinsvc: configured.pinsvc == null ? null : api.pinsvc ?? configured.pinsvc,
    gateway: configured.gateway == null ? null : api.gateway ?? configured.gateway,
    metrics: configured.metrics == null ? null : api.metrics ?? configured.metrics,
    swarm: api.swarm ?? configured.swarm
  }
}

function formatUrls (u: FollowerUrls, indent = ''): string[] {
  const show = (url: string | null): string => url == null ? 'off' : url.replace(/:0(\/|$)/, ':<a free port at each start>$1')
  return [
    `${indent}REST API:  ${show(u.api)}`,
    `${indent}gateway:   ${show(u.gateway)}`,
    `${indent}pinning:   ${show(u.pinsvc)}`,
    `${indent}metrics:   ${show(u.metrics)}`,
    ...u.swarm.map(a => `${indent}swarm:     ${a.replace(/\/tcp\/0(\/|$)/, '/tcp/<a free port at each start>$1')}`)
  ]
}

const config = async (): Promise<typeof import('../../config/index.js')> => await import('../../config/index.js')

/** The folder of an existing follower, or a ConfigError telling how to create it. */
async function followerDir (io: CliIO, name: string): Promise<{ root: string, dir: string }> {
  const cfg = await config()
  const root = cfg.defaultFollowRoot(io.env)
  const dir = cfg.followerPath(root, name)
  if (!(await cfg.peerExists(dir))) {
    throw new ConfigError(`no follower named "${name}" in ${root}: run "cairn follow init ${name} <cluster config URL or path>" first`)
  }
  return { root, dir }
}

/** api.json of a follower whose process is still alive. */
async function runningApi (dir: string): Promise<ApiFile | undefined> {
  const cfg = await config()
  const api = await cfg.readApiFile(dir)
  return api != null && cfg.isProcessAlive(api.pid) ? api : undefined
}

/** Whether the REST API at `url` answers within a short deadline; the reason when it does not. */
async function probe (url: string, basicAuth?: string): Promise<string | undefined> {
  const { createClient } = await import('../../client/index.js')
  try {
    await createClient({ api: url, basicAuth }).version({ signal: AbortSignal.timeout(3000) })
    return undefined
  } catch (err) {
    return (err as Error).message
  }
}

function firstCredentials (credentials: Record<string, string> | null): string | undefined {
  const [user] = Object.keys(credentials ?? {})
  return user != null ? `${user}:${credentials![user]}` : undefined
}

function formatItem (i: FollowListItem): string {
  return `${i.cid} | ${i.name} | ${i.status.toUpperCase()}${i.error != null && i.error !== '' ? `: ${i.error}` : ''}`
}

/** Resolves at the first SIGINT or SIGTERM, as runDaemon's does; a second one exits at once. */
function signals (report: (line: string) => void): { stopped: Promise<string>, dispose: () => void } {
  let onSignal: (sig: NodeJS.Signals) => void = () => {}
  const stopped = new Promise<string>(resolve => {
    onSignal = sig => {
      dispose()
      report(`received ${sig}, shutting down (send it again to exit at once)`)
      process.once(sig, () => { process.exit(130) })
      resolve(sig)
    }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
  })
  const dispose = (): void => {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  return { stopped, dispose }
}

export function registerFollow (program: Command, io: CliIO): void {
  const follow = program.command('follow')
    .description('follow a cluster as a volunteer peer: pin what it is allocated, serve it, never change the pinset ' +
      '(folders under $CAIRN_FOLLOW_PATH or ~/.cairn-follow)')

  const init = follow.command('init <name> <source>')
    .description('create follower <name> of the cluster described by <source>, a cluster.config.json path or http(s) URL')
    .option('--peername <name>', 'human-readable name of this peer (default: the host name)')
  listenOptions(init, FOLLOWER_LISTEN_DEFAULTS)
    .option('--force', 'replace an existing follower of that name (and its identity)')
    .action(async (name: string, source: string, o: ListenFlags & { peername?: string, force?: boolean }, cmd: Command) => {
      const s = new Session(io, cmd)
      const cfg = await config()
      const root = cfg.defaultFollowRoot(io.env)
      const dir = cfg.followerPath(root, name)
      if (o.force !== true && await cfg.peerExists(dir)) {
        throw new ConfigError(`follower "${name}" already exists in ${dir}; use --force to replace it`)
      }
      const loaded = await cfg.initPeer(dir, {
        peername: o.peername,
        cluster: source,
        // fixed ports, clear of the other followers here (and of a trusted peer's defaults); flags win
        ...await cfg.freeFollowerListen(root, name),
        ...listenSettings(o),
        force: o.force,
        env: io.env,
        report: line => { s.note(line) }
      })
      const result = {
        name,
        id: loaded.identity.peerId.toString(),
        path: loaded.path,
        source: loaded.peer.cluster_config,
        cluster: loaded.cluster.name,
        trusted_peers: loaded.cluster.trusted_peers.length,
        urls: configuredUrls(loaded.peer)
      }
      s.one(result, r => [
        `initialized follower ${r.name}: peer ${r.id} in ${r.path}`,
        `  cluster: ${r.cluster} (${r.trusted_peers} trusted peers) from ${r.source}`,
        ...formatUrls(r.urls, '  '),
        `  start it with: cairn follow run ${r.name}`
      ].join('\n'))
    })

  follow.command('run <name>')
    .description('run follower <name> until SIGINT or SIGTERM (re-reads its cluster config first)')
    .action(async (name: string) => {
      const { dir } = await followerDir(io, name)
      const cfg = await config()
      const report = (line: string): void => { io.out(`${line}\n`) }
      const previous = await runningApi(dir)
      if (previous != null && await probe(previous.url) == null) {
        throw new Error(`follower "${name}" is already running (pid ${previous.pid}, REST API ${previous.url})`)
      }
      const loaded = await cfg.loadConfig(dir, { env: io.env, report })
      const { origin } = loaded.clusterSource
      report(origin === 'fetched'
        ? `fetched the cluster config from ${loaded.clusterConfigPath}`
        : origin === 'file' ? `read the cluster config from ${loaded.clusterConfigPath}` : 'running with the last good copy of the cluster config')
      if (loaded.cluster.trusted_peers.includes(loaded.identity.peerId.toString())) {
        report('note: this peer is in the cluster\'s trusted_peers, so it runs as a trusted peer, not a follower')
      }

      const { stopped, dispose } = signals(report)
      try {
        const { startDaemon, serviceUrls } = await import('../../daemon.js')
        const peer = await startDaemon({ path: dir, init: false, env: io.env, report, config: loaded })
        try {
          const { api, ...services } = serviceUrls(peer, loaded)
          await cfg.writeApiFile(dir, { url: api, pid: process.pid, ...services })
          report(`  API file: ${dir}/${cfg.API_FILE}`)
          await stopped
        } finally {
          // first, so that `follow list` stops using an API that is going away
          await cfg.removeApiFile(dir, process.pid)
          await peer.stop()
        }
      } finally {
        dispose()
      }
      report('stopped')
    })

  follow.command('list <name>')
    .description('the pins of follower <name> and their local status (read from its stores when it is not running)')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      const { dir } = await followerDir(io, name)
      const cfg = await config()
      const { peer, peerId } = await cfg.readFollowerFolder(dir, io.env)
      const globals = cmd.optsWithGlobals<{ basicAuth?: string, token?: string }>()
      const basicAuth = globals.basicAuth ?? firstCredentials(peer.rest.basic_auth_credentials)

      const api = await runningApi(dir)
      const apiProblem = api != null ? await probe(api.url, basicAuth) : undefined
      if (api != null && apiProblem == null) {
        const { createClient } = await import('../../client/index.js')
        const client = createClient({ api: api.url, basicAuth, token: globals.token })
        for await (const g of client.statusAll({ local: true })) {
          const mine = g.peer_map[peerId] ?? Object.values(g.peer_map)[0]
          s.item<FollowListItem>({ cid: g.cid, name: g.name, status: mine?.status ?? 'cluster_error', error: mine?.error || undefined, offline: false },
            formatItem)
        }
        return
      }

      const items: FollowListItem[] = []
      try {
        for await (const item of listOffline(dir, peerId)) items.push(item)
      } catch (err) {
        const { isStoreLockedError } = await import('../../pinset/offline.js')
        if (!isStoreLockedError(err)) throw err
        const who = api != null ? `a running daemon (pid ${api.pid})` : 'another process'
        const why = api != null ? `its REST API at ${api.url} did not answer (${apiProblem ?? 'no answer'})` : `no ${cfg.API_FILE} says where its REST API is`
        throw new Error(`the stores of follower "${name}" are locked by ${who}, but ${why}`)
      }
      s.note(`follower "${name}" is not running: pins and statuses read from ${dir}`)
      for (const item of items) s.item(item, formatItem)
    })

  follow.command('info <name>')
    .description('what follower <name> follows, where its config came from, and whether it runs')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      const { dir } = await followerDir(io, name)
      const cfg = await config()
      const { peer, peerId } = await cfg.readFollowerFolder(dir, io.env)
      let cluster: FollowerInfo['cluster'] = null
      let role: FollowerInfo['role'] = null
      let configInfo: FollowerInfo['config']
      try {
        const read = await cfg.readClusterSource(peer.cluster_config, dir, { env: io.env })
        cluster = { name: read.config.name, trusted_peers: read.config.trusted_peers.length }
        role = read.config.trusted_peers.includes(peerId) ? 'trusted peer' : 'follower'
        configInfo = { origin: read.origin, fetched_at: read.fetchedAt, fetch_error: read.fetchError }
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err
        configInfo = { error: err.message }
      }
      const api = await runningApi(dir)
      const configured = configuredUrls(peer)
      const info: FollowerInfo = {
        name,
        path: dir,
        id: peerId,
        peername: peer.peername,
        source: peer.cluster_config,
        cluster,
        role,
        config: configInfo,
        running: api != null,
        ...(api != null ? { api: api.url, pid: api.pid } : {}),
        urls: api != null ? runningUrls(api, configured) : configured
      }
      s.one(info, formatInfo)
    })

  follow.command('ls')
    .description('the followers in $CAIRN_FOLLOW_PATH or ~/.cairn-follow')
    .action(async (_o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      const cfg = await config()
      const root = cfg.defaultFollowRoot(io.env)
      for (const name of await cfg.listFollowers(root)) {
        const dir = cfg.followerPath(root, name)
        const api = await runningApi(dir)
        s.item({ name, path: dir, running: api != null, ...(api != null ? { api: api.url } : {}) }, r => r.name)
      }
    })
}

function formatInfo (i: FollowerInfo): string {
  const c = i.config
  const configLine = 'error' in c
    ? `unavailable: ${c.error}`
    : c.origin === 'fetched'
      ? `fetched from the source at ${c.fetched_at ?? '?'}`
      : c.origin === 'file'
        ? 'read from the source file'
        : `last good copy from ${c.fetched_at ?? '?'} (the source failed: ${c.fetch_error ?? '?'})`
  return [
    `follower:  ${i.name}`,
    `folder:    ${i.path}`,
    `peer id:   ${i.id} (${i.peername})`,
    `source:    ${i.source}`,
    `cluster:   ${i.cluster != null ? `${i.cluster.name}, ${i.cluster.trusted_peers} trusted peers; this peer is a ${i.role ?? 'follower'}` : 'unknown'}`,
    `config:    ${configLine}`,
    `running:   ${i.running ? `yes, pid ${i.pid ?? '?'}, REST API ${i.api ?? '?'}` : 'no'}`,
    ...formatUrls(i.urls)
  ].join('\n')
}

/** The pinset of a stopped follower, with the status its tracker would give each pin from Helia's pin records. */
async function * listOffline (dir: string, peerId: string): AsyncGenerator<FollowListItem> {
  const { listPinsetOffline } = await import('../../pinset/offline.js')
  const pins: Pin[] = []
  for await (const pin of listPinsetOffline(dir)) pins.push(pin)
  if (pins.length === 0) return
  const { pinnedOffline } = await import('../../ipfs/offline.js')
  const pinned = await pinnedOffline(dir, pins.map(p => p.cid))
  for (const pin of pins) {
    const status: TrackerStatus = pin.type === 'meta-pin'
      ? 'sharded'
      : pin.allocations.length > 0 && !pin.allocations.includes(peerId)
        ? 'remote'
        : pinned.has(pin.cid) ? 'pinned' : 'pin_queued'
    yield { cid: pin.cid, name: pin.name, status, offline: true }
  }
}
