// The DHT reprovider against a loopback DHT of 20 plain libp2p nodes (not cluster members): content pinned through
// the cluster is found and fetched by an outside Helia node that knows one DHT node; records expired on the DHT
// come back with the next scheduled cycle, unpinned content does not; a restart resumes a cycle; DHT failures
// are counted and retried.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { unixfs } from '@helia/unixfs'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { runCli } from '../../src/cli/program.js'
import { createClient } from '../../src/client/index.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { tempDir, waitFor } from '../util.js'
import { createDhtNetwork, createFinder, type DhtNetwork, type Finder } from './dht-network.js'
import type { ReprovideStatusDetail } from '../../src/reprovider/index.js'

const PROTOCOL = '/cairn-reprovide-test/kad/1.0.0'
/** Provider records live this long on the DHT nodes. */
const VALIDITY_MS = 6000

describe('reprovider', { timeout: 180_000 }, () => {
  let net: DhtNetwork
  let finder: Finder
  let files: { path: string, cleanup: () => Promise<void> }

  before(async () => {
    net = await createDhtNetwork(20, { protocol: PROTOCOL, validityMs: VALIDITY_MS, cleanupMs: 500 })
    // the outside node knows one DHT node only, one the cluster does not bootstrap from
    finder = await createFinder(PROTOCOL, net.addr(19))
    files = await tempDir('cairn-reprovide-files-')
  })

  after(async () => {
    await finder?.stop()
    await net?.stop()
    await files?.cleanup()
  })

  const dhtConfig = (extra: Record<string, unknown> = {}): Record<string, unknown> =>
    ({ profile: 'lan', protocol: PROTOCOL, bootstrap: [net.addr(0), net.addr(1)], ...extra })

  /** Adds random bytes through peer i's REST API; returns the root and its bytes. */
  async function addFile (cluster: TestCluster, i: number, bytes: number, chunker = 'size-65536'): Promise<{ cid: string, data: Uint8Array }> {
    const data = new Uint8Array(randomBytes(bytes))
    const path = join(files.path, `f-${Date.now()}-${Math.random()}`)
    await writeFile(path, data)
    const out = []
    for await (const line of createClient({ api: cluster.url(i) }).add([path], { chunker, rawLeaves: true })) out.push(line)
    const cid = out[out.length - 1].cid
    // the API answers once the pin is in the pinset; the peer pins it locally just after
    await waitFor(async () => await cluster.peer(i).ipfs.isPinned(CID.parse(cid)), { message: `${cid} pinned on peer ${i}` })
    return { cid, data }
  }

  it('content pinned through a 3-peer cluster is found and fetched by an outside node that knows one DHT node', async () => {
    const cluster = await createTestCluster(3, {
      name: 'rp1',
      cluster: { dht: dhtConfig(), reprovide: { interval_ms: 600_000, validity_ms: 1_200_000 } }
    })
    try {
      const { cid, data } = await addFile(cluster, 0, 300_000)
      const root = CID.parse(cid)
      const ids = new Set(cluster.peers.map(p => p!.id))
      // fast provide: the root is announced as soon as it is pinned
      const found = await waitFor(async () => {
        const providers = await finder.providers(root)
        return providers.some(p => ids.has(p)) ? providers : undefined
      }, { timeoutMs: 20_000, message: 'the outside node finds a cluster peer providing the root' })
      assert.ok(found.length >= 1)
      // fetched over bitswap from whoever the DHT named, every block checked against its CID
      const chunks: Uint8Array[] = []
      for await (const chunk of unixfs(finder.helia).cat(root, { signal: AbortSignal.timeout(20_000) })) chunks.push(chunk)
      assert.deepEqual(Buffer.concat(chunks), Buffer.from(data))
      // the outside node may have found a peer through its own provider record (a DHT node that pinned it too)
      // before peer 0's fast provide ended: it is counted once it has
      let status = await createClient({ api: cluster.url(0) }).reprovideStatus() as ReprovideStatusDetail
      await waitFor(async () => {
        status = await createClient({ api: cluster.url(0) }).reprovideStatus() as ReprovideStatusDetail
        return status.fast_provides_total >= 1
      }, { timeoutMs: 20_000, message: 'peer 0 counts its fast provide', describe: () => JSON.stringify(status) })
      assert.equal(status.strategy, 'pinned')

      // a cycle now (REST, NDJSON progress) announces every block of the pin, not only the root; peer 1 pins it
      // after peer 0 (every peer holds it): on a loaded machine a cycle started before then announced nothing
      await waitFor(async () => await cluster.peer(1).ipfs.isPinned(root), { timeoutMs: 30_000, message: 'pinned on peer 1' })
      const lines: ReprovideStatusDetail[] = []
      const final = await createClient({ api: cluster.url(1) }).reprovideNow({ onProgress: s => { lines.push(s as ReprovideStatusDetail) } }) as ReprovideStatusDetail
      assert.equal(final.cycles_total, 1)
      assert.ok(final.last_cycle_cids >= 6, `a 300 kB file in 64 kB raw leaves is 6+ blocks: ${final.last_cycle_cids}`)
      assert.ok(lines.length >= 2)
      const leaf = await firstLeaf(finder, root)
      await waitFor(async () => (await finder.providers(leaf)).includes(cluster.peer(1).id), { timeoutMs: 10_000, message: 'a leaf block is findable after the cycle' })

      // the CLI prints the same status
      const out: string[] = []
      const code = await runCli(['--api', cluster.url(1), 'reprovide', 'status'], { out: s => { out.push(s) }, err: () => {}, env: {} })
      assert.equal(code, 0)
      assert.match(out.join(''), /Strategy: pinned/)
      assert.match(out.join(''), /CIDs announced in 1 cycles/)
    } finally {
      await cluster.close()
    }
  })

  it('records expired on the DHT come back with the next scheduled cycle; an unpinned CID does not', async () => {
    // DHT client mode: the cluster peer stores no records itself, so only the 20 DHT nodes hold them
    const cluster = await createTestCluster(1, {
      name: 'rp2',
      // the first cycle 30 s after start: the adds, their fast provides and the 6 s of record validity must fit
      // before it (with 20 s, a loaded machine ran the cycle first)
      cluster: { dht: dhtConfig({ client_mode: true }), reprovide: { interval_ms: 30_000, validity_ms: 60_000 } }
    })
    try {
      const peer = cluster.peer(0)
      const api = createClient({ api: cluster.url(0) })
      const a = CID.parse((await addFile(cluster, 0, 100_000)).cid)
      const b = CID.parse((await addFile(cluster, 0, 100_000)).cid)
      const findable = async (cid: CID): Promise<boolean> => (await finder.providers(cid)).includes(peer.id)
      // fast provides
      await waitFor(async () => await findable(a) && await findable(b), { timeoutMs: 20_000, message: 'both roots findable after their fast provide' })
      await api.unpin(b.toString())
      // no cycle has run yet: the DHT nodes drop the records after their validity
      await waitFor(async () => !(await findable(a)) && !(await findable(b)), { timeoutMs: 20_000, message: 'records expire on the DHT nodes' })
      assert.equal(peer.reprovider.status().cycles_total, 0, 'the records lapsed before the first scheduled cycle')
      // the first scheduled cycle announces what is still pinned, and only that
      await waitFor(() => peer.reprovider.status().cycles_total >= 1, { timeoutMs: 40_000, message: 'the scheduled cycle runs' })
      await waitFor(async () => await findable(a), { timeoutMs: 10_000, message: 'the pinned root is findable again' })
      assert.equal(await findable(b), false, 'the unpinned root is not announced again')
      const status = peer.reprovider.status()
      assert.equal(status.last_cycle_cids, 3, 'a 100 kB file in 64 kB raw leaves: root + 2 leaves, and nothing of the unpinned one')
      assert.notEqual(status.next_cycle_at, '')
    } finally {
      await cluster.close()
    }
  })

  it('a restart in the middle of a cycle resumes it instead of starting over', async () => {
    const config = { dht: dhtConfig({ client_mode: true }), reprovide: { interval_ms: 600_000, validity_ms: 1_200_000, batch_size: 40, fast_provide: false } }
    const cluster = await createTestCluster(1, { name: 'rp3', cluster: config })
    try {
      await addFile(cluster, 0, 400 * 1024, 'size-1024')
      let seen = 0
      let total = 0
      let stopping: Promise<void> | undefined
      const first = cluster.peer(0).reprovider.reprovideNow({
        onProgress: (done, all) => {
          seen = done
          total = all
          if (done >= 120 && stopping == null) stopping = cluster.stop(0)
        }
      })
      await first
      await waitFor(() => stopping != null, { message: `the peer was stopped mid-cycle (progress seen: ${seen}, status: ${JSON.stringify(cluster.peers[0]?.reprovider.status())})` })
      await stopping
      // 400 leaves of 1 KiB and their parents
      assert.ok(total > 400, `${total} blocks`)
      assert.ok(seen >= 120 && seen < total, `stopped mid-cycle at ${seen}/${total}`)
      const peer = await cluster.start(0)
      // the saved cycle resumes at once
      await waitFor(() => peer.reprovider.status().cycles_total === 1, { timeoutMs: 30_000, message: 'the resumed cycle finishes' })
      const status = peer.reprovider.status() as ReprovideStatusDetail
      assert.ok(status.cycle_resumed_from >= 120, `resumed from ${status.cycle_resumed_from}, not from 0`)
      assert.equal(status.cids_announced_total, total - status.cycle_resumed_from, 'only the rest was announced after the restart')
      assert.equal(status.last_cycle_cids, total, 'the cycle counts what was announced before and after the restart')
    } finally {
      await cluster.close()
    }
  })

  it('DHT peers gone or hanging are counted and retried, and the cycle and the peer carry on', async () => {
    const cluster = await createTestCluster(1, {
      name: 'rp4',
      cluster: {
        dht: dhtConfig({ client_mode: true }),
        reprovide: { interval_ms: 600_000, validity_ms: 1_200_000, batch_size: 50, fast_provide: false, retries: 1, retry_backoff_ms: 100, send_timeout_ms: 3000, lookup_timeout_ms: 10_000 }
      }
    })
    try {
      let peer = cluster.peer(0)
      await addFile(cluster, 0, 200 * 1024, 'size-1024')
      let before = await peer.reprovider.reprovideNow() as ReprovideStatusDetail
      const total = before.last_cycle_cids
      assert.ok(total > 200, `200 leaves of 1 KiB and their parents: ${total}`)
      // among the DHT nodes the cycles stored records on (a lookup on this small DHT can end with only some of
      // them), three go away and two stop answering; node 19 (the finder's) is spared, and the bootstrap nodes
      // 0 and 1 are taken last (the peer already has its region's peers; the finder is not used in this test)
      const id = peer.ipfs.libp2p.peerId
      const reached = async (): Promise<number[]> => {
        const held = await Promise.all(net.nodes.map(async (_, i) => await net.providerRecords(i, id.toString())))
        const sent = held.map((n, i) => ({ n, i })).filter(({ n, i }) => i < 19 && n > 0).map(({ i }) => i)
        return [...sent.filter(i => i > 1), ...sent.filter(i => i <= 1)]
      }
      let used = await reached()
      // fewer than five reached (seen on a loaded machine: a lookup that ended early, or sends past their deadline,
      // whose peers are then skipped for the region cache's 10 min): the peer restarts, which forgets its lookups
      // and the peers it gave up on, and runs another cycle (records add up on the DHT nodes)
      for (let k = 0; k < 3 && used.length < 5; k++) {
        await cluster.stop(0)
        peer = await cluster.start(0)
        before = await peer.reprovider.reprovideNow() as ReprovideStatusDetail
        used = await reached()
      }
      assert.ok(used.length >= 5, `the cycles reached DHT nodes ${used.join(',')}`)
      await Promise.all(used.slice(0, 3).map(async i => { await net.nodes[i].stop() }))
      await Promise.all(used.slice(3, 5).map(async i => { await net.hang(i) }))
      const after = await peer.reprovider.reprovideNow() as ReprovideStatusDetail
      // each of those the lookup had found failed, was retried once, failed again and was skipped for the cycle
      const failed = after.failures_total - before.failures_total
      const retried = after.retries_total - before.retries_total
      assert.ok(retried >= 2 && failed >= 2 * retried - 1, `failures ${failed}, retries ${retried}`)
      assert.equal(after.cycles_total, before.cycles_total + 1)
      assert.equal(after.last_cycle_cids, total, 'every CID still reached the DHT peers that answer')
      // the peer keeps serving
      const status = await createClient({ api: cluster.url(0) }).reprovideStatus()
      assert.equal(status.cycles_total, before.cycles_total + 1)
    } finally {
      await cluster.close()
    }
  })

  it('when every DHT peer a cached lookup named is gone, the cycle looks the keyspace up again and announces every CID', async () => {
    // a DHT of its own: 5 nodes the peer announces to first, then 5 others it meets while the first 5 go away
    const first = await createDhtNetwork(5, { protocol: PROTOCOL })
    const second = await createDhtNetwork(5, { protocol: PROTOCOL })
    const cluster = await createTestCluster(1, {
      name: 'rp5',
      cluster: {
        dht: { profile: 'lan', protocol: PROTOCOL, bootstrap: [first.addr(0)], client_mode: true },
        // a 10 min region cache: the second cycle starts from the first one's lookup
        reprovide: { interval_ms: 600_000, validity_ms: 1_200_000, batch_size: 20, fast_provide: false, retries: 1, retry_backoff_ms: 100, send_timeout_ms: 1500 }
      }
    })
    try {
      const peer = cluster.peer(0)
      const id = peer.ipfs.libp2p.peerId.toString()
      await addFile(cluster, 0, 60 * 1024, 'size-1024')
      const before = await peer.reprovider.reprovideNow() as ReprovideStatusDetail
      const total = before.last_cycle_cids
      assert.ok(total > 60, `60 leaves of 1 KiB and their root: ${total}`)
      const held = async (net: DhtNetwork): Promise<number[]> => await Promise.all(net.nodes.map(async (_, i) => await net.providerRecords(i, id)))
      assert.ok((await held(first)).some(n => n === total), 'the first cycle stored every record on the first DHT')
      for (let i = 0; i < second.nodes.length; i++) await peer.ipfs.libp2p.dial(multiaddr(second.addr(i)))
      // the second DHT's nodes in the peer's routing table (identify ran) before the first one goes
      const table = (peer.ipfs.libp2p.services.dht as unknown as { routingTable: { find: (p: unknown) => Promise<unknown> } }).routingTable
      await waitFor(async () => (await Promise.all(second.nodes.map(async n => await table.find(n.peerId)))).every(p => p != null),
        { timeoutMs: 20_000, message: 'the second DHT\'s nodes in the routing table' })
      await first.stop()
      const after = await peer.reprovider.reprovideNow() as ReprovideStatusDetail
      assert.equal(after.cycles_total, 2)
      assert.ok(after.failures_total > before.failures_total, 'the sends to the DHT nodes gone were counted as failures')
      assert.equal(after.last_cycle_cids, total, 'every CID, the first batch too, reached the DHT nodes that answer')
      const now = await held(second)
      assert.ok(now.some(n => n === total), `a node of the second DHT holds every record: ${now.join(',')} of ${total}`)
    } finally {
      await cluster.close()
      await first.stop()
      await second.stop()
    }
  })
})

/** The first child of a root held by the finder after the fetch. */
async function firstLeaf (finder: Finder, root: CID): Promise<CID> {
  const { decode } = await import('@ipld/dag-pb')
  const { concatChunks } = await import('../../src/utils/bytes.js')
  const node = decode(await concatChunks(finder.helia.blockstore.get(root)))
  return node.Links[0].Hash
}
