// waitPinned (mirror sync's wait for the new version): a peer that misses a status call while it is busy is
// waited for; one that stays unreachable is left out once its grace time is over.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { waitPinned } from '../../src/mirror/index.js'
import type { Client } from '../../src/client/index.js'
import type { GlobalPinInfo, Pin, PinInfoShort, TrackerStatus } from '../../src/components.js'

/** 'lost' stands for a peer the cluster reports lost: cluster_error, with the lost-peer error. */
const short = (status: TrackerStatus | 'lost'): PinInfoShort => status === 'lost'
  ? { peername: '', status: 'cluster_error', timestamp: new Date().toISOString(), error: 'peer lost since 2024-05-06T09:00:00.000Z', attempt_count: 0, priority_pin: false }
  : { peername: '', status, timestamp: new Date().toISOString(), error: status === 'cluster_error' ? 'timed out' : '', attempt_count: 0, priority_pin: false }

/** A client whose status answers come from `script`, one poll after another (the last one repeats). */
function scripted (script: Array<Record<string, TrackerStatus | 'lost'>>): { client: Client, polls: () => number } {
  let n = 0
  const client = {
    async status (cid: string): Promise<GlobalPinInfo> {
      const step = script[Math.min(n++, script.length - 1)]
      const peerMap: Record<string, PinInfoShort> = {}
      for (const [peer, status] of Object.entries(step)) peerMap[peer] = short(status)
      return { cid, name: '', allocations: [], origins: [], created: '', metadata: null, peer_map: peerMap }
    }
  } as unknown as Client
  return { client, polls: () => n }
}

const pin = { cid: 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy', allocations: [] } as unknown as Pin

describe('mirror waitPinned', () => {
  it('waits for a peer that missed a status call instead of leaving it out', async () => {
    const { client } = scripted([
      { a: 'pinned', b: 'cluster_error', c: 'pinning' },
      { a: 'pinned', b: 'pinning', c: 'pinned' },
      { a: 'pinned', b: 'pinned', c: 'pinned' }
    ])
    const res = await waitPinned(client, pin, { timeoutMs: 5000, pollMs: 10, unreachableGraceMs: 200 })
    assert.deepEqual(res.pinned.sort(), ['a', 'b', 'c'])
    assert.deepEqual(res.unreachable, [])
  })

  it('leaves out a lost peer at once, without its grace time', async () => {
    const { client, polls } = scripted([{ a: 'pinned', b: 'lost', r: 'remote' }])
    const res = await waitPinned(client, pin, { timeoutMs: 5000, pollMs: 10, unreachableGraceMs: 60_000 })
    assert.deepEqual(res, { pinned: ['a'], unreachable: ['b'] })
    assert.equal(polls(), 1)
  })

  it('leaves out a peer that stays unreachable for the grace time, and not before', async () => {
    const { client, polls } = scripted([{ a: 'pinned', b: 'cluster_error', r: 'remote' }])
    const started = Date.now()
    const res = await waitPinned(client, pin, { timeoutMs: 5000, pollMs: 10, unreachableGraceMs: 300 })
    assert.deepEqual(res, { pinned: ['a'], unreachable: ['b'] })
    assert.ok(Date.now() - started >= 300, `returned after ${Date.now() - started} ms`)
    assert.ok(polls() > 3)
  })
})
