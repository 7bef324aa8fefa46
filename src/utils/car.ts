// CARv1 framing, written by the gateway (format=car), the mirror upload and the bitswap bench: the header, then
// each block as varint(length of cid + bytes) | cid | bytes.
import * as dagCbor from '@ipld/dag-cbor'
import * as varint from 'uint8-varint'
import { lengthPrefixed } from './bytes.js'
import type { CID } from 'multiformats/cid'

/** CARv1 header: varint length, then dag-cbor { version: 1, roots: [root] }. */
export function carHeader (root: CID): Uint8Array {
  return lengthPrefixed(dagCbor.encode({ version: 1, roots: [root] }))
}

/** What goes before a block's bytes in its section: varint(cid + block length), then the CID. */
export function carSectionHead (cid: CID, blockLength: number): Uint8Array {
  const cidBytes = cid.bytes
  const length = cidBytes.byteLength + blockLength
  const head = new Uint8Array(varint.encodingLength(length) + cidBytes.byteLength)
  varint.encode(length, head, 0)
  head.set(cidBytes, head.byteLength - cidBytes.byteLength)
  return head
}
