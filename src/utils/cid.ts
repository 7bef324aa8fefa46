import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { InvalidCIDError } from '../errors.js'
import type { BlockCodec } from 'multiformats/codecs/interface'

/** The pinset's map key for a CID string: CIDv1, base32 (Qm... and bafy... of the same content share a key). */
export function cidKey (cid: string | CID): string {
  const parsed = typeof cid === 'string' ? CID.parse(cid) : cid
  return parsed.version === 1 ? parsed.toString() : parsed.toV1().toString()
}

/**
 * Base32 lower ('b') whose first byte is 0x01 ('a' = 00000, then e-h = 001xx): the form of a CIDv1 key. Other
 * 'b' strings (e.g. a CIDv0's bytes, 0x12 0x20..., which CID.parse refuses) take the cidKey path and its checks.
 */
const V1_BASE32 = /^ba[e-h][a-z2-7]+$/

/**
 * cidKey for a CID string the pinset already holds (so known to be a valid CID): one that is already in key
 * form (nearly every pin) is returned as it is instead of being parsed and encoded again, which cost seconds
 * per listener when a follower took in a checkpoint of 1M pins. multiformats' base32 decoder refuses
 * non-canonical trailing bits, so a valid CID in this form always encodes back to the same string.
 */
export function pinsetKey (cid: string): string {
  return V1_BASE32.test(cid) ? cid : cidKey(cid)
}

/** cidKey, or undefined for a string that is not a CID. */
export function tryCidKey (cid: string): string | undefined {
  try { return cidKey(cid) } catch { return undefined }
}

const BASE32_VALUES = (() => {
  const values = new Int8Array(128).fill(-1)
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
  for (let i = 0; i < alphabet.length; i++) values[alphabet.charCodeAt(i)] = i
  return values
})()

/**
 * CID.parse, with a fast path for the base32 CIDv1 strings cairn writes: multiformats' base32 decoder costs
 * ~10 us per CID, 35 ms of a mirror re-sync that takes 3,500 CIDs from its cache. Strings in another form, or
 * with non-zero trailing bits (which multiformats refuses), go to CID.parse and its errors.
 */
export function parseCid (s: string): CID {
  if (!V1_BASE32.test(s)) return CID.parse(s)
  const bytes = new Uint8Array(Math.floor((s.length - 1) * 5 / 8))
  let bits = 0
  let value = 0
  let j = 0
  for (let i = 1; i < s.length; i++) {
    value = ((value << 5) | BASE32_VALUES[s.charCodeAt(i)]) & 0xfff
    bits += 5
    if (bits >= 8) {
      bits -= 8
      bytes[j++] = (value >>> bits) & 0xff
    }
  }
  if ((value & ((1 << bits) - 1)) !== 0) return CID.parse(s)
  return CID.decode(bytes)
}

/** Where a peer looks up the codecs and hash functions it knows (Helia's getCodec and getHasher). */
export interface CidReaders {
  getCodec(code: number): BlockCodec<number, any> | Promise<BlockCodec<number, any>>
  getHasher(code: number): unknown
}

/**
 * Refuses a CID no peer could read: a hash function this peer does not know (no block of it can be verified),
 * and, when the CID is to be decoded (`decode`, the default: any pin, a path, a file or a CAR; not a raw block),
 * a codec it does not know or an identity CID whose inline bytes do not decode with its codec. Serving or pinning
 * it could only fail later, as a 500 or a pin_error. InvalidCIDError names the CID and what is wrong with it.
 */
export async function checkReadable (cid: CID, readers: CidReaders, { decode = true }: { decode?: boolean } = {}): Promise<void> {
  const unsupported = (why: string): InvalidCIDError => new InvalidCIDError(`unsupported CID "${cid}": ${why}`)
  try {
    await readers.getHasher(cid.multihash.code)
  } catch {
    throw unsupported(`hash function 0x${cid.multihash.code.toString(16)} is not one this peer can verify`)
  }
  if (!decode) return
  let codec: BlockCodec<number, any>
  try {
    codec = await readers.getCodec(cid.code)
  } catch {
    throw unsupported(`codec 0x${cid.code.toString(16)} is not one this peer can decode`)
  }
  if (cid.multihash.code === identity.code) {
    try {
      codec.decode(cid.multihash.digest)
    } catch (err) {
      throw new InvalidCIDError(`invalid CID "${cid}": its inline (identity) data is not valid ${codec.name}: ${(err as Error).message}`)
    }
  }
}
