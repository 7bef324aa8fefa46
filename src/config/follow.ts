// Follower folders (`cairn follow`): one peer folder per followed cluster under a root, as
// ipfs-cluster-follow keeps ~/.ipfs-cluster-follow/<name>. A running follower writes api.json there so the
// other follow commands can find its REST API and see the addresses its services are bound to.
import { readdir, unlink } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'
import { ConfigError } from '../errors.js'
import { exists, readJson, writeFileAtomic } from './files.js'
import { identityFromJSON, IDENTITY_FILE } from './identity.js'
import { parsePeerConfig, PEER_FILE } from './parse.js'
import type { PeerConfig } from './schema.js'

export const FOLLOW_NAME = /^[A-Za-z0-9._-]+$/
export const API_FILE = 'api.json'

/**
 * The listeners of a follower, as `follow init` writes them to peer.json. The first follower on a host takes a
 * trusted peer's default ports + 1000 (so both run side by side, and clear of the demo's +100*k); every other
 * follower in the same folder the next free set, FOLLOWER_PORT_STEP further. Fixed ports keep a follower's
 * URLs (and a router's port forward) the same across restarts.
 */
export interface FollowerListen {
  swarm_listen: string[]
  rest_listen: string
  pinsvc_listen: string
  gateway_listen: string
  metrics_listen: string
}

export const FOLLOWER_PORTS = { swarm: 10096, rest: 10094, pinsvc: 10097, gateway: 9080, metrics: 9888 } as const
export const FOLLOWER_PORT_STEP = 10
/** Sets of ports tried before giving up (a folder of 100 followers is already unusual). */
const MAX_SLOTS = 100

/** The default listeners of the follower in `slot` (0, 1, ...): swarm on every interface, the HTTP services on loopback. */
export function followerListen (slot: number): FollowerListen {
  const port = (base: number): number => base + FOLLOWER_PORT_STEP * slot
  return {
    swarm_listen: [`/ip4/0.0.0.0/tcp/${port(FOLLOWER_PORTS.swarm)}`],
    rest_listen: `127.0.0.1:${port(FOLLOWER_PORTS.rest)}`,
    pinsvc_listen: `127.0.0.1:${port(FOLLOWER_PORTS.pinsvc)}`,
    gateway_listen: `127.0.0.1:${port(FOLLOWER_PORTS.gateway)}`,
    metrics_listen: `127.0.0.1:${port(FOLLOWER_PORTS.metrics)}`
  }
}

/** The TCP port of a listen address (host:port or a /tcp/ multiaddr); 0 when any free port or none. */
function portOf (addr: string): number {
  return Number((addr.startsWith('/') ? /\/tcp\/(\d+)/ : /:(\d+)$/).exec(addr)?.[1] ?? 0)
}

/** The fixed TCP ports a peer config listens on. */
function listenPorts (peer: Pick<PeerConfig, 'swarm' | 'rest' | 'pinsvc' | 'gateway' | 'metrics'>): number[] {
  return [...peer.swarm.listen, peer.rest.listen, peer.pinsvc.listen, peer.gateway.listen, peer.metrics.listen].map(portOf).filter(p => p > 0)
}

/**
 * The default listeners for a new follower under `root`: the first slot none of whose ports another follower
 * there (`except` left out: the one being replaced) already uses.
 */
export async function freeFollowerListen (root: string, except?: string): Promise<FollowerListen> {
  const used = new Set<number>()
  for (const name of await listFollowers(root)) {
    if (name === except) continue
    try {
      const file = join(root, name, PEER_FILE)
      for (const port of listenPorts(parsePeerConfig(await readJson(file, () => new ConfigError('absent')), file, {}))) used.add(port)
    } catch {} // a folder whose peer.json cannot be read claims no port
  }
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    const listen = followerListen(slot)
    const ports = [...listen.swarm_listen, listen.rest_listen, listen.pinsvc_listen, listen.gateway_listen, listen.metrics_listen].map(portOf)
    if (!ports.some(p => used.has(p))) return listen
  }
  throw new ConfigError(`the followers in ${root} use every default port set: give this one its ports (--rest-listen, --swarm-listen, ...)`)
}

/** `$CAIRN_FOLLOW_PATH`, else ~/.cairn-follow. */
export function defaultFollowRoot (env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.CAIRN_FOLLOW_PATH !== undefined && env.CAIRN_FOLLOW_PATH !== '' ? env.CAIRN_FOLLOW_PATH : join(homedir(), '.cairn-follow'))
}

/** The folder of follower `name` under `root`; a name that is not a plain folder name is a ConfigError. */
export function followerPath (root: string, name: string): string {
  if (!FOLLOW_NAME.test(name) || name === '.' || name === '..') {
    throw new ConfigError(`invalid follower name ${JSON.stringify(name)}: use letters, digits, ".", "_" or "-"`)
  }
  return join(root, name)
}

/** Names of the followers under `root` (folders holding a peer.json), sorted. */
export async function listFollowers (root: string): Promise<string[]> {
  let entries
  try {
    entries = await readdir(root, { withFileTypes: true })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  const names: string[] = []
  for (const entry of entries) {
    if (entry.isDirectory() && FOLLOW_NAME.test(entry.name) && await exists(join(root, entry.name, PEER_FILE))) names.push(entry.name)
  }
  return names.sort()
}

export interface ApiFile {
  /** The REST API: 'http://127.0.0.1:<port>'. */
  url: string
  pid: number
  /** The other services' URLs as bound (absent when off), and the swarm's addresses. */
  pinsvc?: string
  gateway?: string
  metrics?: string
  swarm?: string[]
}

export async function writeApiFile (dir: string, api: ApiFile): Promise<void> {
  await writeFileAtomic(join(dir, API_FILE), `${JSON.stringify(api)}\n`, 0o644)
}

/** api.json, or undefined when absent or not of the expected shape. */
export async function readApiFile (dir: string): Promise<ApiFile | undefined> {
  try {
    const json = await readJson(join(dir, API_FILE), () => new ConfigError('absent')) as Partial<ApiFile> | null
    if (typeof json?.url !== 'string' || !Number.isInteger(json.pid)) return undefined
    const text = (v: unknown): string | undefined => typeof v === 'string' ? v : undefined
    const swarm = Array.isArray(json.swarm) ? json.swarm.filter((a): a is string => typeof a === 'string') : undefined
    return { url: json.url, pid: json.pid as number, pinsvc: text(json.pinsvc), gateway: text(json.gateway), metrics: text(json.metrics), swarm }
  } catch {}
  return undefined
}

/** Removes api.json if it is still the one process `pid` wrote (a newer run may have replaced it). */
export async function removeApiFile (dir: string, pid: number): Promise<void> {
  const api = await readApiFile(dir)
  if (api == null || api.pid === pid) await unlink(join(dir, API_FILE)).catch(() => {})
}

export function isProcessAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists but belongs to someone else
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export interface FollowerFolder {
  peer: PeerConfig
  peerId: string
}

/** peer.json and the peer ID of a follower folder, without reading its cluster config (no fetch). */
export async function readFollowerFolder (dir: string, env: NodeJS.ProcessEnv = process.env): Promise<FollowerFolder> {
  const peerFile = join(dir, PEER_FILE)
  const peer = parsePeerConfig(await readJson(peerFile, () => new ConfigError(`no peer at ${dir}`)), peerFile, env)
  const identityFile = join(dir, IDENTITY_FILE)
  const identity = identityFromJSON(await readJson(identityFile,
    () => new ConfigError(`no identity at ${identityFile}: restore it or run "cairn follow init --force"`)), identityFile)
  return { peer, peerId: identity.peerId.toString() }
}
