import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { prefixLogger } from '@libp2p/logger'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { MemoryDatastore } from 'datastore-core'
import { libp2pOptions } from '../../src/libp2p/index.js'
import type { CairnServices, HostInit } from '../../src/libp2p/index.js'
import type { Libp2p, PeerId, PeerInfo } from '@libp2p/interface'
import { loopbackHost, TEST_DHT, waitFor } from '../util.js'

type Node = Libp2p<CairnServices>

const LAN = TEST_DHT
const PUBLIC = { ...LAN, keepPrivateAddresses: false }

async function startHost (name: string, init: Partial<HostInit> = {}): Promise<Node> {
  return await loopbackHost({ logger: prefixLogger(name), ...init })
}

async function stopAll (...nodes: Array<Node | undefined>): Promise<void> {
  await Promise.all(nodes.map(async n => n?.stop()))
}

/** Every address the DHT reports for `target`, asking from `from`. */
async function dhtAddresses (from: Node, target: PeerId, ms: number): Promise<string[]> {
  const found: PeerInfo[] = []
  try {
    for await (const event of from.services.dht.findPeer(target, { signal: AbortSignal.timeout(ms) })) {
      if (event.name === 'FINAL_PEER') {
        found.push(event.peer)
      }
    }
  } catch (err) {
    // a query that learns no usable address runs until its deadline
    if (!['NotFoundError', 'AbortError', 'TimeoutError'].includes((err as Error).name)) {
      throw err
    }
  }
  return found.flatMap(p => p.multiaddrs.map(String))
}

/** A <- B -> C, and the DHT of every node knows its neighbours (identify has run). */
async function line (dht: HostInit['dht']): Promise<[Node, Node, Node]> {
  const a = await startHost('a', { dht })
  const b = await startHost('b', { dht })
  const c = await startHost('c', { dht })
  await b.dial(a.getMultiaddrs()[0])
  await c.dial(b.getMultiaddrs()[0])
  // the DHT adds a peer once identify reports the protocol
  await waitFor(() => b.getConnections().length === 2 && [a, c].every(n => n.getPeers().length === 1), { timeoutMs: 5000, message: 'connections' })
  return [a, b, c]
}

describe('libp2p host options', () => {
  it('builds tcp + noise + yamux with identify, ping, gossipsub, kad-dht and nothing that reaches out alone', async () => {
    const options = libp2pOptions({ privateKey: await generateKeyPair('Ed25519'), listen: [], dht: LAN, datastore: new MemoryDatastore() })
    assert.equal(options.transports?.length, 1)
    assert.deepEqual(options.peerDiscovery, [])
    assert.deepEqual(Object.keys(options.services ?? {}).sort(), ['bootstrap', 'dht', 'identify', 'ping', 'pubsub'])
    assert.equal(options.connectionManager?.maxConnections, 300)
  })

  it('rejects bad multiaddrs with a ConfigError naming them', async () => {
    const base = { privateKey: await generateKeyPair('Ed25519'), listen: [], dht: LAN, datastore: new MemoryDatastore() }
    assert.throws(() => libp2pOptions({ ...base, bootstrap: ['/ip4/127.0.0.1/tcp/4001'] }), { name: 'ConfigError', message: /no \/p2p/ })
    assert.throws(() => libp2pOptions({ ...base, listen: ['not-an-addr'] }), { name: 'ConfigError', message: /not-an-addr/ })
  })

  it('lan profile: the DHT keeps loopback addresses, so peers find each other through it', async () => {
    let nodes: Node[] = []
    try {
      nodes = await line(LAN)
      const [a, , c] = nodes
      assert.equal(c.getConnections(a.peerId).length, 0)
      const addrs = await dhtAddresses(c, a.peerId, 5000)
      assert.ok(addrs.some(ma => ma.startsWith('/ip4/127.0.0.1/tcp/')), `found ${JSON.stringify(addrs)}`)
      await c.dial(a.peerId, { signal: AbortSignal.timeout(5000) })
      assert.ok(c.getConnections(a.peerId).length > 0)
      // pubsub is wired: c sees b subscribed to a topic
      const b = nodes[1]
      b.services.pubsub.subscribe('cairn-test')
      await waitFor(() => c.services.pubsub.getSubscribers('cairn-test').some(p => p.equals(b.peerId)), { timeoutMs: 5000, message: 'subscription' })
    } finally {
      await stopAll(...nodes)
    }
  })

  it('public profile: the DHT drops private addresses', async () => {
    let nodes: Node[] = []
    try {
      nodes = await line(PUBLIC)
      const [a, , c] = nodes
      const addrs = await dhtAddresses(c, a.peerId, 1500)
      assert.deepEqual(addrs.filter(ma => ma.startsWith('/ip4/127.')), [])
    } finally {
      await stopAll(...nodes)
    }
  })

  it('dials the bootstrap list on start and redials it after a disconnect', async () => {
    let a: Node | undefined
    let c: Node | undefined
    try {
      a = await startHost('boot-a')
      const aAddr = `${a.getMultiaddrs()[0].toString()}`
      assert.match(aAddr, /\/p2p\//)
      const cKey = await generateKeyPair('Ed25519')
      const cStore = new MemoryDatastore()
      c = await startHost('boot-c', { privateKey: cKey, datastore: cStore, bootstrap: [aAddr], bootstrapInterval: 200 })
      const target = a.peerId
      const node = c
      assert.deepEqual(node.services.bootstrap.peers.map(String), [target.toString()])
      await waitFor(() => node.getConnections(target).length > 0, { timeoutMs: 5000, message: 'bootstrap connection' })
      await node.hangUp(target)
      assert.equal(node.getConnections(target).length, 0)
      await waitFor(() => node.getConnections(target).length > 0, { timeoutMs: 5000, message: 'redial' })
      const tagged = async (n: Node): Promise<boolean> => [...(await n.peerStore.get(target)).tags.keys()].some(t => t.startsWith('keep-alive'))
      assert.equal(await tagged(node), true)

      // dropped from the list (same peer store): no longer kept alive
      await node.stop()
      c = await startHost('boot-c', { privateKey: cKey, datastore: cStore, bootstrap: [] })
      assert.equal(await tagged(c), false)
      // a bootstrap list naming ourselves is harmless
      const selfKey = await generateKeyPair('Ed25519')
      const self = await startHost('boot-self', { privateKey: selfKey, bootstrap: [`/ip4/127.0.0.1/tcp/1/p2p/${peerIdFromPrivateKey(selfKey).toString()}`] })
      assert.deepEqual(self.services.bootstrap.peers, [])
      await self.stop()
    } finally {
      await stopAll(a, c)
    }
  })
})
