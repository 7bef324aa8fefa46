// Request paths: split the raw URL path into decoded segments, and resolve them through the DAG, following
// symlinks inside the root where asked (/mirror/) and naming them where not (/ipfs/).
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { resolvers } from 'ipfs-unixfs-exporter'
import { InvalidParameterError, NotFoundError, RetrievalTimeoutError } from '../errors.js'
import { concatChunks } from '../utils/bytes.js'
import type { CID } from 'multiformats/cid'
import type { ReadableStorage, WalkPathOptions } from 'ipfs-unixfs-exporter'

/** Symlinks one request may follow, chains and links met on the way together. */
export const MAX_SYMLINK_HOPS = 16

export interface PathSegmentsOptions {
  /** Read a first segment `@scope%2Fname` as the two segments `@scope`, `name` (how npm asks for a scoped package). */
  npmScope?: boolean
}

/**
 * Percent-decoded, non-empty segments of a raw URL path (after the prefix that names the root). `.` segments
 * are dropped; `..`, a decoded `/` and NUL are refused, so a path can never climb above its root.
 */
export function pathSegments (raw: string, options: PathSegmentsOptions = {}): string[] {
  const out: string[] = []
  for (const part of raw.split('/')) {
    if (part === '') continue
    let seg: string
    try {
      seg = decodeURIComponent(part)
    } catch {
      throw new InvalidParameterError(`malformed percent-encoding in path segment "${part}"`)
    }
    if (seg === '.') continue
    if (seg === '..') throw new InvalidParameterError('".." is not allowed in a path')
    if (options.npmScope === true && out.length === 0 && /^@[^/]+\/[^/]+$/.test(seg)) {
      const [scope, name] = seg.split('/')
      if (!['.', '..'].includes(name) && !seg.includes('\0')) {
        out.push(scope, name)
        continue
      }
    }
    if (seg.includes('/') || seg.includes('\0')) throw new InvalidParameterError(`path segment "${part}" decodes to a name with "/" or NUL`)
    out.push(seg)
  }
  return out
}

/** A path segment as written in a URL. */
export function encodeSegment (seg: string): string {
  return encodeURIComponent(seg)
}

export interface ResolveOptions extends WalkPathOptions {
  /**
   * Follow UnixFS symlinks, as a web server serves a mirror: relative targets only, resolved against the link's
   * directory and never above the root, through chains of at most MAX_SYMLINK_HOPS links. Without it a path
   * through a symlink is a 404 naming it, and a path ending at one resolves to the link itself.
   */
  followSymlinks?: boolean
  /** The path as the client named it, for error messages (default /ipfs/<root>/<segments>). */
  label?: string
}

export interface Resolved {
  /** The CID the path leads to. */
  cid: CID
  /** Every CID crossed from the root to `cid` (both included) along `path`: X-Ipfs-Roots. */
  roots: CID[]
  /**
   * Every block crossed from the root to `cid` (both included) along `path`, in order: `roots` with the HAMT
   * sub-shards between them. What a client needs to verify the path (a trustless CAR's first blocks).
   */
  blocks: CID[]
  /** The path that leads from the root to `cid`: the segments asked for, with every symlink followed replaced by its target. */
  path: string[]
}

/** A link followed, for the messages of what goes wrong after it. */
interface Followed {
  /** Where the link is, from the root. */
  at: string
  target: string
}

/** A segment still to resolve, and the link whose target it comes from, if any. */
interface Pending {
  name: string
  from?: Followed
}

/**
 * Follows `segments` from `root` (UnixFS directories, HAMT shards, and links of other codecs the exporter knows).
 * NotFoundError names the path and the segment that is missing, or the symlink that could not be followed.
 */
export async function resolvePath (root: CID, segments: string[], blocks: ReadableStorage, options: ResolveOptions = {}): Promise<Resolved> {
  const label = options.label ?? `/ipfs/${root}/${segments.map(encodeSegment).join('/')}`
  const notFound = (why: string, path: string[]): NotFoundError =>
    new NotFoundError(`${label} not found: ${why}${path.length > 0 ? ` (resolved as far as "${path.join('/')}")` : ''}`)
  /** `next` is not there: a missing name, or a dangling link when the name comes from a link's target */
  const missing = (next: Pending, why: string): NotFoundError =>
    notFound(next.from != null ? `symlink "${next.from.at}" -> "${next.from.target}" dangles: ${why}` : why, path)
  let cid = root
  const roots = [root]
  /** shards[i]: the HAMT sub-shards crossed below roots[i] on the way to roots[i + 1] */
  const shards: CID[][] = [[]]
  const path: string[] = []
  /** roots.length once path[i] was reached: where to cut roots when a link sends the walk back up */
  const rootsAt: number[] = []
  let pending: Pending[] = segments.map(name => ({ name }))
  let hops = 0

  const follow = (target: string): void => {
    const at = path.join('/')
    if (path.length === 0) throw notFound(`the root ${root} is a symlink (to "${target}")`, [])
    if (++hops > MAX_SYMLINK_HOPS) throw notFound(`symlink "${at}" -> "${target}": more than ${MAX_SYMLINK_HOPS} symlinks on the way (a loop?)`, [])
    if (target.startsWith('/')) throw notFound(`symlink "${at}" -> "${target}" is absolute: only relative links inside the root are followed`, [])
    const to = path.slice(0, -1)
    for (const part of target.split('/')) {
      if (part === '' || part === '.') continue
      if (part === '..') {
        if (to.length === 0) throw notFound(`symlink "${at}" -> "${target}" leads outside the root`, [])
        to.pop()
      } else {
        to.push(part)
      }
    }
    // walk back up to where the target parts from the path walked so far, and on from there
    let keep = 0
    while (keep < path.length - 1 && keep < to.length && path[keep] === to[keep]) keep++
    path.length = keep
    rootsAt.length = keep
    roots.length = keep === 0 ? 1 : rootsAt[keep - 1]
    shards.length = roots.length
    shards[shards.length - 1] = []
    cid = roots[roots.length - 1]
    const from = { at, target }
    pending = [...to.slice(keep).map(name => ({ name, from })), ...pending]
  }

  while (true) {
    while (pending.length > 0) {
      const moved = await step()
      if (moved) continue
      const target = await symlinkTarget(cid, blocks, options)
      if (target != null && options.followSymlinks === true) { follow(target); continue }
      if (target != null) throw notFound(`"${path.length > 0 ? path.join('/') : root}" is a symlink (to "${target}"): /ipfs/ paths do not follow symlinks, /mirror/ paths do`, path)
      throw missing(pending[0], `${cid} has no link named "${pending[0].name}"`)
    }
    if (options.followSymlinks !== true) break
    const target = await symlinkTarget(cid, blocks, options)
    if (target == null) break
    follow(target)
  }
  return { cid, roots: [...roots], blocks: roots.flatMap((r, i) => [r, ...shards[i]]), path }

  /** One resolver call from `cid`: whether it moved deeper. */
  async function step (): Promise<boolean> {
    const resolver = resolvers[cid.code]
    if (resolver == null) throw notFound(`no paths inside codec 0x${cid.code.toString(16)} (${cid})`, path)
    let moved = false
    try {
      for await (const next of resolver(cid, pending.map(p => p.name), blocks, { ...options, yieldSubShards: true })) {
        // the resolver answers with the node itself when it cannot go deeper (a file, a symlink, a path inside a block)
        if (next.cid.equals(cid)) break
        // a HAMT's sub-shard, with the remaining path unchanged: a block of the path, not a segment of it
        if (next.rest.length === pending.length) {
          shards[shards.length - 1].push(next.cid)
          continue
        }
        cid = next.cid
        roots.push(cid)
        shards.push([])
        moved = true
        for (const done of pending.splice(0, pending.length - next.rest.length)) {
          path.push(done.name)
          rootsAt.push(roots.length)
        }
      }
    } catch (err) {
      if (err instanceof RetrievalTimeoutError) throw err
      const name = (err as Error).name
      if (name === 'NotFoundError' || name === 'NotUnixFSError') throw missing(pending[0], `no link named "${pending[0].name}" under ${cid}`)
      throw err
    }
    return moved
  }
}

const utf8 = new TextDecoder()

/** The target of a UnixFS symlink node, or undefined for any other node (read only for dag-pb CIDs). */
export async function symlinkTarget (cid: CID, blocks: ReadableStorage, options: WalkPathOptions = {}): Promise<string | undefined> {
  if (cid.code !== dagPb.code) return undefined
  const node = dagPb.decode(await concatChunks(blocks.get(cid, options)))
  if (node.Data == null) return undefined
  let unixfs: UnixFS
  try {
    unixfs = UnixFS.unmarshal(node.Data)
  } catch {
    return undefined
  }
  return unixfs.type === 'symlink' ? utf8.decode(unixfs.data ?? new Uint8Array()) : undefined
}
