// Issue 2's acceptance: three full peers on 127.0.0.1 (real libp2p, Helia, level, HTTP), driven over REST.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { createClient } from '../../src/client/index.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { BAD_INLINE_CBOR, tempDir, UNKNOWN_CODEC, UNKNOWN_HASH, waitFor } from '../util.js'
import type { GlobalPinInfo } from '../../src/types/wire.js'
import { pinKey } from '../../src/utils/keys.js'

async function collect<T> (it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

function statuses (g: GlobalPinInfo): string[] {
  return Object.values(g.peer_map).map(p => p.status)
}

describe('a 3-peer cluster', () => {
  let tc: TestCluster
  let files: { path: string, cleanup: () => Promise<void> }
  before(async () => {
    tc = await createTestCluster(3)
    files = await tempDir()
    // Every peer sees the two others as cluster peers.
    await waitFor(async () => (await Promise.all([0, 1, 2].map(async i => (await tc.peer(i).cluster.peerset()).length))).every(n => n === 3), {
      message: 'peers see each other',
      timeoutMs: 30_000
    }).catch(async err => {
      const seen = await Promise.all([0, 1, 2].map(async i => `peer ${i}: ${tc.peer(i).ipfs.libp2p.getConnections().length} connections, peerset ${(await tc.peer(i).cluster.peerset()).length}`))
      throw new Error(`${(err as Error).message}; ${seen.join('; ')}`)
    })
  })
  after(async () => {
    await tc?.close()
    await files?.cleanup()
  })

  it('pins a file added on A on every peer, and C reads the bytes it never had', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 123)
    const file = join(files.path, 'mirror.tar')
    await writeFile(file, data)
    const a = createClient({ api: tc.url(0) })
    const added = await collect(a.add([file], { name: 'mirror.tar' }))
    const root = added.at(-1)!
    assert.equal(root.name, 'mirror.tar')

    const c = createClient({ api: tc.url(2) })
    const g = await waitFor(async () => {
      const s = await c.status(root.cid)
      return Object.keys(s.peer_map).length === 3 && statuses(s).every(x => x === 'pinned') ? s : undefined
    }, { timeoutMs: 30_000, message: 'pinned on all three peers' })
    assert.equal(g.name, 'mirror.tar')
    assert.deepEqual(Object.keys(g.peer_map).sort(), [0, 1, 2].map(i => tc.peer(i).id).sort())
    assert.deepEqual(Object.values(g.peer_map).map(p => p.peername).sort(), ['peer-0', 'peer-1', 'peer-2'])

    // C fetched every block from A over bitswap; it can serve the whole file with the same sha256.
    const hash = createHash('sha256')
    for await (const chunk of tc.peer(2).ipfs.cat(CID.parse(root.cid))) hash.update(chunk)
    assert.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'))

    // Unpin on B: every peer reports unpinned and drops the pin from its IPFS store.
    const b = createClient({ api: tc.url(1) })
    const removed = await b.unpin(root.cid)
    assert.equal(removed.cid, root.cid)
    await waitFor(async () => {
      const s = await a.status(root.cid)
      return statuses(s).length === 3 && statuses(s).every(x => x === 'unpinned')
    }, { message: 'unpinned everywhere' })
    for (let i = 0; i < 3; i++) {
      assert.equal(await tc.peer(i).ipfs.isPinned(CID.parse(root.cid)), false, `peer ${i} dropped the pin`)
      assert.equal(tc.peer(i).pinset.has(root.cid), false)
    }
    await assert.rejects(b.unpin(root.cid), (err: Error & { status?: number }) => err.status === 404 && /pin is not part of the pinset/.test(err.message))
  })

  it('concurrent pins on A and B converge to the same pinset everywhere', async () => {
    const a = createClient({ api: tc.url(0) })
    const b = createClient({ api: tc.url(1) })
    const cids = await Promise.all(Array.from({ length: 20 }, async (_, i) => await putRaw(tc, [0, 1], `concurrent-${i}`)))
    const same = await putRaw(tc, [0, 1], 'same-cid')
    await Promise.all([
      ...cids.slice(0, 10).map(async cid => await a.pin(cid, { name: 'a' })),
      ...cids.slice(10).map(async cid => await b.pin(cid, { name: 'b' })),
      a.pin(same, { name: 'from-a' }),
      b.pin(same, { name: 'from-b' })
    ])
    const view = async (i: number): Promise<string> =>
      JSON.stringify((await collect(createClient({ api: tc.url(i) }).allocations())).map(p => `${p.cid}=${p.name}`).sort())
    const converged = await waitFor(async () => {
      const [x, y, z] = await Promise.all([0, 1, 2].map(view))
      return x === y && y === z && JSON.parse(x).length === 21 ? JSON.parse(x) as string[] : undefined
    }, { message: 'same pinset on all peers' })
    assert.ok(converged.some(e => e === `${same}=from-a` || e === `${same}=from-b`))
    await waitFor(async () => {
      const all = await collect(createClient({ api: tc.url(2) }).statusAll())
      return all.length === 21 && all.every(g => statuses(g).every(s => s === 'pinned'))
    }, { timeoutMs: 30_000, message: 'all 21 pinned on all peers' })
  })

  it('a peer that was down catches up 100 pins, and a restart keeps pinset, statuses and identity', async () => {
    const cId = tc.peer(2).id
    const before = JSON.stringify([...tc.peer(2).pinset.list()].map(p => p.cid).sort())
    await tc.stop(2)
    const a = createClient({ api: tc.url(0) })
    const cids: string[] = []
    for (let i = 0; i < 100; i++) cids.push(await putRaw(tc, [0], `while-down-${i}`))
    for (const cid of cids) await a.pin(cid, { name: 'while-down' })

    const c = await tc.start(2)
    assert.equal(c.id, cId, 'identity kept')
    // Its own pinset survived the restart before any catch-up.
    const kept = [...c.pinset.list()].map(p => p.cid)
    for (const cid of JSON.parse(before) as string[]) assert.ok(kept.includes(cid))
    await waitFor(() => cids.every(cid => c.pinset.has(cid)), { timeoutMs: 30_000, message: 'C has the 100 new pins' })
    await waitFor(async () => {
      let pinned = 0
      for (const cid of cids) if ((await c.tracker.status(pinKey(cid))).status === 'pinned') pinned++
      return pinned === 100
    }, { timeoutMs: 60_000, message: 'C pinned all 100' })

    // Restart again: statuses come back as pinned without fetching anything.
    await tc.stop(2)
    const c2 = await tc.start(2)
    const local = await collect(createClient({ api: tc.url(2) }).statusAll({ local: true }))
    const mine = local.filter(g => cids.includes(g.cid))
    assert.equal(mine.length, 100)
    assert.ok(mine.every(g => g.peer_map[c2.id].status === 'pinned'), 'statuses kept across a restart')
  })

  it('publishes metrics: every peer sees the others\' pings (GET /monitor/metrics/{name}), alerts list is served', async () => {
    const url = tc.url(1)
    const names = await (await fetch(`${url}/monitor/metrics`)).json() as string[]
    assert.ok(names.includes('ping') && names.includes('pinqueue'), JSON.stringify(names))
    const pings = await waitFor(async () => {
      const m = await (await fetch(`${url}/monitor/metrics/ping`)).json() as Array<{ peer: string, value: string, expire: number, valid: boolean }>
      return m.length === 3 ? m : undefined
    }, { message: 'pings of all three peers' })
    assert.deepEqual(pings.map(m => m.peer).sort(), [0, 1, 2].map(i => tc.peer(i).id).sort())
    for (const m of pings) {
      assert.equal(m.valid, true)
      assert.ok(m.expire > Date.now() * 1e6, 'expire is in unix nanoseconds, in the future')
      assert.match(JSON.parse(m.value).peer_name, /^peer-\d$/)
    }
    const alerts = await fetch(`${url}/health/alerts`)
    assert.equal(alerts.status, 200)
    assert.ok(Array.isArray(await alerts.json()))
  })

  it('answers bad input with 400s that name the problem, and keeps running', async () => {
    const url = tc.url(0)
    const cases: Array<[string, string, RegExp]> = [
      ['POST', '/pins/notacid', /notacid/],
      ['POST', `/pins/${await putRaw(tc, [0], 'x')}?replication-min=abc`, /replication-min/],
      ['POST', `/pins/${await putRaw(tc, [0], 'y')}?replication-min=3&replication-max=2`, /replication-min/],
      ['POST', `/pins/${await putRaw(tc, [0], 'z')}?user-allocations=12D3KooWNotAPeer`, /user-allocations|peer/i],
      ['POST', `/pins/${await putRaw(tc, [0], 'w')}?user-allocations=12D3KooWGzh4wQhDLTBPZaN8Nms8zwqZ4L3cWpqfRx9ySzVH2dfT`, /unknown peer/],
      ['POST', `/pins/${await putRaw(tc, [0], 'v')}?expire-at=2001-01-01T00:00:00Z`, /expire-at/],
      ['GET', '/pins?filter=nonsense', /filter/],
      ['GET', '/pins/bafynotvalid', /bafynotvalid/],
      // CIDs no peer can read would be a pin_error on every peer, forever
      ['POST', `/pins/${UNKNOWN_CODEC}`, new RegExp(`unsupported CID "${UNKNOWN_CODEC}": codec 0x9999 is not one this peer can decode`)],
      ['POST', `/pins/${UNKNOWN_HASH}`, new RegExp(`unsupported CID "${UNKNOWN_HASH}": hash function 0x1234 is not one this peer can verify`)],
      ['POST', `/pins/${BAD_INLINE_CBOR}`, new RegExp(`invalid CID "${BAD_INLINE_CBOR}": its inline \\(identity\\) data is not valid dag-cbor`)]
    ]
    for (const [method, path, pattern] of cases) {
      const res = await fetch(url + path, { method })
      const body = await res.json() as { code: number, message: string }
      assert.equal(res.status, 400, `${method} ${path} -> ${res.status} ${body.message}`)
      assert.equal(body.code, 400)
      assert.match(body.message, pattern, `${method} ${path}`)
    }
    const malformed = await fetch(`${url}/add`, {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=xyz' },
      body: '--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\ntrunc'
    })
    assert.equal(malformed.status, 400)
    assert.match(((await malformed.json()) as { message: string }).message, /multipart/)
    const del = await fetch(`${url}/pins/${await putRaw(tc, [0], 'never-pinned')}`, { method: 'DELETE' })
    assert.equal(del.status, 404)
    assert.deepEqual(await del.json(), { code: 404, message: 'pin is not part of the pinset' })
    for (const cid of [UNKNOWN_CODEC, UNKNOWN_HASH, BAD_INLINE_CBOR]) assert.equal(tc.peer(0).pinset.get(cid), undefined, `${cid} stays out of the pinset`)
    // Still serving.
    const id = await (await fetch(`${url}/id`)).json() as { id: string }
    assert.equal(id.id, tc.peer(0).id)
  })
})

/** Puts a small raw block into the given peers' blockstores; returns its CID (content present, pinning is quick). */
async function putRaw (tc: TestCluster, on: number[], seed: string): Promise<string> {
  const bytes = new TextEncoder().encode(`block ${seed}`)
  const cid = CID.createV1(raw.code, await sha256.digest(bytes))
  for (const i of on) await tc.peer(i).ipfs.helia.blockstore.put(cid, bytes)
  return cid.toString()
}
