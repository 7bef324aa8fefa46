// How one gateway request reads blocks: fetching what is missing within a deadline, or (Cache-Control:
// only-if-cached) from the local store alone, failing at once with NotCachedError on the first block not here.
import * as raw from 'multiformats/codecs/raw'
import { NotCachedError, RetrievalTimeoutError } from '../errors.js'
import { concatChunks } from '../utils/bytes.js'
import type { IpfsNode } from '../ipfs/index.js'
import type { ReadableStorage } from 'ipfs-unixfs-exporter'
import type { CID } from 'multiformats/cid'

/** What the gateway reads of the IPFS node: blocks (local, or fetched over bitswap) and its codecs and hashes. */
export type GatewayIpfs = Pick<IpfsNode, 'getBlock' | 'hasBlock' | 'getCodec' | 'getHasher'>

/**
 * The node's blocks as one request sees them. Each block read gives up after `timeoutMs`, naming the block. The
 * request's first block may need a DHT provider lookup at once; the blocks below it are first asked of connected
 * peers only (whoever sent the root most likely has the rest), and looked up after `lookupDelayMs` without an
 * answer (IpfsNode.getBlock).
 */
export function timedBlocks (ipfs: Pick<IpfsNode, 'getBlock'>, signal: AbortSignal, timeoutMs: number, lookupDelayMs: number): ReadableStorage {
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
        yield await ipfs.getBlock(cid, { signal: both, lookupDelayMs: lookup ? 0 : lookupDelayMs })
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

const notCached = (cid: CID): NotCachedError =>
  new NotCachedError(`block ${cid} is not in this peer's store, and Cache-Control: only-if-cached forbids fetching it`)

/** The node's blocks read offline: a block that is not here is a NotCachedError at once, never a fetch. */
export function cachedBlocks (ipfs: Pick<IpfsNode, 'getBlock'>, signal: AbortSignal): ReadableStorage {
  return {
    async * get (cid, options) {
      const both = options?.signal != null ? AbortSignal.any([signal, options.signal]) : signal
      try {
        yield await ipfs.getBlock(cid, { signal: both, offline: true })
      } catch (err) {
        if ((err as Error).name === 'NotFoundError') throw notCached(cid)
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
export function localProbe (ipfs: Pick<IpfsNode, 'hasBlock'>, offline: ReadableStorage): (cid: CID, signal: AbortSignal) => Promise<Uint8Array> {
  return async (cid, signal) => {
    if (cid.code !== raw.code) return await concatChunks(offline.get(cid, { signal }))
    if (await ipfs.hasBlock(cid, { signal })) return NO_BYTES
    throw notCached(cid)
  }
}
