import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ZERO_TIME, type Pin } from '../../src/components.js'
import { decodePin, encodePin } from '../../src/pinset/codec.js'

const KEY = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

function pin (over: Partial<Pin> = {}): Pin {
  return {
    cid: KEY, type: 'pin', name: '', mode: 'recursive', replication_factor_min: -1, replication_factor_max: -1,
    allocations: [], shard_size: 0, max_depth: -1, reference: null, expire_at: ZERO_TIME, metadata: {}, origins: [],
    pin_update: null, user_allocations: null, timestamp: '2026-11-23T10:00:00.123Z', ...over
  }
}

describe('pin codec', () => {
  it('stores a default pin in a few bytes and restores it exactly', () => {
    const p = pin()
    const s = encodePin(p, KEY)
    assert.ok(s.length < 24, s)
    assert.deepEqual(decodePin(s, KEY), p)
  })

  it('round-trips every field, and keeps a CIDv0 as written', () => {
    const p = pin({
      cid: 'QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN', type: 'shard-pin', name: 'debian', mode: 'direct',
      replication_factor_min: 2, replication_factor_max: 3, allocations: ['a', 'b'], shard_size: 1024, max_depth: 1,
      reference: KEY, expire_at: '2030-01-01T00:00:00Z', metadata: { k: 'v' }, origins: ['/ip4/1.2.3.4/tcp/1/p2p/x'],
      pin_update: KEY, user_allocations: ['a']
    })
    assert.deepEqual(decodePin(encodePin(p, KEY), KEY), p)
  })
})
