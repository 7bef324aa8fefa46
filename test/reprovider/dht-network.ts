// A loopback DHT of plain libp2p nodes (not cluster members), and an outside Helia node that knows one of them:
// what the reprovider tests and `npm run bench -- reprovide` announce to and find from. Server mode and
// passthroughMapper, as any DHT on 127.0.0.1 needs (DESIGN §8). startDhtProcess runs both in a child process.
import { fork } from 'node:child_process'
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
import { BaseDatastore, MemoryDatastore } from 'datastore-core'
import { createHeliaLight } from 'helia'
import { Key, type KeyQuery, type Pair, type Query } from 'interface-datastore'
import { createLibp2p } from 'libp2p'
import { NotFoundError } from '../../src/errors.js'
import type { Helia } from '@helia/interface'
import type { Identify } from '@libp2p/identify'
import type { Libp2p, Stream } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { sleep, waitFor } from '../util.js'

export type DhtNode = Libp2p<{ identify: Identify, dht: KadDHT }>

/**
 * A memory datastore whose prefix queries do not scan every key. The DHT nodes answer GET_PROVIDERS with a
 * prefix query (`/dht/provider/<multihash>`), and datastore-core's MemoryDatastore walks all its keys for each
 * one: a node holding the 100,000 records of `npm run bench -- reprovide` spends ~70 ms per request there (0.1 ms here),
 * and the benchmark would time that instead of the reprovider. Real DHT servers keep records in ordered stores
 * (leveldb, pebble); so does this one: a sorted run of keys plus the keys added since, merged into it once
 * there are enough of them.
 */
export class OrderedMemoryDatastore extends BaseDatastore {
  /** Keys added since the last merge that a query scans one by one before a merge is worth it. */
  private static readonly MERGE_AT = 4096
  private readonly data = new Map<string, Uint8Array>()
  /** Keys in order, as of the last merge; some may have been deleted since (`data` says). */
  private sorted: string[] = []
  /** Keys added since the last merge, in no order. */
  private added: string[] = []
  /** Keys deleted since the last merge: still in `sorted`, so not to be added twice if put again. */
  private deleted = new Set<string>()

  override put (key: Key, val: Uint8Array): Key {
    const k = key.toString()
    if (!this.data.has(k)) {
      if (this.deleted.has(k)) this.deleted.delete(k)
      else this.added.push(k)
    }
    this.data.set(k, val)
    return key
  }

  override get (key: Key): Uint8Array {
    const value = this.data.get(key.toString())
    if (value == null) throw new NotFoundError()
    return value
  }

  override has (key: Key): boolean {
    return this.data.has(key.toString())
  }

  override delete (key: Key): void {
    const k = key.toString()
    if (this.data.delete(k)) this.deleted.add(k)
  }

  override * _all (q: Query): Generator<Pair> {
    for (const k of this.keysFrom(q.prefix)) yield { key: new Key(k, false), value: this.data.get(k)! }
  }

  override * _allKeys (q: KeyQuery): Generator<Key> {
    for (const k of this.keysFrom(q.prefix)) yield new Key(k, false)
  }

  /** The live keys starting with `prefix` (all of them without one); BaseDatastore filters and orders after. */
  private * keysFrom (prefix: string | undefined): Generator<string> {
    if (prefix == null) { yield * [...this.data.keys()]; return }
    if (this.added.length > OrderedMemoryDatastore.MERGE_AT || this.deleted.size > OrderedMemoryDatastore.MERGE_AT) this.merge()
    let lo = 0
    let hi = this.sorted.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.sorted[mid] < prefix) lo = mid + 1
      else hi = mid
    }
    const out: string[] = []
    for (let i = lo; i < this.sorted.length && this.sorted[i].startsWith(prefix); i++) {
      if (this.data.has(this.sorted[i])) out.push(this.sorted[i])
    }
    // keys added since the merge are in no run yet (and never also in `sorted`)
    for (const k of this.added) if (k.startsWith(prefix) && this.data.has(k)) out.push(k)
    yield * out
  }

  private merge (): void {
    if (this.added.length === 0 && this.deleted.size === 0) return
    const added = this.added.sort()
    const out: string[] = []
    let i = 0
    let j = 0
    while (i < this.sorted.length || j < added.length) {
      const k = j >= added.length || (i < this.sorted.length && this.sorted[i] < added[j]) ? this.sorted[i++] : added[j++]
      if (this.data.has(k)) out.push(k)
    }
    this.sorted = out
    this.added = []
    this.deleted = new Set()
  }
}

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
  /** How many provider records node i holds from `provider` (a peer id). */
  providerRecords(i: number, provider: string): Promise<number>
  stop(): Promise<void>
}

async function dialRetry (from: Libp2p, to: Libp2p | string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await from.dial(typeof to === 'string' ? multiaddr(to) : to.getMultiaddrs()[0])
      return
    } catch (err) {
      if (attempt >= 5) throw err
      await sleep(100 * (attempt + 1)) // backoff between dial attempts
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
      if (attempt >= 3 || !/DHT routing tables fill/.test((err as Error).message)) throw err
    }
  }
}

async function createDhtNetworkOnce (n: number, init: DhtNetworkInit, fillTimeoutMs: number): Promise<DhtNetwork> {
  const stores = Array.from({ length: n }, () => new OrderedMemoryDatastore())
  const nodes: DhtNode[] = await Promise.all(stores.map(async datastore => await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    datastore,
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
  const tableSize = (node: DhtNode): number => (node.services.dht as unknown as { routingTable: { size: number } }).routingTable.size
  try {
    await waitFor(() => tableSize(nodes[0]) >= Math.min(n - 1, 20) && nodes.every(node => tableSize(node) >= Math.min(n - 1, 2)), {
      timeoutMs: fillTimeoutMs, intervalMs: 100, message: 'DHT routing tables fill', describe: () => nodes.map(tableSize).join(',')
    })
  } catch (err) {
    await Promise.allSettled(nodes.map(async node => { await node.stop() }))
    throw err
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
    async providerRecords (i, provider) {
      let count = 0
      // kad-dht keys a provider record /dht/provider/<multihash>/<provider peer id>
      for await (const key of stores[i].queryKeys({ prefix: '/dht/provider/' })) {
        if (key.toString().endsWith(`/${provider}`)) count++
      }
      return count
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
  /**
   * One lookup that stops as soon as `provider` is among the providers found, like a fetch that connects to the
   * first provider it is given: resolves with the time that happened (epoch ms, from performance.timeOrigin, so
   * comparable across processes), or undefined when the lookup ended (or `signal` fired) without it.
   */
  findProvider(cid: CID, provider: string, options?: { signal?: AbortSignal }): Promise<number | undefined>
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
    async findProvider (cid, provider, options = {}) {
      try {
        for await (const p of helia.libp2p.contentRouting.findProviders(cid, { signal: options.signal })) {
          // leaving the loop ends the lookup
          if (p.id.toString() === provider) return performance.timeOrigin + performance.now()
        }
      } catch (err) {
        if ((err as Error).name !== 'AbortError' && (err as Error).name !== 'TimeoutError') throw err
      }
      return undefined
    },
    async stop () { await helia.stop() }
  }
}

// ---------------------------------------------------------------------------------------------------------
// The same DHT and outside node in a child process (./dht-process.ts)

export type DhtProcessRequest =
  | { op: 'start', nodes: number, init: DhtNetworkInit, finderBootstrap: number }
  | { op: 'find', id: number, cid: string, provider: string, timeoutMs: number }
  | { op: 'cancel', id: number }
  | { op: 'cpu', id: number }
  | { op: 'stop' }

export type DhtProcessReply =
  | { op: 'ready', addrs: string[] }
  | { op: 'failed', message: string }
  | { op: 'found', id: number, at: number | null }
  | { op: 'cpu', id: number, usage: NodeJS.CpuUsage }

export interface DhtProcess {
  readonly pid: number
  /** Node i's multiaddr with /p2p/<id>. */
  addr(i: number): string
  /** Finder.findProvider, run by the outside node in the child; `timeoutMs` bounds the lookup. */
  findProvider(cid: CID, provider: string, options: { signal?: AbortSignal, timeoutMs: number }): Promise<number | undefined>
  /** The child's CPU time since it started. */
  cpuUsage(): Promise<NodeJS.CpuUsage>
  stop(): Promise<void>
}

const POLYFILL = new URL('../../src/polyfill.js', import.meta.url).href

/** `n` DHT nodes and an outside node that knows node `finderBootstrap` only, in a child process. */
export async function startDhtProcess (n: number, init: DhtNetworkInit, finderBootstrap: number): Promise<DhtProcess> {
  const child = fork(new URL('./dht-process.js', import.meta.url), [], { execArgv: ['--import', POLYFILL], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let nextId = 0
  const waiting = new Map<number, { resolve: (msg: DhtProcessReply) => void, reject: (err: Error) => void }>()
  let failure: Error | undefined
  let onReady!: { resolve: (addrs: string[]) => void, reject: (err: Error) => void }
  const ready = new Promise<string[]>((resolve, reject) => { onReady = { resolve, reject } })
  child.on('message', (msg: DhtProcessReply) => {
    if (msg.op === 'ready') onReady.resolve(msg.addrs)
    else if (msg.op === 'failed') { failure = new Error(`DHT process: ${msg.message}`); onReady.reject(failure) } else {
      waiting.get(msg.id)?.resolve(msg)
      waiting.delete(msg.id)
    }
  })
  const exited = new Promise<void>(resolve => {
    child.once('exit', code => {
      const err = failure ?? new Error(`DHT process exited with ${code}`)
      onReady.reject(err)
      for (const w of waiting.values()) w.reject(err)
      waiting.clear()
      resolve()
    })
  })
  const send = (msg: DhtProcessRequest): void => { if (child.connected) child.send(msg) }
  const request = async (msg: DhtProcessRequest & { id: number }): Promise<DhtProcessReply> => await new Promise((resolve, reject) => {
    waiting.set(msg.id, { resolve, reject })
    send(msg)
  })
  send({ op: 'start', nodes: n, init, finderBootstrap })
  let addrs: string[]
  try {
    addrs = await ready
  } catch (err) {
    child.kill()
    throw err
  }
  return {
    pid: child.pid!,
    addr: i => addrs[i],
    async findProvider (cid, provider, options) {
      const id = nextId++
      const onAbort = (): void => { send({ op: 'cancel', id }) }
      options.signal?.addEventListener('abort', onAbort, { once: true })
      try {
        const reply = await request({ op: 'find', id, cid: cid.toString(), provider, timeoutMs: options.timeoutMs })
        return reply.op === 'found' && reply.at != null ? reply.at : undefined
      } finally {
        options.signal?.removeEventListener('abort', onAbort)
      }
    },
    async cpuUsage () {
      const reply = await request({ op: 'cpu', id: nextId++ })
      if (reply.op !== 'cpu') throw new Error(`unexpected reply ${reply.op}`)
      return reply.usage
    },
    async stop () {
      send({ op: 'stop' })
      const timer = setTimeout(() => { child.kill() }, 10_000)
      await exited
      clearTimeout(timer)
    }
  }
}
