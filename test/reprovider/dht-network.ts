// A loopback DHT of plain libp2p nodes (not cluster members), and an outside Helia node that knows one of them:
// what the reprovider tests and `npm run bench -- reprovide` announce to and find from. Server mode and
// passthroughMapper, as any DHT on 127.0.0.1 needs (DESIGN §8).
import { noise } from '@chainsafe/libp2p-noise'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { createHeliaLight } from 'helia'
import { createLibp2p } from 'libp2p'
import type { Helia } from '@helia/interface'
import type { Identify } from '@libp2p/identify'
import type { Libp2p, Stream } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export type DhtNode = Libp2p<{ identify: Identify, dht: KadDHT }>

export interface DhtNetworkInit {
  protocol: string
  /** Provider records older than this are dropped by the nodes (kad-dht `reprovide.validity`). Default 48 h. */
  validityMs?: number
  /** How often the nodes drop expired records (kad-dht `reprovide.interval`). Default 1 h. */
  cleanupMs?: number
}

export interface DhtNetwork {
  readonly nodes: DhtNode[]
  /** Node i's multiaddr with /p2p/<id>. */
  addr(i: number): string
  /** Node i keeps its connections but never answers on the DHT protocol again (and drops its live DHT streams). */
  hang(i: number): Promise<void>
  stop(): Promise<void>
}

async function dialRetry (from: Libp2p, to: Libp2p | string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await from.dial(typeof to === 'string' ? multiaddr(to) : to.getMultiaddrs()[0])
      return
    } catch (err) {
      if (attempt >= 5) throw err
      await new Promise(resolve => setTimeout(resolve, 100 * (attempt + 1)))
    }
  }
}

function dhtOptions (init: DhtNetworkInit, clientMode: boolean): Parameters<typeof kadDHT>[0] {
  return {
    protocol: init.protocol,
    clientMode,
    peerInfoMapper: passthroughMapper,
    reprovide: { validity: init.validityMs ?? 48 * 3600_000, interval: init.cleanupMs ?? 3600_000 }
  }
}

/**
 * Seen here under heavy load: sometimes no routing table fills at all (kad-dht pings each new contact before
 * adding it, and every ping failed). A fresh set of nodes then does fill: try up to three times.
 */
export async function createDhtNetwork (n: number, init: DhtNetworkInit): Promise<DhtNetwork> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createDhtNetworkOnce(n, init, attempt < 3 ? 12_000 : 30_000)
    } catch (err) {
      if (attempt >= 3 || !/did not fill/.test((err as Error).message)) throw err
    }
  }
}

async function createDhtNetworkOnce (n: number, init: DhtNetworkInit, fillTimeoutMs: number): Promise<DhtNetwork> {
  const nodes: DhtNode[] = await Promise.all(Array.from({ length: n }, async () => await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    services: { identify: identify(), ping: ping(), dht: kadDHT(dhtOptions(init, false)) }
  })))
  // a hub and a chain: every node is reachable, node 0 knows them all. A few dials at a time: libp2p resets
  // inbound connections beyond 10 pending handshakes
  try {
    for (let i = 1; i < n; i += 4) {
      await Promise.all(nodes.slice(i, i + 4).map(async (node, j) => {
        await dialRetry(node, nodes[0])
        if (i + j > 1) await dialRetry(node, nodes[i + j - 1])
      }))
    }
  } catch (err) {
    await Promise.allSettled(nodes.map(async node => { await node.stop() }))
    throw err
  }
  // lookups made before the routing tables fill find only a few peers
  const deadline = Date.now() + fillTimeoutMs
  const tableSize = (node: DhtNode): number => (node.services.dht as unknown as { routingTable: { size: number } }).routingTable.size
  while (tableSize(nodes[0]) < Math.min(n - 1, 20) || nodes.some(node => tableSize(node) < Math.min(n - 1, 2))) {
    if (Date.now() > deadline) {
      await Promise.allSettled(nodes.map(async node => { await node.stop() }))
      throw new Error(`DHT routing tables did not fill: ${nodes.map(tableSize).join(',')}`)
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  const addr = (i: number): string => nodes[i].getMultiaddrs()[0].toString()
  return {
    nodes,
    addr,
    async hang (i) {
      const node = nodes[i]
      await node.unhandle(init.protocol)
      const held: Stream[] = []
      await node.handle(init.protocol, stream => { held.push(stream) })
      for (const conn of node.getConnections()) {
        for (const s of conn.streams) if (s.protocol === init.protocol) s.abort(new Error('hanging'))
      }
    },
    async stop () {
      await Promise.allSettled(nodes.map(async node => { await node.stop() }))
    }
  }
}

export interface Finder {
  readonly helia: Helia & { libp2p: Libp2p<{ dht: KadDHT }> }
  /** Peer ids of the providers the DHT knows for a CID (one lookup, with a deadline). */
  providers(cid: CID, timeoutMs?: number): Promise<string[]>
  stop(): Promise<void>
}

/** An outside node (DHT client, bitswap) that knows only `bootstrap`. */
export async function createFinder (protocol: string, bootstrap: string): Promise<Finder> {
  const light = createHeliaLight({ blockstore: new MemoryBlockstore(), datastore: new MemoryDatastore() })
  const helia = withBitswap(withLibp2pLight(light, {
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    services: { identify: identify(), ping: ping(), dht: kadDHT(dhtOptions({ protocol }, true)) }
  }))
  await helia.start()
  try {
    await dialRetry(helia.libp2p, bootstrap)
  } catch (err) {
    await helia.stop()
    throw err
  }
  return {
    helia,
    async providers (cid, timeoutMs = 5000) {
      const found = new Set<string>()
      try {
        for await (const p of helia.libp2p.contentRouting.findProviders(cid, { signal: AbortSignal.timeout(timeoutMs) })) {
          found.add(p.id.toString())
        }
      } catch (err) {
        if ((err as Error).name !== 'AbortError' && (err as Error).name !== 'TimeoutError') throw err
      }
      return [...found]
    },
    async stop () { await helia.stop() }
  }
}
