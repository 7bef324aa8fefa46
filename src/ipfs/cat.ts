// Reading a UnixFS file (or a raw block) as a stream of bytes, fetching missing blocks as a pin does, and
// starting again where it stopped when blocks stop coming.
import { setMaxListeners } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { exporter } from 'ipfs-unixfs-exporter'
import { InvalidParameterError } from '../errors.js'
import { raceSignal } from 'race-signal'
import type { AbortOptions } from '../components.js'
import type { Helia } from '@helia/interface'
import type { Logger } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export const DEFAULT_CAT_STALL_MS = 10_000
const CAT_ATTEMPTS = 12
const CAT_READ_AHEAD = 16

export interface CatInit {
  /** A read that receives no block for this long starts again where it stopped. Default 10 s. */
  stallMs?: number
}

export interface CatComponents {
  /** A block: local first, then connected peers, a DHT lookup only after a while (IpfsNode.getBlock). */
  getBlock(cid: CID, options: AbortOptions): Promise<Uint8Array>
  log: Logger
}

/**
 * A read that gets no block for `stallMs` (or whose block sources all gave up on a block) is started again
 * from the byte it reached: the abort cancels its bitswap wants, and wants sent afresh get past a sender that
 * lost them (docs/DESIGN.md §10, "Stuck fetches").
 */
export async function * catFile (cid: CID, init: CatInit, components: CatComponents, options: AbortOptions = {}): AsyncGenerator<Uint8Array> {
  const stallMs = init.stallMs ?? DEFAULT_CAT_STALL_MS
  const { getBlock, log } = components
  let offset = 0
  for (let attempt = 1; ; attempt++) {
    const stalled = new AbortController()
    const signal = options.signal != null ? AbortSignal.any([options.signal, stalled.signal]) : stalled.signal
    // every block read in flight listens to it
    setMaxListeners(Infinity, signal)
    // The exporter reads ahead in parallel; an attempt given up must not leave rejected reads behind
    // (unhandled rejections), so its reads go quiet instead, and its iterator is left, not awaited.
    const blocks = quietAfterAbort({
      get: async function * (cid: CID, opts: AbortOptions = {}) {
        yield await getBlock(cid, { signal: opts.signal ?? signal })
      } as Helia['blockstore']['get']
    }, signal)
    let timer: NodeJS.Timeout | undefined
    const arm = (): void => {
      clearTimeout(timer)
      timer = setTimeout(() => { stalled.abort(new Error(`no block for ${stallMs} ms`)) }, stallMs)
    }
    try {
      arm()
      const entry = await raceSignal(exporter(cid, blocks, { signal }), signal)
      if (entry.type !== 'file' && entry.type !== 'raw' && entry.type !== 'identity') {
        throw new InvalidParameterError(`${cid} is a ${entry.type}, not a file`)
      }
      // the exporter asks for every block of a file at once by default: 64 MiB of wants make senders build
      // 4 MiB messages that time out on a busy peer (the stuck-fetch cause above); a window keeps it flowing
      const chunks = entry.content({ signal, offset, blockReadConcurrency: CAT_READ_AHEAD })[Symbol.asyncIterator]()
      for (;;) {
        const next = await raceSignal(chunks.next(), signal)
        if (next.done === true) break
        // the reader may take its time with a chunk: only waiting for blocks counts as stalling
        clearTimeout(timer)
        offset += next.value.byteLength
        yield next.value
        arm()
      }
      return
    } catch (err) {
      // a stall, or every block source giving up on a block for now (LoadBlockFailedError), is worth a retry
      const retry = stalled.signal.aborted || (err as Error).name === 'LoadBlockFailedError'
      if (!retry || options.signal?.aborted === true || attempt >= CAT_ATTEMPTS) throw err
      log('reading %c failed at byte %d (attempt %d): %s; asking again', cid, offset, attempt, (err as Error).message)
      stalled.abort(new Error('retrying'))
      await sleep(250 * attempt, undefined, { signal: options.signal })
    } finally {
      clearTimeout(timer)
    }
  }
}

/** Reads of `store` under `signal`; once it is aborted, a failing read never settles instead of rejecting. */
function quietAfterAbort (store: Pick<Helia['blockstore'], 'get'>, signal: AbortSignal): Pick<Helia['blockstore'], 'get'> {
  return {
    get: async function * (cid: CID, options: AbortOptions = {}) {
      try {
        yield * store.get(cid, { ...options, signal })
      } catch (err) {
        if (signal.aborted) await new Promise<never>(() => {})
        throw err
      }
    } as Helia['blockstore']['get']
  }
}
