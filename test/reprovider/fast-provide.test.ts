// Fast provides against a loopback DHT whose nodes misbehave: a stream the node closed since the last
// announcement, a node gone, a node that stops answering. Each pin must still become findable by an outside
// node, without failures counted for what is no failure and without holding later pins back.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { createClient } from '../../src/client/index.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { waitFor } from '../util.js'
import { createDhtNetwork, createFinder, type DhtNetwork, type Finder } from './dht-network.js'
import type { CairnPeer } from '../../src/peer.js'
import type { ReprovideStatusDetail } from '../../src/reprovider/index.js'

const PROTOCOL = '/cairn-fast-provide-test/kad/1.0.0'
const NODES = 10
/** The outside node knows only this one; the cluster bootstraps from nodes 0 and 1 (see bootstrapAddrs). */
const FINDER_NODE = NODES - 1

const status = (peer: CairnPeer): ReprovideStatusDetail => peer.reprovider.status() as ReprovideStatusDetail

describe('fast provide', { timeout: 180_000 }, () => {
  let net: DhtNetwork
  let finder: Finder

  before(async () => {
    net = await createDhtNetwork(NODES, { protocol: PROTOCOL })
    finder = await createFinder(PROTOCOL, net.addr(FINDER_NODE))
  })

  after(async () => {
    await finder?.stop()
    await net?.stop()
  })

  /** Nodes 0 and 1, or the next ones still running if an earlier test stopped one of them. */
  const bootstrapAddrs = (): string[] => net.nodes.map((_, i) => i)
    .filter(i => i !== FINDER_NODE && net.nodes[i].status === 'started').slice(0, 2).map(i => net.addr(i))

  async function startPeer (name: string, reprovide: Record<string, unknown>): Promise<TestCluster> {
    return await createTestCluster(1, {
      name,
      cluster: {
        dht: { profile: 'lan', protocol: PROTOCOL, bootstrap: bootstrapAddrs(), client_mode: true },
        reprovide: { interval_ms: 600_000, validity_ms: 1_200_000, ...reprovide }
      }
    })
  }

  /** Pins a new raw block through the REST API; resolves once the peer holds the pin. */
  async function pinNew (cluster: TestCluster, text: string): Promise<CID> {
    const bytes = new TextEncoder().encode(`${text} ${Date.now()} ${Math.random()}`)
    const cid = CID.createV1(raw.code, await sha256.digest(bytes))
    const peer = cluster.peer(0)
    await peer.ipfs.helia.blockstore.put(cid, bytes)
    await createClient({ api: cluster.url(0) }).pin(cid.toString())
    await waitFor(async () => await peer.ipfs.isPinned(cid), { message: `${cid} pinned` })
    return cid
  }

  async function waitFindable (cluster: TestCluster, cid: CID, what: string): Promise<void> {
    const id = cluster.peer(0).id
    await waitFor(async () => await finder.findProvider(cid, id, { signal: AbortSignal.timeout(5000) }) != null,
      { timeoutMs: 20_000, message: `the outside node finds the peer providing ${what}` })
  }

  /** Waits until every DHT node the peer opened a stream to acknowledged what it was sent. */
  async function settled (cluster: TestCluster, what: string): Promise<void> {
    const peer = cluster.peer(0)
    const streams = (): number => net.nodes.filter(n => n.status === 'started')
      .flatMap(n => n.getConnections(peer.ipfs.libp2p.peerId)).flatMap(c => c.streams)
      .filter(s => s.protocol === PROTOCOL).length
    await waitFor(() => {
      const records = status(peer).records_sent_total
      return records >= 1 && records === streams()
    }, { message: `${what} acknowledged by every DHT node it was sent to` })
  }

  /**
   * DHT nodes (not the finder's) the peer's announcements went to, on streams still open: others first, then the
   * bootstrap ones (a lookup made while the routing tables were still filling can have found only those).
   */
  function announcedTo (cluster: TestCluster): number[] {
    const id = cluster.peer(0).ipfs.libp2p.peerId
    const used = net.nodes.map((n, i) => ({ n, i }))
      .filter(({ n, i }) => i !== FINDER_NODE && n.status === 'started' &&
        n.getConnections(id).some(c => c.streams.some(s => s.protocol === PROTOCOL)))
      .map(({ i }) => i)
    return [...used.filter(i => i > 1), ...used.filter(i => i <= 1)]
  }

  it('a pin announced on streams the DHT nodes closed since the last announcement is findable, and no failure is counted', async () => {
    // no retries: a failed send would show at once as a DHT node given up on
    const cluster = await startPeer('fp1', { retries: 0 })
    try {
      const peer = cluster.peer(0)
      const first = await pinNew(cluster, 'first')
      await settled(cluster, 'the first root')
      // the DHT nodes end the streams the first announcement came on (kad-dht closes idle ones); the peer keeps
      // its own ends open for the next pin
      let closed = 0
      await Promise.all(net.nodes.map(async node => {
        for (const conn of node.getConnections(peer.ipfs.libp2p.peerId)) {
          for (const s of conn.streams) {
            if (s.protocol !== PROTOCOL) continue
            closed++
            await s.close()
          }
        }
      }))
      assert.ok(closed >= 1, 'the first announcement\'s streams were still open on the DHT nodes')
      const second = await pinNew(cluster, 'second')
      await waitFindable(cluster, second, 'the second root')
      await waitFindable(cluster, first, 'the first root')
      const now = status(peer)
      assert.equal(now.failures_total, 0, `no failure counted: ${JSON.stringify(now)}`)
      assert.equal(now.fast_provides_total, 2)
    } finally {
      await cluster.close()
    }
  })

  it('a DHT node gone is skipped by later pins without looking the keyspace up again', async () => {
    const cluster = await startPeer('fp2', { retries: 0 })
    try {
      const peer = cluster.peer(0)
      await pinNew(cluster, 'warm-up')
      await settled(cluster, 'the warm-up root')
      const gone = announcedTo(cluster)[0]
      assert.ok(gone != null, 'the peer announced to DHT nodes besides the finder\'s')
      await net.nodes[gone].stop()
      const a = await pinNew(cluster, 'a')
      await waitFindable(cluster, a, 'a root pinned after a DHT node went away')
      await waitFor(() => status(peer).failures_total >= 1, { message: 'the send to the node gone failed' })
      const lookups = status(peer).lookups_total
      const b = await pinNew(cluster, 'b')
      await waitFindable(cluster, b, 'the next root')
      await waitFor(() => status(peer).fast_provides_total >= 3, { message: 'the next root announced' })
      const now = status(peer)
      assert.equal(now.lookups_total, lookups, 'the next pin reused the keyspace region found before')
      assert.equal(now.failures_total, 1, 'the node gone was tried once, then skipped')
    } finally {
      await cluster.close()
    }
  })

  it('a DHT node that stops answering holds back neither the pins after it nor their findability', async () => {
    // the node that hangs is given up on only after this long: the pins below are all announced before
    const cluster = await startPeer('fp3', { retries: 0, send_timeout_ms: 150_000 })
    try {
      const peer = cluster.peer(0)
      await pinNew(cluster, 'warm-up')
      await settled(cluster, 'the warm-up root')
      const hung = announcedTo(cluster)[0]
      assert.ok(hung != null, 'the peer announced to DHT nodes besides the finder\'s')
      await net.hang(hung)
      // more pins than fast-provide sweeps may run at once, one after the other
      const roots: CID[] = []
      for (let i = 0; i < 6; i++) roots.push(await pinNew(cluster, `after the hang ${i}`))
      for (const [i, cid] of roots.entries()) await waitFindable(cluster, cid, `root ${i} pinned after a DHT node hung`)
      assert.equal(status(peer).fast_provides_total, 7, 'every root counted as announced')
    } finally {
      await cluster.close()
    }
  })
})
