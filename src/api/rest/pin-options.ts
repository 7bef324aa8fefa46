// IPFS Cluster's pin-option and add query parameters (PinOptions.FromQuery, AddParamsFromQuery). Go reads
// the first value of a repeated parameter and ignores unknown ones; so do we. Bad values are 400s that name
// the parameter and the value.
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { InvalidParameterError } from '../../errors.js'
import { checkShardSize } from '../../adder/index.js'
import { parseCid } from '../../utils/cid.js'
import { validPinOptions } from '../pin-options.js'
import type { AddParams, PinOptions } from '../../components.js'
import type { PinMode } from '../../types/wire.js'

/** IPFS Cluster's default shard size for `add --shard` (100 MiB). */
export const DEFAULT_SHARD_SIZE = 104857600
/** Larger blocks would not cross bitswap, which caps messages at a few MiB. */
export const MAX_CHUNK_SIZE = 1048576

function invalid (param: string, value: string, problem: string): InvalidParameterError {
  return new InvalidParameterError(`invalid value for "${param}": "${value}" ${problem}`)
}

/** The parameter's first value; an empty value counts as absent, as in Go. */
function get (q: URLSearchParams, param: string): string | undefined {
  const v = q.get(param)
  return v === null || v === '' ? undefined : v
}

function integer (param: string, value: string): number {
  const n = Number(value)
  if (!/^[+-]?\d+$/.test(value) || !Number.isSafeInteger(n)) throw invalid(param, value, 'is not an integer')
  return n
}

function unsigned (param: string, value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw invalid(param, value, 'is not a non-negative integer')
  return n
}

const TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True'])
const FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False'])

/** Go's strconv.ParseBool; undefined when the parameter is absent. */
export function parseBool (q: URLSearchParams, param: string): boolean | undefined {
  const v = get(q, param)
  if (v === undefined) return undefined
  if (TRUE.has(v)) return true
  if (FALSE.has(v)) return false
  throw invalid(param, v, 'is not a boolean')
}

const DURATION_UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6, us: 1e-3, µs: 1e-3, μs: 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000
}
const DURATION_PART = String.raw`(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)`

/** Go's time.ParseDuration (`1h30m`, `90s`, `1.5h`) in milliseconds; undefined when malformed. */
export function parseGoDuration (s: string): number | undefined {
  const m = new RegExp(`^([-+]?)((?:${DURATION_PART})+|0)$`).exec(s)
  if (m === null) return undefined
  let ms = 0
  for (const [, num, unit] of m[2].matchAll(new RegExp(DURATION_PART, 'g'))) ms += Number(num) * DURATION_UNIT_MS[unit]
  return m[1] === '-' ? -ms : ms
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/

/** An RFC3339 timestamp, normalised to UTC; undefined when malformed or not a real date. */
export function parseRfc3339 (s: string): string | undefined {
  const m = RFC3339.exec(s)
  if (m === null) return undefined
  const date = new Date(s.toUpperCase())
  if (Number.isNaN(date.getTime())) return undefined
  // Date rolls 2024-02-30 over into March; RFC3339 says it is invalid
  const [, y, mo, d] = m.map(Number)
  const days = new Date(Date.UTC(y, mo, 0)).getUTCDate()
  if (mo < 1 || mo > 12 || d < 1 || d > days) return undefined
  return date.toISOString()
}

function list (value: string): string[] {
  return value.split(',').map(s => s.trim()).filter(s => s !== '')
}

/** Pin options from `POST /pins/{cid}`'s query, validated. `now` is for tests of expire-in. */
export function parsePinOptions (q: URLSearchParams, now: number = Date.now()): PinOptions {
  return validPinOptions(readPinOptions(q, now), now)
}

/** The pin options a query sets, each checked on its own (their combination is validPinOptions's). */
function readPinOptions (q: URLSearchParams, now: number): PinOptions {
  const opts: PinOptions = {}

  const name = q.get('name')
  if (name !== null) opts.name = name

  const mode = get(q, 'mode')
  if (mode !== undefined) {
    if (mode !== 'recursive' && mode !== 'direct') throw invalid('mode', mode, 'must be "recursive" or "direct"')
    opts.mode = mode satisfies PinMode
  }

  const replication = get(q, 'replication')
  if (replication !== undefined) {
    opts.replication_factor_min = opts.replication_factor_max = integer('replication', replication)
  } else {
    const min = get(q, 'replication-min')
    const max = get(q, 'replication-max')
    if (min !== undefined) opts.replication_factor_min = integer('replication-min', min)
    if (max !== undefined) opts.replication_factor_max = integer('replication-max', max)
  }

  const shardSize = get(q, 'shard-size')
  if (shardSize !== undefined) opts.shard_size = unsigned('shard-size', shardSize)

  const allocations = get(q, 'user-allocations')
  if (allocations !== undefined) {
    opts.user_allocations = list(allocations).map(p => {
      try {
        return peerIdFromString(p).toString()
      } catch {
        throw invalid('user-allocations', p, 'is not a valid peer ID')
      }
    })
  }

  const expireAt = get(q, 'expire-at')
  const expireIn = get(q, 'expire-in')
  if (expireAt !== undefined) {
    const at = parseRfc3339(expireAt)
    if (at === undefined) throw invalid('expire-at', expireAt, 'is not an RFC3339 timestamp')
    opts.expire_at = at
  } else if (expireIn !== undefined) {
    const ms = parseGoDuration(expireIn)
    if (ms === undefined) throw invalid('expire-in', expireIn, 'is not a duration (e.g. 24h, 1h30m, 90s)')
    if (ms < 1000) throw invalid('expire-in', expireIn, 'is shorter than 1s')
    // Date ends at year 275760: toISOString throws a bare RangeError past it
    const at = new Date(now + ms)
    if (Number.isNaN(at.getTime())) throw invalid('expire-in', expireIn, 'is too long (the expiry would be past year 275760)')
    opts.expire_at = at.toISOString()
  }

  const metadata: Record<string, string> = {}
  for (const key of new Set(q.keys())) {
    if (!key.startsWith('meta-') || key.length === 5) continue
    // assigning "__proto__" would set the object's prototype: the entry would be lost without a word
    if (key === 'meta-__proto__') throw invalid(key, q.get(key) ?? '', 'is not allowed: "__proto__" cannot be a metadata key')
    metadata[key.slice(5)] = q.get(key) ?? ''
  }
  if (Object.keys(metadata).length > 0) opts.metadata = metadata

  const pinUpdate = get(q, 'pin-update')
  if (pinUpdate !== undefined) {
    try {
      opts.pin_update = parseCid(pinUpdate).toString()
    } catch (err) {
      throw new InvalidParameterError(`invalid value for "pin-update": ${(err as Error).message}`)
    }
  }

  const spread = parseBool(q, 'spread')
  if (spread !== undefined) opts.spread = spread

  const origins = get(q, 'origins')
  if (origins !== undefined) {
    opts.origins = list(origins).map(o => {
      let ma
      try {
        ma = multiaddr(o)
      } catch {
        throw invalid('origins', o, 'is not a valid multiaddr')
      }
      if (!ma.getComponents().some(c => c.name === 'p2p')) throw invalid('origins', o, 'must include /p2p/<peer ID>')
      return ma.toString()
    })
  }
  return opts
}

/** What POST /add's query holds: the import and pin parameters, plus how to answer. */
export interface AddQuery {
  params: AddParams
  /** NDJSON as outputs come (default) or one JSON array at the end. */
  streamChannels: boolean
  /** Accepted for compatibility: a cairn peer always imports into its own node, then pins normally. */
  local: boolean
}

/** Parses POST /add's query (AddParamsFromQuery). `recursive` and `hidden` are accepted and mean nothing here. */
export function parseAddQuery (q: URLSearchParams, now: number = Date.now()): AddQuery {
  const { pin_update: _ignored, ...pinOptions } = readPinOptions(q, now)
  const params: AddParams = pinOptions

  const format = get(q, 'format')
  if (format !== undefined) {
    if (format !== 'unixfs' && format !== 'car') throw invalid('format', format, 'must be "unixfs" or "car"')
    params.format = format
  }

  const cidVersion = get(q, 'cid-version')
  if (cidVersion !== undefined) {
    if (cidVersion !== '0' && cidVersion !== '1') throw invalid('cid-version', cidVersion, 'must be 0 or 1')
    params.cid_version = cidVersion === '1' ? 1 : 0
  }
  // as Kubo: CIDv1 implies raw leaves unless raw-leaves says otherwise
  const rawLeaves = parseBool(q, 'raw-leaves') ?? (params.cid_version === 1 ? true : undefined)
  if (rawLeaves !== undefined) params.raw_leaves = rawLeaves

  const chunker = get(q, 'chunker')
  if (chunker !== undefined) {
    const m = /^size-(\d+)$/.exec(chunker)
    const size = m === null ? NaN : Number(m[1])
    if (!(size >= 1 && size <= MAX_CHUNK_SIZE)) {
      throw invalid('chunker', chunker, `must be size-<bytes> with 1 <= bytes <= ${MAX_CHUNK_SIZE}`)
    }
    params.chunk_size = size
  }

  const hash = get(q, 'hash')
  if (hash !== undefined && hash !== 'sha2-256') throw invalid('hash', hash, 'is not supported (only sha2-256)')
  const layout = get(q, 'layout')
  if (layout !== undefined && layout !== 'balanced') throw invalid('layout', layout, 'is not supported (only balanced)')
  if (parseBool(q, 'nocopy') === true) throw invalid('nocopy', 'true', 'is not supported (no filestore)')

  // AddParams says "shard" as shard_size > 0; a shard-size without shard=true means nothing to an add
  if (parseBool(q, 'shard') === true) {
    // an explicit 0 would read as "not sharded" downstream: refused like any size under the minimum
    if (params.shard_size !== undefined) checkShardSize(params.shard_size)
    params.shard_size ??= DEFAULT_SHARD_SIZE
  } else {
    delete params.shard_size
  }

  for (const [param, key] of [['wrap-with-directory', 'wrap_with_directory'], ['no-pin', 'no_pin'], ['progress', 'progress']] as const) {
    const v = parseBool(q, param)
    if (v !== undefined) params[key] = v
  }
  parseBool(q, 'recursive')
  parseBool(q, 'hidden')

  if (params.spread === true) {
    if (params.format === 'car') throw invalid('spread', 'true', 'cannot be used with format=car: a spread pin is made of a UnixFS directory\'s files, and a CAR is pinned whole')
    if ((params.shard_size ?? 0) > 0) throw invalid('spread', 'true', 'cannot be used with shard=true: choose one way to split the content')
  }
  // an add without a pin uploads blocks only: its pin options mean nothing
  if (params.no_pin !== true) validPinOptions(params, now)
  return { params, streamChannels: parseBool(q, 'stream-channels') ?? true, local: parseBool(q, 'local') ?? false }
}
