// How one gateway request reads blocks: fetching what is missing within a deadline, or (Cache-Control:
// only-if-cached) from the local store alone, failing at once with NotCachedError on the first block not here.
import * as raw from 'multiformats/codecs/raw'
import { NotCachedError, RetrievalTimeoutError } from '../errors.js'
import { concatChunks } from '../utils/bytes.js'
import type { AbortOptions } from '@libp2p/interface'
import type { ReadableStorage } from 'ipfs-unixfs-exporter'
import type { CID } from 'multiformats/cid'

/** The node's blockstore: reads local blocks, fetches missing ones over bitswap; `has` looks locally only. */
export interface GatewayBlocks extends ReadableStorage {
  has(cid: CID, options?: AbortOptions): boolean | Promise<boolean>
}

/**
 * The blockstore as one request sees it. Each block read gives up after `timeoutMs`, naming the block. The
 * request's first block may need a DHT provider lookup; the blocks below it are first asked of connected peers
 * only (whoever sent the root most likely has the rest), and looked up after `lookupDelayMs` without an answer:
 * a lookup per block would make a large file crawl.
 */
export function timedBlocks (blocks: ReadableStorage, signal: AbortSignal, timeoutMs: number, lookupDelayMs: number): ReadableStorage {
  let first = true
  return {
    async * get (cid, options) {
      const timeout = AbortSignal.timeout(timeoutMs)
      const signals = [signal, timeout]
      if (options?.signal != null) signals.push(options.signal)
      const both = AbortSignal.any(signals)
      const lookup = first
      first = false
      try {
        yield lookup ? await concatChunks(blocks.get(cid, { ...options, signal: both })) : await connectedFirst(blocks, cid, both, lookupDelayMs)
      } catch (err) {
        // the request's own end (client gone, gateway stopping) says why better than the fetch's abort error
        if (signal.aborted) throw signal.reason
        if (timeout.aborted && options?.signal?.aborted !== true) {
          throw new RetrievalTimeoutError(`block ${cid} could not be retrieved within ${timeoutMs / 1000} s: no connected peer or provider sent it`)
        }
        throw err
      }
    }
  }
}

/** Asks connected peers for a block (bitswap, no provider lookup); adds a lookup after `delayMs` without it. */
async function connectedFirst (blocks: ReadableStorage, cid: CID, signal: AbortSignal, delayMs: number): Promise<Uint8Array> {
  const done = new AbortController()
  const both = AbortSignal.any([signal, done.signal])
  let timer: ReturnType<typeof setTimeout> | undefined
  // maxProviders 0 reaches @helia/bitswap, which then takes no providers from routing
  const quiet = concatChunks(blocks.get(cid, { signal: both, maxProviders: 0 } as { signal: AbortSignal }))
  const later = new Promise<Uint8Array>((resolve, reject) => {
    timer = setTimeout(() => { concatChunks(blocks.get(cid, { signal: both })).then(resolve, reject) }, delayMs)
    both.addEventListener('abort', () => { clearTimeout(timer); reject(both.reason) }, { once: true })
  })
  try {
    return await Promise.any([quiet, later])
  } catch (err) {
    throw (err as AggregateError).errors?.[0] ?? err
  } finally {
    clearTimeout(timer)
    done.abort()
  }
}

const notCached = (cid: CID): NotCachedError =>
  new NotCachedError(`block ${cid} is not in this peer's store, and Cache-Control: only-if-cached forbids fetching it`)

/** The blockstore read offline: a block that is not here is a NotCachedError at once, never a fetch. */
export function cachedBlocks (blocks: ReadableStorage, signal: AbortSignal): ReadableStorage {
  return {
    async * get (cid, options) {
      const both = options?.signal != null ? AbortSignal.any([signal, options.signal]) : signal
      try {
        // Helia's blockstore: `offline` reads the local store and throws BlockNotFoundWhileOfflineError without it
        yield await concatChunks(blocks.get(cid, { ...options, signal: both, offline: true } as AbortOptions))
      } catch (err) {
        if ((err as Error).name === 'BlockNotFoundWhileOfflineError') throw notCached(cid)
        throw err
      }
    }
  }
}

const NO_BYTES = new Uint8Array(0)

/**
 * A block loader that only proves blocks are here: raw leaves (which link to nothing) are looked up, not read,
 * and come back empty; other blocks are read, offline. For walking what an answer needs before it starts.
 */
export function localProbe (blocks: GatewayBlocks, offline: ReadableStorage): (cid: CID, signal: AbortSignal) => Promise<Uint8Array> {
  return async (cid, signal) => {
    if (cid.code !== raw.code) return await concatChunks(offline.get(cid, { signal }))
    if (await blocks.has(cid, { signal })) return NO_BYTES
    throw notCached(cid)
  }
}
