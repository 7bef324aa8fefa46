// What string a CID becomes wherever cairn stores or indexes it, in one place: the pinset's key (the Yjs map, the
// tracker's and expiry's maps, the pinsvc request index in level, the placement hash) and the names Helia's
// datastore gives a CID or a multihash (src/ipfs/helia-internals.ts adds Helia's prefixes). Every one of these
// strings is on disk or compared across peers: test/utils/keys.test.ts pins them byte for byte.
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'

/**
 * The pinset's canonical string for a CID: CIDv1 in base32 (Qm... and bafy... of the same content share a key).
 * Branded so that a map keyed by it takes no other string.
 */
export type PinKey = string & { readonly __pinKey: true }

/**
 * Base32 lower ('b') whose first byte is 0x01 ('a' = 00000, then e-h = 001xx): the form of a PinKey. Other
 * 'b' strings (e.g. a CIDv0's bytes, 0x12 0x20..., which CID.parse refuses) take the pinKey path and its checks.
 */
export const PIN_KEY_FORM = /^ba[e-h][a-z2-7]+$/

/** The pinset key of a CID (or of a CID string in any form CID.parse takes; throws for any other string). */
export function pinKey (cid: CID | string): PinKey {
  const parsed = typeof cid === 'string' ? CID.parse(cid) : cid
  return (parsed.version === 1 ? parsed.toString() : parsed.toV1().toString()) as PinKey
}

/**
 * pinKey of a CID string the pinset already holds (so known to be a valid CID): one that is already in key form
 * (nearly every pin) is returned as it is instead of being parsed and encoded again, which cost seconds per
 * listener when a follower took in a checkpoint of 1M pins. multiformats' base32 decoder refuses non-canonical
 * trailing bits, so a valid CID in this form always encodes back to the same string.
 */
export function heldPinKey (cid: string): PinKey {
  return PIN_KEY_FORM.test(cid) ? cid as PinKey : pinKey(cid)
}

/** pinKey, or undefined for a string that is not a CID. */
export function tryPinKey (cid: string): PinKey | undefined {
  try { return pinKey(cid) } catch { return undefined }
}

/** Helia's datastore name of a CID (its toDSKey, after the prefix): the CID in base36, a CIDv0 as v1. */
export function datastoreCidName (cid: CID): string {
  return (cid.version === 0 ? cid.toV1() : cid).toString(base36)
}

/**
 * Helia's datastore name of a multihash: multibase base36 ('k' + base36 digits, one '0' per leading zero byte),
 * as multiformats' base36.encode writes it. That one (base-x) is quadratic in JavaScript and was the largest
 * cost of recording a 15,000-block pin; BigInt's toString(36) is native.
 */
export function datastoreMultihashName (bytes: Uint8Array): string {
  let zeros = 0
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++
  const rest = zeros === bytes.length ? '' : BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}`).toString(36)
  return `k${'0'.repeat(zeros)}${rest}`
}

/** The bytes a datastore name (datastoreMultihashName) stands for; undefined for a string that is not one. */
export function fromDatastoreName (name: string): Uint8Array | undefined {
  try {
    return base36.decode(name)
  } catch {
    return undefined
  }
}
