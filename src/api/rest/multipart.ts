// Kept hand-written for a measured reason (docs/decisions/0016-own-multipart-parser.md): busboy drops parts that
// are not form-data, and this parser read 200 MiB in one part in 55-125 ms against busboy's 400-940 ms.
//
// Kubo-style multipart add bodies, read as Kubo and IPFS Cluster read them (boxo's files package,
// multipartfile.go): a part's filename counts whatever its disposition type (form-data, file, attachment: older
// go-ipfs-files clients sent `file; filename=...`, Kubo's own RPC client sends `attachment`), `filename*` (RFC 5987)
// wins over `filename`, and a part's Content-Type says what it is (a directory, a symlink whose body is its
// target, or a file). Streamed: a file's bytes flow from the socket to the consumer as they come, with
// backpressure, nothing buffered but a symlink's target and a part's headers.
import { raceSignal } from 'race-signal'
import { InvalidBodyError } from '../../errors.js'
import type { AbortOptions, AddEntry } from '../../components.js'
import type { IncomingMessage } from 'node:http'

const DIRECTORY = 'application/x-directory'
const SYMLINK = 'application/symlink'
const FILE = 'application/octet-stream'
/** boxo reads a part of this type as a directory too. */
const FORM_DATA = 'multipart/form-data'

/** Most bytes of one part's headers: Kubo's are ~150 bytes; more is not an add body. */
export const MAX_HEADER_BYTES = 64 * 1024
/** Most bytes of a symlink's target (Linux paths stop at 4096): it is held in memory. */
export const MAX_SYMLINK_BYTES = 64 * 1024

const CRLF = Buffer.from('\r\n')
const HEADERS_END = Buffer.from('\r\n\r\n')
const DASH_DASH = Buffer.from('--')
/** What may follow a boundary for it to be one: '-', space, tab, CR, LF. */
const DELIMITER_END = new Set([0x2d, 0x20, 0x09, 0x0d, 0x0a])

function malformed (problem: string): InvalidBodyError {
  return new InvalidBodyError(`malformed multipart body: ${problem}`)
}

/** go-ipfs-files url-escapes each part's relative path (url.QueryEscape), so undo that as Go does. */
export function decodePartPath (filename: string): string {
  let decoded: string
  try {
    decoded = decodeURIComponent(filename.replaceAll('+', ' '))
  } catch {
    decoded = filename // not escaped after all: keep it as sent
  }
  const segments = decoded.split('/').filter(s => s !== '' && s !== '.')
  if (segments.includes('..')) throw malformed(`path "${decoded}" leaves its directory`)
  return segments.join('/')
}

/**
 * A header value as Go's mime.ParseMediaType reads it: a type, then `; key=value` parameters (values a token or
 * a quoted string), keys lowercased. A parameter that does not parse ends the list (the ones before it stay).
 */
export function parseHeaderValue (value: string): { type: string, params: Map<string, string> } {
  const params = new Map<string, string>()
  let i = value.indexOf(';')
  const type = (i === -1 ? value : value.slice(0, i)).trim().toLowerCase()
  while (i !== -1 && i < value.length) {
    // at a ';'
    const eq = value.indexOf('=', i + 1)
    if (eq === -1) break
    const key = value.slice(i + 1, eq).trim().toLowerCase()
    if (key === '' || /[\s"]/.test(key)) break
    let j = eq + 1
    while (value[j] === ' ' || value[j] === '\t') j++
    let v = ''
    if (value[j] === '"') {
      j++
      while (j < value.length && value[j] !== '"') {
        if (value[j] === '\\' && j + 1 < value.length) j++
        v += value[j++]
      }
      if (j >= value.length) break // unterminated
      j++
    } else {
      const end = value.slice(j).search(/[;\s]/)
      v = end === -1 ? value.slice(j) : value.slice(j, j + end)
      j = end === -1 ? value.length : j + end
    }
    params.set(key, v)
    i = value.indexOf(';', j)
  }
  return { type, params }
}

/** An RFC 5987 value (`utf-8''caf%C3%A9.txt`) decoded, or undefined when it is not one (Go keeps UTF-8 and US-ASCII). */
function decodeExtValue (value: string): string | undefined {
  const m = /^(utf-8|us-ascii)'[^']*'(.*)$/i.exec(value)
  if (m == null) return undefined
  try {
    return decodeURIComponent(m[2])
  } catch {
    return undefined
  }
}

interface PartInfo {
  /** Relative path from the filename, decoded; '' when the part has none. */
  path: string
  kind: 'file' | 'directory' | 'symlink' | 'field'
}

/** What a part is, from its headers (names lowercased). */
function describePart (headers: Map<string, string>): PartInfo {
  const disposition = parseHeaderValue(headers.get('content-disposition') ?? '')
  const filename = decodeExtValue(disposition.params.get('filename*') ?? '') ?? disposition.params.get('filename')
  const type = parseHeaderValue(headers.get('content-type') ?? '').type
  const path = filename != null ? decodePartPath(filename) : ''
  if (type === DIRECTORY || type === FORM_DATA) return { path, kind: 'directory' }
  if (type === SYMLINK) return { path, kind: 'symlink' }
  // a part with no filename and no file type is a form field, not a file (as busboy read it, which cairn used before)
  if (filename == null && type !== FILE) return { path, kind: 'field' }
  return { path, kind: 'file' }
}

/**
 * The entries of a multipart add body, in order. Throws InvalidBodyError at once when the request is not
 * multipart/form-data (or multipart/mixed) with a boundary; body errors (truncation, bad headers) surface from
 * the iteration or from the content being read. A file's content must be read (or is skipped) before the next
 * entry is delivered; ending the iteration early stops reading the request.
 */
export function parseMultipart (req: IncomingMessage, options: AbortOptions = {}): AsyncIterable<AddEntry> {
  const contentType = req.headers['content-type'] ?? ''
  const { type, params } = parseHeaderValue(contentType)
  if (type !== 'multipart/form-data' && type !== 'multipart/mixed') {
    throw new InvalidBodyError(`request body must be multipart/form-data, not "${contentType}"`)
  }
  const boundary = params.get('boundary') ?? ''
  if (boundary === '') throw malformed('the Content-Type header has no boundary')
  if (boundary.length > 200) throw malformed('the boundary is longer than 200 characters')
  return entries(req, new PartReader(req, boundary, options.signal))
}

async function * entries (req: IncomingMessage, reader: PartReader): AsyncGenerator<AddEntry> {
  try {
    await reader.skipPreamble()
    while (true) {
      const headers = await reader.nextPart()
      if (headers === undefined) return
      const part = describePart(headers)
      if (part.kind === 'file') {
        yield { path: part.path, content: reader.content(part.path) }
        // whatever the consumer left unread, so that the next part can be found
        await reader.skipContent(part.path)
      } else if (part.kind === 'symlink') {
        yield { path: part.path, link: await reader.readSymlink(part.path) }
      } else {
        await reader.skipContent(part.path)
        if (part.kind === 'directory') yield { path: part.path }
      }
    }
  } finally {
    reader.close()
    // discard the rest of the body so the response can still be delivered
    if (!req.complete) req.resume()
  }
}

/** Reads a multipart body part by part from the request, pulling chunks only as they are needed. */
class PartReader {
  private readonly source: AsyncIterator<Buffer>
  private readonly signal?: AbortSignal
  private readonly boundary: string
  /** CRLF, '--', the boundary: what ends a part's content (and starts the next part). */
  private readonly delimiter: Buffer
  /** Bytes read and not used yet. */
  private buf: Buffer
  /** Between a part's headers and the delimiter that ends its content. */
  private inContent = false
  /** Counts parts, so a content iterator kept past its part reads nothing more. */
  private part = 0

  constructor (req: IncomingMessage, boundary: string, signal?: AbortSignal) {
    // not destroyed on return: the request must stay open for the response
    this.source = req.iterator({ destroyOnReturn: false })
    this.signal = signal
    this.boundary = boundary
    this.delimiter = Buffer.from(`\r\n--${boundary}`)
    // the first delimiter has no CRLF before it when there is no preamble: read as if there were one
    this.buf = Buffer.from(CRLF)
  }

  close (): void {
    void this.source.return?.()
  }

  /** Appends the next chunk of the body; false at its end. */
  private async more (): Promise<boolean> {
    let next: IteratorResult<Buffer>
    try {
      next = await raceSignal(this.source.next(), this.signal)
    } catch (err) {
      if (this.signal?.aborted === true) throw this.signal.reason
      throw malformed(`the request ended before the body was complete (${(err as Error).message})`)
    }
    if (next.done === true) return false
    this.buf = this.buf.length === 0 ? next.value : Buffer.concat([this.buf, next.value])
    return true
  }

  /** Skips what comes before the first boundary line. */
  async skipPreamble (): Promise<void> {
    while (true) {
      const i = this.buf.indexOf(this.delimiter)
      if (i !== -1) {
        this.buf = this.buf.subarray(i + this.delimiter.length)
        return
      }
      // keep what could be the start of the delimiter
      this.buf = this.buf.subarray(partialDelimiterAt(this.buf, this.delimiter))
      if (!await this.more()) throw malformed(`no boundary line "--${this.boundary}" in the body`)
    }
  }

  /**
   * After a delimiter: the next part's headers (names lowercased), or undefined at the closing delimiter
   * (`--boundary--`; what follows it is ignored).
   */
  async nextPart (): Promise<Map<string, string> | undefined> {
    this.part++
    while (this.buf.length < 2) {
      if (!await this.more()) throw malformed(`the body ended without its closing boundary "--${this.boundary}--"`)
    }
    if (this.buf.subarray(0, 2).equals(DASH_DASH)) return undefined
    // the rest of the boundary line: optional transport padding, then CRLF
    let eol: number
    while ((eol = this.buf.indexOf(CRLF)) === -1) {
      if (this.buf.length > 1024) throw malformed(`a boundary line "--${this.boundary}" is followed by other text`)
      if (!await this.more()) throw malformed(`the body ended without its closing boundary "--${this.boundary}--"`)
    }
    if (!/^[ \t]*$/.test(this.buf.toString('latin1', 0, eol))) throw malformed(`a boundary line "--${this.boundary}" is followed by other text`)
    this.buf = this.buf.subarray(eol + CRLF.length)
    // the headers end at an empty line (which may be the first line: no headers)
    let end: number
    while (true) {
      if (this.buf.subarray(0, 2).equals(CRLF)) {
        end = 0
        break
      }
      end = this.buf.indexOf(HEADERS_END)
      if (end !== -1) {
        end += CRLF.length
        break
      }
      if (this.buf.length > MAX_HEADER_BYTES) throw malformed(`a part's headers are longer than ${MAX_HEADER_BYTES} bytes`)
      if (!await this.more()) throw malformed('the body ended in the headers of a part')
    }
    const headers = parseHeaders(this.buf.toString('utf8', 0, end))
    this.buf = this.buf.subarray(end + CRLF.length)
    this.inContent = true
    return headers
  }

  /** The current part's content, up to the next delimiter. */
  async * content (path: string): AsyncGenerator<Uint8Array> {
    const part = this.part
    const ended = (): InvalidBodyError => malformed(`the body ended in the middle of "${path}"`)
    let from = 0
    while (this.inContent && this.part === part) {
      const i = this.buf.indexOf(this.delimiter, from)
      if (i !== -1) {
        const after = i + this.delimiter.length
        // as Go's reader: the boundary followed by anything but '-', space, tab, CR, LF or the end of the body is content
        if (after === this.buf.length && await this.more()) continue
        if (after < this.buf.length && !DELIMITER_END.has(this.buf[after])) {
          from = i + 1
          continue
        }
        const data = this.buf.subarray(0, i)
        this.buf = this.buf.subarray(after)
        this.inContent = false
        if (data.length > 0) yield data
        return
      }
      // all but what could be the start of the delimiter is content
      const keep = partialDelimiterAt(this.buf, this.delimiter)
      from = 0
      if (keep > 0) {
        const data = this.buf.subarray(0, keep)
        this.buf = this.buf.subarray(keep)
        yield data
      }
      if (this.part === part && !await this.more()) throw ended()
    }
  }

  /** Reads past the rest of the current part's content. */
  async skipContent (path: string): Promise<void> {
    for await (const _ of this.content(path)) { /* discarded */ }
  }

  /** A symlink part's content: the link's target, as text. */
  async readSymlink (path: string): Promise<string> {
    const chunks: Uint8Array[] = []
    let bytes = 0
    for await (const chunk of this.content(path)) {
      bytes += chunk.byteLength
      if (bytes > MAX_SYMLINK_BYTES) throw malformed(`the target of symlink "${path}" is longer than ${MAX_SYMLINK_BYTES} bytes`)
      chunks.push(chunk)
    }
    return Buffer.concat(chunks).toString('utf8')
  }
}

/** Where the longest end of `buf` that could be the start of `delimiter` begins (buf.length when none could). */
function partialDelimiterAt (buf: Buffer, delimiter: Buffer): number {
  for (let i = buf.indexOf(delimiter[0], Math.max(0, buf.length - delimiter.length + 1)); i !== -1; i = buf.indexOf(delimiter[0], i + 1)) {
    if (buf.subarray(i).equals(delimiter.subarray(0, buf.length - i))) return i
  }
  return buf.length
}

/** A part's header lines (folded lines joined), by lowercased name; the first of a repeated name wins, as Go's Get. */
function parseHeaders (text: string): Map<string, string> {
  const headers = new Map<string, string>()
  let last: string | undefined
  for (const line of text.split('\r\n')) {
    if (line === '') continue
    if ((line[0] === ' ' || line[0] === '\t') && last !== undefined) {
      headers.set(last, `${headers.get(last) ?? ''} ${line.trim()}`)
      continue
    }
    const colon = line.indexOf(':')
    if (colon <= 0) throw malformed(`a part's header line "${line.length > 100 ? `${line.slice(0, 100)}...` : line}" is not "Name: value"`)
    const name = line.slice(0, colon).trim().toLowerCase()
    if (headers.has(name)) {
      last = undefined
      continue
    }
    headers.set(name, line.slice(colon + 1).trim())
    last = name
  }
  return headers
}

/** For format=car: the body must hold exactly one file part, the CAR itself. */
export async function * singleFile (entries: AsyncIterable<AddEntry>): AsyncGenerator<AddEntry> {
  let count = 0
  for await (const entry of entries) {
    if (entry.content === undefined) throw new InvalidBodyError(`format=car expects one file part, got ${entry.link !== undefined ? 'symlink' : 'directory'} "${entry.path}"`)
    if (++count > 1) throw new InvalidBodyError('format=car expects exactly one file part, got several')
    yield entry
  }
  if (count === 0) throw new InvalidBodyError('format=car expects one file part, got none')
}
