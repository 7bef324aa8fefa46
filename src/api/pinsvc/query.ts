// Request parsing at the edge of the Pinning Service API: the Pin body (zod) and GET /pins's query.
// Every bad value is a 400 that names the field and what was wrong.
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import { InvalidBodyError, InvalidParameterError } from '../../errors.js'
import { parseCid } from '../../utils/cid.js'
import { pinKey, type PinKey } from '../../utils/keys.js'
import { parseRfc3339 } from '../rest/pin-options.js'
import { SVC_STATUSES, type SvcStatus } from './status.js'
import type { CID } from 'multiformats/cid'

export const MAX_LIMIT = 1000
export const DEFAULT_LIMIT = 10
const MAX_CIDS = 10
const MAX_NAME = 255
const MAX_ORIGINS = 20
const MAX_META_KEYS = 1000

export const MATCHES = ['exact', 'iexact', 'partial', 'ipartial'] as const
export type Match = typeof MATCHES[number]

// checked before the record: it is built by assignment, where "__proto__" sets the prototype and the key is lost
const metaSchema = z.unknown()
  .refine(m => typeof m !== 'object' || m === null || !Object.hasOwn(m, '__proto__'), 'meta key "__proto__" is not allowed')
  .pipe(z.record(z.string(), z.string({ error: 'meta values must be strings' }), { error: 'meta must be an object of strings' }))
  .refine(m => Object.keys(m).length <= MAX_META_KEYS, `meta may hold at most ${MAX_META_KEYS} keys`)

const originSchema = z.string({ error: 'origins must be multiaddr strings' }).transform((o, ctx) => {
  try {
    const ma = multiaddr(o)
    if (!ma.getComponents().some(c => c.name === 'p2p')) {
      ctx.addIssue({ code: 'custom', message: `origin "${o}" must end with /p2p/<peer ID>` })
      return z.NEVER
    }
    return ma.toString()
  } catch {
    ctx.addIssue({ code: 'custom', message: `origin "${o}" is not a valid multiaddr` })
    return z.NEVER
  }
})

/** The spec's Pin object; fields it does not define are ignored. */
const pinSchema = z.object({
  cid: z.string({ error: 'cid is required and must be a string' }),
  name: z.string({ error: 'name must be a string' }).max(MAX_NAME, `name may be at most ${MAX_NAME} characters`).optional(),
  origins: z.array(originSchema, { error: 'origins must be an array of multiaddrs' })
    .max(MAX_ORIGINS, `origins may hold at most ${MAX_ORIGINS} multiaddrs`)
    .refine(a => new Set(a).size === a.length, 'origins must be unique').optional(),
  meta: metaSchema.optional()
}, { error: 'the body must be a JSON Pin object' })

export interface PinBody {
  /** As the client gave it (validated). */
  cid: string
  /** It, parsed. */
  root: CID
  name: string
  origins: string[]
  meta: Record<string, string>
}

export function parsePinBody (body: unknown): PinBody {
  if (body === undefined) throw new InvalidBodyError('the body must be a JSON Pin object, e.g. {"cid": "bafy..."}')
  const parsed = pinSchema.safeParse(body)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const where = issue.path.length > 0 && !issue.message.includes(String(issue.path[0])) ? `${issue.path.join('.')}: ` : ''
    throw new InvalidBodyError(`invalid Pin object: ${where}${issue.message}`)
  }
  const { cid, name, origins, meta } = parsed.data
  const root = parseCid(cid) // InvalidCIDError naming it
  return { cid, root, name: name ?? '', origins: origins ?? [], meta: meta ?? {} }
}

export interface ListQuery {
  /** pinset keys of the cid filter */
  cids?: PinKey[]
  name?: string
  match: Match
  statuses: Set<SvcStatus>
  /** ISO with ms: created < before */
  before?: string
  /** ISO with ms: created > after */
  after?: string
  limit: number
  meta?: Record<string, string>
}

/** 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z */
const MIN_TIME = -62167219200000
const MAX_TIME = 253402300799999
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$/

function invalid (param: string, value: string, why: string): InvalidParameterError {
  const shown = value.length > 100 ? `${value.slice(0, 100)}...` : value
  return new InvalidParameterError(`invalid ${param} "${shown}": ${why}`)
}

/**
 * An RFC 3339 timestamp as the ISO string (ms precision) to compare `created` against. Our `created` values
 * have ms precision, so a finer `before` rounds up (created < 12.3456 is created <= 12.345) and a finer
 * `after` rounds down.
 */
function parseTime (param: 'before' | 'after', value: string): string {
  const m = RFC3339.exec(value)
  // parseRfc3339 refuses what Date.parse cannot read, and the dates it rolls over (2024-02-30 as March 1st)
  if (m === null || parseRfc3339(value) === undefined) throw invalid(param, value, 'expected an RFC 3339 date-time such as 2020-07-27T17:32:28Z')
  const ms = Date.parse(value)
  const finer = (m[8] ?? '').length > 3 && /[1-9]/.test(m[8].slice(3))
  const t = param === 'before' && finer ? ms + 1 : ms
  // keep the 4-digit-year ISO form, which sorts as the index keys do
  if (t < MIN_TIME || t > MAX_TIME) throw invalid(param, value, 'out of range')
  return new Date(t).toISOString()
}

/**
 * GET /pins's query. `status` has no default in the spec; its one rule is "when no filter is provided, only
 * successful pins are returned": so with none of cid, name, status, before, after, meta the list is `pinned`
 * only, and with any of them and no `status`, every status (`limit` and `match` are not filters).
 */
export function parseListQuery (q: URLSearchParams): ListQuery {
  // the lists (cid, status) may also come as repeated parameters; a repeated single value is refused, since
  // joined it would be searched for as one ("name=a&name=b" would look for the name "a,b")
  const list = (name: string): string | undefined => {
    const all = q.getAll(name)
    return all.length === 0 ? undefined : all.join(',')
  }
  const one = (name: string): string | undefined => {
    const all = q.getAll(name)
    if (all.length > 1) throw invalid(name, all.join('&'), 'given more than once')
    return all[0]
  }
  const out: ListQuery = { match: 'exact', statuses: new Set(SVC_STATUSES), limit: DEFAULT_LIMIT }

  const cid = list('cid')
  if (cid !== undefined) {
    const items = cid.split(',')
    if (items.some(c => c === '') || items.length > MAX_CIDS) throw invalid('cid', cid, `expected 1 to ${MAX_CIDS} comma-separated CIDs`)
    out.cids = [...new Set(items.map(c => pinKey(parseCid(c))))]
  }

  const name = one('name')
  if (name !== undefined) {
    if (name.length > MAX_NAME) throw invalid('name', name, `longer than ${MAX_NAME} characters`)
    out.name = name
  }
  const match = one('match')
  if (match !== undefined) {
    if (!(MATCHES as readonly string[]).includes(match)) throw invalid('match', match, `expected one of ${MATCHES.join('|')}`)
    out.match = match as Match
  }

  const status = list('status')
  if (status !== undefined) {
    const items = status.split(',')
    const bad = items.find(s => !(SVC_STATUSES as readonly string[]).includes(s))
    if (bad !== undefined) throw invalid('status', status, `"${bad}" is not one of ${SVC_STATUSES.join(',')}`)
    out.statuses = new Set(items as SvcStatus[])
  }

  const before = one('before')
  if (before !== undefined) out.before = parseTime('before', before)
  const after = one('after')
  if (after !== undefined) out.after = parseTime('after', after)

  const limit = one('limit')
  if (limit !== undefined) {
    const n = /^\d{1,7}$/.test(limit) ? Number(limit) : NaN
    if (!(n >= 1 && n <= MAX_LIMIT)) throw invalid('limit', limit, `expected an integer from 1 to ${MAX_LIMIT}`)
    out.limit = n
  }

  const meta = one('meta')
  if (meta !== undefined) {
    let value: unknown
    try {
      value = JSON.parse(meta)
    } catch {
      throw invalid('meta', meta, 'expected a JSON object such as {"app_id":"..."}')
    }
    const parsed = metaSchema.safeParse(value)
    if (!parsed.success) throw invalid('meta', meta, parsed.error.issues[0].message)
    out.meta = parsed.data
  }
  const filtered = status !== undefined || [out.cids, out.name, out.before, out.after, out.meta].some(f => f !== undefined)
  if (!filtered) out.statuses = new Set(['pinned'])
  return out
}

/** The spec's text matching strategies for the name filter. */
export function matchesName (name: string, wanted: string, match: Match): boolean {
  switch (match) {
    case 'exact': return name === wanted
    case 'iexact': return name.toLowerCase() === wanted.toLowerCase()
    case 'partial': return name.includes(wanted)
    case 'ipartial': return name.toLowerCase().includes(wanted.toLowerCase())
  }
}

/** Every key of the filter with the same value. */
export function matchesMeta (meta: Record<string, string>, wanted: Record<string, string>): boolean {
  return Object.entries(wanted).every(([k, v]) => Object.hasOwn(meta, k) && meta[k] === v)
}
