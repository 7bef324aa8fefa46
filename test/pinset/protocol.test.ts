import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  decodeEnvelope, decodeGossip, decodeHave, decodeVersionVector, decodeWant, encodeBody, encodeEnvelope, encodeHave,
  encodeNotice, encodeVersionVector, encodeWant, MalformedMessageError, signingPayload
} from '../../src/pinset/protocol.js'
import { RateLimiter } from '../../src/pinset/rate.js'
import { SeqTracker } from '../../src/pinset/store.js'

describe('pinset wire format', () => {
  it('round-trips a signed envelope and detects any flipped byte', async () => {
    const key = await generateKeyPair('Ed25519')
    const author = peerIdFromPrivateKey(key).toString()
    const body = encodeBody('c1', author, 7, Uint8Array.from([1, 2, 3, 4]))
    const bytes = encodeEnvelope(body, await key.sign(signingPayload(body)))
    const env = decodeEnvelope(bytes)
    assert.equal(env.cluster, 'c1')
    assert.equal(env.author, author)
    assert.equal(env.seq, 7)
    assert.deepEqual([...env.update], [1, 2, 3, 4])
    assert.equal(await key.publicKey.verify(signingPayload(env.body), env.signature), true)

    let undetected = 0
    for (let i = 0; i < bytes.length; i++) {
      const copy = bytes.slice()
      copy[i] ^= 0x01
      try {
        const e = decodeEnvelope(copy)
        const ok = e.author === author && e.cluster === 'c1' && await key.publicKey.verify(signingPayload(e.body), e.signature)
        if (ok) undetected++
      } catch (err) {
        assert.ok(err instanceof MalformedMessageError || err instanceof Error)
      }
    }
    assert.equal(undetected, 0, 'every single-bit corruption is either undecodable or fails verification')
  })

  it('rejects truncated and trailing bytes, and unknown message types', () => {
    const body = encodeBody('c', 'a', 1, new Uint8Array(10))
    const bytes = encodeEnvelope(body, new Uint8Array(64))
    assert.throws(() => decodeEnvelope(bytes.subarray(0, bytes.length - 1)), MalformedMessageError)
    assert.throws(() => decodeEnvelope(Uint8Array.from([...bytes, 0])), MalformedMessageError)
    assert.throws(() => decodeGossip(Uint8Array.of(9, 1, 2)), /unknown message type/)
    assert.throws(() => decodeGossip(new Uint8Array()), /empty/)
  })

  it('encodes catch-up offers and choices, and refuses bad ones', () => {
    assert.deepEqual(decodeHave(encodeHave({ vv: { a: 7 }, checkpoint: true })), { vv: { a: 7 }, checkpoint: true })
    assert.deepEqual(decodeWant(encodeWant({ vv: { b: 0 }, checkpoint: false })), { vv: { b: 0 }, checkpoint: false })
    assert.throws(() => decodeHave(encodeWant({ vv: {}, checkpoint: false })), /not a catch-up offer/)
    const flag = encodeHave({ vv: {}, checkpoint: true })
    flag[1] = 2
    assert.throws(() => decodeHave(flag), /bad catch-up offer/)
    assert.throws(() => decodeWant(Uint8Array.of(6, 0)), MalformedMessageError)
  })

  it('encodes notices and version vectors', () => {
    const n = decodeGossip(encodeNotice({ author: 'peer', seq: 300 }))
    assert.deepEqual(n, { type: 'notice', notice: { author: 'peer', seq: 300 } })
    const vv = { a: 1, b: 2 ** 40 }
    assert.deepEqual(decodeVersionVector(encodeVersionVector(vv)), vv)
  })

  it('writes varints as it always did: minimal, 7 bits a byte, least significant first (fixed bytes)', () => {
    const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
    // notice = 0x02 || lp("p") || varint(seq)
    assert.equal(hex(encodeNotice({ author: 'p', seq: 0 })), '02017000')
    assert.equal(hex(encodeNotice({ author: 'p', seq: 127 })), '0201707f')
    assert.equal(hex(encodeNotice({ author: 'p', seq: 300 })), '020170ac02')
    assert.equal(hex(encodeNotice({ author: 'p', seq: 2 ** 31 })), '02017080808080' + '08')
    assert.equal(hex(encodeNotice({ author: 'p', seq: 2 ** 32 + 5 })), '02017085808080' + '10')
    assert.equal(hex(encodeNotice({ author: 'p', seq: Number.MAX_SAFE_INTEGER })), '020170ffffffffffffff0f')
    assert.throws(() => encodeNotice({ author: 'p', seq: -1 }), RangeError)
    // a non-minimal varint is still read (what the old reader accepted)
    assert.deepEqual(decodeGossip(Uint8Array.from([0x02, 0x01, 0x70, 0x80, 0x00])), { type: 'notice', notice: { author: 'p', seq: 0 } })
  })
})

describe('SeqTracker', () => {
  it('tracks the contiguous prefix and fills gaps', () => {
    const t = new SeqTracker()
    assert.equal(t.add('a', 1), true)
    assert.equal(t.add('a', 3), true)
    assert.equal(t.add('a', 1), false)
    assert.deepEqual(t.versionVector(), { a: 1 })
    assert.equal(t.hasGaps('a'), true)
    assert.equal(t.max('a'), 3)
    t.add('a', 2)
    assert.deepEqual(t.versionVector(), { a: 3 })
    assert.equal(t.hasGaps(), false)
    assert.equal(t.has('a', 2), true)
    assert.equal(t.has('a', 4), false)
    assert.equal(t.count(), 3)
  })
})

describe('RateLimiter', () => {
  it('lets a burst through, then the rate, per sender, and forgets senders whose bucket is full again', () => {
    const rate = new RateLimiter({ perSecond: 2, burst: 3, maxSenders: 2 })
    const t0 = 1_000_000
    assert.deepEqual([1, 2, 3, 4].map(() => rate.take('a', t0)), [true, true, true, false])
    assert.equal(rate.take('b', t0), true, 'another sender has its own bucket')
    assert.equal(rate.take('a', t0 + 400), false, '0.8 of a message refilled')
    assert.equal(rate.take('a', t0 + 500), true, 'one refilled after 0.5 s')
    // a third sender past maxSenders: 'b' (full again) is forgotten, 'a' (still empty) is kept
    assert.equal(rate.take('c', t0 + 600), true)
    assert.equal(rate.take('a', t0 + 600), false, 'a was kept: a new bucket would start full')
    assert.deepEqual([1, 2, 3, 4].map(() => rate.take('a', t0 + 5000)), [true, true, true, false], 'a refills to its burst, no more')
  })
})
