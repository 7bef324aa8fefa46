import { varint } from 'multiformats'
import { bases } from 'multiformats/basics'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { InvalidCIDError } from '../errors.js'
import { PIN_KEY_FORM } from './keys.js'
import { equals } from 'multiformats/bytes'
import type { BlockCodec } from 'multiformats/codecs/interface'
import type { MultihashHasher } from 'multiformats/hashes/interface'

const BASE32_VALUES = (() => {
  const values = new Int8Array(128).fill(-1)
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
  for (let i = 0; i < alphabet.length; i++) values[alphabet.charCodeAt(i)] = i
  return values
})()

/**
 * The base32 CIDv1 strings cairn writes (PIN_KEY_FORM), decoded without multiformats' base32 decoder, which costs
 * ~10 us per CID: 35 ms of a mirror re-sync that takes 3,500 CIDs from its cache. Undefined for a string in
 * another form or with non-zero trailing bits (which multiformats refuses): those take CID.parse and its checks.
 */
function decodeKeyForm (s: string): CID | undefined {
  if (!PIN_KEY_FORM.test(s)) return undefined
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
  if ((value & ((1 << bits) - 1)) !== 0) return undefined
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

/** The multibases multiformats knows, by prefix. */
const BASE_BY_PREFIX = new Map(Object.values(bases).map(b => [b.prefix as string, b]))

/** The longest part of a CID quoted back in an error. */
const SHOWN_MAX = 100

/**
 * The one CID parser, for every string that comes in (REST, Pinning Service API, gateway paths, CLI arguments,
 * config, files and caches cairn reads): any multibase multiformats knows, or a bare base58btc CIDv0. It is
 * parsed once there; past it a CID travels as a CID, or as its PinKey (src/utils/keys.ts). InvalidCIDError quotes
 * the input and says in words what is wrong with it (see explainInvalidCid).
 */
export function parseCid (input: string): CID {
  try {
    if (input !== '') return decodeKeyForm(input) ?? CID.parse(input, BASE_BY_PREFIX.get(input[0])?.decoder)
  } catch {}
  const shown = input.length > SHOWN_MAX ? `${input.slice(0, SHOWN_MAX)}...` : input
  throw new InvalidCIDError(`invalid CID "${shown}": ${explainInvalidCid(input)}`)
}

const CIDV0 = 'a CIDv0 is 46 base58btc characters starting "Qm"'

/**
 * What is wrong with a string that is not a CID, in words: the multiformats errors name neither the
 * character nor the part at fault ("Non-base32 character", "Invalid CID version 16", "multibase decoder
 * must be provided").
 */
export function explainInvalidCid (input: string): string {
  if (input === '') return 'it is empty'
  if (/\s/.test(input)) return 'it contains whitespace'
  if (input.includes('/')) return 'it contains "/": give the CID alone, not a path'
  if (input[0] === 'Q') {
    const bad = badCharacter(input, 'z', BASE_BY_PREFIX.get('z'))
    if (bad != null) return `${bad}; ${CIDV0}`
    if (input.length !== 46) return `${CIDV0}, this one has ${input.length}`
    return 'it does not decode to a sha2-256 multihash, which a CIDv0 is'
  }
  const base = BASE_BY_PREFIX.get(input[0])
  if (base == null) {
    return `"${[...input][0]}" is not a multibase prefix: a CID is either a CIDv0 (46 base58btc characters starting "Qm") ` +
      'or a CIDv1 starting with its multibase prefix (most often "b", base32, as in "bafy...", or "k", base36)'
  }
  let bytes: Uint8Array
  try {
    bytes = base.decoder.decode(input)
  } catch (err) {
    const prefix = [...input][0]
    const bad = badCharacter(input.slice(prefix.length), prefix, base, 1)
    if (bad != null) return `${bad} (the base its prefix "${prefix}" names)`
    // multiformats' words for bits left over at the end (too many characters, too few, or the last one wrong)
    if ((err as Error).message === 'Unexpected end of data') return `it does not end on a whole byte in ${base.name}: a character is missing, extra or wrong at its end (was it cut short?)`
    return `it is not valid ${base.name} (the base its prefix "${prefix}" names): ${(err as Error).message}`
  }
  return explainBytes(bytes, base.name) ?? `it is not a valid CID in ${base.name}`
}

/**
 * The first character of `text` that the base does not have, as words (its position counted from `offset`
 * characters before `text`); undefined when each one is in it.
 */
function badCharacter (text: string, prefix: string, base: { name: string, decoder: { decode(s: string): Uint8Array } } | undefined, offset = 0): string | undefined {
  if (base == null) return undefined
  let at = offset
  for (const c of text) {
    at++
    try {
      base.decoder.decode(prefix + c)
    } catch (err) {
      // a character alone may not make a whole byte ("Unexpected end of data"): only "Non-<base> character" counts
      if ((err as Error).message.startsWith('Non-')) return `"${c}" (character ${at}) is not a ${base.name} character`
    }
  }
  return undefined
}

/** What is wrong with the decoded bytes of a CIDv1: version, then the varints, then the digest's length. */
function explainBytes (bytes: Uint8Array, baseName: string): string | undefined {
  if (bytes[0] === 0x12 && bytes[1] === 0x20) {
    return `these are the bytes of a CIDv0 (a bare sha2-256 multihash), which is written only in base58btc without a prefix ("Qm..."), not in ${baseName}`
  }
  let at = 0
  const next = (what: string): number | string => {
    if (at >= bytes.length) return `it is cut short: it ends before its ${what}`
    try {
      const [value, length] = varint.decode(bytes, at)
      at += length
      return value
    } catch {
      return `it is cut short in its ${what}`
    }
  }
  const version = next('version')
  if (typeof version === 'string') return version
  if (version !== 1) return `its version is ${version}: a CID is version 0 ("Qm...") or 1`
  const codec = next('codec')
  if (typeof codec === 'string') return codec
  const hash = next('multihash\'s hash function')
  if (typeof hash === 'string') return hash
  const length = next('multihash\'s digest length')
  if (typeof length === 'string') return length
  const left = bytes.length - at
  if (left < length) return `it is cut short: its multihash announces a ${length}-byte digest and ${left} bytes follow`
  if (left > length) return `it has ${left - length} bytes too many after its ${length}-byte digest`
  return undefined
}

/** Whether `bytes` hash to `cid` with `hasher` (the hasher of the CID's multihash code). */
export async function hashesTo (hasher: MultihashHasher, cid: CID, bytes: Uint8Array): Promise<boolean> {
  return equals((await hasher.digest(bytes)).bytes, cid.multihash.bytes)
}
