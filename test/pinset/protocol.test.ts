import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  decodeEnvelope, decodeGossip, decodeVersionVector, encodeBody, encodeEnvelope, encodeNotice, encodeVersionVector,
  MalformedMessageError, signingPayload
} from '../../src/pinset/protocol.js'
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

  it('encodes notices and version vectors', () => {
    const n = decodeGossip(encodeNotice({ author: 'peer', seq: 300 }))
    assert.deepEqual(n, { type: 'notice', notice: { author: 'peer', seq: 300 } })
    const vv = { a: 1, b: 2 ** 40 }
    assert.deepEqual(decodeVersionVector(encodeVersionVector(vv)), vv)
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
