// Counted copies and trial copies: only trusted and proven peers count toward replication_factor_min.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { allocateBalanced, allocateWithProbation, type ProbationAllocateRequest } from '../../src/allocator/index.js'
import type { Metric } from '../../src/monitor/index.js'

const CID = 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi'

function freespace (free: Record<string, number>): Metric[] {
  return Object.entries(free).map(([peer, n]) => ({ name: 'freespace', peer, value: String(n), weight: n, partitionable: false, valid: true, expire: Date.now() * 1e6 + 30e9, received_at: 0 }))
}

/** t* peers count (trusted or proven); p* are on probation; s* are strangers claiming huge free space. */
function request (free: Record<string, number>, over: Partial<ProbationAllocateRequest> = {}, load: Record<string, number> = {}): ProbationAllocateRequest {
  return {
    cid: CID, min: 2, max: 2, current: [], priority: [], metrics: { freespace: freespace(free) },
    counts: p => p.startsWith('t'), trialLoad: p => load[p] ?? 0, trialLimit: 3, ...over
  }
}

const HUGE = 1e15

describe('allocateWithProbation', () => {
  it('when every peer counts, allocates exactly as the balanced allocator', () => {
    const req = request({ t1: 5, t2: 9, t3: 7 }, { max: 3 })
    assert.deepEqual(allocateWithProbation(req), { allocations: allocateBalanced(req), counted: ['t2', 't3', 't1'] })
    assert.throws(() => allocateWithProbation(request({ t1: 5 })), { name: 'NotEnoughPeersError' })
  })

  it('counted copies go to counting peers whatever free space strangers claim; one trial copy goes on top', () => {
    const got = allocateWithProbation(request({ t1: 5, t2: 9, s1: HUGE, s2: HUGE, p1: 3 }))
    assert.deepEqual(got.counted, ['t2', 't1'])
    assert.equal(got.allocations.length, 3, 'max counted copies plus one trial copy')
    assert.ok(['s1', 's2', 'p1'].includes(got.allocations[2]))
  })

  it('gives trial copies to the least loaded peer on probation, and none past the bound', () => {
    const free = { t1: 5, t2: 9, s1: HUGE, p1: 3 }
    assert.equal(allocateWithProbation(request(free, {}, { s1: 2, p1: 0 })).allocations[2], 'p1', 'p1 holds fewer')
    assert.equal(allocateWithProbation(request(free, {}, { s1: 1, p1: 1 })).allocations[2], 's1', 'equal loads: the balanced order')
    assert.deepEqual(allocateWithProbation(request(free, {}, { s1: 3, p1: 3 })).allocations, ['t2', 't1'], 'both at the bound')
  })

  it('trial copies fill the places counted peers leave up to max', () => {
    const got = allocateWithProbation(request({ t1: 5, p1: 3, p2: 4, p3: 1 }, { min: 2, max: 3 }))
    assert.deepEqual(got, { allocations: ['t1', 'p2', 'p1'], counted: ['t1'] }, 'under-replicated: 1 counted copy of 2, with 2 trial copies')
  })

  it('refuses only when fewer than min peers exist at all', () => {
    assert.throws(() => allocateWithProbation(request({ t1: 5, p1: 3 }, { min: 3, max: 3 })), {
      name: 'NotEnoughPeersError', message: /Available candidates: 2/
    })
    // every peer on probation is at its bound: the pin is taken with the counted copies there are
    assert.deepEqual(allocateWithProbation(request({ t1: 5, p1: 3 }, {}, { p1: 3 })), { allocations: ['t1'], counted: ['t1'] })
  })

  it('keeps current trial copies on a re-pin (they are what gets audited) and never gives an excluded (failed) peer one', () => {
    const free = { t1: 5, t2: 9, p1: 3, s1: HUGE }
    const first = allocateWithProbation(request(free, { current: ['t1', 't2', 'p1'] }, { p1: 3 }))
    assert.deepEqual(first.allocations, ['t1', 't2', 'p1'], 'p1 is past the bound, but keeps the copy it has')
    const moved = allocateWithProbation(request(free, { current: ['t1', 't2', 's1'], exclude: new Set(['s1']) }))
    assert.deepEqual(moved.allocations, ['t1', 't2', 'p1'])
  })

  it('a peer that proved itself counts: it can take a counted place', () => {
    const counts = (p: string): boolean => p.startsWith('t') || p === 'p1'
    const got = allocateWithProbation(request({ t1: 5, p1: 30, s1: HUGE }, { counts }))
    assert.deepEqual(got.counted, ['p1', 't1'])
    assert.deepEqual(got.allocations, ['p1', 't1', 's1'])
  })

  it('gives user allocations on probation a trial place even past the bound', () => {
    const got = allocateWithProbation(request({ t1: 5, t2: 9, p1: 3, p2: 4 }, { priority: ['p1'] }, { p1: 99 }))
    assert.deepEqual(got.allocations, ['t2', 't1', 'p1'])
  })
})
