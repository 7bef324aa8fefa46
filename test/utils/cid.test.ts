// pinsetKey skips parsing for strings already in key form; it must give exactly what cidKey gives.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { base32 } from 'multiformats/bases/base32'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import { cidKey, pinsetKey } from '../../src/utils/cid.js'

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
