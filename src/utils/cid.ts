import { CID } from 'multiformats/cid'

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
