// heldPinKey skips parsing for strings already in key form; it must give exactly what pinKey gives.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { base16 } from 'multiformats/bases/base16'
import { base32 } from 'multiformats/bases/base32'
import { base64 } from 'multiformats/bases/base64'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import { parseCid } from '../../src/utils/cid.js'
import { heldPinKey, pinKey } from '../../src/utils/keys.js'

describe('heldPinKey', () => {
  it('equals pinKey for CIDv0 and CIDv1 of several codecs and hashes', async () => {
    const forms: string[] = []
    for (let i = 0; i < 50; i++) {
      const bytes = randomBytes(1 + (i % 40))
      const s256 = await sha256.digest(bytes)
      forms.push(
        CID.createV0(s256).toString(),
        CID.createV1(raw.code, s256).toString(),
        CID.createV1(0x70, s256).toString(),
        CID.createV1(0x71, s256).toString(),
        CID.createV1(raw.code, await sha512.digest(bytes)).toString(),
        CID.createV1(raw.code, identity.digest(bytes)).toString()
      )
    }
    for (const s of forms) assert.equal(heldPinKey(s), pinKey(s), s)
    // the fast path is taken for keys, and only for them
    const key = CID.createV1(raw.code, await sha256.digest(Uint8Array.of(1))).toString()
    assert.equal(heldPinKey(key), key)
    // a CIDv0's bytes (0x12 0x20 ...) written in base32 are no CID: refused by both, not taken for a key
    const v0InBase32 = base32.encode(CID.createV0(await sha256.digest(Uint8Array.of(1))).bytes)
    assert.throws(() => pinKey(v0InBase32))
    assert.throws(() => heldPinKey(v0InBase32))
  })
})

describe('parseCid', () => {
  it('parses what CID.parse parses, to the same CID, and refuses what it refuses', async () => {
    for (let i = 0; i < 200; i++) {
      const bytes = randomBytes(1 + (i % 40))
      const digest = i % 3 === 0 ? await sha512.digest(bytes) : i % 3 === 1 ? await sha256.digest(bytes) : identity.digest(bytes)
      for (const cid of [CID.createV1([raw.code, 0x70, 0x71][i % 3], digest), ...(digest.code === sha256.code ? [CID.createV0(digest)] : [])]) {
        const s = cid.toString()
        const parsed = parseCid(s)
        assert.ok(parsed.equals(CID.parse(s)), s)
        assert.equal(parsed.toString(), s)
      }
    }
    const good = CID.createV1(raw.code, await sha256.digest(Uint8Array.of(7))).toString()
    // the last character carries 2 unused bits: set, the string is not canonical (multiformats refuses it)
    const last = 'abcdefghijklmnopqrstuvwxyz234567'.indexOf(good.at(-1) ?? '')
    const nonCanonical = good.slice(0, -1) + 'abcdefghijklmnopqrstuvwxyz234567'[last | 1]
    for (const bad of [nonCanonical, good.slice(0, -3), `${good}aa`, 'bafyINVALID', base32.encode(CID.createV0(await sha256.digest(Uint8Array.of(1))).bytes), '']) {
      assert.throws(() => CID.parse(bad), `CID.parse refuses ${bad}`)
      assert.throws(() => parseCid(bad), `parseCid refuses ${bad}`)
    }
  })
})

describe('parseCid', () => {
  const V0 = 'QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG'
  const V1 = 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'

  it('reads a CID in any multibase, and a bare CIDv0', () => {
    const cid = CID.parse(V1)
    for (const s of [V1, V1.toUpperCase(), cid.toString(base16), cid.toString(base64)]) assert.ok(parseCid(s).equals(cid), s)
    assert.equal(parseCid(V0).version, 0)
  })

  for (const [input, why] of [
    ['', 'it is empty'],
    ['xyz', '"x" is not a multibase prefix: a CID is either a CIDv0 (46 base58btc characters starting "Qm") or a CIDv1 starting with its multibase prefix (most often "b", base32, as in "bafy...", or "k", base36)'],
    ['Qm123', 'a CIDv0 is 46 base58btc characters starting "Qm", this one has 5'],
    [`${V0.slice(0, 20)}0${V0.slice(21)}`, '"0" (character 21) is not a base58btc character; a CIDv0 is 46 base58btc characters starting "Qm"'],
    [`${V1.slice(0, 30)}1${V1.slice(31)}`, '"1" (character 31) is not a base32 character (the base its prefix "b" names)'],
    [V1.slice(0, 20), 'it does not end on a whole byte in base32: a character is missing, extra or wrong at its end (was it cut short?)'],
    ['bafy', 'it does not end on a whole byte in base32: a character is missing, extra or wrong at its end (was it cut short?)'],
    [`f01551220${'ab'.repeat(31)}`, 'it is cut short: its multihash announces a 32-byte digest and 31 bytes follow'],
    [`f01551220${'ab'.repeat(34)}`, 'it has 2 bytes too many after its 32-byte digest'],
    ['f0155', 'it is cut short: it ends before its multihash\'s hash function'],
    ['f02551220', 'its version is 2: a CID is version 0 ("Qm...") or 1'],
    [`b${base32.baseEncode(CID.parse(V0).bytes)}`, 'these are the bytes of a CIDv0 (a bare sha2-256 multihash), which is written only in base58btc without a prefix ("Qm..."), not in base32'],
    [`/ipfs/${V0}`, 'it contains "/": give the CID alone, not a path'],
    [`${V0} `, 'it contains whitespace']
  ] as const) {
    it(`says what is wrong with ${JSON.stringify(input)}`, () => {
      assert.throws(() => parseCid(input), { name: 'InvalidCIDError', message: `invalid CID "${input}": ${why}` })
    })
  }

  it('quotes at most 100 characters of a long input', () => {
    const long = 'x'.repeat(5000)
    assert.throws(() => parseCid(long), (err: Error) => err.message.startsWith(`invalid CID "${'x'.repeat(100)}...": "x" is not a multibase prefix`))
  })
})
