// Issue 19, item 3: the bounded cache. Content not pinned on peer 1, worth 3x its gateway.cache_max, is read
// through peer 1's gateway (peer 0 serves it over bitswap): peer 1's store never holds more than its pinned bytes
// + cache_max + a small slack, the pinned file stays whole, and the cache's bookkeeping survives a restart (a GC
// then takes none of it as garbage).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { createClient } from '../../src/client/index.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { waitFor, oneFile, sha256Hex } from '../util.js'
import type { PinOptions } from '../../src/components.js'

const MiB = 1024 * 1024
const CACHE_MAX = 2 * MiB
/** One read-ahead window of 256 KiB blocks arriving while an eviction runs, and the directory-less roots. */
const SLACK = MiB

describe('the bounded cache', { timeout: 180_000 }, () => {
  let tc: TestCluster

  before(async () => {
    tc = await createTestCluster(2, { name: 'cache', gateway: i => i === 1 ? { cache_max: CACHE_MAX } : {} })
    await waitFor(async () => (await tc.peer(1).cluster.peerset()).length === 2, { message: 'peers see each other', timeoutMs: 30_000 })
  })
  after(async () => { await tc?.close() })

  async function add (bytes: Uint8Array, options: PinOptions & { no_pin?: boolean } = {}): Promise<string> {
    let root = ''
    for await (const out of tc.peer(0).cluster.add(oneFile('f.bin', bytes), { ...options, cid_version: 1, raw_leaves: true })) root = out.cid
    return root
  }

  async function get (path: string, headers: Record<string, string> = {}): Promise<{ status: number, body: Buffer }> {
    const { host, port } = tc.peer(1).gatewayAddress()
    const res = await fetch(`http://${host}:${port}${path}`, { headers, signal: AbortSignal.timeout(60_000) })
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) }
  }

  it('a gateway client reading unpinned content worth 3x cache_max cannot grow the store past pinned + cache_max; pins stay whole', async () => {
    const ipfs = tc.peer(1).ipfs
    const pinnedBytes = randomBytes(MiB)
    const pinned = await add(pinnedBytes)
    await waitFor(async () => await ipfs.isPinned(CID.parse(pinned)), { timeoutMs: 30_000, message: 'the pinned file on peer 1' })
    const base = await ipfs.repoSize()
    assert.ok(base >= MiB, `peer 1 holds the pinned file: ${base}`)

    const files: Array<{ cid: string, bytes: Buffer }> = []
    for (let i = 0; i < 6; i++) {
      const bytes = randomBytes(MiB)
      files.push({ cid: await add(bytes, { no_pin: true }), bytes })
    }
    let peak = 0
    const sampling = { on: true }
    const sampler = (async () => {
      while (sampling.on) {
        peak = Math.max(peak, await ipfs.repoSize())
        await new Promise(resolve => setTimeout(resolve, 10))
      }
    })()
    try {
      // 6 MiB read through the gateway, twice over for the first ones (a reread is a use, or a fetch again)
      for (const f of [...files, files[0], files[1]]) {
        const { status, body } = await get(`/ipfs/${f.cid}`)
        assert.equal(status, 200)
        assert.equal(sha256Hex(body), sha256Hex(f.bytes), `${f.cid} read whole`)
        await waitFor(async () => await ipfs.repoSize() <= base + CACHE_MAX + SLACK, { timeoutMs: 5000, message: `the store back under the bound after ${f.cid}` })
      }
    } finally {
      sampling.on = false
      await sampler
    }
    assert.ok(peak <= base + CACHE_MAX + SLACK, `the store held at most ${peak - base} bytes beyond the pinned ones (cache_max ${CACHE_MAX}, slack ${SLACK})`)
    const stats = ipfs.cacheStats()
    assert.ok(stats.bytes <= CACHE_MAX, `the cache holds ${stats.bytes} bytes`)
    assert.ok(stats.evicted_bytes >= 4 * MiB, `it evicted ${stats.evicted_bytes} bytes`)
    // what counts against storage_max (a pin's quota, the freespace metric) leaves the cache out: it gives way
    assert.ok(stats.bytes > 0)
    assert.equal(await ipfs.quotaBytes(), await ipfs.repoSize() - stats.bytes)
    assert.ok(await ipfs.quotaBytes() <= base, `${await ipfs.quotaBytes()} bytes counted, ${base} pinned`)
    // the pinned file is still whole here: only-if-cached checks every block is held, before sending anything
    const own = await get(`/ipfs/${pinned}`, { 'cache-control': 'only-if-cached' })
    assert.equal(own.status, 200)
    assert.equal(sha256Hex(own.body), sha256Hex(pinnedBytes))
    // the last file read is cache, served from this peer alone
    const last = await get(`/ipfs/${files[1].cid}`, { 'cache-control': 'only-if-cached' })
    assert.equal(last.status, 200)

    // the bookkeeping is in the datastore: after a restart the same blocks are cache, and a GC leaves them
    const before = ipfs.cacheStats()
    await tc.stop(1)
    await tc.start(1)
    const again = tc.peer(1).ipfs
    assert.equal(again.cacheStats().bytes, before.bytes, 'the cache\'s bytes are known again after the restart')
    assert.equal(again.cacheStats().blocks, before.blocks)
    const gc = await createClient({ api: tc.url(1) }).repoGC({ local: true })
    assert.equal(Object.values(gc.peer_map)[0].keys.length, 0, 'the cache is not garbage')
    assert.equal((await get(`/ipfs/${files[1].cid}`, { 'cache-control': 'only-if-cached' })).status, 200)
    assert.equal(again.cacheStats().bytes, before.bytes)
  })
})
