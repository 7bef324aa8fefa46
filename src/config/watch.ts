// Re-reading the cluster config while a peer runs, so that maintainers can add or remove trusted peers by
// editing the published cluster.config.json. Content that does not validate never replaces a working config.
import { resolve } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { ConfigError } from '../errors.js'
import { readJson } from './files.js'
import { parseClusterConfig } from './parse.js'
import { isUrlSource, type ClusterConfig } from './schema.js'
import { fetchClusterConfig, saveLastGood, SourceFetchError } from './source.js'

export const DEFAULT_WATCH_INTERVAL_MS = 60_000

export interface WatchClusterConfigOptions {
  /** As in peer.json: an http(s) URL, or a file path (relative to peerDir). */
  source: string
  /** The peer folder: a fetched config is saved there as the last good copy. */
  peerDir: string
  /** Time between two reads (default 60 s). */
  intervalMs?: number
  /** Called with the new config each time the content changes (not when it is merely re-served). */
  onChange: (config: ClusterConfig) => void | Promise<void>
  /** Why a read was ignored (unreachable, invalid), once per distinct problem, and when it clears. */
  report?: (line: string) => void
  fetch?: typeof fetch
  /** Deadline of one fetch (default 10 s). */
  timeoutMs?: number
  /** CAIRN_* overrides, applied as loadConfig does (default process.env). */
  env?: NodeJS.ProcessEnv
  /** The config the peer runs with; without it, the first read (at once) sets it without calling onChange. */
  current?: ClusterConfig
}

export interface ClusterConfigWatch {
  /** Reads the source now; resolves true when the content changed and onChange was called. */
  check(): Promise<boolean>
  /** Stops the timer and waits for a read in progress. */
  stop(): Promise<void>
}

export function watchClusterConfig (options: WatchClusterConfigOptions): ClusterConfigWatch {
  const env = options.env ?? process.env
  const report = options.report ?? (() => {})
  const isUrl = isUrlSource(options.source)
  const where = isUrl ? options.source : resolve(options.peerDir, options.source)
  const shutdown = new AbortController()
  let current = options.current
  let problem: string | undefined
  let running: Promise<boolean> = Promise.resolve(false)
  let timer: NodeJS.Timeout | undefined

  const failed = (reason: string): false => {
    if (reason !== problem) {
      const keep = current != null ? 'keeping the current config' : 'no config yet'
      report(`could not ${isUrl ? 'fetch' : 'read'} the cluster config from ${where} (${reason}); ${keep}`)
    }
    problem = reason
    return false
  }

  const read = async (): Promise<boolean> => {
    let next: ClusterConfig
    try {
      let raw: unknown
      if (isUrl) {
        const fetched = await fetchClusterConfig(where, { fetch: options.fetch, timeoutMs: options.timeoutMs, signal: shutdown.signal })
        try {
          await saveLastGood(options.peerDir, fetched)
        } catch (err) {
          report(`could not save the last good copy of the cluster config in ${options.peerDir}: ${(err as Error).message}`)
        }
        raw = fetched.config
      } else {
        raw = await readJson(where, () => new ConfigError('the file does not exist'))
      }
      next = parseClusterConfig(raw, where, env)
    } catch (err) {
      if (shutdown.signal.aborted) return false
      if (err instanceof SourceFetchError || err instanceof ConfigError) return failed(err.message.split('\n').join('; '))
      return failed((err as Error).message)
    }
    if (problem != null) report(`the cluster config from ${where} is readable and valid again`)
    problem = undefined
    if (current == null) {
      current = next
      return false
    }
    if (isDeepStrictEqual(current, next)) return false
    current = next
    try {
      await options.onChange(next)
    } catch (err) {
      report(`applying the new cluster config from ${where} failed: ${(err as Error).message}`)
    }
    return true
  }

  // one read at a time: a manual check waits for the timer's and the other way round
  const check = async (): Promise<boolean> => {
    running = running.catch(() => false).then(read)
    return await running
  }

  const schedule = (delay: number): void => {
    if (shutdown.signal.aborted) return
    timer = setTimeout(() => {
      void check().finally(() => { schedule(options.intervalMs ?? DEFAULT_WATCH_INTERVAL_MS) })
    }, delay)
    // a watch alone must not keep the process alive
    timer.unref()
  }
  schedule(current == null ? 0 : options.intervalMs ?? DEFAULT_WATCH_INTERVAL_MS)

  return {
    check,
    async stop () {
      shutdown.abort()
      clearTimeout(timer)
      await running.catch(() => {})
    }
  }
}
