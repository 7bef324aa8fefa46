// `add` with the DAG built by the client: the files are imported here by the peer's own importer
// (src/ipfs/add.ts, with the parameters the peer would read from the same query), so the CIDs and the output
// lines are those a multipart POST /add would give. The blocks go to the peer as one CAR (POST /add?format=car,
// no-pin; the peer checks every block against its hash), then the root is pinned by CID with the add's pin
// options. The peer is spared the multipart parsing, chunking, encoding and a line per file, and the work is
// split between two processes instead of falling on the peer alone.
import { importEntries, type BlockSink } from '../ipfs/add.js'
import { BlockQueue } from '../mirror/upload.js'
import { readChunks, totalBytes, walk, type WalkOptions } from './multipart.js'
import type { AddCarOptions, AddOptions, ClientPinOptions } from './index.js'
import type { AbortOptions, AddEntry, AddParams } from '../components.js'
import type { AddedOutput, Pin } from '../types/wire.js'
import type { CID } from 'multiformats/cid'

/** Blocks remembered to send each once: ~100 bytes each, so at most ~100 MB (a 250 GB tree of 256 KiB chunks). */
const DEDUPE_MAX_BLOCKS = 1_000_000

export interface BlockAddComponents {
  addCar(car: AsyncIterable<Uint8Array>, options?: AddCarOptions): AsyncIterable<AddedOutput>
  pin(cid: string, options?: ClientPinOptions & AbortOptions): Promise<Pin>
}

/**
 * Adds the paths as a multipart POST /add with `params` would (params as the peer parses them from the query;
 * not sharded, not a CAR). Yields each AddedOutput line as its file or directory is imported; the root line
 * comes last, once the peer holds every block and, unless no_pin, the root is pinned.
 */
export async function * addAsBlocks (paths: string[], walkOptions: WalkOptions, params: AddParams, options: AddOptions, components: BlockAddComponents): AsyncGenerator<AddedOutput> {
  const { onProgress } = options
  const total = onProgress != null ? await totalBytes(paths, walkOptions) : 0
  const controller = new AbortController()
  const signal = options.signal != null ? AbortSignal.any([options.signal, controller.signal]) : controller.signal
  const queue = new BlockQueue()
  const upload = (async () => {
    for await (const _ of components.addCar(queue, { noPin: true, signal })) { /* the placeholder root's line */ }
  })()
  // an upload refused or broken off (401, follower mode, peer gone) stops the import instead of leaving it waiting for room
  upload.catch(err => {
    queue.fail(err)
    controller.abort(err)
  })

  // the same content in two files makes the same blocks: send them once (up to a bound on the memory this
  // takes; past it a repeated block goes again, and the peer, which has it by then, skips it)
  const sent = new Set<string>()
  const sink: BlockSink = {
    put: async (cid: CID, bytes: Uint8Array) => {
      const key = Buffer.from(cid.multihash.bytes).toString('latin1')
      if (sent.has(key)) return
      if (sent.size < DEDUPE_MAX_BLOCKS) sent.add(key)
      await queue.put(cid, bytes)
    }
  }

  let read = 0
  onProgress?.(0, total)
  const chunkSize = params.chunk_size
  async function * file (abs: string, size: number): AsyncGenerator<Uint8Array> {
    for (const chunk of readChunks(abs, size, chunkSize)) {
      yield chunk
      read += chunk.byteLength
      onProgress?.(read, total)
    }
  }
  async function * entries (): AsyncGenerator<AddEntry> {
    for await (const e of walk(paths, walkOptions)) {
      yield e.link != null ? { path: e.path, link: e.link } : e.size == null ? { path: e.path } : { path: e.path, content: file(e.abs, e.size) }
    }
  }

  let root: AddedOutput | undefined
  try {
    try {
      for await (const line of importEntries(entries(), params, sink, { signal })) {
        if (root !== undefined) yield root
        root = line
      }
      queue.end()
      await upload
    } catch (err) {
      queue.fail(err)
      await upload.catch(() => {})
      // the upload's own error says more than the abort it caused in the import
      throw controller.signal.aborted && options.signal?.aborted !== true ? controller.signal.reason : err
    }
    if (root === undefined) return
    if (params.no_pin !== true) {
      // POST /add pins with the add's own pin options, named after the root unless a name is given (an empty
      // name is no name, as the peer reads the query)
      const name = options.name != null && options.name !== '' ? options.name : root.name
      await components.pin(root.cid, { ...pinOptionsOf(options), name, signal: options.signal })
    }
    yield root
  } finally {
    // a consumer that stopped early: the request goes too
    controller.abort()
  }
}

/** The pin options of an add (an add has no pin_update, and is not sharded on this path). */
function pinOptionsOf (o: AddOptions): ClientPinOptions {
  return {
    mode: o.mode,
    replication_factor_min: o.replication_factor_min,
    replication_factor_max: o.replication_factor_max,
    user_allocations: o.user_allocations,
    expire_at: o.expire_at,
    expire_in: o.expire_in,
    metadata: o.metadata,
    origins: o.origins
  }
}
