// Bitswap 1.2.0 message parts, encoded by hand around the block bytes so that a block is never copied into a
// message buffer. A message is the concatenation of its parts (protobuf repeated fields may come in any order):
//   Wantlist wantlist = 1 { repeated Entry entries = 1 { bytes block = 1; int32 priority = 2; bool cancel = 3;
//                           WantType wantType = 4 (Block 0, Have 1); bool sendDontHave = 5 }; bool full = 2 }
//   repeated Block payload = 3 { bytes prefix = 1; bytes data = 2 }
//   repeated BlockPresence blockPresences = 4 { bytes cid = 1; BlockPresenceType type = 2 (Have 0, DontHave 1) }
import * as varint from 'uint8-varint'
import type { CID } from 'multiformats/cid'

export const PRESENCE_HAVE = 0
export const PRESENCE_DONT_HAVE = 1

const WANTLIST = 0x0a
const PAYLOAD = 0x1a
const PRESENCE = 0x22
const BYTES_1 = 0x0a
const BYTES_2 = 0x12
const VARINT_2 = 0x10
const VARINT_3 = 0x18
const VARINT_4 = 0x20
const VARINT_5 = 0x28

export function varintBytes (n: number): Uint8Array {
  return varint.encode(n)
}

/** A length-delimited field: its tag and length, then the body pieces. */
function field (tag: number, body: Uint8Array[]): Uint8Array[] {
  const length = body.reduce((n, b) => n + b.byteLength, 0)
  return [Uint8Array.of(tag), varintBytes(length), ...body]
}

/** The CID prefix a receiver rebuilds the CID from: version, codec, hash function, digest length. */
export function cidPrefix (cid: CID): Uint8Array {
  return Buffer.concat([cid.version, cid.code, cid.multihash.code, cid.multihash.digest.byteLength].map(varintBytes))
}

/** One `payload` entry (`prefix` from cidPrefix): framing pieces and the block bytes themselves (not copied). */
export function blockPart (prefix: Uint8Array, data: Uint8Array): Uint8Array[] {
  const prefixField = Buffer.concat(field(BYTES_1, [prefix]))
  const dataHead = Buffer.concat([Uint8Array.of(BYTES_2), varintBytes(data.byteLength)])
  const inner = prefixField.byteLength + dataHead.byteLength + data.byteLength
  return [Buffer.concat([Uint8Array.of(PAYLOAD), varintBytes(inner), prefixField, dataHead]), data]
}

/** One `blockPresences` entry. */
export function presencePart (cid: CID | Uint8Array, type: number): Uint8Array[] {
  const cidBytes = cid instanceof Uint8Array ? cid : cid.bytes
  return [Buffer.concat(field(PRESENCE, [...field(BYTES_1, [cidBytes]), Uint8Array.of(VARINT_2), varintBytes(type)]))]
}

export interface WantEntry {
  cid: CID | Uint8Array
  priority?: number
  cancel?: boolean
  wantHave?: boolean
  sendDontHave?: boolean
}

/** The `wantlist` field: entries, and `full` when the list replaces what the receiver holds for us. */
export function wantlistPart (entries: Iterable<WantEntry>, full = false): Uint8Array[] {
  const body: Uint8Array[] = []
  for (const entry of entries) {
    const cidBytes = entry.cid instanceof Uint8Array ? entry.cid : entry.cid.bytes
    const fields: Uint8Array[] = [...field(BYTES_1, [cidBytes])]
    // proto3 leaves zero values out; a negative int32 is written as 10 bytes, as protobuf does
    const priority = Math.trunc(entry.priority ?? 1)
    if (priority !== 0) fields.push(Uint8Array.of(VARINT_2), int32Bytes(priority))
    if (entry.cancel === true) fields.push(Uint8Array.of(VARINT_3, 1))
    if (entry.wantHave === true) fields.push(Uint8Array.of(VARINT_4, 1))
    if (entry.sendDontHave === true) fields.push(Uint8Array.of(VARINT_5, 1))
    body.push(...field(BYTES_1, fields))
  }
  if (full) body.push(Uint8Array.of(VARINT_2, 1))
  return [Buffer.concat(field(WANTLIST, body))]
}

function int32Bytes (n: number): Uint8Array {
  if (n >= 0) return varintBytes(n)
  // two's complement over 64 bits
  const out: number[] = []
  let v = BigInt.asUintN(64, BigInt(n))
  while (v >= 0x80n) { out.push(Number(v & 0x7fn) | 0x80); v >>= 7n }
  out.push(Number(v))
  return Uint8Array.from(out)
}
