// `cairn mirror npm-index <dir>`: writes the packument of every package in an npm mirror tree from the tarballs in
// it, so that a folder of `npm pack` tarballs laid out as the registry's URLs becomes a registry the gateway
// serves to npm (src/gateway/npm.ts):
//   <dir>/<name>/-/<name>-<version>.tgz           ->  <dir>/<name>/index.json
//   <dir>/@<scope>/<name>/-/<name>-<version>.tgz  ->  <dir>/@<scope>/<name>/index.json
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createGunzip } from 'node:zlib'
import { writeFileAtomic } from '../config/files.js'
import { InvalidParameterError } from '../errors.js'
import type { AbortOptions } from '../components.js'

/** The packument's file name in a package's directory: what the gateway answers npm's GET <registry>/<name> with. */
export const PACKUMENT_FILE = 'index.json'

/** A package.json larger than this in a tarball is refused. */
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024

export interface NpmPackageIndexed {
  name: string
  /** Oldest first. */
  versions: string[]
  /** dist-tags.latest: the highest version without a prerelease part (the highest of all when every one has one). */
  latest: string
  /** The packument. */
  file: string
  /** False when it already held what it would have been given (it is then left untouched). */
  written: boolean
}

type Json = Record<string, unknown>

/** Writes <package>/index.json for every package directory under `dir` that holds tarballs in its `-/` folder. */
export async function writePackuments (dir: string, options: AbortOptions = {}): Promise<NpmPackageIndexed[]> {
  const out: NpmPackageIndexed[] = []
  for (const name of await packageDirs(dir)) {
    options.signal?.throwIfAborted()
    const indexed = await writePackument(dir, name, options)
    if (indexed != null) out.push(indexed)
  }
  return out
}

/** `name` and `@scope/name` directories under `dir`, dot-directories left out. */
async function packageDirs (dir: string): Promise<string[]> {
  const names: string[] = []
  let tops: string[]
  try {
    tops = await subdirs(dir)
  } catch (err) {
    throw new InvalidParameterError(`cannot read the mirror tree ${dir}: ${(err as Error).message}`)
  }
  for (const top of tops) {
    if (!top.startsWith('@')) { names.push(top); continue }
    for (const sub of await subdirs(join(dir, top))) names.push(`${top}/${sub}`)
  }
  return names.sort()
}

async function subdirs (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true })
  return entries.filter(e => e.isDirectory() && !e.name.startsWith('.')).map(e => e.name)
}

async function writePackument (dir: string, name: string, options: AbortOptions): Promise<NpmPackageIndexed | undefined> {
  let tarballs: string[]
  try {
    tarballs = (await readdir(join(dir, name, '-'), { withFileTypes: true })).filter(e => e.isFile() && e.name.endsWith('.tgz')).map(e => e.name).sort()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined
    throw err
  }
  if (tarballs.length === 0) return undefined
  const versions = new Map<string, Json>()
  for (const tarball of tarballs) {
    options.signal?.throwIfAborted()
    const file = join(dir, name, '-', tarball)
    const manifest = await readManifest(file)
    if (manifest.name !== name) throw new InvalidParameterError(`${file}: its package.json names the package ${JSON.stringify(manifest.name)}, but it lies in "${name}/-/"`)
    const version = manifest.version
    if (typeof version !== 'string' || parseVersion(version) == null) throw new InvalidParameterError(`${file}: its package.json has no valid semver version (${JSON.stringify(version)})`)
    const twin = versions.get(version)
    if (twin != null) throw new InvalidParameterError(`${file}: version ${version} of ${name} is also in ${String((twin.dist as Json).tarball)}`)
    const { shasum, integrity } = await digests(file)
    versions.set(version, { ...manifest, _id: `${name}@${version}`, dist: { tarball: `${name}/-/${encodeURIComponent(tarball)}`, shasum, integrity } })
  }
  const sorted = [...versions.keys()].sort(compareVersions)
  const releases = sorted.filter(v => parseVersion(v)?.pre.length === 0)
  const latest = (releases.length > 0 ? releases : sorted).at(-1)!
  const packument = {
    name,
    'dist-tags': { latest },
    versions: Object.fromEntries(sorted.map(v => [v, versions.get(v)]))
  }
  const file = join(dir, name, PACKUMENT_FILE)
  const text = JSON.stringify(packument, null, 2) + '\n'
  // an unchanged packument keeps its mtime, so that a sync after it publishes no new version
  const before = await readFile(file, 'utf8').catch(() => undefined)
  if (before !== text) await writeFileAtomic(file, text, 0o644)
  return { name, versions: sorted, latest, file, written: before !== text }
}

/** sha1 (hex, npm's `shasum`) and sha512 (SRI, npm's `integrity`) of a file. */
async function digests (file: string): Promise<{ shasum: string, integrity: string }> {
  const sha1 = createHash('sha1')
  const sha512 = createHash('sha512')
  for await (const chunk of createReadStream(file)) {
    sha1.update(chunk as Buffer)
    sha512.update(chunk as Buffer)
  }
  return { shasum: sha1.digest('hex'), integrity: `sha512-${sha512.digest('base64')}` }
}

/** The package.json of an npm tarball (gzipped tar, `<top>/package.json`), read up to that entry only. */
export async function readManifest (file: string): Promise<Json> {
  const input = createReadStream(file)
  const gunzip = createGunzip()
  input.on('error', err => gunzip.destroy(err))
  input.pipe(gunzip)
  let pending: Buffer = Buffer.alloc(0)
  let skip = 0
  let take = -1
  try {
    let ended = false
    for await (const chunk of gunzip) {
      pending = pending.length === 0 ? chunk as Buffer : Buffer.concat([pending, chunk as Buffer])
      while (true) {
        if (skip > 0) {
          const n = Math.min(skip, pending.length)
          pending = pending.subarray(n)
          skip -= n
          if (skip > 0) break
        } else if (take >= 0) {
          if (pending.length < take) break
          const text = pending.subarray(0, take).toString('utf8')
          let manifest: unknown
          try {
            manifest = JSON.parse(text)
          } catch (err) {
            throw new InvalidParameterError(`${file}: its package.json is not valid JSON (${(err as Error).message})`)
          }
          if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest)) throw new InvalidParameterError(`${file}: its package.json is not a JSON object`)
          return manifest as Json
        } else {
          if (pending.length < 512) break
          const header = pending.subarray(0, 512)
          pending = pending.subarray(512)
          // the end-of-archive block
          if (header.every(b => b === 0)) { ended = true; break }
          const size = tarSize(header)
          const path = tarPath(header)
          const regular = header[156] === 0x30 || header[156] === 0
          if (regular && /^[^/]+\/package\.json$/.test(path)) {
            if (size > MAX_MANIFEST_BYTES) throw new InvalidParameterError(`${file}: its package.json is ${size} bytes, more than ${MAX_MANIFEST_BYTES}`)
            take = size
          } else {
            skip = Math.ceil(size / 512) * 512
          }
        }
      }
      if (ended) break
    }
  } catch (err) {
    if ((err as Error).name === 'InvalidParameterError') throw err
    throw new InvalidParameterError(`${file} is not a gzipped tarball: ${(err as Error).message}`)
  } finally {
    input.destroy()
    gunzip.destroy()
  }
  throw new InvalidParameterError(`${file} holds no package.json (expected <folder>/package.json, as npm pack writes)`)
}

const cstring = (b: Buffer): string => { const end = b.indexOf(0); return b.subarray(0, end < 0 ? b.length : end).toString('utf8') }

/** An entry's path: ustar prefix + name, a leading "./" dropped. */
function tarPath (header: Buffer): string {
  const name = cstring(header.subarray(0, 100))
  const ustar = header.subarray(257, 262).toString('latin1') === 'ustar'
  const prefix = ustar ? cstring(header.subarray(345, 500)) : ''
  return (prefix !== '' ? `${prefix}/${name}` : name).replace(/^\.\//, '')
}

/** An entry's size: octal text, or base-256 when the first byte has its high bit set (GNU, past 8 GiB). */
function tarSize (header: Buffer): number {
  const field = header.subarray(124, 136)
  if ((field[0] & 0x80) !== 0) return field.subarray(1).reduce((n, b) => n * 256 + b, field[0] & 0x7f)
  const n = parseInt(cstring(field).trim() || '0', 8)
  if (!Number.isSafeInteger(n)) throw new Error('a tar header has no valid size')
  return n
}

interface Version { nums: [number, number, number], pre: Array<string | number> }

function parseVersion (v: string): Version | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/.exec(v)
  if (m == null) return undefined
  const pre = m[4] == null ? [] : m[4].split('.').map(p => /^\d+$/.test(p) ? Number(p) : p)
  return { nums: [Number(m[1]), Number(m[2]), Number(m[3])], pre }
}

/** semver precedence: numbers, then a release above its prereleases, prerelease parts compared one by one. */
export function compareVersions (a: string, b: string): number {
  const x = parseVersion(a)
  const y = parseVersion(b)
  if (x == null || y == null) return a < b ? -1 : a > b ? 1 : 0
  for (let i = 0; i < 3; i++) if (x.nums[i] !== y.nums[i]) return x.nums[i] - y.nums[i]
  if (x.pre.length === 0 || y.pre.length === 0) return y.pre.length - x.pre.length
  for (let i = 0; i < Math.min(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i]
    const q = y.pre[i]
    if (p === q) continue
    if (typeof p === 'number' && typeof q === 'number') return p - q
    // numeric parts sort below alphanumeric ones
    if (typeof p === 'number') return -1
    if (typeof q === 'number') return 1
    return p < q ? -1 : 1
  }
  return x.pre.length - y.pre.length
}
