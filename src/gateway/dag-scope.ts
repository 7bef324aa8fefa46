// Which blocks a trustless CAR carries (IPIP-402) and in which order (IPIP-412): the blocks of the path from the
// request's root down to the CID it names, then that CID's block and, by dag-scope, the blocks below it: none
// (block), those of its UnixFS file or of its HAMT-sharded directory listing (entity, narrowed to the bytes
// asked by entity-bytes), or all of them (all). Depth-first with blocks loaded ahead, or in arrival order.
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { createUnsafe } from 'multiformats/block'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { InvalidParameterError } from '../errors.js'
import { parallelWalker } from '../ipfs/walker.js'
import { resolveEntityBytes, type CarAnswer } from './trustless.js'
import type { BlockCodec } from 'multiformats/codecs/interface'
import type { CID } from 'multiformats/cid'

/** What the walk takes below a block. */
export type Below =
  | { walk: 'none' }
  | { walk: 'all' }
  /** a HAMT shard: its sub-shards, not the entries it links to */
  | { walk: 'shards' }
  /**
   * a UnixFS file node starting at byte `offset` of the file, not wholly inside from..to (inclusive): the children
   * holding bytes of that range (a child wholly inside it is walked as 'all')
   */
  | { walk: 'file', from: number, to: number, offset: number }

export interface ScopeBlock {
  cid: CID
  bytes: Uint8Array
}

export interface ScopeInit {
  /** The bytes of a block (read, or fetched). Identity CIDs never reach it. */
  load(cid: CID, signal: AbortSignal): Promise<Uint8Array>
  getCodec(code: number): BlockCodec<any, any> | Promise<BlockCodec<any, any>>
  /** Blocks loaded at once (ahead of the one being sent, in depth-first order). Default 32. */
  concurrency?: number
}

export interface ScopeWalk {
  /** The blocks crossed from the request's root to `terminal`, in path order (HAMT shards included), terminal excluded. */
  path: CID[]
  /** The CID the path leads to. */
  terminal: CID
  /** What to take below it: terminalBelow(). */
  below: Below
  answer: Pick<CarAnswer, 'order' | 'dups'>
}

const DEFAULT_CONCURRENCY = 32

/**
 * What dag-scope (and entity-bytes) take below the terminal block `bytes` of `cid`. InvalidParameterError when
 * entity-bytes lies wholly outside the file ("A Gateway SHOULD return an HTTP 400 Bad Request error when the
 * requested range is entirely outside of the entity's byte range and the Gateway is able to determine this
 * upfront": the file's size is in the block read before the answer starts).
 */
export function terminalBelow (cid: CID, bytes: Uint8Array, answer: Pick<CarAnswer, 'scope' | 'bytes'>): Below {
  if (answer.scope === 'block') return { walk: 'none' }
  if (answer.scope === 'all') return { walk: 'all' }
  // "For all queries that reference non-UnixFS data, entity is equivalent to block"
  const unixfs = unixfsOf(cid, bytes)
  if (unixfs == null) return { walk: 'none' }
  if (unixfs.type === 'hamt-sharded-directory') return { walk: 'shards' }
  if (unixfs.type !== 'file' && unixfs.type !== 'raw') return { walk: 'none' }
  const size = Number(unixfs.fileSize())
  // every block below a file node is a chunk of it
  if (answer.bytes == null) return { walk: 'all' }
  const range = resolveEntityBytes(answer.bytes, size)
  if (range === 'outside') {
    throw new InvalidParameterError(`entity-bytes=${answer.bytes.from}:${answer.bytes.to} lies outside the ${size} bytes of ${cid}`)
  }
  // "If the requested entity-bytes resolves to a zero-length range ... the response is equivalent to dag-scope=block"
  if (range === 'empty') return { walk: 'none' }
  return fileBelow(range.from, range.to, 0, size)
}

/** What to take below a file node spanning `size` bytes from `offset`, for bytes from..to. */
export function fileBelow (from: number, to: number, offset: number, size: number): Below {
  return from <= offset && offset + size - 1 <= to ? { walk: 'all' } : { walk: 'file', from, to, offset }
}

/** The blocks of `walk`: the path's, then the terminal's and those below it. Identity blocks are not yielded. */
export async function * scopeBlocks (walk: ScopeWalk, init: ScopeInit, signal: AbortSignal): AsyncGenerator<ScopeBlock> {
  const load = async (cid: CID, s: AbortSignal): Promise<Uint8Array> => cid.multihash.code === identity.code ? cid.multihash.digest : await init.load(cid, s)
  for (const cid of walk.path) {
    const bytes = await load(cid, signal)
    if (cid.multihash.code !== identity.code) yield { cid, bytes }
  }
  if (walk.answer.order === 'unk' && walk.below.walk === 'all' && !walk.answer.dups) {
    yield * arrivalOrder(walk.terminal, { ...init, load }, signal)
  } else {
    yield * depthFirst(walk.terminal, walk.below, walk.answer.dups, { ...init, load }, signal)
  }
}

interface Pending {
  cid: CID
  below: Below
  bytes?: Promise<Uint8Array>
}

/**
 * Depth-first, each block in link order, the next `concurrency` blocks of that order loaded ahead. Without dups a
 * block is sent once, and a subtree already walked with the same rule (or all of it) is not walked again; a file
 * node cut by the range's ends (at most two per level) is, as it may hold other bytes of the range the second time.
 */
async function * depthFirst (root: CID, below: Below, dups: boolean, init: ScopeInit, signal: AbortSignal): AsyncGenerator<ScopeBlock> {
  const ahead = init.concurrency ?? DEFAULT_CONCURRENCY
  const done = new AbortController()
  const loadSignal = AbortSignal.any([signal, done.signal])
  const sent = new Set<string>()
  /** `<rule> <cid>` of the subtrees walked whole under 'all' or 'shards' */
  const walked = new Set<string>()
  const skip = (p: Pending): boolean => {
    if (dups) return false
    const key = keyOf(p.cid)
    if (walked.has(`all ${key}`) || walked.has(`${p.below.walk} ${key}`)) return true
    // nothing below it to walk
    return sent.has(key) && (p.below.walk === 'none' || p.cid.code === raw.code)
  }
  const stack: Pending[] = [{ cid: root, below }]
  try {
    while (stack.length > 0) {
      for (let i = stack.length - 1; i >= 0 && i >= stack.length - ahead; i--) {
        const p = stack[i]
        if (p.bytes == null && !skip(p)) {
          p.bytes = init.load(p.cid, loadSignal)
          // awaited when its turn comes; until then a failure must not count as unhandled
          p.bytes.catch(() => {})
        }
      }
      const next = stack.pop() as Pending
      if (skip(next)) continue
      const bytes = await (next.bytes ?? init.load(next.cid, loadSignal))
      const key = keyOf(next.cid)
      if (next.cid.multihash.code !== identity.code && (dups || !sent.has(key))) {
        if (!dups) sent.add(key)
        yield { cid: next.cid, bytes }
      }
      // depth-first in a DAG, the same node is met again only once its subtree is done
      if (!dups && (next.below.walk === 'all' || next.below.walk === 'shards')) walked.add(`${next.below.walk} ${key}`)
      const children = await childrenOf(next.cid, bytes, next.below, init)
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i])
    }
  } finally {
    done.abort()
  }
}

/** Every block of the DAG, as they arrive (the pin walker's parallel walk), each once. */
async function * arrivalOrder (root: CID, init: ScopeInit, signal: AbortSignal): AsyncGenerator<ScopeBlock> {
  const walker = parallelWalker({ concurrency: init.concurrency, getCodec: init.getCodec, load: async (cid, options) => await init.load(cid, options.signal) })
  // the walker visits interior nodes once but may repeat raw leaves
  const sent = new Set<string>()
  for await (const node of walker.walk(root, { signal })) {
    const { cid, bytes } = node.block
    const key = keyOf(cid)
    if (cid.multihash.code === identity.code || sent.has(key)) continue
    sent.add(key)
    yield { cid, bytes }
  }
}

/** The children a walk takes below a block, with what to take below each. */
async function childrenOf (cid: CID, bytes: Uint8Array, below: Below, init: ScopeInit): Promise<Pending[]> {
  switch (below.walk) {
    case 'none':
      return []
    case 'all': {
      if (cid.code === raw.code) return []
      const block = createUnsafe({ cid, bytes, codec: await init.getCodec(cid.code) })
      return [...block.links()].map(([, child]) => ({ cid: child, below }))
    }
    case 'shards': {
      const node = dagPb.decode(bytes)
      const unixfs = unixfsOf(cid, bytes)
      if (unixfs?.type !== 'hamt-sharded-directory' || unixfs.fanout == null) return []
      // a sub-shard's link name is its bucket index alone; an entry's is the index followed by the entry's name
      const width = (Number(unixfs.fanout) - 1).toString(16).length
      return node.Links.filter(l => (l.Name ?? '').length === width).map(l => ({ cid: l.Hash, below }))
    }
    case 'file': {
      if (cid.code !== dagPb.code) return []
      const node = dagPb.decode(bytes)
      const unixfs = unixfsOf(cid, bytes)
      if (unixfs == null) return []
      const sizes = unixfs.blockSizes
      // a node whose sizes do not match its links cannot be narrowed: all of it, which still verifies
      if (sizes.length !== node.Links.length) return node.Links.map(l => ({ cid: l.Hash, below: { walk: 'all' } }))
      // the node's own data comes first, then its children's, in link order
      let start = below.offset + (unixfs.data?.byteLength ?? 0)
      const out: Pending[] = []
      for (let i = 0; i < node.Links.length; i++) {
        const size = Number(sizes[i])
        const end = start + size - 1
        if (end >= below.from && start <= below.to) out.push({ cid: node.Links[i].Hash, below: fileBelow(below.from, below.to, start, size) })
        start = end + 1
      }
      return out
    }
  }
}

/** The UnixFS data of a dag-pb block, or undefined for any other block. */
function unixfsOf (cid: CID, bytes: Uint8Array): UnixFS | undefined {
  if (cid.code !== dagPb.code) return undefined
  const node = dagPb.decode(bytes)
  if (node.Data == null) return undefined
  try {
    return UnixFS.unmarshal(node.Data)
  } catch {
    return undefined
  }
}

/** A block's key for dups=n: its CID (a reader may look a block up by the CID that links to it, v0 or v1). */
function keyOf (cid: CID): string {
  return Buffer.from(cid.bytes).toString('latin1')
}
