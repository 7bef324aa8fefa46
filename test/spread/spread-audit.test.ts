// Issue 20: a volunteer whose blocks of a spread mirror are deleted behind its back (while it runs) is caught by
// an audit within an audit interval (plus the audit's own deadline), marked failed (trust, alert), and its share
// goes to the other peers: every partition is back on two peers that hold it, and with the failed volunteer
// gone every file still reads. Two trusted peers and two volunteers of a closed cluster, on 127.0.0.1.
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
import type { MirrorSyncResult } from '../../src/mirror/index.js'
import type { Pin } from '../../src/types/wire.js'
import type { Blockstore } from 'interface-blockstore'
import { startPeer, stopPeers } from '../ipfs/helpers.js'

const PEERS = 4
const VOLUNTEERS = [2, 3]
const DAMAGED = 3
const FILES = 80
/** One raw block each (under the 256 KiB chunk): 2-42 KB. */
const sizeOf = (i: number): number => 2048 + (i * 7919) % 40_000
/** Rounds every 3 s; a pin is audited once allocated 2 s; each audit has 5 s. */
const AUDIT = { interval_ms: 3000, grace_ms: 2000, timeout_ms: 5000, pins_per_round: 2, proven_after: 3, probation_pins: 16, cooldown_ms: 600_000 }

describe('an audit catches a volunteer whose share was deleted behind its back', { timeout: 180_000 }, () => {
  let tc: TestCluster
  let tmp: { path: string, cleanup: () => Promise<void> }
  let client: Client
  const files = new Map<string, string>()
  let tree: string
  let root: string

  before(async () => {
    tmp = await tempDir('cairn-spread-audit-')
    tree = join(tmp.path, 'tree')
    for (let i = 0; i < FILES; i++) {
      const path = join('pool', `p${i % 8}`, `pkg${i}.deb`)
      await mkdir(join(tree, 'pool', `p${i % 8}`), { recursive: true })
      const bytes = randomBytes(sizeOf(i))
      await writeFile(join(tree, path), bytes)
      files.set(path, createHash('sha256').update(bytes).digest('hex'))
    }
    tc = await createTestCluster(PEERS, {
      name: 'spread-audit',
      untrusted: VOLUNTEERS,
      // a closed cluster: the volunteers are listed, so their copies count from the start
      cluster: ids => ({ followers: VOLUNTEERS.map(i => ids[i]), spread_rebalance_interval_ms: 0 }),
      audit: AUDIT,
      gc: { interval_ms: 0 },
      monitor: () => ({ storage_max: 1024 ** 3, metric_ttl_ms: 2000 })
    })
    client = createClient({ api: tc.url(0) })
    await waitFor(async () => (await Promise.all(tc.peers.map(async p => (await p?.cluster.peerset())?.length))).every(n => n === PEERS),
      { timeoutMs: 30_000, message: 'the peers see each other' })
  })
  after(async () => {
    await tc?.close()
    await tmp?.cleanup()
  })

  it('marks the volunteer failed within an audit interval, alerts, and puts its share on the other peers', async t => {
    let out = ''
    let err = ''
    const code = await runCli(['--api', tc.url(0), '--json', 'mirror', 'sync', tree, '--name', 'deb', '--spread', '--replication', '2', '--wait-timeout', '60s'],
      { out: s => { out += s }, err: s => { err += s }, env: {} })
    assert.equal(code, 0, err)
    root = (JSON.parse(out) as MirrorSyncResult).root
    const pin = await client.allocation(root)
    const damaged = tc.peer(DAMAGED).id
    const mine = pin.spread_map?.shares[damaged] ?? []
    assert.ok(mine.length > 0, 'the volunteer holds a share')
    await waitFor(async () => {
      const status = await client.status(root)
      return pin.allocations.every(p => status.peer_map[p]?.status === 'pinned')
    }, { timeoutMs: 60_000, message: 'every allocated peer pinned its share' })
    // a few rounds pass with the share intact: no failure
    await new Promise(resolve => setTimeout(resolve, 2 * AUDIT.interval_ms))
    assert.equal((await client.peers()).find(p => p.id === damaged)?.trust, 'proven', 'the intact volunteer passes its audits')

    // delete every file of its share from its store while it runs (its pin records still say pinned)
    const parts = pin.spread_map!.partition_bytes.length
    const layout = await readLayout(CID.parse(root), parts, async c => await concatChunks(tc.peer(0).ipfs.helia.blockstore.get(c)))
    const gone = layout.units.filter(u => mine.includes(partitionOf(u.cid, parts)))
    assert.ok(gone.length > 0)
    // under Helia's pin check: the node's own store, as a disk fault or a `rm` would leave it
    const store = (tc.peer(DAMAGED).ipfs.helia.blockstore as unknown as { unwrap: () => Blockstore }).unwrap()
    for (const u of gone) await store.delete(u.cid)
    const t0 = Date.now()

    await waitFor(async () => (await client.peers()).find(p => p.id === damaged)?.trust === 'failed',
      { timeoutMs: 60_000, intervalMs: 200, message: 'a trusted peer marks the volunteer failed' })
    const caught = Date.now() - t0
    t.diagnostic(`deleted ${gone.length} files of ${mine.length} partitions; marked failed after ${caught} ms (audit interval ${AUDIT.interval_ms} ms, deadline ${AUDIT.timeout_ms} ms)`)
    // one interval to the next round, the audit (a failure is asked again 1 s later), and the 200 ms poll
    assert.ok(caught <= AUDIT.interval_ms + 2 * AUDIT.timeout_ms + 1000, `caught after ${caught} ms`)
    const alerts = await Promise.all([0, 1].map(async i => await createClient({ api: tc.url(i) }).alerts()))
    assert.ok(alerts.some(list => list.some(a => a.name === 'audit' && a.peer === damaged)), 'an audit alert names the volunteer')

    // its share is re-allocated: every partition on two other peers that hold it
    let now: Pin = pin
    await waitFor(async () => {
      now = await client.allocation(root)
      if (now.allocations.includes(damaged)) return false
      const status = await client.mirrorStatus('deb')
      return status.copies['2'] === status.parts && status.peers.every(p => p.peer !== damaged)
    }, { timeoutMs: 60_000, intervalMs: 250, message: 'every partition back on two peers that hold it' })
    t.diagnostic(`re-replicated ${Date.now() - t0} ms after the deletion; shares now ${JSON.stringify(Object.fromEntries(Object.entries(now.spread_map!.shares).map(([p, s]) => [p.slice(-6), s.length])))}`)

    // with the failed volunteer gone, every file reads through the other volunteer's gateway
    await tc.stop(DAMAGED)
    const gw = `http://127.0.0.1:${tc.peer(2).gatewayAddress().port}`
    for (const [path, sha] of files) {
      const res = await fetch(`${gw}/mirror/deb/${path}`, { signal: AbortSignal.timeout(30_000) })
      assert.equal(res.status, 200, path)
      assert.equal(createHash('sha256').update(new Uint8Array(await res.arrayBuffer())).digest('hex'), sha, path)
    }
  })

  it('a volunteer whose store lost files of its share while it was off fetches them again at start', async t => {
    const pin = await client.allocation(root)
    const volunteer = tc.peer(2).id
    const mine = pin.spread_map?.shares[volunteer] ?? []
    assert.ok(mine.length > 0, 'the volunteer holds a share')
    const parts = pin.spread_map!.partition_bytes.length
    const layout = await readLayout(CID.parse(root), parts, async c => await concatChunks(tc.peer(0).ipfs.helia.blockstore.get(c)))
    const lost = layout.units.filter(u => mine.includes(partitionOf(u.cid, parts))).slice(0, 10)
    // behind the stopped peer's back, through a node opened on its folder
    await tc.stop(2)
    const bare = await startPeer('spread-bare', { dataDir: tc.configs[2].path })
    try {
      const store = (bare.node.helia.blockstore as unknown as { unwrap: () => Blockstore }).unwrap()
      for (const u of lost) await store.delete(u.cid)
    } finally {
      await stopPeers(bare)
    }
    const t0 = Date.now()
    const peer = await tc.start(2)
    await waitFor(async () => (await Promise.all(lost.map(async u => await peer.ipfs.hasBlock(u.cid)))).every(Boolean),
      { timeoutMs: 30_000, intervalMs: 200, message: 'the lost files are back in the volunteer\'s store' })
    t.diagnostic(`${lost.length} files back ${Date.now() - t0} ms after the start`)
    // held as the pin's, not as cache
    const verify = await peer.ipfs.repoVerify()
    assert.deepEqual(verify.problems, [])
  })
})
