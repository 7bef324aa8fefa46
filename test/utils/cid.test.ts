// pinsetKey skips parsing for strings already in key form; it must give exactly what cidKey gives.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { base32 } from 'multiformats/bases/base32'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import { cidKey, parseCid, pinsetKey } from '../../src/utils/cid.js'

describe('pinsetKey', () => {
  it('equals cidKey for CIDv0 and CIDv1 of several codecs and hashes', async () => {
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
    for (const s of forms) assert.equal(pinsetKey(s), cidKey(s), s)
    // the fast path is taken for keys, and only for them
    const key = CID.createV1(raw.code, await sha256.digest(Uint8Array.of(1))).toString()
    assert.equal(pinsetKey(key), key)
    // a CIDv0's bytes (0x12 0x20 ...) written in base32 are no CID: refused by both, not taken for a key
    const v0InBase32 = base32.encode(CID.createV0(await sha256.digest(Uint8Array.of(1))).bytes)
    assert.throws(() => cidKey(v0InBase32))
    assert.throws(() => pinsetKey(v0InBase32))
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
