// CARv1 streams of a trustless request (`format=car`): the header, then each block of the request's scope
// (dag-scope.ts) as varint(len) | cid | bytes.
import { carHeader, carSectionHead } from '../utils/car.js'
import { scopeBlocks, type ScopeInit, type ScopeWalk } from './dag-scope.js'
import type { CID } from 'multiformats/cid'

/**
 * Yields a CARv1 whose one root is `root` (the CID the request's path leads to, as boxo/Kubo write it; "A Client
 * SHOULD ignore this field") holding the blocks of `walk`.
 */
export async function * carStream (root: CID, walk: ScopeWalk, init: ScopeInit, signal: AbortSignal): AsyncGenerator<Uint8Array> {
  yield carHeader(root)
  for await (const { cid, bytes } of scopeBlocks(walk, init, signal)) {
    yield carSectionHead(cid, bytes.byteLength)
    yield bytes
  }
}
