// Loading and creating a peer folder: peer.json + identity.json + the cluster config peer.json points to,
// with CAIRN_<SECTION>_<KEY> overrides from an env object the caller passes (never read at import time).
import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import type { z } from 'zod'
import { ConfigError } from '../errors.js'
import { createIdentity, identityFromJSON, identityToJSON, IDENTITY_FILE } from './identity.js'
import {
  clusterConfigSchema, ENV_SECTIONS, isUrlSource, peerConfigSchema, show, toConfigError,
  type ClusterConfig, type ClusterConfigInput, type EnvSection, type PeerConfig
} from './schema.js'

export {
  clusterConfigSchema, dhtConfigSchema, logConfigSchema, peerConfigSchema, restConfigSchema, swarmConfigSchema,
  trackerConfigSchema, DEFAULT_CLUSTER_NAME, DEFAULT_DHT_PROTOCOL, DEFAULT_REST_LISTEN, DEFAULT_SWARM_LISTEN, LOG_LEVELS,
  type ClusterConfig, type ClusterConfigInput, type DhtConfig, type LogConfig, type PeerConfig, type PeerConfigInput,
  type RestConfig, type SwarmConfig, type TrackerConfig
} from './schema.js'
export { createIdentity, identityFromJSON, identityToJSON, IDENTITY_FILE, type Identity } from './identity.js'

export const PEER_FILE = 'peer.json'
/** The cluster config `cairn init` writes into a new peer folder. */
export const CLUSTER_FILE = 'cluster.json'

export interface LoadedConfig {
  /** The peer folder, absolute; also the peer's data dir. */
  path: string
  peer: PeerConfig
  cluster: ClusterConfig
  /** Absolute path of the cluster config file. */
  clusterConfigPath: string
  identity: { privateKey: PrivateKey, peerId: PeerId }
}

export interface InitPeerOptions {
  peername?: string
  /** Settings for a new cluster.json in the peer folder, or the path of an existing cluster config to use. */
  cluster?: Partial<ClusterConfigInput> | string
  rest_listen?: string
  swarm_listen?: string[]
  /** Replace an existing peer (and its identity). */
  force?: boolean
  /** Overrides applied to the returned config (default process.env); they are not written to the files. */
  env?: NodeJS.ProcessEnv
}

export interface LoadConfigOptions {
  /** Source of CAIRN_* overrides (default process.env). */
  env?: NodeJS.ProcessEnv
}

export function defaultPeerPath (env: NodeJS.ProcessEnv = process.env): string {
  return env.CAIRN_PATH !== undefined && env.CAIRN_PATH !== '' ? env.CAIRN_PATH : join(homedir(), '.cairn')
}

export async function peerExists (path: string): Promise<boolean> {
  return await exists(join(path, PEER_FILE))
}

export function parseClusterConfig (json: unknown, source = 'cluster.config.json', env: NodeJS.ProcessEnv = {}): ClusterConfig {
  return parseWith(clusterConfigSchema, 'cluster', json, source, env)
}

export function parsePeerConfig (json: unknown, source = PEER_FILE, env: NodeJS.ProcessEnv = {}): PeerConfig {
  return parseWith(peerConfigSchema, 'peer', json, source, env)
}

export async function loadConfig (path: string, options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? process.env
  const dir = resolve(path)
  const peerFile = join(dir, PEER_FILE)
  const peer = parsePeerConfig(
    await readJson(peerFile, () => new ConfigError(`no peer at ${dir}: run "cairn init" first`)), peerFile, env)
  const referrer = env.CAIRN_PEER_CLUSTER_CONFIG !== undefined ? 'CAIRN_PEER_CLUSTER_CONFIG' : `${peerFile}: cluster_config`
  const { cluster, clusterConfigPath } = await readClusterConfig(peer.cluster_config, dir, referrer, env)
  const identityFile = join(dir, IDENTITY_FILE)
  const identity = identityFromJSON(await readJson(identityFile,
    () => new ConfigError(`no identity at ${identityFile}: restore it or run "cairn init --force"`)), identityFile)
  return { path: dir, peer, cluster, clusterConfigPath, identity }
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
  if (typeof options.cluster === 'string') {
    clusterSource = isUrlSource(options.cluster) ? options.cluster : resolve(options.cluster)
    await readClusterConfig(clusterSource, dir, 'cluster', {})
  } else {
    clusterSource = CLUSTER_FILE
    const input = { ...options.cluster, trusted_peers: options.cluster?.trusted_peers ?? [identity.peerId.toString()] }
    const cluster = parseClusterConfig(input, join(dir, CLUSTER_FILE))
    // left unset, keep_private_addresses follows dht.profile, so CAIRN_DHT_PROFILE=lan still takes effect
    const dht = { ...cluster.dht, keep_private_addresses: options.cluster?.dht?.keep_private_addresses }
    files.push({ file: join(dir, CLUSTER_FILE), json: { ...cluster, dht }, mode: 0o644 })
  }
  const peer = parsePeerConfig({
    peername: options.peername,
    cluster_config: clusterSource,
    swarm: { listen: options.swarm_listen },
    rest: { listen: options.rest_listen }
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
  return await loadConfig(dir, { env: options.env })
}

async function readClusterConfig (source: string, dir: string, referrer: string, env: NodeJS.ProcessEnv):
Promise<{ cluster: ClusterConfig, clusterConfigPath: string }> {
  if (isUrlSource(source)) {
    throw new ConfigError(`${referrer}: loading the cluster config from a URL (${source}) is not supported yet`)
  }
  const file = resolve(dir, source)
  const json = await readJson(file, () => new ConfigError(`${referrer}: no cluster config at ${file}`))
  return { cluster: parseClusterConfig(json, file, env), clusterConfigPath: file }
}

function parseWith<S extends z.ZodType> (schema: S, target: EnvSection['file'], json: unknown, source: string,
  env: NodeJS.ProcessEnv): z.output<S> {
  const { value, blame } = applyEnv(json, target, env)
  const result = schema.safeParse(value)
  if (!result.success) throw toConfigError(result.error, source, blame)
  return result.data
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** CAIRN_ variables that are not config keys: the peer folder, the CLI's API address and credentials, test knobs. */
const NOT_CONFIG_ENV = /^CAIRN_(PATH|API|BASIC_AUTH|TOKEN|DEMO_DIR|TEST_.*)$/

/**
 * Sets every CAIRN_<SECTION>_<KEY> of `target` on a copy of the raw file content. Returns the copy and which
 * key path each variable set. Any unknown CAIRN_ variable is an error, as a typo would otherwise be ignored.
 */
function applyEnv (json: unknown, target: EnvSection['file'], env: NodeJS.ProcessEnv):
{ value: unknown, blame: Map<string, string> } {
  const blame = new Map<string, string>()
  const value = structuredClone(json)
  for (const [name, text] of Object.entries(env)) {
    if (!name.startsWith('CAIRN_') || NOT_CONFIG_ENV.test(name) || text === undefined) continue
    const [, sectionName = '', ...rest] = name.split('_')
    const key = rest.join('_').toLowerCase()
    const section = Object.hasOwn(ENV_SECTIONS, sectionName) ? ENV_SECTIONS[sectionName] : undefined
    if (section === undefined) {
      throw new ConfigError(`${name}: unknown setting: no section ${sectionName} (sections: ${Object.keys(ENV_SECTIONS).join(', ')})`)
    }
    if (!Object.hasOwn(section.keys, key)) {
      const file = section.file === 'cluster' ? 'the cluster config' : PEER_FILE
      throw new ConfigError(`${name}: unknown setting: ${file} has no key ${show([...section.path, key].join('.'))}`)
    }
    if (section.file !== target || !isObject(value)) continue
    const parent = section.path.reduce<Record<string, unknown> | undefined>((obj, k) => {
      if (obj === undefined) return undefined
      obj[k] ??= {}
      return isObject(obj[k]) ? obj[k] : undefined
    }, value)
    // a section that is not an object in the file cannot take the key; validation reports the file's value
    if (parent === undefined) continue
    parent[key] = parseEnvValue(name, text, section.keys[key] as z.ZodType)
    blame.set([...section.path, key].join('.'), name)
  }
  return { value, blame }
}

/** Turns the env text into the JSON type the key expects; values that do not convert are left for zod to reject. */
function parseEnvValue (name: string, text: string, schema: z.ZodType): unknown {
  switch (baseType(schema)) {
    case 'array':
      return text.trim().startsWith('[')
        ? parseEnvJson(name, text)
        : text.split(',').map(item => item.trim()).filter(item => item !== '')
    case 'number':
      return text.trim() !== '' && Number.isFinite(Number(text)) ? Number(text) : text
    case 'boolean':
      return text === 'true' ? true : text === 'false' ? false : text
    case 'object':
    case 'record':
      return parseEnvJson(name, text)
    default:
      return text
  }
}

function parseEnvJson (name: string, text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`${name}: invalid JSON: ${(err as Error).message}`)
  }
}

/** The JSON type under defaults, optionals and transforms (zod's def.type: "array", "number", ...). */
function baseType (schema: z.ZodType): string {
  const def = schema._zod.def as { type: string, innerType?: z.ZodType, in?: z.ZodType }
  if (def.innerType !== undefined) return baseType(def.innerType)
  if (def.type === 'pipe' && def.in !== undefined) return baseType(def.in)
  return def.type
}

async function exists (file: string): Promise<boolean> {
  try {
    await stat(file)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}

async function readJson (file: string, missing: () => ConfigError): Promise<unknown> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missing()
    throw new ConfigError(`${file}: cannot read: ${(err as Error).message}`)
  }
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`${file}: invalid JSON: ${(err as Error).message}`)
  }
}

/** Write-then-rename, so a crash leaves the old file or the new one, never half of one. */
async function writeFileAtomic (file: string, text: string, mode: number): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`
  // mode applies at creation: the key is never readable by others, not even briefly
  const handle = await open(tmp, 'wx', mode)
  try {
    await handle.writeFile(text)
    await handle.sync()
    await handle.close()
    await rename(tmp, file)
  } catch (err) {
    await handle.close().catch(() => {})
    await unlink(tmp).catch(() => {})
    throw err
  }
}
