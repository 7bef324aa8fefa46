// npm registry mode of /mirror/<name>/: a directory holding `index.json` (a packument) answers npm's request for
// the package, with each version's tarball URL made absolute for the host the client asked, so that one mirror
// tree serves npm from every peer's address.
import { InvalidContentError, InvalidParameterError } from '../errors.js'
import { mediaTypes } from './http.js'

export { PACKUMENT_FILE } from '../mirror/npm.js'

/** Larger packuments are refused rather than parsed (npm's largest are tens of MiB). */
export const MAX_PACKUMENT_BYTES = 128 * 1024 * 1024

/** What npm install asks for (an abbreviated packument, which the full one satisfies). */
const NPM_INSTALL_TYPE = 'application/vnd.npm.install-v1+json'

/** npm's own registry: its tarball URLs are mapped onto the mirror, as npm maps them onto its configured registry. */
const NPMJS_HOST = 'registry.npmjs.org'

/** Whether an Accept header names npm's packument type (npm install sends it; npm view asks for application/json). */
export function acceptsNpm (accept: string | undefined): boolean {
  return mediaTypes(accept).includes(NPM_INSTALL_TYPE)
}

/** The mirror's root URL for a request that named `host`: what relative tarball paths are resolved against. */
export function registryBase (host: string | undefined, mirrorPath: string): string {
  if (host == null || host === '') throw new InvalidParameterError('a packument needs the request\'s Host header to make its tarball URLs absolute')
  if (!/^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:\d{1,5})?$/.test(host)) throw new InvalidParameterError(`Host header "${host}" is not host[:port]`)
  return `http://${host}${mirrorPath}`
}

const utf8 = new TextDecoder()
const enc = new TextEncoder()

type Json = Record<string, unknown>
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * The packument `bytes` (read from `where`) with every `versions.*.dist.tarball` that is a relative path, or a URL
 * on registry.npmjs.org, made absolute under `base()`; other URLs are left as they are. The bytes come back
 * unchanged when nothing needed rewriting.
 */
export function rewritePackument (bytes: Uint8Array, base: () => string, where: string): Uint8Array {
  let doc: unknown
  try {
    doc = JSON.parse(utf8.decode(bytes))
  } catch (err) {
    throw new InvalidContentError(`${where} is not a packument: not valid JSON (${(err as Error).message})`)
  }
  const versions = isObject(doc) ? doc.versions : undefined
  if (!isObject(versions)) return bytes
  let root: string | undefined
  const once = (): string => (root ??= base())
  let changed = false
  for (const version of Object.values(versions)) {
    const dist = isObject(version) ? version.dist : undefined
    if (!isObject(dist) || typeof dist.tarball !== 'string') continue
    const url = tarballUrl(dist.tarball, once)
    if (url !== dist.tarball) {
      dist.tarball = url
      changed = true
    }
  }
  return changed ? enc.encode(JSON.stringify(doc)) : bytes
}

function tarballUrl (tarball: string, base: () => string): string {
  // a path: relative to the mirror's root, a leading "/" or "./" included
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:/.test(tarball)) return base() + tarball.replace(/^(\.?\/)+/, '')
  let url: URL
  try {
    url = new URL(tarball)
  } catch {
    return tarball
  }
  return url.hostname === NPMJS_HOST ? base() + url.pathname.replace(/^\/+/, '') + url.search : tarball
}
