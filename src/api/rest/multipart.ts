// Kubo-style multipart/form-data add bodies (go-ipfs-files' multipart reader), streamed: one part at a time,
// each file's bytes flowing straight from the socket to the consumer with backpressure, nothing buffered.
import busboy from 'busboy'
import { InvalidBodyError } from '../../errors.js'
import type { AbortOptions, AddEntry } from '../../components.js'
import type { IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'

const DIRECTORY = 'application/x-directory'
const SYMLINK = 'application/symlink'

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

interface Part {
  path: string
  type: string
  stream: Readable
}

/**
 * The entries of a multipart add body, in order. Throws InvalidBodyError at once when the request is not
 * multipart/form-data with a boundary; body errors (truncation, bad headers) surface from the iteration or
 * from the content being read. A file's content must be read (or is skipped) before the next entry is
 * delivered; ending the iteration early stops reading the request.
 */
export function parseMultipart (req: IncomingMessage, options: AbortOptions = {}): AsyncIterable<AddEntry> {
  const type = req.headers['content-type'] ?? ''
  if (!/^multipart\/form-data\s*(;|$)/i.test(type)) {
    throw new InvalidBodyError(`request body must be multipart/form-data, not "${type}"`)
  }
  let parser: busboy.Busboy
  try {
    // preservePath: the relative path is the whole point of a Kubo filename
    parser = busboy({ headers: req.headers, preservePath: true })
  } catch (err) {
    throw malformed((err as Error).message)
  }
  return entries(req, parser, options.signal)
}

async function * entries (req: IncomingMessage, parser: busboy.Busboy, signal?: AbortSignal): AsyncGenerator<AddEntry> {
  const parts: Part[] = []
  let current: Part | undefined
  let ended = false
  let failure: Error | undefined
  let wake: (() => void) | undefined
  const notify = (): void => { wake?.(); wake = undefined }
  const fail = (err: Error): void => {
    if (failure !== undefined) return
    failure = err
    // a reader blocked on the current file would otherwise wait for bytes that will never come
    current?.stream.destroy(err)
    notify()
  }

  parser.on('file', (_name, stream, info) => {
    // a file stream may error before anyone reads it (truncated body): never let that be unhandled
    stream.on('error', () => {})
    // busboy reports an application/octet-stream part without a filename as a file with no name
    parts.push({ path: info.filename ?? '', type: info.mimeType, stream })
    notify()
  })
  parser.on('close', () => { ended = true; notify() })
  parser.on('error', (err: Error) => { fail(malformed(err.message)) })
  const onClose = (): void => { if (!req.complete) fail(malformed('request ended before the body was complete')) }
  const onAbort = (): void => { fail(signal?.reason instanceof Error ? signal.reason : new Error('aborted')) }
  req.on('close', onClose)
  req.on('error', () => {}) // reported through 'close'
  signal?.addEventListener('abort', onAbort, { once: true })
  req.pipe(parser)

  try {
    while (true) {
      if (failure !== undefined) throw failure
      const part = current = parts.shift()
      if (part !== undefined) {
        yield toEntry(part, () => failure)
        // skip whatever the consumer left unread, so that busboy can move on to the next part
        if (!part.stream.readableEnded && !part.stream.destroyed) await drain(part.stream)
        continue
      }
      if (ended) return
      await new Promise<void>(resolve => { wake = resolve })
    }
  } finally {
    signal?.removeEventListener('abort', onAbort)
    req.off('close', onClose)
    req.unpipe(parser)
    for (const part of parts) part.stream.destroy()
    // discard the rest of the body so the response can still be delivered
    if (!req.complete) req.resume()
  }
}

function toEntry ({ path: filename, type, stream }: Part, failure: () => Error | undefined): AddEntry {
  const path = decodePartPath(filename)
  if (type === DIRECTORY) {
    stream.resume()
    return { path }
  }
  if (type === SYMLINK) throw malformed(`"${path}" is a symlink, which cannot be added`)
  return { path, content: content(stream, failure) }
}

async function * content (stream: Readable, failure: () => Error | undefined): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of stream) yield chunk as Uint8Array
  } catch (err) {
    throw failure() ?? malformed((err as Error).message)
  }
}

async function drain (stream: Readable): Promise<void> {
  await new Promise<void>(resolve => {
    stream.once('end', resolve).once('close', resolve).resume()
  })
}

/** For format=car: the body must hold exactly one file part, the CAR itself. */
export async function * singleFile (entries: AsyncIterable<AddEntry>): AsyncGenerator<AddEntry> {
  let count = 0
  for await (const entry of entries) {
    if (entry.content === undefined) throw new InvalidBodyError(`format=car expects one file part, got directory "${entry.path}"`)
    if (++count > 1) throw new InvalidBodyError('format=car expects exactly one file part, got several')
    yield entry
  }
  if (count === 0) throw new InvalidBodyError('format=car expects one file part, got none')
}
