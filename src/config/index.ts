// Loading and creating a peer folder: peer.json + identity.json + the cluster config peer.json points to (a
// file, or an http(s) URL with a last good copy kept in the folder), with CAIRN_<SECTION>_<KEY> overrides from
// an env object the caller passes (never read at import time).
import { mkdir, unlink } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { ConfigError } from '../errors.js'
import { exists, readJson, writeFileAtomic } from './files.js'
import { createIdentity, identityFromJSON, identityToJSON, IDENTITY_FILE } from './identity.js'
import { parseClusterConfig, parsePeerConfig, PEER_FILE } from './parse.js'
import { type ClusterConfig, type ClusterConfigInput, type PeerConfig } from './schema.js'
import {
  LAST_GOOD_FILE, normalizeSource, resolveClusterSource,
  type ClusterOrigin, type ClusterSourceOptions, type ResolvedClusterSource
} from './source.js'

export {
  clusterConfigSchema, dhtConfigSchema, logConfigSchema, peerConfigSchema, restConfigSchema, swarmConfigSchema,
  trackerConfigSchema, DEFAULT_CLUSTER_NAME, DEFAULT_DHT_PROTOCOL, DEFAULT_GATEWAY_LISTEN, DEFAULT_METRICS_LISTEN, DEFAULT_PINSVC_LISTEN,
  DEFAULT_REST_LISTEN, DEFAULT_SWARM_LISTEN, LOG_LEVELS,
  type ClusterConfig, type ClusterConfigInput, type DhtConfig, type LogConfig, type PeerConfig, type PeerConfigInput,
  type RestConfig, type SwarmConfig, type TrackerConfig
} from './schema.js'
export { createIdentity, identityFromJSON, identityToJSON, IDENTITY_FILE, type Identity } from './identity.js'
export { isUrlSource } from './schema.js'
export { NOT_CONFIG_ENV, parseClusterConfig, parsePeerConfig, PEER_FILE } from './parse.js'
export {
  CLUSTER_FETCH_TIMEOUT_MS, fetchClusterConfig, LAST_GOOD_FILE, MAX_CLUSTER_CONFIG_BYTES, normalizeSource,
  readClusterSource, readLastGood, SourceFetchError,
  type ClusterOrigin, type ClusterSourceOptions, type ClusterSourceResult, type LastGoodCopy
} from './source.js'
export {
  API_FILE, defaultFollowRoot, FOLLOW_NAME, FOLLOWER_PORT_STEP, FOLLOWER_PORTS, followerListen, followerPath, freeFollowerListen, isProcessAlive,
  listFollowers, readApiFile, readFollowerFolder, removeApiFile, writeApiFile, type ApiFile, type FollowerFolder, type FollowerListen
} from './follow.js'
export { DEFAULT_WATCH_INTERVAL_MS, watchClusterConfig, type ClusterConfigWatch, type WatchClusterConfigOptions } from './watch.js'
/** The cluster config `cairn init` writes into a new peer folder. */
export const CLUSTER_FILE = 'cluster.json'

export interface LoadedConfig {
  /** The peer folder, absolute; also the peer's data dir. */
  path: string
  peer: PeerConfig
  cluster: ClusterConfig
  /** Absolute path of the cluster config file, or its URL. */
  clusterConfigPath: string
  /** Where `cluster` came from this time: the file, a fresh fetch, or the last good copy of the URL (and when). */
  clusterSource: { origin: ClusterOrigin, fetchedAt?: string, fetchError?: string }
  identity: { privateKey: PrivateKey, peerId: PeerId }
}

export interface InitPeerOptions {
  peername?: string
  /**
   * Settings for a new cluster.json in the peer folder, or the path or http(s) URL of an existing cluster config
   * to use (a URL is fetched now, and its copy saved as the last good one).
   */
  cluster?: Partial<ClusterConfigInput> | string
  rest_listen?: string
  swarm_listen?: string[]
  /** host:port of the pinning API, gateway and metrics endpoints (defaults 9097, 8080, 8888 on 127.0.0.1). */
  pinsvc_listen?: string
  gateway_listen?: string
  metrics_listen?: string
  /** Replace an existing peer (and its identity). */
  force?: boolean
  /** Overrides applied to the returned config (default process.env); they are not written to the files. */
  env?: NodeJS.ProcessEnv
  /** For a URL cluster config: see LoadConfigOptions. */
  fetch?: typeof fetch
  report?: (line: string) => void
  timeoutMs?: number
}

export interface LoadConfigOptions {
  /** Source of CAIRN_* overrides (default process.env). */
  env?: NodeJS.ProcessEnv
  /** The fetch used when cluster_config is a URL (default globalThis.fetch). */
  fetch?: typeof fetch
  /** Told when the cluster config URL could not be fetched and the last good copy is used. */
  report?: (line: string) => void
  /** Deadline of the cluster config fetch (default 10 s). */
  timeoutMs?: number
}

export function defaultPeerPath (env: NodeJS.ProcessEnv = process.env): string {
  return env.CAIRN_PATH !== undefined && env.CAIRN_PATH !== '' ? env.CAIRN_PATH : join(homedir(), '.cairn')
}

export async function peerExists (path: string): Promise<boolean> {
  return await exists(join(path, PEER_FILE))
}

/**
 * Loads a peer folder. A URL cluster_config is fetched on every load; when that fails, the last good copy is
 * used (and `report` told), and without one this throws a ConfigError naming the URL and the reason.
 */
export async function loadConfig (path: string, options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  return await loadFolder(resolve(path), options)
}

/** loadConfig; `known` is a cluster config initPeer has just read, used when peer.json still points to it. */
async function loadFolder (dir: string, options: LoadConfigOptions, known?: { source: string, read: ResolvedClusterSource }):
Promise<LoadedConfig> {
  const env = options.env ?? process.env
  const peerFile = join(dir, PEER_FILE)
  const peer = parsePeerConfig(
    await readJson(peerFile, () => new ConfigError(`no peer at ${dir}: run "cairn init" first`)), peerFile, env)
  const referrer = env.CAIRN_PEER_CLUSTER_CONFIG !== undefined ? 'CAIRN_PEER_CLUSTER_CONFIG' : `${peerFile}: cluster_config`
  let read: ResolvedClusterSource
  if (known != null && known.source === peer.cluster_config) {
    read = known.read
    read.result.config = parseClusterConfig(read.raw, read.parsedAs, env)
  } else {
    read = await resolveClusterSource(peer.cluster_config, dir, { ...options, env, referrer, save: true })
  }
  const identityFile = join(dir, IDENTITY_FILE)
  const identity = identityFromJSON(await readJson(identityFile,
    () => new ConfigError(`no identity at ${identityFile}: restore it or run "cairn init --force"`)), identityFile)
  const { config: cluster, source, origin, fetchedAt, fetchError } = read.result
  return { path: dir, peer, cluster, clusterConfigPath: source, clusterSource: { origin, fetchedAt, fetchError }, identity }
}

/**
 * What `cairn init` does. Without `cluster` (or with settings), the peer gets its own cluster.json: a one-peer
 * cluster trusting only this peer, never trust-all.
 */
export async function initPeer (path: string, options: InitPeerOptions = {}): Promise<LoadedConfig> {
  const dir = resolve(path)
  const peerFile = join(dir, PEER_FILE)
  const identityFile = join(dir, IDENTITY_FILE)
  if (options.force !== true && (await exists(peerFile) || await exists(identityFile))) {
    throw new ConfigError(`peer already initialised at ${dir}; use --force`)
  }
  const identity = await createIdentity()

  // everything is built and validated before the first write, so a bad option leaves nothing behind
  const files: Array<{ file: string, json: unknown, mode: number }> = []
  let clusterSource: string
  let known: { source: string, read: ResolvedClusterSource } | undefined
  if (typeof options.cluster === 'string') {
    clusterSource = normalizeSource(options.cluster)
    const sourceOptions: ClusterSourceOptions = { fetch: options.fetch, report: options.report, timeoutMs: options.timeoutMs }
    const read = await resolveClusterSource(clusterSource, dir, { ...sourceOptions, env: {}, save: false })
    known = { source: clusterSource, read }
    if (read.fetched != null) files.push({ file: join(dir, LAST_GOOD_FILE), json: read.fetched, mode: 0o644 })
  } else {
    clusterSource = CLUSTER_FILE
    const input = { ...options.cluster, trusted_peers: options.cluster?.trusted_peers ?? [identity.peerId.toString()] }
    const cluster = parseClusterConfig(input, join(dir, CLUSTER_FILE))
    // left unset, bootstrap and keep_private_addresses follow dht.profile, so CAIRN_DHT_PROFILE=lan still takes effect
    const given = options.cluster?.dht
    const dht = { ...cluster.dht, bootstrap: given?.bootstrap, keep_private_addresses: given?.keep_private_addresses }
    files.push({ file: join(dir, CLUSTER_FILE), json: { ...cluster, dht }, mode: 0o644 })
  }
  const peer = parsePeerConfig({
    peername: options.peername,
    cluster_config: clusterSource,
    swarm: { listen: options.swarm_listen },
    rest: { listen: options.rest_listen },
    pinsvc: { listen: options.pinsvc_listen },
    gateway: { listen: options.gateway_listen },
    metrics: { listen: options.metrics_listen }
  }, peerFile)
  // peer.json last: its presence is what marks the folder as a peer
  files.push({ file: identityFile, json: identityToJSON(identity), mode: 0o600 }, { file: peerFile, json: peer, mode: 0o644 })

  await mkdir(dir, { recursive: true })
  const written: string[] = []
  try {
    for (const { file, json, mode } of files) {
      await writeFileAtomic(file, `${JSON.stringify(json, null, 2)}\n`, mode)
      written.push(file)
    }
  } catch (err) {
    await Promise.all(written.map(async file => { await unlink(file).catch(() => {}) }))
    throw err
  }
  return await loadFolder(dir, { env: options.env }, known)
}
