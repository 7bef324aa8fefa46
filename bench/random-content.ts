// Pseudo-random content shared by the bitswap benchmark's cairn peers and its Helia nodes (bench/helia-process.ts):
// both must import the very same bytes so that their DAGs (and root CIDs) are equal. Its own module, so that a
// child imports this and nothing else of the bench.
import { createCipheriv, createHash } from 'node:crypto'

const CHUNK = 2 ** 20

/** `bytes` pseudo-random bytes (AES-128-CTR of zeros keyed by the seed) in 1 MiB chunks. */
export async function * pseudoRandomBytes (bytes: number, seed: number): AsyncGenerator<Uint8Array> {
  const key = createHash('sha256').update(`cairn bench bitswap ${seed}`).digest().subarray(0, 16)
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16))
  const zeros = Buffer.alloc(CHUNK)
  for (let left = bytes; left > 0; left -= zeros.length) {
    yield cipher.update(left >= zeros.length ? zeros : zeros.subarray(0, left))
  }
}
