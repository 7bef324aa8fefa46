// Request paths: split the raw URL path into decoded segments, and resolve them through the DAG.
import { resolvers } from 'ipfs-unixfs-exporter'
import { InvalidParameterError, NotFoundError, RetrievalTimeoutError } from '../errors.js'
import type { CID } from 'multiformats/cid'
import type { ReadableStorage, WalkPathOptions } from 'ipfs-unixfs-exporter'

/**
 * Percent-decoded, non-empty segments of a raw URL path (after the prefix that names the root). `.` segments
 * are dropped; `..`, a decoded `/` and NUL are refused, so a path can never climb above its root.
 */
export function pathSegments (raw: string): string[] {
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
    if (seg.includes('/') || seg.includes('\0')) throw new InvalidParameterError(`path segment "${part}" decodes to a name with "/" or NUL`)
    out.push(seg)
  }
  return out
}

/** A path segment as written in a URL. */
export function encodeSegment (seg: string): string {
  return encodeURIComponent(seg)
}

export interface Resolved {
  /** The CID the path leads to. */
  cid: CID
  /** Every CID crossed from the root to `cid` (both included): X-Ipfs-Roots. */
  roots: CID[]
}

/**
 * Follows `segments` from `root` (UnixFS directories, HAMT shards, and links of other codecs the exporter knows).
 * NotFoundError names the path and the segment that is missing.
 */
export async function resolvePath (root: CID, segments: string[], blocks: ReadableStorage, options: WalkPathOptions = {}): Promise<Resolved> {
  let cid = root
  const roots = [root]
  let rest = segments
  let done = 0
  while (rest.length > 0) {
    const resolver = resolvers[cid.code]
    if (resolver == null) throw missing(root, segments, done, `no paths inside codec 0x${cid.code.toString(16)} (${cid})`)
    let moved = false
    try {
      for await (const step of resolver(cid, rest, blocks, options)) {
        // the resolver answers with the node itself when it cannot go deeper (a file, a path inside a block)
        if (step.cid.equals(cid)) break
        cid = step.cid
        roots.push(cid)
        moved = true
        // HAMT shards yield intermediate sub-shards with the remaining path unchanged
        done += rest.length - step.rest.length
        rest = step.rest
      }
    } catch (err) {
      if (err instanceof RetrievalTimeoutError) throw err
      const name = (err as Error).name
      if (name === 'NotFoundError' || name === 'NotUnixFSError') throw missing(root, segments, done, `no link named "${rest[0]}" under ${cid}`)
      throw err
    }
    if (!moved) throw missing(root, segments, done, `${cid} has no link named "${rest[0]}"`)
  }
  return { cid, roots }
}

function missing (root: CID, segments: string[], done: number, why: string): Error {
  const path = `/ipfs/${root}/${segments.map(encodeSegment).join('/')}`
  return new NotFoundError(`${path} not found: ${why}${done > 0 ? ` (resolved as far as "${segments.slice(0, done).join('/')}")` : ''}`)
}
