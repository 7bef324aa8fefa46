// Issue 4 items 4 and 5: quota, expiry, pin update, and pin options that are refused with a message naming them.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { removeDirs, startPeer, stopPeers } from '../ipfs/helpers.js'
import { waitFor, oneFile } from '../util.js'
import type { PinOptions } from '../../src/components.js'
import { pinKey } from '../../src/utils/keys.js'

const KB = 1024
const QUOTA = 400 * KB

describe('quota, expiry, pin update', () => {
  let tc: TestCluster
  let ids: string[]
  before(async () => {
    // Peer 2 offers 400 KiB; the others offer their disk.
    tc = await createTestCluster(3, { monitor: i => ({ storage_max: i === 2 ? QUOTA : 0, metric_ttl_ms: 2000 }) })
    ids = [0, 1, 2].map(i => tc.peer(i).id)
    await waitFor(() => tc.peer(0).monitor.latest('freespace').length === 3, { timeoutMs: 30_000, message: 'freespace of every peer' })
  })
  after(async () => { await tc?.close() })

  async function add (bytes: Uint8Array, options: PinOptions & { no_pin?: boolean }): Promise<string> {
    let root = ''
    for await (const out of tc.peer(0).cluster.add(oneFile('f.bin', bytes), { ...options, raw_leaves: true, cid_version: 1 })) root = out.cid
    return root
  }

  it('a peer at its quota refuses with the quota error, keeps its other pins, and is no longer chosen', async () => {
    const only2 = { user_allocations: [ids[2]], replication_factor_min: 1, replication_factor_max: 1 }
    const first = await add(randomBytes(250 * KB), only2)
    await waitFor(async () => (await tc.peer(2).tracker.status(pinKey(first))).status === 'pinned', { timeoutMs: 30_000, message: 'first file pinned on peer 2' })

    // 300 KiB more would take peer 2 past 400 KiB.
    const second = await add(randomBytes(300 * KB), only2)
    const info = await waitFor(async () => {
      const s = await tc.peer(2).tracker.status(pinKey(second))
      return s.status === 'pin_error' ? s : undefined
    }, { timeoutMs: 30_000, message: 'second file fails on peer 2' })
    assert.match(info.error, /quota exceeded: .*storage_max of 409600 bytes/)
    assert.equal((await tc.peer(2).tracker.status(pinKey(first))).status, 'pinned', 'the first pin is untouched')
    assert.equal(await tc.peer(2).ipfs.isPinned(CID.parse(first)), true)
    assert.ok(await tc.peer(2).ipfs.repoSize() < QUOTA + 64 * KB, 'the store stopped near the quota')

    // Its freespace metric drops to (about) nothing: the allocator picks the two other peers.
    await waitFor(() => {
      const m = tc.peer(0).monitor.latest('freespace').find(x => x.peer === ids[2])
      return m != null && Number(m.value) < 160 * KB
    }, { timeoutMs: 15_000, message: 'peer 2 reports little free space' })
    for (let n = 0; n < 3; n++) {
      const cid = await add(randomBytes(8 * KB), { replication_factor_min: 2, replication_factor_max: 2 })
      const pin = tc.peer(0).pinset.get(cid)!
      assert.deepEqual([...pin.allocations].sort(), [ids[0], ids[1]].sort(), 'the full peer is not chosen')
    }
  })

  it('garbage does not count against the quota: a pin that fits once removed pins are collected is pinned', async () => {
    const only2 = { user_allocations: [ids[2]], replication_factor_min: 1, replication_factor_max: 1 }
    const held = [...tc.peer(2).pinset.list()].filter(p => p.allocations.includes(ids[2])).map(p => CID.parse(p.cid))
    for (const cid of held) await tc.peer(0).cluster.unpin(cid)
    await waitFor(async () => {
      for (const cid of held) if (await tc.peer(2).ipfs.isPinned(cid)) return false
      return true
    }, { timeoutMs: 30_000, message: 'peer 2 unpinned what it held' })
    // no repo GC ran (the next scheduled one is an hour away): the removed pin's blocks are still held
    const garbage = await tc.peer(2).ipfs.repoSize()
    assert.ok(garbage > 200 * KB, `the removed pin's blocks are still held (${garbage} bytes)`)

    // 300 KiB: past the quota with the garbage, well within it without
    const bytes = randomBytes(300 * KB)
    const third = await add(bytes, only2)
    await waitFor(async () => {
      const s = await tc.peer(2).tracker.status(pinKey(third))
      assert.notEqual(s.status, 'pin_error', s.error)
      return s.status === 'pinned'
    }, { timeoutMs: 30_000, message: 'the 300 KiB pin pinned on peer 2' })
    const size = await tc.peer(2).ipfs.repoSize()
    assert.ok(size <= QUOTA, `peer 2 holds ${size} bytes, past its ${QUOTA} bytes quota`)
    assert.ok(size < garbage + bytes.byteLength, 'the garbage was collected')
  })

  it('removes a pin when it expires, on every peer', async () => {
    const cid = await add(randomBytes(4 * KB), { expire_at: new Date(Date.now() + 2500).toISOString() })
    await waitFor(() => tc.peer(1).pinset.has(cid), { message: 'the expiring pin reached peer 1' })
    await waitFor(async () => [0, 1, 2].every(i => !tc.peer(i).pinset.has(cid)), { timeoutMs: 20_000, message: 'expired pin removed everywhere' })
    await waitFor(async () => !(await tc.peer(1).ipfs.isPinned(CID.parse(cid))), { timeoutMs: 20_000, message: 'and unpinned' })
  })

  it('pin update gives the new CID the old one\'s allocations and options', async () => {
    const from = await add(randomBytes(16 * KB), { replication_factor_min: 1, replication_factor_max: 1, user_allocations: [ids[1]], metadata: { v: '1' } })
    const to = await add(randomBytes(16 * KB), { no_pin: true })
    const res = await fetch(`${tc.url(0)}/pins/${to}?pin-update=${from}&name=v2`, { method: 'POST' })
    assert.equal(res.status, 200, await res.clone().text())
    const pin = await res.json() as { allocations: string[], replication_factor_max: number, name: string, metadata: Record<string, string>, pin_update: string }
    assert.deepEqual(pin.allocations, [ids[1]])
    assert.equal(pin.replication_factor_max, 1)
    assert.equal(pin.name, 'v2')
    assert.deepEqual(pin.metadata, { v: '1' })
    assert.equal(pin.pin_update, from)
    await waitFor(async () => await tc.peer(1).ipfs.isPinned(CID.parse(to)), { timeoutMs: 30_000, message: 'new CID pinned where the old one is' })
    assert.equal(await tc.peer(0).ipfs.isPinned(CID.parse(to)), false)
  })

  it('pin update onto a CID pinned already replaces its options with the old pin\'s, and keeps pin_update as given', async () => {
    // 300 KiB: a dag-pb root, which has a CIDv0 form
    const from = await add(randomBytes(300 * KB), { replication_factor_min: 1, replication_factor_max: 1, user_allocations: [ids[1]], metadata: { v: '1' } })
    const to = await add(randomBytes(16 * KB), { name: 'to', replication_factor_min: 2, replication_factor_max: 2, user_allocations: [ids[0], ids[2]] })
    await waitFor(async () => await tc.peer(2).ipfs.isPinned(CID.parse(to)), { timeoutMs: 30_000, message: 'the new CID pinned as it was first' })
    const fromV0 = CID.parse(from).toV0().toString()
    const res = await fetch(`${tc.url(0)}/pins/${to}?pin-update=${fromV0}`, { method: 'POST' })
    assert.equal(res.status, 200, await res.clone().text())
    const pin = await res.json() as { allocations: string[], replication_factor_min: number, replication_factor_max: number, name: string, metadata: Record<string, string>, pin_update: string }
    assert.deepEqual(pin.allocations, [ids[1]], 'the old pin\'s allocations')
    assert.equal(pin.replication_factor_min, 1)
    assert.equal(pin.replication_factor_max, 1)
    assert.deepEqual(pin.metadata, { v: '1' })
    assert.equal(pin.pin_update, fromV0, 'pin_update in the form given (CIDv0)')
    assert.equal(tc.peer(0).pinset.get(to)?.pin_update, fromV0)
    await waitFor(async () => await tc.peer(1).ipfs.isPinned(CID.parse(to)), { timeoutMs: 30_000, message: 'the new CID pinned where the old one is' })
    await waitFor(async () => !(await tc.peer(2).ipfs.isPinned(CID.parse(to))), { timeoutMs: 30_000, message: 'and released where it no longer is allocated' })
  })

  it('dials a pin\'s origins before fetching: content held only by a node outside the cluster is fetched', async () => {
    // another DHT protocol, and no connection to any cluster peer: the origin is the only way to find it
    const outside = await startPeer('origin')
    try {
      let cid = ''
      for await (const out of outside.node.addEntries(oneFile('o.bin', randomBytes(300 * KB)), { cid_version: 1, raw_leaves: true })) cid = out.cid
      const addr = `${outside.node.libp2p.getMultiaddrs()[0].toString()}`
      assert.equal(tc.peer(1).ipfs.libp2p.getConnections(outside.node.libp2p.peerId).length, 0)
      const res = await fetch(`${tc.url(0)}/pins/${cid}?replication=1&user-allocations=${ids[1]}&origins=${encodeURIComponent(addr)}`, { method: 'POST' })
      assert.equal(res.status, 200, await res.clone().text())
      await waitFor(async () => (await tc.peer(1).tracker.status(pinKey(cid))).status === 'pinned', { timeoutMs: 30_000, message: 'pinned from its origin' })
      assert.ok(tc.peer(1).ipfs.libp2p.getConnections(outside.node.libp2p.peerId).length > 0, 'peer 1 dialled the origin')
    } finally {
      await stopPeers(outside)
      await removeDirs(outside)
    }
  })

  it('refuses bad pin options with a 400 naming the option', async () => {
    const cid = await add(randomBytes(KB), { no_pin: true })
    const cases: Array<[string, RegExp]> = [
      ['replication-min=3&replication-max=2', /replication-min 3 is greater than replication-max 2/],
      ['user-allocations=12D3KooWHRzEyYvvRVkLgDHzLsJHovU1Z3aCukC9tVVFX9RK8S2K', /user-allocations/],
      ['expire-at=2001-01-01T00:00:00Z', /expire-at .* is in the past/],
      [`pin-update=${'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'}`, /pin-update: .* is not in the pinset/]
    ]
    for (const [query, message] of cases) {
      const res = await fetch(`${tc.url(0)}/pins/${cid}?${query}`, { method: 'POST' })
      assert.equal(res.status, 400, query)
      assert.match(((await res.json()) as { message: string }).message, message, query)
    }
    assert.equal(tc.peer(0).pinset.has(cid), false, 'nothing was pinned')

    // an unknown pin-update source is refused even when the new CID is pinned already; that pin stays as it was
    const pinned = await add(randomBytes(KB), { name: 'kept' })
    const unknown = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
    const res = await fetch(`${tc.url(0)}/pins/${pinned}?pin-update=${unknown}&name=changed`, { method: 'POST' })
    assert.equal(res.status, 400)
    assert.equal(((await res.json()) as { message: string }).message, `pin-update: ${unknown} is not in the pinset`)
    assert.equal(tc.peer(0).pinset.get(pinned)?.name, 'kept')
    assert.equal(tc.peer(0).pinset.get(pinned)?.pin_update, null)
  })

  it('GET /health/graph shows who is connected to whom', async () => {
    const res = await fetch(`${tc.url(0)}/health/graph`)
    assert.equal(res.status, 200)
    const g = await res.json() as { cluster_id: string, cluster_links: Record<string, string[]>, cluster_trust_links: Record<string, boolean>, id_to_peername: Record<string, string> }
    assert.equal(g.cluster_id, ids[0])
    for (const [i, id] of ids.entries()) {
      assert.deepEqual(g.cluster_links[id], ids.filter(p => p !== id).sort(), `peer ${i}'s cluster links`)
      assert.equal(g.cluster_trust_links[id], true)
      assert.equal(g.id_to_peername[id], `peer-${i}`)
    }
  })

  it('DELETE /peers/{id} moves every pin off that peer', async () => {
    const held: string[] = []
    for (let n = 0; n < 4; n++) held.push(await add(randomBytes(4 * KB), { replication_factor_min: 1, replication_factor_max: 1, user_allocations: [ids[1]] }))
    for (const cid of held) await waitFor(async () => await tc.peer(1).ipfs.isPinned(CID.parse(cid)), { timeoutMs: 30_000, message: `${cid} on peer 1` })
    const res = await fetch(`${tc.url(0)}/peers/${ids[1]}`, { method: 'DELETE' })
    assert.equal(res.status, 200, await res.clone().text())
    const body = await res.json() as { reallocated: number }
    assert.ok(body.reallocated >= held.length, `moved ${body.reallocated}`)
    for (const cid of held) {
      const pin = tc.peer(0).pinset.get(cid)!
      assert.equal(pin.allocations.length, 1)
      assert.notEqual(pin.allocations[0], ids[1])
      const target = ids.indexOf(pin.allocations[0])
      await waitFor(async () => await tc.peer(target).ipfs.isPinned(CID.parse(cid)), { timeoutMs: 30_000, message: `${cid} pinned on its new peer ${target}` })
      await waitFor(async () => !(await tc.peer(1).ipfs.isPinned(CID.parse(cid))), { timeoutMs: 30_000, message: `${cid} dropped by peer 1` })
    }
    const unknown = await fetch(`${tc.url(0)}/peers/12D3KooWHRzEyYvvRVkLgDHzLsJHovU1Z3aCukC9tVVFX9RK8S2K`, { method: 'DELETE' })
    assert.equal(unknown.status, 400)
    assert.match(((await unknown.json()) as { message: string }).message, /unknown peer: 12D3KooWHRz/)
    const bad = await fetch(`${tc.url(0)}/peers/not-a-peer`, { method: 'DELETE' })
    assert.equal(bad.status, 400)
    assert.match(((await bad.json()) as { message: string }).message, /invalid peer ID "not-a-peer"/)
  })
})
