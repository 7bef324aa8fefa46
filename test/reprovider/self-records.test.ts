// This peer's own provider records, written in batches into @libp2p/kad-dht's provider store: another DHT node
// asking this one (GET_PROVIDERS) gets this peer back, with its addresses; pruning drops only this peer's records
// older than the given time. Checks that kad-dht still keeps its store where src/reprovider/self-records.ts writes.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { peerIdFromCID } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { entryOf } from '../../src/reprovider/keys.js'
import { createSelfRecords, type SelfRecords } from '../../src/reprovider/self-records.js'
import { quietLogger, waitFor } from '../util.js'
import { createDhtNetwork, createFinder, type DhtNetwork, type Finder } from './dht-network.js'
import type { PeerId } from '@libp2p/interface'

const PROTOCOL = '/cairn-self-records-test/kad/1.0.0'

async function cidOf (text: string): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(text)))
}

describe('self provider records', { timeout: 120_000 }, () => {
  let net: DhtNetwork
  let finder: Finder
  let records: SelfRecords

  before(async () => {
    net = await createDhtNetwork(2, { protocol: PROTOCOL })
    // the outside node knows node 1 only; node 0 holds the records, in its own store and nowhere else
    finder = await createFinder(PROTOCOL, net.addr(1))
    records = createSelfRecords({ libp2p: net.nodes[0], log: quietLogger().forComponent('cairn:test') })
  })

  after(async () => {
    await finder?.stop()
    await net?.stop()
  })

  const providersOf = async (cid: CID): Promise<Array<{ id: PeerId, addrs: string[] }>> => {
    const found: Array<{ id: PeerId, addrs: string[] }> = []
    for await (const p of finder.helia.routing.findProviders(cid, { signal: AbortSignal.timeout(5000) })) {
      // Helia names a provider by its peer id as a CID
      found.push({ id: peerIdFromCID(p.id), addrs: p.multiaddrs.map(String) })
    }
    return found
  }

  it('answers GET_PROVIDERS with this peer and its addresses, for records written in one batch', async () => {
    const cids = await Promise.all(Array.from({ length: 50 }, async (_, i) => await cidOf(`self ${i} ${Math.random()}`)))
    await records.add(cids.map(c => entryOf(c.multihash.bytes)))
    assert.equal(await net.providerRecords(0, net.nodes[0].peerId.toString()), 50)
    assert.equal(await net.providerRecords(1, net.nodes[0].peerId.toString()), 0, 'nothing was announced to node 1')
    for (const cid of [cids[0], cids[49]]) {
      const found = await waitFor(async () => (await providersOf(cid)).find(p => p.id.equals(net.nodes[0].peerId)),
        { timeoutMs: 20_000, message: `the outside node finds node 0 providing ${cid}` })
      const own = net.nodes[0].getMultiaddrs().map(a => a.decapsulateCode(421).toString())
      assert.ok(found.addrs.some(a => own.includes(a)), `addresses ${found.addrs.join(', ')} are node 0's own (${own.join(', ')})`)
    }
  })

  it('prunes only this peer\'s records written before the given time', async () => {
    const old = await cidOf(`old ${Math.random()}`)
    const kept = await cidOf(`kept ${Math.random()}`)
    const other = net.nodes[1].peerId
    await records.add([entryOf(old.multihash.bytes)])
    // another peer's record for the same CID, as an ADD_PROVIDER from it would leave (kad-dht's own write path)
    const dht = net.nodes[0].services.dht as unknown as { providers: { addProvider(cid: CID, peer: PeerId): Promise<void> } }
    await dht.providers.addProvider(old, other)
    await new Promise(resolve => setTimeout(resolve, 5))
    const cut = Date.now()
    await new Promise(resolve => setTimeout(resolve, 5))
    await records.add([entryOf(kept.multihash.bytes)])
    const before = await net.providerRecords(0, net.nodes[0].peerId.toString())
    const dropped = await records.prune(cut)
    // the 50 of the first test are older than the cut too
    assert.equal(dropped, before - 1)
    assert.equal(await net.providerRecords(0, net.nodes[0].peerId.toString()), 1)
    assert.equal(await net.providerRecords(0, other.toString()), 1, 'another peer\'s record stays')
    const oldProviders = await providersOf(old)
    assert.ok(!oldProviders.some(p => p.id.equals(net.nodes[0].peerId)), 'node 0 no longer claims the pruned CID')
    assert.ok(oldProviders.some(p => p.id.equals(other)), 'the other peer\'s record is still answered')
    assert.ok((await providersOf(kept)).some(p => p.id.equals(net.nodes[0].peerId)))
  })
})
