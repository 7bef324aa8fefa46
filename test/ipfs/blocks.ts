// Fresh raw blocks for blockstore tests, and a logger that says nothing.
import { randomBytes } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'

export const silentLog = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false }) as never

/** n blocks of pseudo-random bytes, block i of size(i) bytes, with their raw CIDs. */
export async function makeBlocks (n: number, size: (i: number) => number): Promise<Array<{ cid: CID, bytes: Uint8Array }>> {
  return await Promise.all(Array.from({ length: n }, async (_, i) => {
    const bytes = randomBytes(size(i))
    return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
  }))
}
