// protons-runtime writes 64-bit varints in [2^31, 2^32) wrongly, and ipfs-unixfs writes a file node's sizes with
// it: a file of 2-4 GiB got a root saying 0 bytes. src/ipfs/protons-uint64.ts fixes the writer ipfs-unixfs uses;
// every value must come back as written, in the bytes a correct protobuf encoder gives.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { UnixFS } from 'ipfs-unixfs'
import '../../src/ipfs/protons-uint64.js'

/** A protobuf varint, written the plain way. */
function varint (n: bigint): number[] {
  const out: number[] = []
  do {
    let byte = Number(n & 0x7fn)
    n >>= 7n
    if (n > 0n) byte |= 0x80
    out.push(byte)
  } while (n > 0n)
  return out
}

describe('UnixFS sizes of 2-4 GiB', () => {
  it('round-trip, in the bytes of a plain protobuf encoding', () => {
    for (const size of [0n, 127n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 31n + 5n, 3_000_000_000n, 2n ** 32n - 1n, 2n ** 32n, 5_000_000_000n, 2n ** 53n + 1n]) {
      const node = new UnixFS({ type: 'file', blockSizes: [size, 262_144n] })
      const bytes = node.marshal()
      // Type = File (field 1), filesize (field 3), blocksizes (field 4, not packed)
      const total = size + 262_144n
      assert.deepEqual([...bytes], [0x08, 2, 0x18, ...varint(total), 0x20, ...varint(size), 0x20, ...varint(262_144n)], `size ${size}`)
      const back = UnixFS.unmarshal(bytes)
      assert.equal(back.fileSize(), total)
      assert.deepEqual(back.blockSizes, [size, 262_144n])
    }
  })

  it('keeps mtime seconds past 2038 (2^31 s) too', () => {
    const secs = 2n ** 31n + 100n
    const back = UnixFS.unmarshal(new UnixFS({ type: 'file', data: Uint8Array.of(1), mtime: { secs } }).marshal())
    assert.equal(back.mtime?.secs, secs)
  })
})
