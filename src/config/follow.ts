// Follower folders (`cairn follow`): one peer folder per followed cluster under a root, as
// ipfs-cluster-follow keeps ~/.ipfs-cluster-follow/<name>. A running follower writes api.json there so the
// other follow commands can find its REST API (whose port is chosen by the OS).
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
/** A follower listens on any free port: it must not clash with a trusted peer's 9096/9094 on the same host. */
export const FOLLOWER_SWARM_LISTEN: readonly string[] = ['/ip4/0.0.0.0/tcp/0']
export const FOLLOWER_REST_LISTEN = '127.0.0.1:0'
/** The same for its pinning API, gateway and metrics (`follow info` and `api.json` say where they are). */
export const FOLLOWER_SERVICE_LISTEN = '127.0.0.1:0'

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
  /** 'http://127.0.0.1:<port>'. */
  url: string
  pid: number
}

export async function writeApiFile (dir: string, api: ApiFile): Promise<void> {
  await writeFileAtomic(join(dir, API_FILE), `${JSON.stringify(api)}\n`, 0o644)
}

/** api.json, or undefined when absent or not of the expected shape. */
export async function readApiFile (dir: string): Promise<ApiFile | undefined> {
  try {
    const json = await readJson(join(dir, API_FILE), () => new ConfigError('absent')) as Partial<ApiFile> | null
    if (typeof json?.url === 'string' && Number.isInteger(json.pid)) return { url: json.url, pid: json.pid as number }
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
