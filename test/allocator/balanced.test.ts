import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { allocateBalanced } from '../../src/allocator/index.js'
import type { BalancedAllocateRequest } from '../../src/allocator/index.js'
import type { Metric } from '../../src/monitor/index.js'

const CID = 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'

function metric (name: string, peer: string, value: string, weight: number, partitionable = false): Metric {
  return { name, peer, value, weight, partitionable, valid: true, expire: Date.now() * 1e6 + 30e9, received_at: Date.now() * 1e6 }
}

/** freespace metrics from peer -> bytes free. */
function freespace (free: Record<string, number>): Metric[] {
  return Object.entries(free).map(([peer, n]) => metric('freespace', peer, String(n), n))
}

function groups (group: Record<string, string>): Metric[] {
  return Object.entries(group).map(([peer, g]) => metric('tag:group', peer, g, 0, true))
}

function request (over: Partial<BalancedAllocateRequest> & Pick<BalancedAllocateRequest, 'metrics'>): BalancedAllocateRequest {
  return { cid: CID, min: 2, max: 3, current: [], priority: [], ...over }
}

const FIVE = { p1: 500, p2: 100, p3: 400, p4: 200, p5: 300 }

describe('allocateBalanced', () => {
  it('picks the peers with the most free space, up to max', () => {
    const got = allocateBalanced(request({ metrics: { freespace: freespace(FIVE) } }))
    assert.deepEqual(got, ['p1', 'p3', 'p5'])
  })

  it('spreads copies over tag groups, the freest peer of each group first', () => {
    const metrics = {
      'tag:group': groups({ a1: 'a', a2: 'a', a3: 'a', b1: 'b', b2: 'b' }),
      freespace: freespace({ a1: 10, a2: 30, a3: 20, b1: 800, b2: 900 })
    }
    const two = allocateBalanced(request({ min: 2, max: 2, metrics }))
    assert.deepEqual(new Set(two), new Set(['b2', 'a2']), 'one copy per group even though group b has far more space')
    const four = allocateBalanced(request({ min: 4, max: 4, metrics }))
    assert.deepEqual(four, ['b2', 'a2', 'b1', 'a3'], 'round-robin across groups (freest group first), freest first within each')
  })

  it('treats a peer without a tag metric as group "default"', () => {
    const metrics = {
      'tag:group': groups({ a1: 'a', a2: 'a' }),
      freespace: freespace({ a1: 900, a2: 800, d1: 5 })
    }
    assert.deepEqual(new Set(allocateBalanced(request({ min: 2, max: 2, metrics }))), new Set(['a1', 'd1']))
  })

  it('puts user allocations first, then the balanced order', () => {
    const got = allocateBalanced(request({ priority: ['p2', 'p4'], metrics: { freespace: freespace(FIVE) } }))
    assert.deepEqual(got, ['p4', 'p2', 'p1'])
  })

  it('ignores user allocations that have no metrics', () => {
    const got = allocateBalanced(request({ priority: ['ghost'], metrics: { freespace: freespace(FIVE) } }))
    assert.deepEqual(got, ['p1', 'p3', 'p5'])
  })

  it('keeps current allocations on re-pin instead of moving to freer peers', () => {
    const metrics = { freespace: freespace(FIVE) }
    assert.deepEqual(allocateBalanced(request({ current: ['p2', 'p4'], metrics })), ['p2', 'p4'], 'at min: unchanged')
    assert.deepEqual(allocateBalanced(request({ min: 3, current: ['p2', 'p4'], metrics })), ['p2', 'p4', 'p1'], 'below min: topped up')
    assert.deepEqual(allocateBalanced(request({ min: 1, max: 2, current: ['p2', 'p4', 'p5'], metrics })), ['p2', 'p4'], 'above max: truncated')
  })

  it('drops current allocations that are excluded or have no metrics, and replaces them', () => {
    const metrics = { freespace: freespace(FIVE) }
    const got = allocateBalanced(request({ current: ['p2', 'gone', 'p4'], exclude: new Set(['p4', 'p1']), metrics }))
    assert.deepEqual(got, ['p2', 'p3', 'p5'])
  })

  it('never chooses a peer with no free space, not even as a user allocation', () => {
    const metrics = { freespace: freespace({ full: 0, over: -5, p1: 10, p2: 5 }) }
    assert.deepEqual(allocateBalanced(request({ priority: ['full'], metrics })), ['p1', 'p2'])
  })

  it('requires every non-tag metric: a peer with only a tag does not qualify', () => {
    const metrics = { 'tag:group': groups({ p1: 'a', lonely: 'b' }), freespace: freespace({ p1: 10, p2: 5 }) }
    assert.deepEqual(allocateBalanced(request({ metrics })), ['p1', 'p2'])
  })

  it('ignores invalid metrics', () => {
    const metrics = { freespace: [...freespace({ p1: 10, p2: 5 }), { ...metric('freespace', 'p3', '99', 99), valid: false }] }
    assert.deepEqual(allocateBalanced(request({ metrics })), ['p1', 'p2'])
  })

  it('fails with IPFS Cluster\'s exact message when too few peers qualify', () => {
    const metrics = { freespace: freespace({ p1: 10, p2: 0, p3: 5 }) }
    assert.throws(() => allocateBalanced(request({ min: 3, max: 4, current: ['p3'], metrics })), {
      name: 'NotEnoughPeersError',
      message: 'not enough peers to allocate CID. Needed at least: 2. Wanted at most: 3. Available candidates: 1. See logs for more info.'
    })
  })

  it('returns [] for replication -1 (pin everywhere)', () => {
    assert.deepEqual(allocateBalanced(request({ min: -1, max: -1, metrics: {} })), [])
  })

  it('rejects an empty allocate_by', () => {
    assert.throws(() => allocateBalanced(request({ allocateBy: [], metrics: {} })), { name: 'InvalidParameterError' })
  })

  it('is deterministic whatever order the metrics arrive in', () => {
    const metrics = { 'tag:group': groups({ a1: 'a', b1: 'b', a2: 'a', b2: 'b' }), freespace: freespace({ a1: 1, a2: 1, b1: 1, b2: 1 }) }
    const reversed = { 'tag:group': [...metrics['tag:group']].reverse(), freespace: [...metrics.freespace].reverse() }
    assert.deepEqual(allocateBalanced(request({ metrics })), allocateBalanced(request({ metrics: reversed })))
  })
})
