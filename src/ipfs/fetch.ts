// How the node gets blocks: from the level store when held, else from connected peers over bitswap, with a DHT
// provider lookup only after a while (Helia would start one lookup per block). Used by pins (fetchDag: a whole
// DAG, written behind the walk), reads (cat.ts) and the gateway (IpfsNode.getBlock).
import { setMaxListeners } from 'node:events'
import { AbortError } from '@libp2p/interface'
import { identity } from 'multiformats/hashes/identity'
import { NotFoundError, ShuttingDownError } from '../errors.js'
import { concatChunks } from '../utils/bytes.js'
import { WriteBehind } from './add.js'
import { connectedOnly, type InstalledBitswap } from './helia-internals.js'
import { blockId, scanLocalDag, scanLocalDagFrom, type LocalDagInit } from './local-dag.js'
import { DEFAULT_WALK_CONCURRENCY, parallelWalker, type ParallelWalker } from './walker.js'
import { checkQuota, type QuotaCount } from './quota.js'
import type { GetBlockOptions } from './index.js'
import type { Generation, PinBlock, PinRecords } from './pin-records.js'
import type { LocalBlockstore } from './blockstore.js'
import type { AbortOptions } from '../components.js'
import type { Helia } from '@helia/interface'
import type { CID } from 'multiformats/cid'
import type { PeerId } from '@libp2p/interface'

/**
 * One DAG fetch's memory of who answers: its next wants go to the peer that sent the last block first (a peer
 * holding one block of a pin holds its neighbours), to every connected peer when that one lacks it.
 */
export interface FetchSession {
  peer?: PeerId
}

export const DEFAULT_CHILD_LOOKUP_DELAY = 5_000
const FETCH_DONE = new Error('fetched')
/** Never aborted: for reads given no signal (fetchChild combines signals). */
const NO_SIGNAL = new AbortController().signal

export interface BlockFetcherInit {
  /** Connected peers alone are asked for a block this long before a provider lookup starts too. Default 5 s. */
  childLookupDelay?: number
  /** Blocks fetched at once by a pin's walk. Default 32. */
  fetchConcurrency?: number
}

export interface BlockFetcherComponents {
  /** Helia's blockstore (networked: fetches with a provider lookup) and codecs. */
  helia: Pick<Helia, 'blockstore' | 'getCodec'>
  /** The level store under Helia's blockstore. */
  blockstore: LocalBlockstore
  /** cairn's bitswap sending; undefined: @helia/bitswap's own (not recognised), wants go through Helia. */
  bitswap?: InstalledBitswap
  /** Told of each block getBlock answers (not a pin's walk): from the store, or fetched (the bounded cache). */
  reads?: {
    fetched: (cid: CID, block: Uint8Array) => Promise<void>
    used: (cid: CID) => Promise<void>
  }
}

export class BlockFetcher {
  private readonly delay: number
  private readonly concurrency: number

  constructor (init: BlockFetcherInit, private readonly components: BlockFetcherComponents) {
    this.delay = init.childLookupDelay ?? DEFAULT_CHILD_LOOKUP_DELAY
    this.concurrency = init.fetchConcurrency ?? DEFAULT_WALK_CONCURRENCY
  }

  /** See IpfsNode.getBlock. */
  async getBlock (cid: CID, options: GetBlockOptions = {}): Promise<Uint8Array> {
    const { helia, blockstore, reads } = this.components
    const signal = options.signal
    // an identity CID carries its block: Helia's blockstore answers it, and the level store never holds one
    if (cid.multihash.code === identity.code) return await concatChunks(helia.blockstore.get(cid, { signal, offline: true }))
    const local = options.offline === true || await blockstore.has(cid, { signal }) ? await this.localBlock(cid, signal) : undefined
    if (local != null) {
      await reads?.used(cid)
      return local
    }
    if (options.offline === true) throw new NotFoundError(`block ${cid} is not held here`)
    const delay = options.lookupDelayMs ?? this.delay
    const block = delay <= 0 ? await concatChunks(helia.blockstore.get(cid, { signal })) : await this.fetchChild(cid, signal ?? NO_SIGNAL, delay, undefined, options.session)
    await reads?.fetched(cid, block)
    return block
  }

  /**
   * A block from the level store itself: one read, where Helia's blockstore asks `has` first and takes its gc
   * lock (cairn never runs Helia's gc). Undefined when missing, and for identity CIDs, which level never holds.
   */
  async localBlock (cid: CID, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    try {
      return await concatChunks(this.components.blockstore.get(cid, { signal }))
    } catch (err) {
      if ((err as Error).name === 'NotFoundError') {
        return undefined
      }
      throw err
    }
  }

  /** Stores a block (fetched or imported) and tells bitswap (the want list cancels our wants for it). */
  async storeBlock (cid: CID, block: Uint8Array): Promise<void> {
    await this.components.blockstore.put(cid, block)
    await this.components.bitswap?.announce(cid)
  }

  /**
   * Loads blocks from the network when missing.
   * @param deferred when given, blocks found held here are not loaded but added to it (with their depth), for
   * the caller to list from the local store
   */
  walker (writes?: WriteBehind, deferred?: Array<{ cid: CID, depth: number }>, session?: FetchSession): ParallelWalker {
    const { helia, blockstore } = this.components
    const delay = this.delay
    // whether a block is held, asked for all children of a block at once (one level lookup for up to 174 links)
    const held = new Map<string, Promise<boolean>>()
    return parallelWalker({
      concurrency: this.concurrency,
      getCodec: helia.getCodec,
      onChildren: (children, signal) => {
        const found = blockstore.hasBlocks(children, { signal })
        // a child's load awaits its answer; a walk that stops early leaves answers nobody reads
        found.catch(() => {})
        children.forEach((cid, i) => { held.set(blockId(cid), found.then(all => all[i])) })
      },
      load: async (cid, { signal, depth }) => {
        const id = blockId(cid)
        const known = held.get(id)
        held.delete(id)
        // a miss costs no thrown NotFoundError; a block linked twice is looked up again
        if (await (known ?? blockstore.has(cid, { signal }))) {
          if (deferred != null) {
            deferred.push({ cid, depth })
            return undefined
          }
          const local = await this.localBlock(cid, signal)
          if (local != null) return local
        }
        return depth === 0 && session?.peer == null ? await concatChunks(helia.blockstore.get(cid, { signal })) : await this.fetchChild(cid, signal, delay, writes, session)
      }
    })
  }

  /**
   * Asks connected peers (bitswap broadcasts wants to them) without a DHT provider lookup; Helia would otherwise
   * start one lookup per block. After `delay` ms without the block, a lookup is started as well.
   */
  private async fetchChild (cid: CID, signal: AbortSignal, delay: number, writes?: WriteBehind, session?: FetchSession): Promise<Uint8Array> {
    const { helia } = this.components
    const done = new AbortController()
    const both = AbortSignal.any([signal, done.signal])
    setMaxListeners(Infinity, both)
    let timer: ReturnType<typeof setTimeout> | undefined
    const attempts = [
      this.wantFromConnected(cid, both, writes, session),
      new Promise<Uint8Array>((resolve, reject) => {
        const onAbort = (): void => { clearTimeout(timer); reject(both.reason) }
        both.addEventListener('abort', onAbort, { once: true })
        timer = setTimeout(() => {
          both.removeEventListener('abort', onAbort)
          concatChunks(helia.blockstore.get(cid, { signal: both })).then(resolve, reject)
        }, delay)
      })
    ]
    try {
      return await Promise.any(attempts)
    } catch (err) {
      throw (err as AggregateError).errors?.[0] ?? err
    } finally {
      clearTimeout(timer)
      // a reason made once: abort() without one builds a DOMException (and its stack) per block
      done.abort(FETCH_DONE)
    }
  }

  /**
   * A block from connected peers, stored and announced. With cairn's bitswap sending installed, the want goes
   * straight to the want list (the block is checked against its CID there, not hashed again by Helia's
   * blockstore); otherwise through Helia's blockstore with no provider lookup.
   */
  private async wantFromConnected (cid: CID, signal: AbortSignal, writes?: WriteBehind, session?: FetchSession): Promise<Uint8Array> {
    const { helia, bitswap } = this.components
    if (bitswap == null) {
      return await concatChunks(helia.blockstore.get(cid, connectedOnly({ signal })))
    }
    const { block, sender } = await bitswap.want(cid, { signal, prefer: session?.peer })
    if (session != null) session.peer = sender
    // a pin's walk goes on to its next wants while the block is written (level writes are the slowest step)
    if (writes != null) await writes.put(cid, block)
    else await this.storeBlock(cid, block)
    return block
  }
}

export interface FetchDagComponents {
  fetcher: BlockFetcher
  blockstore: LocalBlockstore
  records: PinRecords
  /** Reads the local DAG (blocks and pin records). */
  dag: LocalDagInit
  /** The node's stop: fetches give up with ShuttingDownError. */
  shutdown: AbortSignal
  /** What counts against maxRepoBytes. */
  counted: QuotaCount
}

export interface FetchDagOptions extends AbortOptions {
  /** The caller's fetch session: its peer (one likely to hold the DAG) is asked alone first; it ends as the last sender. */
  session?: FetchSession
  onProgress?: (blocks: number) => void
  /** Quota: stop fetching once the blockstore holds more than this many bytes. */
  maxRepoBytes?: number
}

/**
 * Brings the DAG under `root`, down to `depth`, into the local store. Returns its distinct blocks. What is held
 * here already is found with bulk reads (a new version of a mirror is mostly the previous one); the network
 * walk starts from the blocks found missing.
 */
export async function fetchDag (root: CID, depth: number, components: FetchDagComponents, options: FetchDagOptions = {}): Promise<{ blocks: PinBlock[], generation: Generation }> {
  const { fetcher, records, dag, shutdown, counted } = components
  const signal = options.signal
  // a block that cannot be stored (a full disk) stops the walk at once: its other wants, and a provider lookup
  // that would find the block only to fail to store it too, would keep the pin pinning
  const writeFailed = new AbortController()
  const fetchSignal = AbortSignal.any([...(signal != null ? [signal] : []), shutdown, writeFailed.signal])
  const seen = new Set<string>()
  const session: FetchSession = options.session ?? {}
  let writes: WriteBehind | undefined
  try {
    // the records read by the scan are re-used when no record was written meanwhile
    const generation = records.generation
    // a recursive pin needs nothing below blocks already deep (see pin-records.ts)
    const local = await scanLocalDag(root, depth, dag, { signal: fetchSignal, seen, stopAtDeep: depth === Infinity })
    const blocks = local.blocks
    options.onProgress?.(blocks.length)
    // the quota is for what is fetched: a pin of what is held already takes no more room
    if (local.missing.length > 0) checkQuota(counted, root, options.maxRepoBytes)
    // fetched blocks are stored while the walk goes on; all of them have landed before the pin is recorded
    writes = new WriteBehind({ put: async (cid, block) => { await fetcher.storeBlock(cid, block) } }, fetchSignal, err => { writeFailed.abort(err) })
    try {
      // The network walk starts from the blocks found missing and leaves out the children it finds held here:
      // those are listed by the local scan, which stops at deep records. A new version of a mirror fetched by a
      // follower is new directories over unchanged subtrees, and walking those would read all of them again.
      let missing = local.missing
      while (missing.length > 0) {
        // the scan marked the missing blocks seen; the network walk yields them first
        for (const m of missing) seen.delete(blockId(m.cid))
        const held: Array<{ cid: CID, depth: number }> = []
        for await (const node of fetcher.walker(writes, held, session).walkFrom(missing, { depth, signal: fetchSignal })) {
          const id = blockId(node.block.cid)
          if (!seen.has(id)) {
            seen.add(id)
            blocks.push({ cid: node.block.cid, links: [...node.block.links()].map(([, cid]) => cid) })
          }
          checkQuota(counted, root, options.maxRepoBytes)
          options.onProgress?.(blocks.length)
        }
        await writes.flush()
        if (held.length === 0) break
        // below a held block, blocks can be missing (a fetch stopped half-way): they go to the next round
        const below = await scanLocalDagFrom(held, depth, dag, { signal: fetchSignal, seen, stopAtDeep: depth === Infinity })
        blocks.push(...below.blocks)
        options.onProgress?.(blocks.length)
        missing = below.missing
      }
    } finally {
      await writes.settle()
    }
    return { blocks, generation }
  } catch (err) {
    if (shutdown.aborted) {
      throw new ShuttingDownError(`stopped while pinning ${root}`)
    }
    const failed = writes?.error
    if (failed !== undefined && signal?.aborted !== true) throw failed.error
    if ((err as Error).name === 'QuotaExceededError') throw err
    throw toAbortError(err, signal)
  }
}

function toAbortError (err: unknown, signal?: AbortSignal): unknown {
  if (signal?.aborted === true) {
    const reason = signal.reason as Error | undefined
    return new AbortError(`operation aborted${reason?.message != null ? `: ${reason.message}` : ''}`)
  }
  return err
}
