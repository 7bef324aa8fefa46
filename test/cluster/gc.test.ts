// Repo GC through the REST API of a 3-peer cluster (POST /ipfs/gc, as ipfs-cluster-ctl ipfs gc): every peer
// deletes what no pin holds there; content added on one peer for another that is down stays until that one has
// pinned it; a GC waits for an add in progress.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { runCli } from '../../src/cli/program.js'
import { createClient, type Client } from '../../src/client/index.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { sleep, waitFor, oneFile } from '../util.js'
import type { AddEntry, PinOptions } from '../../src/components.js'
import type { GlobalRepoGC } from '../../src/types/wire.js'
import type { IpfsNode } from '../../src/ipfs/index.js'

/**
 * Whether a repo GC waits or runs on the node: a new writer then has to wait for it. The probing writer is let go
 * as soon as it gets the store (at once when no GC is there).
 */
async function gcPending (ipfs: IpfsNode): Promise<boolean> {
  let got = false
  void ipfs.holdBlocks().then(release => { got = true; release() })
  await new Promise(resolve => setImmediate(resolve))
  return !got
}

/** The multihashes (hex) a peer's GC reported deleting. */
const deleted = (gc: GlobalRepoGC, peer: string): Set<string> =>
  new Set(gc.peer_map[peer].keys.map(k => Buffer.from(CID.parse(k.key).multihash.bytes).toString('hex')))
const mh = (cid: string): string => Buffer.from(CID.parse(cid).multihash.bytes).toString('hex')

describe('repo gc across the cluster', { timeout: 120_000 }, () => {
  let tc: TestCluster
  let ids: string[]
  let api: Client
  before(async () => {
    tc = await createTestCluster(3, { name: 'gc' })
    ids = [0, 1, 2].map(i => tc.peer(i).id)
    api = createClient({ api: tc.url(0) })
    // every peer in peer 0's peerset by its ping metric (which outlives a stop by its TTL)
    await waitFor(() => tc.peer(0).monitor.latest('ping').length === 3, { timeoutMs: 30_000, message: 'the ping metric of every peer' })
  })
  after(async () => { await tc?.close() })

  async function add (bytes: Uint8Array, options: PinOptions & { no_pin?: boolean } = {}): Promise<string> {
    let root = ''
    for await (const out of tc.peer(0).cluster.add(oneFile('f.bin', bytes), { ...options, chunk_size: 65_536, raw_leaves: true, cid_version: 1 })) root = out.cid
    return root
  }
  const pinnedOn = async (i: number, cid: string): Promise<boolean> => tc.peers[i] != null && await tc.peer(i).ipfs.isPinned(CID.parse(cid))

  it('deletes on every peer the blocks of unpinned content, and nothing of what is pinned', async () => {
    const kept = await add(randomBytes(300_000))
    const dropped = await add(randomBytes(300_000))
    const loose = await add(randomBytes(100_000), { no_pin: true })
    await waitFor(async () => (await Promise.all([0, 1, 2].map(async i => await pinnedOn(i, kept) && await pinnedOn(i, dropped)))).every(Boolean),
      { timeoutMs: 30_000, message: 'both files pinned on every peer' })
    await api.unpin(dropped)
    await waitFor(async () => !(await Promise.all([0, 1, 2].map(async i => await pinnedOn(i, dropped)))).some(Boolean),
      { timeoutMs: 30_000, message: 'the unpinned file released on every peer' })
    const sizes = await Promise.all([0, 1, 2].map(async i => await tc.peer(i).ipfs.repoSize()))

    const gc = await api.repoGC()
    assert.deepEqual(Object.keys(gc.peer_map).sort(), [...ids].sort(), 'every peer answered')
    for (const [i, id] of ids.entries()) {
      const entry = gc.peer_map[id]
      assert.equal(entry.error, undefined, `peer ${i}: ${entry.error}`)
      assert.equal(entry.peername, `peer-${i}`)
      const gone = deleted(gc, id)
      assert.ok(gone.has(mh(dropped)), `peer ${i} deleted the unpinned file's root`)
      // 300 kB in 64 KiB raw leaves: 5 leaves and the root (and, on peer 0, the unpinned add's 2 leaves and root)
      assert.equal(gone.size, i === 0 ? 9 : 6, `peer ${i} deleted ${gone.size} blocks`)
      assert.equal(gone.has(mh(kept)), false)
      assert.equal(await tc.peer(i).ipfs.hasBlock(CID.parse(dropped)), false)
      assert.equal(await tc.peer(i).ipfs.hasBlock(CID.parse(kept)), true)
      const freed = sizes[i] - await tc.peer(i).ipfs.repoSize()
      assert.ok(freed >= 300_000, `peer ${i} gave back ${freed} bytes`)
    }
    assert.equal(await tc.peer(0).ipfs.hasBlock(CID.parse(loose)), false, 'content added without a pin is collected')
    // the pinned file still reads whole from any peer
    const bytes = await collect(tc.peer(2).ipfs.cat(CID.parse(kept), { signal: AbortSignal.timeout(10_000) }))
    assert.equal(bytes.length, 300_000)
  })

  it('waits for an add in progress, and leaves what it added', async () => {
    let resume!: () => void
    const gate = new Promise<void>(resolve => { resume = resolve })
    let started!: () => void
    const importing = new Promise<void>(resolve => { started = resolve })
    const halves = [randomBytes(150_000), randomBytes(150_000)]
    async function * slow (): AsyncIterable<AddEntry> {
      // read once the add holds the store
      yield { path: 'slow.bin', content: (async function * () { started(); yield halves[0]; await gate; yield halves[1] })() }
    }
    const order: string[] = []
    const adding = (async () => {
      let root = ''
      for await (const out of tc.peer(0).cluster.add(slow(), { chunk_size: 65_536, raw_leaves: true, cid_version: 1 })) root = out.cid
      order.push('add')
      return root
    })()
    await importing
    const gc = api.repoGC({ local: true }).then(result => { order.push('gc'); return result })
    await waitFor(async () => await gcPending(tc.peer(0).ipfs), { timeoutMs: 10_000, message: 'the GC request reached the peer' })
    assert.deepEqual(order, [], 'the GC waits while the add imports')
    resume()
    const root = await adding
    const result = await gc
    assert.deepEqual(order, ['add', 'gc'])
    assert.equal(deleted(result, ids[0]).size, 0, 'nothing of the add was collected')
    await waitFor(async () => await pinnedOn(0, root), { timeoutMs: 30_000, message: 'the add is pinned on peer 0' })
    assert.equal((await collect(tc.peer(0).ipfs.cat(CID.parse(root), { signal: AbortSignal.timeout(10_000) }))).length, 300_000)
  })

  it('does not take the blocks of an add without a pin before the pin that follows it (as cairn add and mirror sync do)', async () => {
    const root = await add(randomBytes(200_000), { no_pin: true })
    const order: string[] = []
    // the add's hold outlasts it (5 s in these tests, 30 s by default): this GC waits
    const gc = api.repoGC({ local: true }).then(result => { order.push('gc'); return result })
    await waitFor(async () => await gcPending(tc.peer(0).ipfs), { timeoutMs: 10_000, message: 'the GC request reached the peer' })
    await api.pin(root)
    order.push('pin')
    const result = await gc
    assert.deepEqual(order, ['pin', 'gc'])
    assert.equal(deleted(result, ids[0]).has(mh(root)), false, 'the pinned root stays')
    await waitFor(async () => await pinnedOn(0, root), { timeoutMs: 30_000, message: 'the root pinned on peer 0 from its own blocks' })
  })

  it('a GC asked for while one runs joins it: the REST request and the CLI get the one run\'s result', async () => {
    // let an earlier add's hold (5 s in these tests) go first, so that the hold below is the only one
    await api.repoGC({ local: true })
    const loose = await add(randomBytes(100_000), { no_pin: true })
    const ipfs = tc.peer(0).ipfs
    const runs = ipfs.gcStats().runs
    // a writer holding the store keeps the first GC waiting, long enough for the second request to come
    const release = await ipfs.holdBlocks()
    let rest: Promise<GlobalRepoGC>
    let cli: Promise<{ code: number, out: string, err: string }>
    try {
      rest = api.repoGC({ local: true })
      await waitFor(async () => await gcPending(ipfs), { timeoutMs: 10_000, message: 'the REST GC request reached the peer' })
      let out = ''
      let err = ''
      cli = runCli(['--json', 'ipfs', 'gc', '--local'], { out: s => { out += s }, err: s => { err += s }, env: { CAIRN_API: tc.url(0) } })
        .then(code => ({ code, out, err }))
      // proves a NOT: the CLI's request is waiting for the running GC, not refused (it was RepoBusyError before)
      const early = await Promise.race([cli.then(() => 'answered'), sleep(500).then(() => 'waiting')])
      assert.equal(early, 'waiting', 'the second GC request waits for the running one')
    } finally {
      release()
    }
    const [viaRest, viaCli] = await Promise.all([rest, cli])
    assert.equal(viaCli.code, 0, viaCli.err)
    const cliResult = JSON.parse(viaCli.out) as GlobalRepoGC
    assert.equal(viaRest.peer_map[ids[0]].error, undefined)
    assert.equal(cliResult.peer_map[ids[0]].error, undefined, cliResult.peer_map[ids[0]].error)
    assert.ok(deleted(viaRest, ids[0]).has(mh(loose)), 'the running GC collected the loose add')
    assert.deepEqual([...deleted(cliResult, ids[0])].sort(), [...deleted(viaRest, ids[0])].sort(), 'both requests got the same deletions')
    assert.equal(ipfs.gcStats().runs, runs + 1, 'one GC ran for both requests')
  })

  it('keeps content added here for a peer that is down until it has pinned it', async () => {
    await tc.stop(1)
    const only1 = { user_allocations: [ids[1]], replication_factor_min: 1, replication_factor_max: 1 }
    // peer 1 still counts for its metrics' TTL: the add allocates to it
    const held = await add(randomBytes(200_000), only1)
    assert.deepEqual((await api.allocation(held)).allocations, [ids[1]])
    const first = await api.repoGC({ local: true })
    assert.deepEqual(Object.keys(first.peer_map), [ids[0]], 'local=true: this peer only')
    assert.equal(deleted(first, ids[0]).has(mh(held)), false, 'the only copy stays while its allocation cannot have it')
    assert.equal(await tc.peer(0).ipfs.hasBlock(CID.parse(held)), true)

    await tc.start(1)
    await waitFor(async () => await pinnedOn(1, held), { timeoutMs: 30_000, message: 'peer 1 pins it from peer 0' })
    const second = await api.repoGC({ local: true })
    assert.ok(deleted(second, ids[0]).has(mh(held)), 'once pinned where it is allocated, peer 0 lets it go')
    assert.equal(await tc.peer(1).ipfs.hasBlock(CID.parse(held)), true)
  })
})

describe('scheduled repo gc', { timeout: 120_000 }, () => {
  it('deletes what an unpin left at the next tick (gc.interval_ms), and leaves the store alone while the pinset does not change', async () => {
    const tc = await createTestCluster(1, { name: 'gc-scheduled', gc: { interval_ms: 500 } })
    try {
      const peer = tc.peer(0)
      const api = createClient({ api: tc.url(0) })
      const bytes = randomBytes(200_000)
      let root = ''
      for await (const out of peer.cluster.add(oneFile('f.bin', bytes), { chunk_size: 65_536, raw_leaves: true, cid_version: 1 })) root = out.cid
      await waitFor(async () => await peer.ipfs.isPinned(CID.parse(root)), { timeoutMs: 30_000, message: 'the file pinned' })
      const size = await peer.ipfs.repoSize()
      // proves a NOT: the GC ticks in this window delete nothing of the pinned file
      await sleep(1200)
      assert.equal(await peer.ipfs.repoSize(), size, 'the ticks since the pin deleted nothing')
      await api.unpin(root)
      await waitFor(async () => !(await peer.ipfs.hasBlock(CID.parse(root))), { timeoutMs: 20_000, message: 'the scheduled GC deletes the unpinned file' })
      const freed = size - await peer.ipfs.repoSize()
      assert.ok(freed > 200_000 && freed < 201_000, `the file's 200 kB and its root node went: ${freed}`)
    } finally {
      await tc.close()
    }
  })
})

describe('repo gc past the high watermark', { timeout: 120_000 }, () => {
  it('runs at the next tick when held bytes pass 90% of storage_max, though the pinset did not change', async () => {
    const tc = await createTestCluster(1, { name: 'gc-watermark', gc: { interval_ms: 300 }, monitor: () => ({ storage_max: 1_000_000 }) })
    try {
      const peer = tc.peer(0)
      await waitFor(() => peer.ipfs.gcStats().runs >= 1, { timeoutMs: 10_000, message: 'the first scheduled GC (what the start left)' })
      // an add without a pin changes no pin: only the watermark can make the schedule collect it
      let root = ''
      for await (const out of peer.cluster.add(oneFile('f.bin', randomBytes(950_000)), { chunk_size: 65_536, raw_leaves: true, cid_version: 1, no_pin: true })) root = out.cid
      assert.ok(peer.ipfs.overHighWatermark())
      await waitFor(async () => !(await peer.ipfs.hasBlock(CID.parse(root))), { timeoutMs: 30_000, message: 'the scheduled GC collects past the watermark' })
      assert.equal(peer.ipfs.overHighWatermark(), false)
    } finally {
      await tc.close()
    }
  })
})

describe('repo gc on a follower', { timeout: 120_000 }, () => {
  it('a trusted peer\'s GC does not reach a follower, whose own API still runs it', async () => {
    const tc = await createTestCluster(2, { name: 'gc-follower', untrusted: [1] })
    try {
      const ids = [0, 1].map(i => tc.peer(i).id)
      await waitFor(() => tc.peer(0).monitor.latest('ping').length === 2, { timeoutMs: 30_000, message: 'the follower\'s ping metric' })
      const all = await createClient({ api: tc.url(0) }).repoGC()
      assert.equal(all.peer_map[ids[0]].error, undefined)
      assert.match(all.peer_map[ids[1]].error ?? '', /this peer is a follower: its repo GC runs only from its own API/)
      const own = await createClient({ api: tc.url(1) }).repoGC()
      assert.deepEqual(Object.keys(own.peer_map), [ids[1]], 'a follower\'s GC is its own')
      assert.equal(own.peer_map[ids[1]].error, undefined)
    } finally {
      await tc.close()
    }
  })
})

async function collect (source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = []
  for await (const c of source) chunks.push(c)
  return Buffer.concat(chunks)
}
