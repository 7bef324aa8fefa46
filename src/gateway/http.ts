// Small HTTP pieces of the gateway: Range (one range; RFC 9110 §14), If-None-Match, Accept and ?format.
import { InvalidParameterError } from '../errors.js'

export interface ByteRange {
  /** First byte, inclusive. */
  start: number
  /** Last byte, inclusive. */
  end: number
}

/**
 * Reads a Range header against a body of `size` bytes: a range, 'unsatisfiable' (-> 416), or undefined when
 * the header is absent, malformed or asks for several ranges (then the whole body is sent, as RFC 9110 allows).
 */
export function parseRange (header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (header == null) return undefined
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (m == null || (m[1] === '' && m[2] === '')) return undefined
  if (m[1] === '') {
    // suffix: the last N bytes
    const n = Number(m[2])
    if (n === 0 || size === 0) return 'unsatisfiable'
    return { start: Math.max(0, size - n), end: size - 1 }
  }
  const start = Number(m[1])
  const end = m[2] === '' ? Infinity : Number(m[2])
  if (end < start) return undefined
  if (start >= size) return 'unsatisfiable'
  return { start, end: Math.min(end, size - 1) }
}

/** The first of `etags` an If-None-Match header matches (weak comparison, `*` matches any), if any. */
export function matchingEtag (header: string | undefined, etags: string[]): string | undefined {
  if (header == null || header === '' || etags.length === 0) return undefined
  const listed = header.split(',').map(t => t.trim().replace(/^W\//, ''))
  if (listed.includes('*')) return etags[0]
  return etags.find(e => listed.includes(e.replace(/^W\//, '')))
}

/** Whether an If-Range header (an ETag or a date) lets the Range header apply to a body with `etag`. */
export function ifRangeAllows (header: string | undefined, etag: string): boolean {
  if (header == null) return true
  // a date never matches here: our validators are ETags (strong comparison, so no W/)
  return header.trim() === etag
}

export type TrustlessFormat = 'raw' | 'car'

const FORMAT_BY_TYPE: Readonly<Record<string, TrustlessFormat>> = {
  'application/vnd.ipld.raw': 'raw',
  'application/vnd.ipld.car': 'car'
}

/**
 * The trustless response asked for: `?format=raw|car` first, else an Accept header naming
 * application/vnd.ipld.raw or application/vnd.ipld.car (wildcards never select one).
 */
export function trustlessFormat (query: URLSearchParams, accept: string | undefined): TrustlessFormat | undefined {
  const format = query.get('format')
  if (format != null && format !== '') {
    if (format === 'raw' || format === 'car') return format
    throw new InvalidParameterError(`unsupported format "${format}": expected raw or car`)
  }
  for (const type of mediaTypes(accept)) {
    const f = FORMAT_BY_TYPE[type]
    if (f != null) return f
  }
  return undefined
}

/** The media types an Accept header lists with q > 0, in order, parameters dropped, lower-cased. */
export function mediaTypes (accept: string | undefined): string[] {
  if (accept == null) return []
  const out: string[] = []
  for (const part of accept.split(',')) {
    const [type, ...params] = part.split(';').map(s => s.trim().toLowerCase())
    const q = params.find(p => p.startsWith('q='))
    if (type !== '' && (q == null || Number(q.slice(2)) > 0)) out.push(type)
  }
  return out
}
