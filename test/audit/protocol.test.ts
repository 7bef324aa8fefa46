import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256, sha512 } from 'multiformats/hashes/sha2'
import {
  decodeAuditAnswer, decodeAuditMessage, decodeAuditRequest, encodeAuditAnswer, encodeAuditReport, encodeAuditRequest,
  MAX_AUDIT_BLOCK_BYTES, MAX_AUDIT_CIDS, MAX_AUDIT_REQUEST_BYTES
} from '../../src/audit/protocol.js'

async function cid (i: number, hash: typeof sha256 | typeof sha512 = sha256): Promise<CID> {
  return CID.createV1(raw.code, await hash.digest(Uint8Array.of(i)))
}

describe('audit wire format', () => {
  it('round-trips requests of 1 to 8 CIDs, CIDv0 and sha2-512 included', async () => {
    const cids = [CID.parse('QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG'), await cid(1, sha512), ...await Promise.all([2, 3, 4, 5, 6, 7].map(async i => await cid(i)))]
    for (let n = 1; n <= MAX_AUDIT_CIDS; n++) {
      const frame = encodeAuditRequest(cids.slice(0, n))
      assert.ok(frame.length <= MAX_AUDIT_REQUEST_BYTES)
      assert.deepEqual(decodeAuditRequest(frame).map(String), cids.slice(0, n).map(String))
      assert.deepEqual(decodeAuditMessage(frame), { type: 'request', cids: decodeAuditRequest(frame) })
    }
  })

  it('refuses empty, oversized, truncated, padded and garbled requests', async () => {
    const nine = await Promise.all(Array.from({ length: 9 }, async (_, i) => await cid(i)))
    assert.throws(() => encodeAuditRequest([]), RangeError)
    assert.throws(() => encodeAuditRequest(nine), RangeError)
    const good = encodeAuditRequest(nine.slice(0, 2))
    const bad: Array<[string, Uint8Array, RegExp]> = [
      ['empty', new Uint8Array(0), /truncated/],
      ['unknown type', Uint8Array.of(0x07, 1), /unknown request type/],
      ['zero CIDs', Uint8Array.of(0x01, 0), /1-8 blocks/],
      ['nine CIDs', Uint8Array.of(0x01, 9), /1-8 blocks/],
      ['truncated', good.subarray(0, good.length - 3), /length out of range|truncated/],
      ['padded', Uint8Array.from([...good, 0]), /bytes after the last CID/],
      ['not a CID', Uint8Array.of(0x01, 1, 3, 0xff, 0xff, 0xff), /CID 0/],
      ['too long', new Uint8Array(MAX_AUDIT_REQUEST_BYTES + 1).fill(1), /at most/]
    ]
    for (const [what, frame, message] of bad) assert.throws(() => decodeAuditRequest(frame), { name: 'MalformedAuditError', message }, what)
  })

  it('round-trips answers, and refuses a block over 2 MiB or an unknown answer', () => {
    const bytes = Uint8Array.of(1, 2, 3)
    assert.deepEqual(decodeAuditAnswer(encodeAuditAnswer({ status: 'held', bytes })), { status: 'held', bytes })
    assert.deepEqual(decodeAuditAnswer(encodeAuditAnswer({ status: 'absent' })), { status: 'absent' })
    assert.deepEqual(decodeAuditAnswer(encodeAuditAnswer({ status: 'too_large' })), { status: 'too_large' })
    assert.throws(() => encodeAuditAnswer({ status: 'held', bytes: new Uint8Array(MAX_AUDIT_BLOCK_BYTES + 1) }), RangeError)
    assert.throws(() => decodeAuditAnswer(new Uint8Array(0)), { name: 'MalformedAuditError' })
    assert.throws(() => decodeAuditAnswer(Uint8Array.of(9)), { name: 'MalformedAuditError', message: /unknown answer type/ })
    assert.throws(() => decodeAuditAnswer(Uint8Array.of(0, 1)), { name: 'MalformedAuditError', message: /status-only/ })
  })

  it('round-trips failure reports, cutting a long reason on a character boundary', () => {
    const peer = '12D3KooWHFrmLWTTDD4NodngtRMEVYgxrsDMp4F9wUtShFzp7sBq'
    assert.deepEqual(decodeAuditMessage(encodeAuditReport(peer, 'block x not held')), { type: 'report', peer, reason: 'block x not held' })
    const long = decodeAuditMessage(encodeAuditReport(peer, 'é'.repeat(2000)))
    assert.ok(long.type === 'report' && long.reason.length === 512 && /^é+$/.test(long.reason))
    const frame = encodeAuditReport(peer, 'r')
    assert.throws(() => decodeAuditMessage(frame.subarray(0, frame.length - 1)), { name: 'MalformedAuditError' })
    assert.throws(() => decodeAuditMessage(Uint8Array.from([...frame, 0])), { name: 'MalformedAuditError' })
  })
})
