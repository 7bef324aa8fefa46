// A record of a segment file: how one block is framed on disk. Pure encoding, no I/O.
//
//   u32 BE payload length | u8 multihash length | multihash | payload | u32 BE crc32 of everything before it
//
// The check only has to tell a whole record from a torn one: records are written at the end of the newest
// segment and fdatasynced before anyone is told they are held, so after a crash the only damage the store itself
// causes is a tail cut anywhere, or filled with zeros or stale bytes (unsynced pages). A length that runs past the
// file catches a cut; crc32 catches the rest (a torn record passes with probability 2^-32, and only at the tail of
// one file once per crash). What a CRC cannot catch, a disk flipping bits in a record long synced, is not a torn
// write: blocks are content-addressed, so `repo verify` finds it by re-hashing the payload against the multihash
// the record carries. zlib.crc32 is native in Node 20, so the check costs little next to the write.
import { crc32 } from 'node:zlib'

/** Bytes before the multihash. */
export const HEAD_BYTES = 5
export const CRC_BYTES = 4
/** Largest payload a record may announce: far above any block (bitswap's limit is 2 MiB); a scan stops past it. */
export const MAX_PAYLOAD = 64 * 1024 * 1024

/** A record's bytes, in the three parts writev takes (the payload is not copied). */
export function encodeRecord (multihash: Uint8Array, payload: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const head = new Uint8Array(HEAD_BYTES + multihash.byteLength)
  const view = new DataView(head.buffer)
  view.setUint32(0, payload.byteLength)
  view.setUint8(4, multihash.byteLength)
  head.set(multihash, HEAD_BYTES)
  const tail = new Uint8Array(CRC_BYTES)
  new DataView(tail.buffer).setUint32(0, crc32(payload, crc32(head)))
  return [head, payload, tail]
}

/** Bytes a record of this multihash and payload takes. */
export function recordBytes (multihashBytes: number, payloadBytes: number): number {
  return HEAD_BYTES + multihashBytes + payloadBytes + CRC_BYTES
}

export interface RecordHead {
  payloadLength: number
  multihashLength: number
}

/** The lengths a record's first HEAD_BYTES announce, or undefined when they cannot be a record's. */
export function decodeHead (bytes: Uint8Array): RecordHead | undefined {
  if (bytes.byteLength < HEAD_BYTES) return undefined
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEAD_BYTES)
  const payloadLength = view.getUint32(0)
  const multihashLength = view.getUint8(4)
  if (payloadLength > MAX_PAYLOAD || multihashLength < 2) return undefined
  return { payloadLength, multihashLength }
}

/** Given a whole record's bytes (head included): its multihash and payload, or undefined when its crc is wrong. */
export function checkRecord (record: Uint8Array, head: RecordHead): { multihash: Uint8Array, payload: Uint8Array } | undefined {
  const bodyEnd = record.byteLength - CRC_BYTES
  const stored = new DataView(record.buffer, record.byteOffset + bodyEnd, CRC_BYTES).getUint32(0)
  if (crc32(record.subarray(0, bodyEnd)) !== stored) return undefined
  const payloadStart = HEAD_BYTES + head.multihashLength
  return { multihash: record.subarray(HEAD_BYTES, payloadStart), payload: record.subarray(payloadStart, bodyEnd) }
}
