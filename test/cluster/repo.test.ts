// Issue 19, item 4: accounting. On a 2-peer cluster, peer 1 holds a pinned file, cache (read through its gateway)
// and garbage (an unpinned file): `cairn repo stat --json`, GET /ipfs/repo/stat and /metrics tell them apart;
// `cairn repo gc` (Kubo's name) reclaims the garbage and counts the bytes. Then blocks of the pin are corrupted
// and deleted behind the stopped peer's back, and `cairn repo verify` names them and fetches them again.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import { runCli } from '../../src/cli/program.js'
import { createClient } from '../../src/client/index.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { startPeer, stopPeers } from '../ipfs/helpers.js'
import { parsePrometheus } from '../metrics/prom-parse.js'
import { waitFor, oneFile, sha256Hex } from '../util.js'
import type { PinOptions } from '../../src/components.js'
import type { Blockstore } from 'interface-blockstore'
import type { RepoStat, RepoVerify } from '../../src/types/wire.js'

describe('repo accounting and verify', { timeout: 180_000 }, () => {
  let tc: TestCluster

  before(async () => {
    // no start-up self-check: the repo verify test finds the blocks deleted while a peer was off (the check would
    // fetch them back first)
    tc = await createTestCluster(2, { name: 'repo', disk: { check_on_start: false } })
    await waitFor(async () => (await tc.peer(1).cluster.peerset()).length === 2, { message: 'peers see each other', timeoutMs: 30_000 })
  })
  after(async () => { await tc?.close() })

  async function add (bytes: Uint8Array, options: PinOptions & { no_pin?: boolean } = {}): Promise<string> {
    let root = ''
    for await (const out of tc.peer(0).cluster.add(oneFile('f.bin', bytes), { ...options, chunk_size: 65_536, cid_version: 1, raw_leaves: true })) root = out.cid
    return root
  }
  async function cairn (...args: string[]): Promise<{ code: number, out: string, err: string }> {
    let out = ''
    let err = ''
    const code = await runCli(args, { out: s => { out += s }, err: s => { err += s }, env: { CAIRN_API: tc.url(1) } })
    return { code, out, err }
  }
  async function gateway (path: string, headers: Record<string, string> = {}): Promise<{ status: number, body: Buffer }> {
    const { host, port } = tc.peer(1).gatewayAddress()
    const res = await fetch(`http://${host}:${port}${path}`, { headers, signal: AbortSignal.timeout(30_000) })
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()) }
  }
  async function scrape (): Promise<Map<string, number>> {
    const { port } = tc.peer(1).metricsAddress()
    const families = parsePrometheus(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())
    return new Map([...families.values()].filter(f => f.samples.length === 1).map(f => [f.name, f.samples[0].value]))
  }
  const pinnedOn1 = async (cid: string): Promise<boolean> => await tc.peer(1).ipfs.isPinned(CID.parse(cid))

  const pinnedBytes = randomBytes(400_000)
  let pinned = ''

  it('repo stat (CLI --json, REST) and /metrics tell pinned, cache and garbage bytes apart; repo gc reclaims the garbage', async () => {
    pinned = await add(pinnedBytes)
    const dropped = await add(randomBytes(300_000))
    await waitFor(async () => await pinnedOn1(pinned) && await pinnedOn1(dropped), { timeoutMs: 30_000, message: 'both files pinned on peer 1' })
    await createClient({ api: tc.url(0) }).unpin(dropped)
    await waitFor(async () => !await pinnedOn1(dropped), { timeoutMs: 30_000, message: 'the unpinned file released on peer 1' })
    const cached = randomBytes(200_000)
    const cachedCid = await add(cached, { no_pin: true })
    assert.equal(sha256Hex((await gateway(`/ipfs/${cachedCid}`)).body), sha256Hex(cached))

    const cli = await cairn('--json', 'repo', 'stat')
    assert.equal(cli.code, 0, cli.err)
    const stat = JSON.parse(cli.out) as RepoStat
    assert.equal(stat.peer, tc.peer(1).id)
    // payload plus a root node of ~ 50 bytes per 64 KiB leaf
    const near = (got: number, want: number, what: string): void => { assert.ok(got >= want && got < want + 2000, `${what}: ${got} for ${want}`) }
    near(stat.pinned_bytes, 400_000, 'pinned')
    near(stat.cache_bytes, 200_000, 'cache')
    near(stat.garbage_bytes, 300_000, 'garbage')
    assert.equal(stat.held_bytes, await tc.peer(1).ipfs.repoSize(), 'the kinds add up to what the store holds')
    assert.ok(stat.disk_bytes >= stat.held_bytes, `on disk: ${stat.disk_bytes}`)
    // the value log: its segment files hold every block held, framed, and dead records not compacted yet
    assert.ok(stat.segments >= 1)
    assert.ok(stat.segment_bytes >= stat.held_bytes && stat.segment_bytes < stat.held_bytes + 64 * 1024, `segment bytes ${stat.segment_bytes} for ${stat.held_bytes} held`)
    assert.equal(stat.unmigrated_bytes, 0)
    assert.match((await cairn('repo', 'stat')).out, /segments: +\d+ files, [\d.]+ KiB/)
    assert.match((await cairn('repo', 'stat')).out, /pinned: +391\.0 KiB \(400,\d{3} B\)[\s\S]*garbage: +293\.\d KiB/)
    const rest = await createClient({ api: tc.url(1) }).repoStat()
    assert.deepEqual({ ...rest, disk_bytes: 0 }, { ...stat, disk_bytes: 0 })

    let m = await scrape()
    assert.equal(m.get('cairn_repo_pinned_bytes'), stat.pinned_bytes)
    assert.equal(m.get('cairn_repo_garbage_bytes'), stat.garbage_bytes)
    assert.equal(m.get('cairn_repo_cache_bytes'), stat.cache_bytes)
    assert.ok((m.get('cairn_repo_disk_bytes') ?? 0) > stat.held_bytes)
    assert.equal(m.get('cairn_repo_segment_bytes'), stat.segment_bytes)
    assert.equal(m.get('cairn_repo_segments'), stat.segments)
    assert.equal(m.get('cairn_repo_compacted_bytes_total'), stat.compacted_bytes)
    const reclaimedBefore = m.get('cairn_repo_gc_bytes_reclaimed_total') ?? -1

    const gc = await cairn('repo', 'gc', '--local')
    assert.equal(gc.code, 0, gc.err)
    assert.match(gc.out, /peer-1 .*: \d+ blocks deleted/)
    const after = await createClient({ api: tc.url(1) }).repoStat()
    assert.equal(after.garbage_bytes, 0, 'the garbage went')
    assert.equal(after.pinned_bytes, stat.pinned_bytes)
    assert.equal(after.cache_bytes, stat.cache_bytes, 'the cache is not garbage')
    m = await scrape()
    assert.equal((m.get('cairn_repo_gc_bytes_reclaimed_total') ?? 0) - reclaimedBefore, stat.garbage_bytes, 'the bytes reclaimed are counted')
    assert.equal(m.get('cairn_repo_garbage_bytes'), 0)
  })

  it('repo verify names the corrupt and missing blocks of a pin by CID and fetches them again from the other peer', async () => {
    const root = CID.parse(pinned)
    const leaves = dagPb.decode(await tc.peer(0).ipfs.getBlock(root, { offline: true })).Links.map(l => l.Hash)
    assert.ok(leaves.length >= 3)
    const [corrupt, missing] = leaves
    // behind the stopped peer's back, through the blockstore API of a node opened on its folder
    await tc.stop(1)
    const bare = await startPeer('repo-bare', { dataDir: tc.configs[1].path })
    try {
      // under Helia's pin check: the node's own store, as a disk fault would leave it
      const blocks = (bare.node.helia.blockstore as unknown as { unwrap: () => Blockstore }).unwrap()
      await blocks.delete(corrupt)
      await blocks.put(corrupt, randomBytes(65_536))
      await blocks.delete(missing)
    } finally {
      await stopPeers(bare)
    }
    await tc.start(1)
    const res = await cairn('--json', 'repo', 'verify')
    assert.equal(res.code, 0, res.err)
    const report = JSON.parse(res.out) as RepoVerify
    const byCid = new Map(report.problems.map(p => [p.cid, p]))
    assert.equal(report.problems.length, 2, res.out)
    assert.deepEqual(byCid.get(corrupt.toString()), { cid: corrupt.toString(), problem: 'corrupt', pinned: true, action: 'refetched' })
    assert.deepEqual(byCid.get(missing.toString()), { cid: missing.toString(), problem: 'missing', pinned: true, action: 'refetched' })
    // the pin reads whole from this peer alone again, and a second verify is clean
    const whole = await gateway(`/ipfs/${pinned}`, { 'cache-control': 'only-if-cached' })
    assert.equal(whole.status, 200)
    assert.equal(sha256Hex(whole.body), sha256Hex(pinnedBytes))
    const again = await createClient({ api: tc.url(1) }).repoVerify()
    assert.deepEqual(again.problems, [])
    assert.ok(again.blocks_checked > leaves.length)
  })
})
