// The gateway's routes: /ipfs/<cid>/<path> (immutable, cached for a year) and /mirror/<name>/<path> (the newest
// root of a mirror, cached for a minute, symlinks followed inside it, npm packuments). Files with type, length,
// ranges and ETags; directories as index.html or a listing; trustless raw blocks and CARs (trustless.ts,
// dag-scope.ts); Cache-Control: only-if-cached served from local blocks only (blocks.ts).
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import express from 'express'
import { exporter } from 'ipfs-unixfs-exporter'
import { CID } from 'multiformats/cid'
import { InvalidContentError, InvalidParameterError, NotFoundError } from '../errors.js'
import { clientGone, queryOf, requestSignals, sendJson } from '../api/common.js'
import { restErrorBody, toHttpError } from '../api/errors.js'
import { concatChunks } from '../utils/bytes.js'
import { checkReadable, parseCid } from '../utils/cid.js'
import { cachedBlocks, localProbe, timedBlocks, type GatewayIpfs } from './blocks.js'
import { carStream } from './car.js'
import { OCTET_STREAM, SNIFF_BYTES, sniff, typeByName } from './content-type.js'
import { fileBelow, scopeBlocks, terminalBelow, type ScopeWalk } from './dag-scope.js'
import { cacheDirectives, ifRangeAllows, matchingEtag, parseRange } from './http.js'
import { listDirectory, renderHtml, type Listing } from './listing.js'
import { acceptsNpm, MAX_PACKUMENT_BYTES, PACKUMENT_FILE, registryBase, rewritePackument } from './npm.js'
import { encodeSegment, pathSegments, resolvePath, type Resolved } from './path.js'
import { carAnswer, carContentType, carEtag, trustlessDisposition, trustlessRequest, type TrustlessRequest } from './trustless.js'
import type { MirrorIndex } from './mirrors.js'
import type { Logger } from '@libp2p/logger'
import type { Express, NextFunction, Request, Response } from 'express'
import type { IdentityNode, RawNode, ReadableStorage, UnixFSEntry, UnixFSFile } from 'ipfs-unixfs-exporter'

export const IMMUTABLE_CACHE = 'public, max-age=29030400, immutable'
export const MIRROR_CACHE = 'public, max-age=60'
export const DEFAULT_TIMEOUT_MS = 60_000
export const DEFAULT_LOOKUP_DELAY_MS = 5_000

export interface GatewayAppOptions {
  /** The IPFS node: its blocks (local, or fetched), codecs and hash functions (a CID with an unknown one is a 400). */
  ipfs: GatewayIpfs
  mirrors: MirrorIndex
  /** A request fails with 504 when a block it needs does not arrive within this many ms. Default 60 s. */
  timeoutMs?: number
  /** Blocks below a request's first are asked of connected peers for this long before a DHT lookup. Default 5 s. */
  lookupDelayMs?: number
  log?: Logger
  /** Aborted when the gateway stops: ends responses in flight. */
  signal?: AbortSignal
}

/** What one request serves: a root CID and a path under it, reached through /ipfs/ or /mirror/. */
interface Target {
  root: CID
  segments: string[]
  /** The raw URL path, for redirects. */
  urlPath: string
  trailingSlash: boolean
  mirror?: string
}

/** Per-request context. */
interface Ctx {
  req: Request
  res: Response
  blocks: ReadableStorage
  signal: AbortSignal
  head: boolean
  /** Cache-Control: only-if-cached: `blocks` reads the local store only, and a streamed answer is checked first. */
  cachedOnly: boolean
}

export function createGatewayApp (options: GatewayAppOptions): Express {
  const { log, mirrors } = options
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const lookupDelayMs = options.lookupDelayMs ?? DEFAULT_LOOKUP_DELAY_MS
  const signalOf = requestSignals(options.signal)
  const app = express()
  app.disable('x-powered-by')
  app.disable('etag')

  const handle = (route: (req: Request, res: Response, urlPath: string) => Target | undefined) =>
    async (req: Request, res: Response, next: NextFunction): Promise<void> => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.status(405).setHeader('Allow', 'GET, HEAD')
        res.type('text/plain').end(`method ${req.method} is not allowed: the gateway is read-only\n`)
        return
      }
      const urlPath = rawPath(req)
      const target = route(req, res, urlPath)
      if (target == null) return
      const signal = signalOf(res)
      const cachedOnly = cacheDirectives(req.get('cache-control')).has('only-if-cached')
      const blocks = cachedOnly ? cachedBlocks(options.ipfs, signal) : timedBlocks(options.ipfs, signal, timeoutMs, lookupDelayMs)
      const ctx: Ctx = { req, res, signal, blocks, head: req.method === 'HEAD', cachedOnly }
      try {
        await serve(ctx, target)
      } catch (err) {
        next(err)
      }
    }

  app.all(['/ipfs', '/ipfs/', '/ipfs/*path'], handle((_req, _res, urlPath) => {
    const [cidPart = '', ...rest] = urlPath.slice('/ipfs/'.length).split('/')
    if (cidPart === '') throw new InvalidParameterError('no CID in the path: expected /ipfs/<cid>/<path>')
    const root = parseCid(decodeSegment(cidPart))
    return { root, segments: pathSegments(rest.join('/')), urlPath, trailingSlash: urlPath.endsWith('/') }
  }))

  app.all(['/mirror', '/mirror/', '/mirror/*path'], handle((_req, res, urlPath) => {
    const [namePart = '', ...rest] = urlPath.slice('/mirror/'.length).split('/')
    if (namePart === '') {
      // the mirrors this peer knows, newest version of each
      const list = mirrors.all().map(v => ({ name: v.mirror, version: v.version, cid: v.pin.cid, timestamp: v.pin.timestamp }))
      res.setHeader('Cache-Control', MIRROR_CACHE)
      sendJson(res, 200, list)
      return undefined
    }
    const name = decodeSegment(namePart)
    const newest = mirrors.newest(name)
    if (newest == null) throw new NotFoundError(`no mirror named "${name}" is pinned in this cluster`)
    const root = parseCid(newest.pin.cid)
    return {
      root,
      segments: pathSegments(rest.join('/'), { npmScope: true }),
      urlPath,
      // "/mirror/<name>" alone is the root directory without its slash
      trailingSlash: urlPath.endsWith('/') && rest.length > 0,
      mirror: name
    }
  }))

  app.use((req, res) => {
    res.status(404).type('text/plain').end(`not found: ${rawPath(req)}; the gateway serves /ipfs/<cid>/<path> and /mirror/<name>/<path>\n`)
  })
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (clientGone(req, res)) return
    const { status, message } = toHttpError(err, log)
    // a body already on its way: cutting the connection is the only signal left
    if (res.headersSent) { res.destroy(); return }
    for (const name of res.getHeaderNames()) res.removeHeader(name)
    if (wantsJson(req)) {
      sendJson(res, status, restErrorBody(status, message))
    } else {
      res.status(status).setHeader('Content-Type', 'text/plain; charset=utf-8')
      res.end(message + '\n')
    }
  })
  return app

  async function serve (ctx: Ctx, target: Target): Promise<void> {
    const { req, res } = ctx
    const trustless = trustlessRequest(queryOf(req), req.get('accept'))
    // a raw block is served as it is; anything else decodes the root
    await checkReadable(target.root, options.ipfs, { decode: trustless?.format !== 'raw' || target.segments.length > 0 })
    // a mirror is served as a web server serves its tree: symlinks followed, inside it only
    const resolved = await resolvePath(target.root, target.segments, ctx.blocks,
      { signal: ctx.signal, followSymlinks: target.mirror != null, label: target.urlPath })
    const { cid, roots, path } = resolved
    const immutablePath = `/ipfs/${target.root}${path.map(s => '/' + encodeSegment(s)).join('')}`
    res.setHeader('X-Ipfs-Path', immutablePath)
    res.setHeader('X-Ipfs-Roots', roots.map(String).join(','))
    res.setHeader('Cache-Control', target.mirror != null ? MIRROR_CACHE : IMMUTABLE_CACHE)
    res.setHeader('Vary', 'Accept')
    if (trustless != null) {
      await serveTrustless(ctx, target, resolved, immutablePath, trustless)
      return
    }

    const json = wantsJson(req)
    const listingEtag = `"DirIndex-${json ? 'json' : 'html'}_CID-${cid}"`
    // npm asks a mirror for a package by its directory; the packument in it answers
    const npm = target.mirror != null && (json || acceptsNpm(req.get('accept')))
    const packumentEtag = `"Packument_CID-${cid}"`
    // ETags name the representation, so a match needs no block: `"<cid>"` is only ever given to a file or
    // a directory's index.html, the DirIndex tag only to that listing, the Packument tag to the directory's
    // packument (its tarball URLs depend on the host, which is part of the URL a cache keys on)
    const known = matchingEtag(req.get('if-none-match'), [`"${cid}"`, listingEtag, ...(npm ? [packumentEtag] : [])])
    if (known != null) { notModified(res, known); return }

    const entry = await exporter(cid, ctx.blocks, { signal: ctx.signal })
    if (entry.type === 'directory') {
      if (npm) {
        const packument = await childFile(ctx, cid, PACKUMENT_FILE)
        if (packument != null) { await servePackument(ctx, packument, target, resolved, packumentEtag); return }
      }
      const html = !json
      if (html && !target.trailingSlash) {
        // relative links in the page need the slash form
        const query = req.originalUrl.includes('?') ? req.originalUrl.slice(req.originalUrl.indexOf('?')) : ''
        res.status(target.mirror != null ? 302 : 301).setHeader('Location', `${target.urlPath}/${query}`)
        res.end()
        return
      }
      if (html) {
        const index = await childFile(ctx, cid, 'index.html')
        if (index != null) { await serveFile(ctx, index, 'index.html', `"${cid}"`); return }
      }
      const listing: Listing = {
        path: decodeURIComponentSafe(target.urlPath.endsWith('/') ? target.urlPath : target.urlPath + '/'),
        cid: cid.toString(),
        entries: await listDirectory(entry, ctx.blocks, ctx.signal)
      }
      const body = json ? JSON.stringify(listing) + '\n' : renderHtml(listing, target.segments.length === 0)
      res.setHeader('ETag', listingEtag)
      res.setHeader('Content-Type', json ? 'application/json' : 'text/html; charset=utf-8')
      res.setHeader('Content-Length', Buffer.byteLength(body))
      res.status(200).end(ctx.head ? undefined : body)
      return
    }
    if (entry.type === 'object') {
      // a dag-cbor / dag-json node: its block as it is
      const bytes = await concatChunks(ctx.blocks.get(cid, { signal: ctx.signal }))
      sendBytes(ctx, bytes, codecType(cid), `"${cid}"`)
      return
    }
    await serveFile(ctx, entry, path.at(-1) ?? '', `"${cid}"`)
  }

  /** A package's packument, its tarball paths made absolute for the host the client asked. */
  async function servePackument (ctx: Ctx, file: FileEntry, target: Target, { path, roots }: Resolved, etag: string): Promise<void> {
    const where = `/ipfs/${target.root}/${[...path, PACKUMENT_FILE].map(encodeSegment).join('/')}`
    const size = fileSize(file)
    if (size > MAX_PACKUMENT_BYTES) {
      throw new InvalidContentError(`${where} is ${size} bytes: packuments larger than ${MAX_PACKUMENT_BYTES} bytes are not served`)
    }
    const bytes = size === 0 ? new Uint8Array() : await concatChunks(file.content({ signal: ctx.signal, blockReadConcurrency: 32 }))
    const mirrorRoot = `/mirror/${encodeSegment(target.mirror ?? '')}/`
    const body = rewritePackument(bytes, () => registryBase(ctx.req.get('host'), mirrorRoot), where)
    ctx.res.setHeader('X-Ipfs-Path', where)
    ctx.res.setHeader('X-Ipfs-Roots', [...roots, file.cid].map(String).join(','))
    sendBytes(ctx, body, 'application/json; charset=utf-8', etag)
  }

  /**
   * A raw block or a CAR. Every trustless answer, HEAD too: "Content-Disposition ... MUST be returned and set to
   * attachment"; Content-Location when Accept chose the format ("Returned when a non-default content format has
   * been negotiated with the Accept header but format was missing from the URL").
   */
  async function serveTrustless (ctx: Ctx, target: Target, resolved: Resolved, immutablePath: string, request: TrustlessRequest): Promise<void> {
    const { req, res } = ctx
    const { cid } = resolved
    res.setHeader('X-Content-Type-Options', 'nosniff')
    res.setHeader('Content-Disposition', trustlessDisposition(cid, request.format))
    if (request.location != null) res.setHeader('Content-Location', `${target.urlPath}?${request.location.toString()}`)
    if (request.car == null) {
      const etag = `"${cid}.raw"`
      const known = matchingEtag(req.get('if-none-match'), [etag])
      if (known != null) { notModified(res, known); return }
      const bytes = await concatChunks(ctx.blocks.get(cid, { signal: ctx.signal }))
      sendBytes(ctx, bytes, 'application/vnd.ipld.raw', etag)
      return
    }
    const answer = carAnswer(request.car)
    const etag = carEtag(cid, immutablePath, answer)
    const known = matchingEtag(req.get('if-none-match'), [etag])
    if (known != null) { notModified(res, known); return }
    // the terminal block before the 200: a block nobody has is still a 504, and entity-bytes outside the file a 400
    const terminal = await concatChunks(ctx.blocks.get(cid, { signal: ctx.signal }))
    const walk: ScopeWalk = { path: resolved.blocks.slice(0, -1), terminal: cid, below: terminalBelow(cid, terminal, answer), answer }
    if (ctx.cachedOnly) await checkCached(ctx, walk)
    res.status(200)
    res.setHeader('Content-Type', carContentType(answer))
    res.setHeader('ETag', etag)
    if (ctx.head) { res.end(); return }
    const load = async (block: CID, signal: AbortSignal): Promise<Uint8Array> => await concatChunks(ctx.blocks.get(block, { signal }))
    // the CAR header and the first block before the 200 goes out
    await stream(ctx, carStream(cid, walk, { load, getCodec: async code => await options.ipfs.getCodec(code) }, ctx.signal), 2)
  }

  /**
   * only-if-cached: every block `walk` needs is in the local store (a NotCachedError, 412, names the first one that
   * is not), proved before the answer starts, since a block missing after the 200 could only cut it short.
   */
  async function checkCached (ctx: Ctx, walk: ScopeWalk): Promise<void> {
    const init = { load: localProbe(options.ipfs, ctx.blocks), getCodec: async (code: number) => await options.ipfs.getCodec(code) }
    for await (const _ of scopeBlocks({ ...walk, answer: { order: 'dfs', dups: false } }, init, ctx.signal)) {
      // reading them is the check
    }
  }

  async function serveFile (ctx: Ctx, entry: UnixFSEntry, name: string, etag: string): Promise<void> {
    const { req, res } = ctx
    if (entry.type === 'file' && entry.unixfs.type === 'symlink') {
      // the link itself, its target as text, as Kubo serves it (only /ipfs/ gets here: /mirror/ paths follow links)
      sendBytes(ctx, entry.unixfs.data ?? new Uint8Array(), 'text/plain; charset=utf-8', etag)
      return
    }
    if (entry.type !== 'file' && entry.type !== 'raw' && entry.type !== 'identity') {
      throw new InvalidParameterError(`${entry.cid} is a ${entry.type}, not a file`)
    }
    const size = fileSize(entry)
    let type = typeByName(name)
    if (type == null) {
      const head = size === 0 ? new Uint8Array() : await concatChunks(entry.content({ offset: 0, length: Math.min(SNIFF_BYTES, size), signal: ctx.signal }))
      type = size === 0 ? OCTET_STREAM : sniff(head)
    }
    res.setHeader('Content-Type', type)
    res.setHeader('Accept-Ranges', 'bytes')
    res.setHeader('ETag', etag)
    const range = ifRangeAllows(req.get('if-range'), etag) ? parseRange(req.get('range'), size) : undefined
    if (range === 'unsatisfiable') {
      res.removeHeader('Content-Type')
      res.status(416).setHeader('Content-Range', `bytes */${size}`)
      res.type('text/plain').end(`range "${req.headers.range}" is outside the ${size} bytes of ${entry.cid}\n`)
      return
    }
    const offset = range?.start ?? 0
    const length = range != null ? range.end - range.start + 1 : size
    if (range != null) {
      res.status(206).setHeader('Content-Range', `bytes ${range.start}-${range.end}/${size}`)
    } else {
      res.status(200)
    }
    res.setHeader('Content-Length', length)
    if (ctx.cachedOnly && entry.type === 'file' && length > 0) {
      const below = fileBelow(offset, offset + length - 1, 0, size)
      await checkCached(ctx, { path: [], terminal: entry.cid, below, answer: { order: 'dfs', dups: false } })
    }
    if (ctx.head || length === 0) { res.end(); return }
    await stream(ctx, entry.content({ offset, length, signal: ctx.signal, blockReadConcurrency: 32 }))
  }

  /** The file `name` in directory `dir` (index.html, a packument), if there is one. */
  async function childFile (ctx: Ctx, dir: CID, name: string): Promise<FileEntry | undefined> {
    let resolved
    try {
      resolved = await resolvePath(dir, [name], ctx.blocks, { signal: ctx.signal })
    } catch (err) {
      if ((err as Error).name === 'NotFoundError') return undefined
      throw err
    }
    const entry = await exporter(resolved.cid, ctx.blocks, { signal: ctx.signal })
    if (entry.type === 'file') return entry.unixfs.type === 'symlink' ? undefined : entry
    return entry.type === 'raw' || entry.type === 'identity' ? entry : undefined
  }

  /**
   * Sends `chunks` as the body. The first `ahead` chunks are read before anything is written, so a failure to
   * fetch them is still an error status; after that a failure can only cut the response short.
   */
  async function stream (ctx: Ctx, chunks: AsyncIterable<Uint8Array>, ahead = 1): Promise<void> {
    const it = chunks[Symbol.asyncIterator]()
    const first: Uint8Array[] = []
    try {
      while (first.length < ahead) {
        const next = await it.next()
        if (next.done === true) break
        first.push(next.value)
      }
    } catch (err) {
      await it.return?.(undefined)
      throw err
    }
    const body = (async function * () {
      yield * first
      for (let next = await it.next(); next.done !== true; next = await it.next()) yield next.value
    })()
    try {
      await pipeline(Readable.from(body, { objectMode: false }), ctx.res)
    } catch (err) {
      // pipeline has cut the response, which is how a client learns it is short
      it.return?.(undefined).catch(() => {})
      log?.('response for %s ended early: %e', ctx.req.originalUrl, err)
    }
  }
}

/** What serves as a file: UnixFS files (symlinks among them), raw and inline blocks. */
type FileEntry = UnixFSFile | RawNode | IdentityNode

/** The byte length of a file, raw or identity block. */
function fileSize (entry: UnixFSEntry): number {
  return Number(entry.type === 'file' ? entry.unixfs.fileSize() : entry.type === 'raw' || entry.type === 'identity' ? entry.size : 0)
}

function sendBytes (ctx: Ctx, bytes: Uint8Array, type: string, etag: string): void {
  const { res } = ctx
  res.status(200)
  res.setHeader('Content-Type', type)
  res.setHeader('ETag', etag)
  res.setHeader('Content-Length', bytes.byteLength)
  res.end(ctx.head ? undefined : bytes)
}

function notModified (res: Response, etag: string): void {
  res.status(304).setHeader('ETag', etag)
  res.end()
}

/** The request's path as sent (still percent-encoded), without the query. */
function rawPath (req: Request): string {
  let url = req.originalUrl
  // absolute-form request targets (GET http://host/ipfs/... through a proxy)
  if (!url.startsWith('/')) {
    try { url = new URL(url).pathname } catch { return '/' }
  }
  const i = url.indexOf('?')
  return i < 0 ? url : url.slice(0, i)
}

function decodeSegment (part: string): string {
  try {
    return decodeURIComponent(part)
  } catch {
    throw new InvalidParameterError(`malformed percent-encoding in path segment "${part}"`)
  }
}

function decodeURIComponentSafe (s: string): string {
  try { return decodeURI(s) } catch { return s }
}

/** JSON when the client prefers it to HTML (`Accept: application/json`). */
function wantsJson (req: Request): boolean {
  return req.accepts(['text/html', 'application/json']) === 'application/json'
}

const CODEC_TYPES: Readonly<Record<number, string>> = {
  0x71: 'application/vnd.ipld.dag-cbor',
  0x0129: 'application/vnd.ipld.dag-json',
  0x0200: 'application/json',
  0x51: 'application/cbor'
}

function codecType (cid: CID): string {
  return CODEC_TYPES[cid.code] ?? OCTET_STREAM
}
