// Issue 20: a mirror spread across peers. Six peers on 127.0.0.1, each offering (storage_max) 40% of a
// generated mirror; `cairn mirror sync --spread --replication 2` through peer 0. Every file is held by exactly
// two peers, no peer holds the whole mirror nor passes its storage_max, the cluster holds 2.0-2.3x the mirror,
// and every file reads back with its bytes through every peer's gateway. Bad input is refused before anything
// is written. Then a re-sync, a seventh peer joining, and two peers lost.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { runCli } from '../../src/cli/program.js'
import { createClient, type Client } from '../../src/client/index.js'
import { partitionOf, readLayout } from '../../src/spread/layout.js'
import { concatChunks } from '../../src/utils/bytes.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { tempDir, waitFor } from '../util.js'
import type { MirrorStatus, MirrorSyncResult } from '../../src/mirror/index.js'
import type { Pin } from '../../src/types/wire.js'

const PEERS = 6
/** The peer that joins later (created with the others, started by the join test). */
const JOINER = PEERS
const FILES = 150
/** File sizes of 1 KiB - ~181 KiB (one raw block each, or a few): ~13.6 MB in all, in 15 folders. */
const sizeOf = (i: number): number => 1024 + (i * 7919) % 180_000
const TOTAL = Array.from({ length: FILES }, (_, i) => sizeOf(i)).reduce((a, b) => a + b, 0)
const STORAGE_MAX = Math.floor(TOTAL * 0.4)

describe('a mirror spread over six peers offering 40% each, with replication 2', { timeout: 240_000 }, () => {
  let tc: TestCluster
  let tmp: { path: string, cleanup: () => Promise<void> }
  let client: Client
  let tree: string
  const files = new Map<string, string>()

  before(async () => {
    tmp = await tempDir('cairn-spread-')
    tree = join(tmp.path, 'tree')
    for (let i = 0; i < FILES; i++) {
      const path = join('pool', `p${i % 15}`, `pkg${i}.deb`)
      await mkdir(join(tree, 'pool', `p${i % 15}`), { recursive: true })
      const bytes = randomBytes(sizeOf(i))
      await writeFile(join(tree, path), bytes)
      files.set(path, createHash('sha256').update(bytes).digest('hex'))
    }
    await writeFile(join(tree, 'Release'), 'Origin: cairn test\n')
    files.set('Release', createHash('sha256').update('Origin: cairn test\n').digest('hex'))
    tc = await createTestCluster(PEERS + 1, {
      name: 'spread',
      deferred: [JOINER],
      // the join test runs the rebalance check itself, as the schedule would, at the moments it chooses
      cluster: { spread_rebalance_interval_ms: 0 },
      gc: { interval_ms: 0 },
      noPinHoldMs: 500,
      monitor: () => ({ storage_max: STORAGE_MAX, metric_ttl_ms: 2000 })
    })
    client = createClient({ api: tc.url(0) })
    await waitFor(async () => (await tc.peer(0).cluster.peerset()).length === PEERS, { timeoutMs: 30_000, message: 'the peers see each other' })
  })
  after(async () => {
    await tc?.close()
    await tmp?.cleanup()
  })

  async function cairn (...args: string[]): Promise<{ code: number, out: string, err: string }> {
    let out = ''
    let err = ''
    const code = await runCli(['--api', tc.url(0), ...args], { out: s => { out += s }, err: s => { err += s }, env: {} })
    return { code, out, err }
  }

  let pin: Pin

  it('syncs with --spread: every file on exactly two peers, none holding it all or past storage_max, 2.0-2.3x in all', async t => {
    const run = await cairn('--json', 'mirror', 'sync', tree, '--name', 'deb', '--spread', '--replication', '2', '--wait-timeout', '60s', '--cache', join(tmp.path, 'cache.json'))
    assert.equal(run.code, 0, run.err)
    const result = JSON.parse(run.out) as MirrorSyncResult
    pin = await client.allocation(result.root)
    assert.equal(pin.spread, true, 'the pin says it is spread')
    const map = pin.spread_map
    assert.ok(map != null)
    assert.deepEqual(Object.keys(map.shares).sort(), [...pin.allocations].sort(), 'the allocations are the peers with a share')
    // every partition on exactly two peers
    const copies = new Array<number>(map.partition_bytes.length).fill(0)
    for (const parts of Object.values(map.shares)) for (const p of parts) copies[p]++
    assert.deepEqual(new Set(copies), new Set([2]), `copies per partition: ${copies.join(',')}`)

    // every allocated peer pinned its share
    await waitFor(async () => {
      const status = await client.status(result.root)
      return pin.allocations.every(p => status.peer_map[p]?.status === 'pinned')
    }, { timeoutMs: 60_000, message: 'every allocated peer pinned its share' })

    // what each peer holds for pins: its share (after a GC drops what the upload left on peer 0)
    const layout = await readLayout(CID.parse(result.root), map.partition_bytes.length, async c => await concatChunks(tc.peer(0).ipfs.helia.blockstore.get(c)))
    assert.equal(layout.units.length, FILES + 1, 'each file is one unit')
    let held = 0
    for (let i = 0; i < PEERS; i++) {
      await tc.peer(i).ipfs.gc()
      const stat = await tc.peer(i).ipfs.repoStat()
      const id = tc.peer(i).ipfs.libp2p.peerId.toString()
      const mine = new Set(map.shares[id] ?? [])
      const expected = layout.units.filter(u => mine.has(partitionOf(u.cid, map.partition_bytes.length))).reduce((a, u) => a + u.bytes, 0)
      t.diagnostic(`peer ${i}: ${mine.size} partitions, pinned ${stat.pinned_bytes} B (files ${expected} B), storage_max ${STORAGE_MAX}`)
      assert.ok(stat.pinned_bytes <= STORAGE_MAX, `peer ${i} holds ${stat.pinned_bytes} B, past its storage_max ${STORAGE_MAX}`)
      assert.ok(stat.pinned_bytes < TOTAL, `peer ${i} holds ${stat.pinned_bytes} B: not the whole mirror (${TOTAL} B)`)
      if (mine.size > 0) assert.ok(stat.pinned_bytes >= expected, `peer ${i} holds the files of its partitions: ${stat.pinned_bytes} < ${expected}`)
      held += stat.pinned_bytes
    }
    const ratio = held / TOTAL
    t.diagnostic(`the cluster holds ${held} B for a ${TOTAL} B mirror: ${ratio.toFixed(3)}x`)
    assert.ok(ratio >= 2.0 && ratio <= 2.3, `the cluster holds ${ratio.toFixed(3)}x the mirror`)
  })

  it('serves every file with its bytes through every peer\'s gateway', async () => {
    for (let i = 0; i < PEERS; i++) {
      const gw = `http://127.0.0.1:${tc.peer(i).gatewayAddress().port}`
      for (const [path, sha] of files) {
        const res = await fetch(`${gw}/mirror/deb/${path}`)
        assert.equal(res.status, 200, `peer ${i}: ${path}`)
        assert.equal(createHash('sha256').update(new Uint8Array(await res.arrayBuffer())).digest('hex'), sha, `peer ${i}: ${path}`)
      }
    }
  })

  it('cairn mirror status shows every partition with two copies, the bytes of each peer\'s share, nothing moving', async () => {
    const run = await cairn('--json', 'mirror', 'status', 'deb')
    assert.equal(run.code, 0, run.err)
    const status = JSON.parse(run.out) as MirrorStatus
    assert.equal(status.spread, true)
    assert.equal(status.version, 1)
    assert.equal(status.parts, pin.spread_map!.partition_bytes.length)
    assert.deepEqual(status.copies, { 2: status.parts })
    assert.deepEqual(status.under_replicated, [])
    assert.deepEqual(status.moving, [])
    // the peers with a share (the peer the mirror was uploaded to may have had no room left at that moment)
    assert.deepEqual(status.peers.map(p => p.peer).sort(), [...pin.allocations].sort())
    assert.ok(status.peers.length >= 4, `${status.peers.length} peers hold a share`)
    assert.ok(status.peers.every(p => p.status === 'pinned' && p.bytes > 0 && p.bytes < TOTAL), JSON.stringify(status.peers))
    const text = await cairn('mirror', 'status', 'deb')
    assert.match(text.out, /deb: version 1 .* spread in 64 partitions/)
    assert.match(text.out, /partitions: 64 with 2 copies/)
    assert.equal((await cairn('mirror', 'status', 'nope')).code, 1)
  })

  it('refuses a spread the peers have no room for, naming what is missing, and a spread of a CAR or a direct pin', async () => {
    // five copies on peers offering 40%: 6 x 0.4 = 2.4x offered at most, less what they hold
    const res = await fetch(`${tc.url(0)}/pins/${pin.cid}?spread=true&replication=5`, { method: 'POST' })
    assert.equal(res.status, 507)
    const body = await res.json() as { message: string }
    assert.match(body.message, /cannot spread .* on 5 copies: it needs .* MiB .* missing/)
    const direct = await fetch(`${tc.url(0)}/pins/${pin.cid}?spread=true&replication=2&mode=direct`, { method: 'POST' })
    assert.equal(direct.status, 400)
    assert.match(((await direct.json()) as { message: string }).message, /spread pin is recursive/)
    const car = await fetch(`${tc.url(0)}/add?spread=true&format=car`, { method: 'POST', body: new FormData() })
    assert.equal(car.status, 400)
    assert.match(((await car.json()) as { message: string }).message, /"spread".*format=car/)
    const everywhere = await fetch(`${tc.url(0)}/pins/${pin.cid}?spread=true&replication=-1`, { method: 'POST' })
    assert.equal(everywhere.status, 400)
    // nothing changed
    assert.deepEqual((await client.allocation(pin.cid)).spread_map, pin.spread_map)
  })

  it('a second version with 5% of the files changed keeps every partition on its peers and moves a few times the changed bytes, not the mirror', async t => {
    const received = (): number => tc.peers.reduce((a, p) => a + (p?.ipfs.bitswapStats()?.bytesIn ?? 0), 0)
    const before = received()
    t.diagnostic(`before: per peer ${tc.peers.map(p => `${p?.ipfs.bitswapStats()?.bytesIn ?? 0}/${p?.ipfs.bitswapStats()?.blocksIn ?? 0}`).join(' ')}`)
    let changed = 0
    const paths = [...files.keys()].filter(p => p.startsWith('pool'))
    for (let k = 0; k < paths.length / 20; k++) {
      const path = paths[k * 20]
      const bytes = randomBytes(sizeOf(k * 20) + 1)
      await writeFile(join(tree, path), bytes)
      files.set(path, createHash('sha256').update(bytes).digest('hex'))
      changed += bytes.byteLength
    }
    const run = await cairn('--json', 'mirror', 'sync', tree, '--name', 'deb', '--keep', '1', '--wait-timeout', '60s', '--cache', join(tmp.path, 'cache.json'))
    assert.equal(run.code, 0, run.err)
    const result = JSON.parse(run.out) as MirrorSyncResult
    const v2 = await client.allocation(result.root)
    const v1 = pin
    // the next test works on the version pinned now, whatever this one finds
    pin = v2
    assert.equal(v2.spread, true, 'the new version is spread as the previous one')
    const moves = Object.entries(v2.spread_map?.shares ?? {}).flatMap(([peer, parts]) => parts.filter(p => v1.spread_map?.shares[peer]?.includes(p) !== true).map(p => `${p} to ${peer.slice(-6)}`))
    // a holder whose freespace metric says it has no room left for one of its partitions loses that one (seen:
    // one of 64, once in four runs); every other stays
    t.diagnostic(`partitions moved: ${moves.length > 0 ? moves.join(', ') : 'none'}`)
    assert.ok(moves.length <= 2, `partitions moved: ${moves.join(', ')} (v1 ${JSON.stringify(Object.fromEntries(Object.entries(v1.spread_map?.shares ?? {}).map(([k, v]) => [k.slice(-6), v.length])))})`)
    await waitFor(async () => (await client.mirrorStatus('deb')).copies['2'] === v2.spread_map?.partition_bytes.length, { timeoutMs: 60_000, message: 'every partition of version 2 on two peers' })
    const moved = received() - before
    t.diagnostic(`changed ${changed} B; moved over bitswap ${moved} B (${(moved / changed).toFixed(2)}x); per peer ${tc.peers.map(p => `${p?.ipfs.bitswapStats()?.bytesIn ?? 0}/${p?.ipfs.bitswapStats()?.blocksIn ?? 0}`).join(' ')}`)
    // each changed file reaches its two peers (less what the uploading peer holds already), plus the new
    // directories on every allocated peer: 1.88x in runs here. A want went to every connected peer, and each that
    // held the block sent it, until wants went to one peer first: 3.2-4.1x; before the layout index every peer read
    // every small file of the new version to tell files from directories: 140x. The mirror is 20x the changed bytes
    assert.ok(moved >= changed, `moved ${moved} B, less than the ${changed} B changed`)
    assert.ok(moved <= 3 * changed, `moved ${moved} B for ${changed} B changed: ${(moved / changed).toFixed(2)}x, more than 3x`)
  })

  it('a seventh peer joins: a rebalance moves it about a seventh of the copies, make-before-break, and the others give up about as much', async t => {
    // what each peer holds before (a GC drops what version 1 and the upload left)
    const heldNow = async (i: number): Promise<number> => {
      await tc.peer(i).ipfs.gc()
      return (await tc.peer(i).ipfs.repoStat()).pinned_bytes
    }
    const before = await Promise.all(Array.from({ length: PEERS }, async (_, i) => await heldNow(i)))
    const joiner = await tc.start(JOINER)
    const id = joiner.ipfs.libp2p.peerId.toString()
    await waitFor(async () => tc.peers.every(p => p == null || p.monitor.latest('freespace').some(m => m.peer === id)), { timeoutMs: 30_000, message: 'every peer sees the new peer\'s freespace metric' })
    const received = (): number => tc.peers.reduce((a, p) => a + (p?.ipfs.bitswapStats()?.bytesIn ?? 0), 0)
    const receivedBefore = received()
    let fewest = Infinity
    let phases = 0
    let last = pin.timestamp
    await waitFor(async () => {
      // the scheduled check, on every peer (only the writer of the pin, the trusted peer closest to it, acts)
      for (const p of tc.peers) if (p != null) phases += await p.cluster.balanceSpread()
      const now = await client.allocation(pin.cid)
      if (now.timestamp !== last) {
        last = now.timestamp
        t.diagnostic(`map: ${Object.entries(now.spread_map!.shares).map(([p, s]) => `${p.slice(-6)} ${s.length}`).join(', ')}; freespace ${tc.peer(0).monitor.latest('freespace').map(m => `${m.peer.slice(-6)} ${m.weight}`).join(', ')}`)
      }
      const status = await client.mirrorStatus('deb')
      // make-before-break: while partitions move, every one keeps at least two copies pinned
      fewest = Math.min(fewest, ...Object.keys(status.copies).map(Number))
      if (fewest < 2) t.diagnostic(JSON.stringify({ copies: status.copies, peers: status.peers.map(p => [p.peer.slice(-6), p.status, p.partitions, p.error]) }))
      const copies = new Array<number>(now.spread_map!.partition_bytes.length).fill(0)
      for (const parts of Object.values(now.spread_map!.shares)) for (const p of parts) copies[p]++
      return now.allocations.includes(id) && copies.every(c => c === 2) && status.copies['2'] === status.parts && status.moving.length === 0
    }, { timeoutMs: 90_000, intervalMs: 500, message: 'the new peer holds a share and every partition is back to two copies' })
    // one write adds the new peer to the partitions it takes, one drops their previous holders (2 in runs here;
    // two peers that both took themselves for the pin's writer for a moment would write more, and converge)
    t.diagnostic(`map writes: ${phases}`)
    assert.ok(phases >= 2, `${phases} writes: the new holders were not added before the old ones were dropped`)
    assert.ok(fewest >= 2, `a partition had ${fewest} copies pinned during the move`)
    pin = await client.allocation(pin.cid)
    const after = await Promise.all(Array.from({ length: PEERS + 1 }, async (_, i) => await heldNow(i)))
    const total = after.reduce((a, b) => a + b, 0)
    const fair = total / (PEERS + 1)
    // the peers that gained: the new one, and any holding less than its share (the peer the mirror was uploaded
    // to may have had no room for one then); the others gave up about what those took
    const took = after.reduce((a, b, i) => a + Math.max(0, b - (before[i] ?? 0)), 0)
    const gave = before.reduce((a, b, i) => a + Math.max(0, b - after[i]), 0)
    const moved = received() - receivedBefore
    t.diagnostic(`held before ${before.join(' ')}; after ${after.join(' ')}; the new peer holds ${after[JOINER]} B (fair share ${Math.round(fair)} B, ${(after[JOINER] / fair).toFixed(2)}x); peers took ${took} B, the others gave up ${gave} B; moved over bitswap ${moved} B (${(moved / took).toFixed(2)}x)`)
    assert.ok(after[JOINER] >= 0.6 * fair && after[JOINER] <= 1.4 * fair, `the new peer holds ${after[JOINER]} B, a fair share is ${Math.round(fair)} B`)
    assert.ok(gave >= 0.7 * took && gave <= 1.3 * took, `the others gave up ${gave} B for the ${took} B taken`)
    // what moved is what was taken, not the mirror (6x what the new peer took): 1.00x in runs here, as each block
    // is asked of one peer holding it (1.9-2.9x when a want went to every connected peer)
    assert.ok(moved <= 1.6 * took, `moved ${moved} B for ${took} B taken`)
    assert.ok(after.every(b => b <= STORAGE_MAX), `a peer holds past its storage_max: ${after.join(' ')}`)
    // a second check finds nothing to move
    // a balanced pin moves no more, also once every peer's metrics say what it holds now
    await new Promise(resolve => setTimeout(resolve, 2500))
    for (const p of tc.peers) {
      if (p == null) continue
      const more = await p.cluster.balanceSpread()
      if (more > 0) t.diagnostic(`moved again: ${JSON.stringify(Object.fromEntries(Object.entries((await client.allocation(pin.cid)).spread_map!.shares).map(([k, v]) => [k.slice(-6), v.length])))}`)
      assert.equal(more, 0, 'a balanced pin moves no more')
    }
  })

  it('a lost peer\'s share is back on two live peers within the metrics TTL plus a margin; with a second peer lost every file still reads', async t => {
    const gone = tc.peer(4).id
    const t0 = Date.now()
    await tc.stop(4)
    await waitFor(async () => {
      const now = await client.allocation(pin.cid)
      if (now.allocations.includes(gone)) return false
      const status = await client.mirrorStatus('deb')
      return status.copies['2'] === status.parts && status.peers.every(p => p.peer !== gone)
    }, { timeoutMs: 30_000, intervalMs: 250, message: 'every partition back on two live peers' })
    t.diagnostic(`re-replicated in ${Date.now() - t0} ms (metrics TTL 2000 ms)`)
    await tc.stop(3)
    const gw = `http://127.0.0.1:${tc.peer(1).gatewayAddress().port}`
    for (const [path, sha] of files) {
      const res = await fetch(`${gw}/mirror/deb/${path}`)
      assert.equal(res.status, 200, path)
      assert.equal(createHash('sha256').update(new Uint8Array(await res.arrayBuffer())).digest('hex'), sha, path)
    }
  })
})
