// What a trustless request asks for (trustless gateway spec; IPIP-402 dag-scope/entity-bytes, IPIP-412 CAR order
// and dups) and the headers that describe the answer: Content-Type, ETag, Content-Disposition, Content-Location.
import { createHash } from 'node:crypto'
import { InvalidParameterError, NotAcceptableError } from '../errors.js'
import { parseAccept, type MediaRange } from './http.js'
import type { CID } from 'multiformats/cid'

export type TrustlessFormat = 'raw' | 'car'
export type DagScope = 'block' | 'entity' | 'all'
export type CarOrder = 'dfs' | 'unk'

const MEDIA_TYPES: Readonly<Record<TrustlessFormat, string>> = {
  raw: 'application/vnd.ipld.raw',
  car: 'application/vnd.ipld.car'
}

/** `entity-bytes=from:to` as asked: negative numbers count from the end, `*` is the end. */
export interface EntityBytes {
  from: number
  to: number | '*'
}

/** What the client asked of a CAR (absent: it left the choice to the gateway). */
export interface CarAsk {
  order?: CarOrder
  dups?: boolean
  scope: DagScope
  bytes?: EntityBytes
}

export interface TrustlessRequest {
  format: TrustlessFormat
  /** For format car. */
  car?: CarAsk
  /**
   * The query the answer's Content-Location names when the format came from Accept rather than ?format (the
   * request's own, plus format and the CAR parameters Accept gave); undefined when the URL names the format.
   */
  location?: URLSearchParams
}

/** The CAR parameters of an Accept entry or of car-* query parameters, checked. */
interface CarVariant { version?: string, order?: string, dups?: string }

const ORDERS = new Set(['dfs', 'unk'])
const DUPS = new Set(['y', 'n'])

/** Why a CAR variant cannot be written here, or undefined when it can. */
function unsupported (v: CarVariant): string | undefined {
  if (v.version != null && v.version !== '1') return `version=${v.version} (only version=1 is written)`
  if (v.order != null && !ORDERS.has(v.order)) return `order=${v.order} (dfs or unk)`
  if (v.dups != null && !DUPS.has(v.dups)) return `dups=${v.dups} (y or n)`
  return undefined
}

/**
 * The trustless response a request asks for, or undefined for a deserialized one. `?format=raw|car` first ("When
 * both Accept HTTP header and format query parameter are present, format SHOULD take precedence"), else the most
 * preferred Accept entry naming application/vnd.ipld.raw or a CAR variant this gateway writes (wildcards never
 * select one). car-version, car-order and car-dups in the query take precedence over the Accept parameters.
 * InvalidParameterError (400) names a bad parameter; NotAcceptableError (406) answers an Accept that lists
 * nothing but CAR variants this gateway does not write.
 */
export function trustlessRequest (query: URLSearchParams, accept: string | undefined): TrustlessRequest | undefined {
  const accepted = acceptedFormat(parseAccept(accept))
  const fromAccept = accepted.match
  const asked = query.get('format')
  let format: TrustlessFormat
  let variant: CarVariant = {}
  if (asked != null && asked !== '') {
    if (asked !== 'raw' && asked !== 'car') throw new InvalidParameterError(`unsupported format "${asked}": expected raw or car`)
    format = asked
    // the CAR parameters of Accept count only when Accept names the format the URL asks for
    if (fromAccept?.format === format) variant = fromAccept.variant
  } else if (fromAccept != null) {
    format = fromAccept.format
    variant = fromAccept.variant
  } else if (accepted.onlyRefused) {
    throw new NotAcceptableError(`Accept lists only CAR variants this gateway does not write: ${accepted.refused.join(', ')}`)
  } else {
    return undefined
  }
  const location = asked == null || asked === '' ? locationQuery(query, format, variant) : undefined
  if (format === 'raw') return { format, location }

  for (const [param, key] of [['car-version', 'version'], ['car-order', 'order'], ['car-dups', 'dups']] as const) {
    const value = query.get(param)
    if (value == null || value === '') continue
    const why = unsupported({ [key]: value.toLowerCase() })
    if (why != null) throw new InvalidParameterError(`${param}=${value} is not supported: ${why}`)
    variant = { ...variant, [key]: value.toLowerCase() }
  }
  return { format, location, car: carAsk(query, variant) }
}

interface Accepted {
  /** The most preferred trustless entry this gateway can answer. */
  match?: { format: TrustlessFormat, variant: CarVariant }
  /** Why each CAR entry preferred to it cannot be answered. */
  refused: string[]
  /** Every entry of the header is a CAR variant this gateway does not write. */
  onlyRefused: boolean
}

function acceptedFormat (ranges: MediaRange[]): Accepted {
  const refused: string[] = []
  for (const r of ranges) {
    if (r.type === MEDIA_TYPES.raw) return { match: { format: 'raw', variant: {} }, refused, onlyRefused: false }
    if (r.type !== MEDIA_TYPES.car) continue
    const variant: CarVariant = { version: r.params.version, order: r.params.order, dups: r.params.dups }
    const why = unsupported(variant)
    if (why == null) return { match: { format: 'car', variant }, refused, onlyRefused: false }
    refused.push(`application/vnd.ipld.car; ${why}`)
  }
  return { refused, onlyRefused: refused.length > 0 && refused.length === ranges.length }
}

function carAsk (query: URLSearchParams, variant: CarVariant): CarAsk {
  const rawScope = query.get('dag-scope')
  const rawBytes = query.get('entity-bytes')
  const bytes = rawBytes == null ? undefined : parseEntityBytes(rawBytes)
  let scope: DagScope
  if (rawScope == null) {
    // "It implies dag-scope=entity"
    scope = bytes != null ? 'entity' : 'all'
  } else if (rawScope === 'block' || rawScope === 'entity' || rawScope === 'all') {
    scope = rawScope
  } else {
    throw new InvalidParameterError(`dag-scope=${rawScope} is not supported: expected block, entity or all`)
  }
  if (bytes != null && scope !== 'entity') {
    throw new InvalidParameterError(`entity-bytes selects bytes of an entity: it goes with dag-scope=entity (its default), not dag-scope=${scope}`)
  }
  return {
    order: variant.order as CarOrder | undefined,
    dups: variant.dups == null ? undefined : variant.dups === 'y',
    scope,
    bytes
  }
}

const INTEGER = /^-?\d{1,16}$/

/** `from:to`: integers (negative from the end), `to` may be `*`. InvalidParameterError says what is wrong. */
export function parseEntityBytes (raw: string): EntityBytes {
  const bad = (why: string): InvalidParameterError => new InvalidParameterError(`entity-bytes=${raw} is not valid: ${why}`)
  const parts = raw.split(':')
  if (parts.length !== 2) throw bad('expected from:to, e.g. 0:1023, 1024:* or -1024:*')
  const [f, t] = parts
  if (!INTEGER.test(f)) throw bad(`from ("${f}") is not an integer`)
  if (t !== '*' && !INTEGER.test(t)) throw bad(`to ("${t}") is not an integer or *`)
  const from = Number(f) + 0
  if (t === '*') return { from, to: '*' }
  const to = Number(t) + 0
  // counted from the same end, from after to can never select a byte
  if (((from >= 0 && to >= 0) || (from < 0 && to < 0)) && from > to) throw bad('from is after to')
  return { from, to }
}

/**
 * `bytes` against an entity of `size` bytes: the inclusive range it selects, 'outside' when it lies wholly outside
 * the entity, or 'empty' when it selects no byte (a zero-length range, an empty entity).
 */
export function resolveEntityBytes (bytes: EntityBytes, size: number): { from: number, to: number } | 'outside' | 'empty' {
  if (size === 0) return 'empty'
  const from = bytes.from >= 0 ? bytes.from : Math.max(0, size + bytes.from)
  const to = bytes.to === '*' ? size - 1 : bytes.to >= 0 ? Math.min(bytes.to, size - 1) : size + bytes.to
  if (from >= size || to < 0) return 'outside'
  if (to < from) return 'empty'
  return { from, to }
}

/** What a CAR answer holds and in which order: the request's wishes as this gateway meets them. */
export interface CarAnswer {
  order: CarOrder
  dups: boolean
  scope: DagScope
  bytes?: EntityBytes
}

/**
 * How a CAR request is answered. Blocks go in depth-first order (what "order=dfs" promises) unless the client asks
 * for order=unk of a whole DAG without duplicates: then they go as they arrive, which never waits on one slow
 * block. Without dups in the request there are none ("a Gateway should respond with dups=n if it has control over
 * the duplicate status").
 */
export function carAnswer (ask: CarAsk): CarAnswer {
  const dups = ask.dups === true
  const order: CarOrder = ask.order === 'unk' && ask.scope === 'all' && !dups ? 'unk' : 'dfs'
  return { order, dups, scope: ask.scope, bytes: ask.bytes }
}

/** "The Trustless Gateway MUST always respond with a Content-Type header that includes information about all supported and known parameters". */
export function carContentType (answer: CarAnswer): string {
  return `${MEDIA_TYPES.car}; version=1; order=${answer.order}; dups=${answer.dups ? 'y' : 'n'}`
}

/**
 * The ETag of a CAR answer: the CID the path leads to, the path when there is one (its blocks are in the CAR),
 * the scope, the entity bytes, order and dups. Strong when the bytes are fixed by these (order=dfs), weak when
 * the order is that of arrival ("When a gateway can't guarantee byte-for-byte identical responses, a weak etag
 * should be used").
 */
export function carEtag (cid: CID, immutablePath: string, answer: CarAnswer): string {
  const parts = [`${cid}.car`, answer.scope]
  if (answer.bytes != null) parts.push(`${answer.bytes.from}:${answer.bytes.to}`)
  parts.push(answer.order, answer.dups ? 'dups' : 'nodups')
  if (immutablePath !== `/ipfs/${cid}`) parts.push(createHash('sha256').update(immutablePath).digest('base64url').slice(0, 16))
  const tag = `"${parts.join('.')}"`
  return answer.order === 'dfs' ? tag : `W/${tag}`
}

/** "Content-Disposition ... MUST be returned and set to attachment"; `<cid>.bin` for a block, `<cid>.car` for a CAR. */
export function trustlessDisposition (cid: CID, format: TrustlessFormat): string {
  return `attachment; filename="${cid}.${format === 'raw' ? 'bin' : 'car'}"`
}

/** The request's query with the negotiated format and CAR parameters named, as Content-Location gives it. */
function locationQuery (query: URLSearchParams, format: TrustlessFormat, variant: CarVariant): URLSearchParams {
  const out = new URLSearchParams(query)
  out.set('format', format)
  if (format === 'car') {
    for (const [key, value] of Object.entries(variant)) {
      if (value != null && !out.has(`car-${key}`)) out.set(`car-${key}`, value)
    }
  }
  return out
}
