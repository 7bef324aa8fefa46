// Where a peer's cluster config comes from: a file, or an http(s) URL (how followers join a published cluster).
// A fetched config that validates is kept in the peer folder as the last good copy, so a peer still starts
// when the publisher is down or serves something broken.
import { join, resolve } from 'node:path'
import { ConfigError } from '../errors.js'
import { exists, readJson, writeFileAtomic } from './files.js'
import { parseClusterConfig } from './parse.js'
import { isUrlSource, type ClusterConfig } from './schema.js'

/** The last good copy of a fetched cluster config, in the peer folder: `{ source, fetched_at, config }`. */
export const LAST_GOOD_FILE = 'cluster.last-good.json'
export const CLUSTER_FETCH_TIMEOUT_MS = 10_000
export const MAX_CLUSTER_CONFIG_BYTES = 1024 * 1024

export type ClusterOrigin = 'fetched' | 'file' | 'last-good'

export interface ClusterSourceOptions {
  /** Source of CAIRN_* overrides applied to the config (default process.env). */
  env?: NodeJS.ProcessEnv
  /** The fetch used for URL sources (default globalThis.fetch). */
  fetch?: typeof fetch
  /** Receives a line when the source could not be fetched and the last good copy is used instead. */
  report?: (line: string) => void
  /** Deadline of one fetch, body included (default 10 s). */
  timeoutMs?: number
  /** What named the source ("<peer.json>: cluster_config"); prefixes errors. */
  referrer?: string
  signal?: AbortSignal
}

export interface ClusterSourceResult {
  config: ClusterConfig
  origin: ClusterOrigin
  /** The absolute file path or the URL the config came from (for a last good copy: the URL it was fetched from). */
  source: string
  /** ISO time of the fetch, for 'fetched' and 'last-good'. */
  fetchedAt?: string
  /** Why the fetch failed, for 'last-good'. */
  fetchError?: string
}

/** A fetch that did not give a valid cluster config; the message is the reason, for "... (<reason>)". */
export class SourceFetchError extends Error {
  static override name = 'SourceFetchError'
  override name = 'SourceFetchError'
}

/** What is in cluster.last-good.json. */
export interface LastGoodCopy {
  source: string
  fetched_at: string
  /** The JSON as served (overrides and defaults are applied when it is used). */
  config: unknown
}

/** A source as stored in peer.json: URLs stay as they are, paths become absolute. */
export function normalizeSource (source: string, base = process.cwd()): string {
  return isUrlSource(source) ? source : resolve(base, source)
}

/**
 * Reads the cluster config a peer points to. A path is read and validated; a URL is fetched (10 s, redirects
 * followed, at most 1 MiB), validated and saved as the last good copy in `peerDir`; when that fails, the last
 * good copy of that URL is used and `report` is told why, and without one this throws a ConfigError naming
 * the URL and the reason.
 */
export async function readClusterSource (source: string, peerDir: string, options: ClusterSourceOptions = {}): Promise<ClusterSourceResult> {
  const { result } = await resolveClusterSource(source, peerDir, { ...options, save: true })
  return result
}

/** What resolveClusterSource read: the JSON before overrides and the file or URL it is parsed as (error messages). */
export interface ResolvedClusterSource {
  result: ClusterSourceResult
  raw: unknown
  parsedAs: string
  /** Set when a fetch succeeded: what saveLastGood stores. */
  fetched?: LastGoodCopy
}

/** readClusterSource with the raw JSON; `save: false` leaves the peer folder untouched (initPeer writes it later). */
export async function resolveClusterSource (source: string, peerDir: string, options: ClusterSourceOptions & { save: boolean }):
Promise<ResolvedClusterSource> {
  const env = options.env ?? process.env
  const prefix = options.referrer != null ? `${options.referrer}: ` : ''
  if (!isUrlSource(source)) {
    const file = resolve(peerDir, source)
    const json = await readJson(file, () => new ConfigError(`${prefix}no cluster config at ${file}`))
    return { result: { config: parseClusterConfig(json, file, env), origin: 'file', source: file }, raw: json, parsedAs: file }
  }
  if (!/^https?:/i.test(source)) throw new ConfigError(`${prefix}expected a file path or an http(s) URL, got ${source}`)

  let reason: string
  try {
    const fetched = await fetchClusterConfig(source, options)
    if (options.save) await saveLastGood(peerDir, fetched)
    // env overrides apply after the content itself validated: a bad override is the caller's error, not the source's
    const config = parseClusterConfig(fetched.config, source, env)
    return { result: { config, origin: 'fetched', source, fetchedAt: fetched.fetched_at }, raw: fetched.config, parsedAs: source, fetched }
  } catch (err) {
    if (!(err instanceof SourceFetchError)) throw err
    reason = err.message
  }

  const copy = await readLastGood(peerDir)
  const file = join(peerDir, LAST_GOOD_FILE)
  if (copy.value == null || copy.value.source !== source) {
    const why = copy.problem ?? (copy.value != null ? `the last good copy in ${file} is of ${copy.value.source}` : 'there is no last good copy of it')
    throw new ConfigError(`${prefix}could not fetch the cluster config from ${source} (${reason}) and ${why}`)
  }
  const config = parseClusterConfig(copy.value.config, file, env)
  options.report?.(`could not fetch the cluster config from ${source} (${reason}); using the last good copy from ${copy.value.fetched_at}`)
  return {
    result: { config, origin: 'last-good', source, fetchedAt: copy.value.fetched_at, fetchError: reason },
    raw: copy.value.config,
    parsedAs: file
  }
}

/**
 * Fetches and validates a cluster config (without env overrides). Throws SourceFetchError with the reason:
 * unreachable, timeout, non-2xx, too large, invalid JSON or an invalid config.
 */
export async function fetchClusterConfig (url: string, options: Pick<ClusterSourceOptions, 'fetch' | 'timeoutMs' | 'signal'> = {}): Promise<LastGoodCopy> {
  const timeoutMs = options.timeoutMs ?? CLUSTER_FETCH_TIMEOUT_MS
  const deadline = AbortSignal.timeout(timeoutMs)
  const signal = options.signal != null ? AbortSignal.any([deadline, options.signal]) : deadline
  const failed = (err: unknown): Error => {
    if (options.signal?.aborted === true) return options.signal.reason instanceof Error ? options.signal.reason : new Error('aborted')
    if (deadline.aborted) return new SourceFetchError(`no answer within ${formatMs(timeoutMs)}`)
    const cause = (err as { cause?: unknown }).cause
    return new SourceFetchError(cause instanceof Error ? cause.message : (err as Error).message)
  }
  const fetchFn = options.fetch ?? globalThis.fetch
  const fetchedAt = new Date().toISOString()
  let text: string
  try {
    const res = await fetchFn(url, { signal, redirect: 'follow', headers: { accept: 'application/json' } })
    if (!res.ok) {
      await res.body?.cancel().catch(() => {})
      throw new SourceFetchError(`HTTP ${res.status}${res.statusText !== '' ? ` ${res.statusText}` : ''}`)
    }
    text = await readLimited(res, MAX_CLUSTER_CONFIG_BYTES)
  } catch (err) {
    throw err instanceof SourceFetchError ? err : failed(err)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new SourceFetchError(`invalid JSON: ${(err as Error).message}`)
  }
  try {
    parseClusterConfig(json, url, {})
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    throw new SourceFetchError(`invalid cluster config: ${err.message.split('\n').join('; ')}`)
  }
  return { source: url, fetched_at: fetchedAt, config: json }
}

async function readLimited (res: Response, max: number): Promise<string> {
  const tooLarge = (): SourceFetchError => new SourceFetchError(`larger than ${max / 1024 / 1024} MiB`)
  const declared = Number(res.headers.get('content-length') ?? NaN)
  if (declared > max) {
    await res.body?.cancel().catch(() => {})
    throw tooLarge()
  }
  if (res.body == null) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  const reader = res.body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > max) {
      await reader.cancel().catch(() => {})
      throw tooLarge()
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function formatMs (ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`
}

export async function saveLastGood (peerDir: string, copy: LastGoodCopy): Promise<void> {
  await writeFileAtomic(join(peerDir, LAST_GOOD_FILE), `${JSON.stringify(copy, null, 2)}\n`, 0o644)
}

/** The last good copy in a peer folder; `problem` says why a file that exists cannot be used. */
export async function readLastGood (peerDir: string): Promise<{ value?: LastGoodCopy, problem?: string }> {
  const file = join(peerDir, LAST_GOOD_FILE)
  if (!(await exists(file))) return {}
  let json: unknown
  try {
    json = await readJson(file, () => new ConfigError(`no ${file}`))
  } catch (err) {
    return { problem: `the last good copy is unusable (${(err as Error).message})` }
  }
  const value = json as Partial<LastGoodCopy> | null
  if (typeof value !== 'object' || value === null || typeof value.source !== 'string' ||
    typeof value.fetched_at !== 'string' || !('config' in value)) {
    return { problem: `the last good copy is unusable (${file}: expected {"source", "fetched_at", "config"})` }
  }
  return { value: value as LastGoodCopy }
}
