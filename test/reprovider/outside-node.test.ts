// One cluster peer and one outside Helia node (not a cairn peer: Helia, its own libp2p, @libp2p/kad-dht as a
// client, as Helia runs it by default) on a DHT of their own, whose only server is the cluster peer. What the
// peer announces has nowhere to go but its own provider store: the outside node finds it there through the DHT
// (GET_PROVIDERS), dials it from the record's addresses and fetches verified bytes with its own bitswap. Before
// self provider records, this lookup found nothing.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import * as dagCbor from '@ipld/dag-cbor'
import { peerIdFromCID } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { createClient } from '../../src/client/index.js'
import { concatChunks } from '../../src/utils/bytes.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { sha256Hex, waitFor } from '../util.js'
import { createFinder, type Finder } from './dht-network.js'
import type { ReprovideStatusDetail } from '../../src/reprovider/index.js'

const PROTOCOL = '/cairn-outside-test/kad/1.0.0'

describe('an outside node finds a lone cluster peer through the DHT', { timeout: 180_000 }, () => {
  let cluster: TestCluster
  let finder: Finder
  let peerId: string

  before(async () => {
    cluster = await createTestCluster(1, {
      name: 'outside',
      cluster: {
        // a DHT server (client_mode false) with no other DHT peer: lookups find no one to send records to
        dht: { profile: 'lan', protocol: PROTOCOL, client_mode: false },
        // every lookup runs to its deadline here (kad-dht waits for a first self-query no other server answers)
        reprovide: { interval_ms: 600_000, validity_ms: 1_200_000, retries: 0, lookup_timeout_ms: 2000 }
      }
    })
    const peer = cluster.peer(0)
    peerId = peer.id
    const addr = peer.swarmAddresses().find(a => a.startsWith('/ip4/127.0.0.1/'))!
    finder = await createFinder(PROTOCOL, addr.includes('/p2p/') ? addr : `${addr}/p2p/${peerId}`)
    const table = (): number => (finder.helia.libp2p.services.dht as unknown as { routingTable: { size: number } }).routingTable.size
    await waitFor(() => table() >= 1, { message: 'the outside node has the cluster peer in its DHT routing table' })
  })

  after(async () => {
    await finder?.stop()
    await cluster?.close()
  })

  /** Pins `root` (its blocks put first) through the REST API; resolves once the peer holds it. */
  async function pin (blocks: Array<{ cid: CID, bytes: Uint8Array }>): Promise<void> {
    const peer = cluster.peer(0)
    for (const b of blocks) await peer.ipfs.helia.blockstore.put(b.cid, b.bytes)
    const root = blocks[0].cid
    await createClient({ api: cluster.url(0) }).pin(root.toString())
    await waitFor(async () => await peer.ipfs.isPinned(root), { message: `${root} pinned` })
  }

  /** The peers the outside node's DHT lookup names as providers of `cid`, by peer id. */
  async function providers (cid: CID): Promise<string[]> {
    const found: string[] = []
    try {
      for await (const p of finder.helia.routing.findProviders(cid, { signal: AbortSignal.timeout(3000) })) found.push(peerIdFromCID(p.id).toString())
    } catch (err) {
      if ((err as Error).name !== 'AbortError' && (err as Error).name !== 'TimeoutError') throw err
    }
    return found
  }

  async function findsPeer (cid: CID, what: string): Promise<void> {
    await waitFor(async () => (await providers(cid)).includes(peerId),
      { timeoutMs: 30_000, message: `the outside node finds the cluster peer providing ${what} through the DHT` })
  }

  /** Fetches `cid` with the outside node's bitswap, from no connection it had before, and checks the bytes. */
  async function fetchVerified (cid: CID, bytes: Uint8Array): Promise<void> {
    await finder.helia.libp2p.hangUp(cluster.peer(0).ipfs.libp2p.peerId)
    const got = await concatChunks(finder.helia.blockstore.get(cid, { signal: AbortSignal.timeout(30_000) }))
    assert.equal(sha256Hex(got), sha256Hex(bytes))
    assert.deepEqual((await sha256.digest(got)).bytes, cid.multihash.bytes, 'the bytes hash to the CID')
  }

  it('a pin root announced by fast provide', async () => {
    const bytes = new TextEncoder().encode(`fast ${Date.now()} ${Math.random()}`.repeat(4000))
    const cid = CID.createV1(raw.code, await sha256.digest(bytes))
    await pin([{ cid, bytes }])
    await findsPeer(cid, 'the pin root')
    await fetchVerified(cid, bytes)
  })

  it('a block under a pin, announced by the reprovide cycle', async () => {
    const leaf = new TextEncoder().encode(`leaf ${Date.now()} ${Math.random()}`.repeat(4000))
    const leafCid = CID.createV1(raw.code, await sha256.digest(leaf))
    const rootBytes = dagCbor.encode({ name: 'outside', leaf: leafCid })
    const root = CID.createV1(dagCbor.code, await sha256.digest(rootBytes))
    await pin([{ cid: root, bytes: rootBytes }, { cid: leafCid, bytes: leaf }])
    await findsPeer(root, 'the pin root')
    // fast provide announces roots only: the leaf waits for the cycle (strategy 'pinned')
    assert.ok(!(await providers(leafCid)).includes(peerId), 'the leaf is not announced before the cycle')
    const status = await cluster.peer(0).reprovider.reprovideNow() as ReprovideStatusDetail
    assert.ok(status.last_cycle_cids === 0, `no DHT peer took a record: there is none (${JSON.stringify(status)})`)
    await findsPeer(leafCid, 'a block under the pin')
    await fetchVerified(leafCid, leaf)
  })
})
