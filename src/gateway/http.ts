// Small HTTP pieces of the gateway: Range (one range; RFC 9110 §14), If-None-Match, Accept, Cache-Control.

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

/** One media range of an Accept header: type lower-cased, parameters by lower-cased name (q apart). */
export interface MediaRange {
  type: string
  params: Readonly<Record<string, string>>
  q: number
}

/**
 * The media ranges an Accept header lists with q > 0, most preferred first (RFC 9110 §12.5.1; equal weights keep
 * their order). A malformed q counts as 1.
 */
export function parseAccept (accept: string | undefined): MediaRange[] {
  if (accept == null) return []
  const out: MediaRange[] = []
  for (const part of accept.split(',')) {
    const [type, ...rest] = part.split(';').map(s => s.trim())
    if (type === '') continue
    const params: Record<string, string> = {}
    let q = 1
    for (const p of rest) {
      const eq = p.indexOf('=')
      if (eq < 0) continue
      const name = p.slice(0, eq).trim().toLowerCase()
      const value = p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1')
      if (name === 'q') {
        const n = Number(value)
        if (value !== '' && Number.isFinite(n)) q = n
      } else {
        params[name] = value.toLowerCase()
      }
    }
    if (q > 0) out.push({ type: type.toLowerCase(), params, q })
  }
  return out.map((r, i) => ({ r, i })).sort((a, b) => b.r.q - a.r.q || a.i - b.i).map(({ r }) => r)
}

/** The media types an Accept header lists with q > 0, most preferred first, parameters dropped, lower-cased. */
export function mediaTypes (accept: string | undefined): string[] {
  return parseAccept(accept).map(r => r.type)
}

/** The directives of a Cache-Control header, lower-cased, values dropped (`max-age=0, only-if-cached`). */
export function cacheDirectives (header: string | undefined): Set<string> {
  const out = new Set<string>()
  for (const part of (header ?? '').split(',')) {
    const name = part.split('=')[0].trim().toLowerCase()
    if (name !== '') out.add(name)
  }
  return out
}
