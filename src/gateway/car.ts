// CARv1 streams of a DAG (trustless gateway `format=car`): header, then each block as varint(len) | cid | bytes.
import { parallelWalker } from '../ipfs/walker.js'
import { concatChunks } from '../utils/bytes.js'
import { carHeader, carSectionHead } from '../utils/car.js'
import type { BlockCodec } from 'multiformats/codecs/interface'
import type { CID } from 'multiformats/cid'
import type { ReadableStorage } from 'ipfs-unixfs-exporter'

export const CAR_CONTENT_TYPE = 'application/vnd.ipld.car; version=1; order=unk; dups=y'

export interface CarInit {
  blocks: ReadableStorage
  getCodec(code: number): BlockCodec<any, any> | Promise<BlockCodec<any, any>>
  /** Blocks fetched at once. Default 32 (the pin walker's). */
  concurrency?: number
}

/** Yields a CARv1 with `root` as its one root and every block of the DAG under it, in the order they arrive. */
export async function * carStream (root: CID, init: CarInit, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  yield carHeader(root)
  const walker = parallelWalker({
    concurrency: init.concurrency,
    getCodec: init.getCodec,
    load: async (cid, options) => await concatChunks(init.blocks.get(cid, { signal: options.signal }))
  })
  for await (const node of walker.walk(root, { signal })) {
    const { cid, bytes } = node.block
    yield carSectionHead(cid, bytes.byteLength)
    yield bytes
  }
}
