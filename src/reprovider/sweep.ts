// Sweep batching (DESIGN §6, after Kubo's sweep provider): the records, sorted by DHT key, are cut into
// keyspace regions sized so that each holds about k DHT servers; each region's closest peers are looked up once,
// and every record of the region goes to its k closest of those peers over one reused stream per peer.
// Lookups run one region ahead of the sends; sends to the peers of a batch run in parallel (bounded).
import { setMaxListeners } from 'node:events'
import { dhtKey, distance64, estimateNetworkSize, prefixOf, regionBits, type KeyEntry } from './keys.js'
import { PeerChannel, providerField } from './wire.js'
import type { KadDHT } from '@libp2p/kad-dht'
import type { Libp2p, Logger, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export interface SweeperInit {
  libp2p: Libp2p<{ dht: KadDHT }>
  /** The DHT's protocol, e.g. /ipfs/kad/1.0.0. */
  protocol: string
  /** Peers written to at once. */
  concurrency: number
  /** Records per batch: the unit of progress (and of what a restart may redo). */
  batchSize: number
  /** Deadline of one batch to one peer (until its PING comes back). */
  sendTimeoutMs: number
  /** Deadline of one region lookup. */
  lookupTimeoutMs: number
  /** Attempts after the first, for a lookup and for a send to a peer. */
  retries: number
  /** First retry delay; doubled each time. */
  retryBackoffMs: number
  /** How long a region's peers (and the region size) are reused, e.g. by fast provides. */
  regionCacheMs: number
  /** Dials the DHT bootstrap peers when the routing table is empty. */
  bootstrap: () => Promise<void>
  log: Logger
}

/** Counters since start, shared with the status. */
export interface SweepCounters {
  /** Failed attempts: lookups that found no peer, sends that did not come back. */
  failures: number
  retries: number
  lookups: number
  /** ADD_PROVIDER records acknowledged by a DHT peer. */
  records: number
}

export interface BatchResult {
  /** The batch, in key order. */
  entries: KeyEntry[]
  /** How many of them at least one DHT peer acknowledged. */
  announced: number
  /** Those no DHT peer acknowledged. */
  failed: KeyEntry[]
}

export interface SweepOptions {
  signal: AbortSignal
  onBatch?: (result: BatchResult) => void | Promise<void>
}

interface RegionPeer {
  id: PeerId
  key: Uint8Array
  addrs: Multiaddr[]
}

interface CachedRegion {
  peers: RegionPeer[]
  at: number
}

/** Reopen a reused stream idle this long (kad closes idle inbound streams after 10 s). */
const STREAM_IDLE_MS = 5_000

export class Sweeper {
  readonly counters: SweepCounters = { failures: 0, retries: 0, lookups: 0, records: 0 }
  private readonly init: SweeperInit
  private readonly k: number
  private bits?: { value: number, at: number }
  private readonly regions = new Map<string, CachedRegion>()
  private provider?: { bytes: Uint8Array, at: number }
  /** Streams to DHT peers, kept between sweeps (fast provides reuse them) until idle for STREAM_IDLE_MS. */
  private readonly channels = new Map<string, PeerChannel>()
  private reaper?: ReturnType<typeof setInterval>

  constructor (init: SweeperInit) {
    this.init = init
    this.k = init.libp2p.services.dht.k ?? 20
  }

  /** Region prefix length in use (0: the whole keyspace is one region), when known. */
  regionBits (): number | undefined {
    return this.bits?.value
  }

  /** Announces every entry (sorted by key, unique). Never throws for DHT failures: they are counted. */
  async sweep (entries: KeyEntry[], options: SweepOptions): Promise<void> {
    const { signal } = options
    if (entries.length === 0) return
    const bits = await this.networkBits(entries[0], signal)
    const regions = cutRegions(entries, bits)
    const channels = this.channels
    this.reaper ??= setInterval(() => { this.closeIdle() }, STREAM_IDLE_MS)
    this.reaper.unref?.()
    const down = new Set<string>()
    let next: Promise<RegionPeer[]> | undefined = this.regionPeers(regions[0], bits, signal)
    // a failing prefetch is awaited (and so handled) in its turn
    next.catch(() => {})
    let previous: RegionPeer[] = []
    try {
      for (let r = 0; r < regions.length; r++) {
        const region = regions[r]
        const peers = await next as RegionPeer[]
        next = r + 1 < regions.length ? this.regionPeers(regions[r + 1], bits, signal) : undefined
        next?.catch(() => {})
        // keys near a region's edge may be closer to the previous region's peers
        const candidates = bits === 0 ? peers : unionPeers(peers, previous)
        previous = peers
        for (let i = region.start; i < region.end; i += this.init.batchSize) {
          signal.throwIfAborted()
          const batch = entries.slice(i, Math.min(i + this.init.batchSize, region.end))
          const result = await this.sendBatch(batch, candidates, channels, down, signal)
          await options.onBatch?.(result)
        }
        // streams to peers the next region does not use are closed now
        if (bits > 0) {
          for (const [id, ch] of channels) {
            if (!peers.some(p => p.id.toString() === id)) { ch.close(); channels.delete(id) }
          }
        }
      }
    } finally {
      for (const id of down) { channels.get(id)?.close(); channels.delete(id) }
      if (down.size > 0) {
        // peers found unreachable must not be reused from the cache
        this.init.log('%d DHT peers unreachable in this sweep', down.size)
        this.regions.clear()
      }
    }
  }

  /** Closes every stream (the peer is stopping). */
  close (): void {
    clearInterval(this.reaper)
    this.reaper = undefined
    for (const ch of this.channels.values()) ch.close()
    this.channels.clear()
  }

  private closeIdle (): void {
    for (const [id, ch] of this.channels) {
      if (ch.idleFor() > STREAM_IDLE_MS) { ch.close(); this.channels.delete(id) }
    }
  }

  /** Sends a batch to each candidate peer that is among the k closest of some entry; counts what came back. */
  private async sendBatch (batch: KeyEntry[], candidates: RegionPeer[], channels: Map<string, PeerChannel>, down: Set<string>, signal: AbortSignal): Promise<BatchResult> {
    const assignment = assign(batch, candidates, this.k)
    const acked = new Uint8Array(batch.length)
    const provider = this.providerField()
    const jobs = [...assignment].map(([peer, indices]) => async () => {
      const id = peer.id.toString()
      if (down.has(id) || peer.id.equals(this.init.libp2p.peerId)) return
      let ch = channels.get(id)
      if (ch == null) {
        ch = new PeerChannel({ libp2p: this.init.libp2p, protocol: this.init.protocol, peer: peer.id, addrs: peer.addrs })
        channels.set(id, ch)
      }
      const mhs = indices.map(i => batch[i].mh)
      for (let attempt = 0; ; attempt++) {
        const deadline = AbortSignal.any([signal, AbortSignal.timeout(this.init.sendTimeoutMs)])
        try {
          await ch.send(mhs, provider, deadline, STREAM_IDLE_MS)
          for (const i of indices) acked[i] = 1
          this.counters.records += indices.length
          return
        } catch (err) {
          signal.throwIfAborted()
          this.counters.failures++
          if (attempt >= this.init.retries) {
            this.init.log('giving up on DHT peer %p for this sweep after %d attempts - %e', peer.id, attempt + 1, err)
            down.add(id)
            return
          }
          this.counters.retries++
          this.init.log('sending %d records to %p failed (attempt %d), retrying - %e', mhs.length, peer.id, attempt + 1, err)
          await sleep(this.init.retryBackoffMs * 2 ** attempt, signal)
        }
      }
    })
    await runBounded(jobs, this.init.concurrency)
    signal.throwIfAborted()
    const failed: KeyEntry[] = []
    let announced = 0
    for (let i = 0; i < batch.length; i++) {
      if (acked[i] === 1) announced++
      else failed.push(batch[i])
    }
    return { entries: batch, announced, failed }
  }

  /** This peer's ADD_PROVIDER `providers` field, rebuilt when its addresses may have changed. */
  private providerField (): Uint8Array {
    if (this.provider == null || Date.now() - this.provider.at > 60_000) {
      const { libp2p } = this.init
      const addrs = libp2p.getMultiaddrs().map(a => a.decapsulateCode(421))
      this.provider = { bytes: providerField(libp2p.peerId, addrs), at: Date.now() }
    }
    return this.provider.bytes
  }

  /** The region prefix length, estimated from one lookup (cached for regionCacheMs). */
  private async networkBits (probe: KeyEntry, signal: AbortSignal): Promise<number> {
    if (this.bits != null && Date.now() - this.bits.at < this.init.regionCacheMs) return this.bits.value
    const peers = await this.lookup(probe.mh, signal)
    const size = peers.length < this.k ? peers.length : estimateNetworkSize(probe.key, peers.map(p => p.key))
    const bits = regionBits(size, this.k)
    this.bits = { value: bits, at: Date.now() }
    this.regions.set(`${bits}:${prefixOf(probe.key, bits)}`, { peers, at: Date.now() })
    this.init.log('DHT network size ~%d servers: %d region prefix bits', Math.round(size), bits)
    return bits
  }

  private async regionPeers (region: Region, bits: number, signal: AbortSignal): Promise<RegionPeer[]> {
    const id = `${bits}:${region.prefix}`
    const cached = this.regions.get(id)
    if (cached != null && Date.now() - cached.at < this.init.regionCacheMs) return cached.peers
    const peers = await this.lookup(region.probe.mh, signal)
    this.regions.set(id, { peers, at: Date.now() })
    return peers
  }

  /** The closest peers of a key, with retries; [] when the DHT could not be reached (counted as failures). */
  private async lookup (mh: Uint8Array, signal: AbortSignal): Promise<RegionPeer[]> {
    const dht = this.init.libp2p.services.dht
    for (let attempt = 0; ; attempt++) {
      signal.throwIfAborted()
      const routingTableSize = (dht as unknown as { routingTable?: { size: number } }).routingTable?.size
      if (routingTableSize === 0) await this.init.bootstrap().catch(() => {})
      this.counters.lookups++
      const final = new Map<string, RegionPeer>()
      const responders = new Map<string, RegionPeer>()
      const deadline = AbortSignal.any([signal, AbortSignal.timeout(this.init.lookupTimeoutMs)])
      setMaxListeners(Infinity, deadline)
      try {
        for await (const ev of dht.getClosestPeers(mh, { signal: deadline })) {
          if (ev.name === 'FINAL_PEER') {
            final.set(ev.peer.id.toString(), { id: ev.peer.id, key: dhtKey(ev.peer.id.toMultihash().bytes), addrs: ev.peer.multiaddrs })
          } else if (ev.name === 'PEER_RESPONSE') {
            responders.set(ev.from.toString(), { id: ev.from, key: dhtKey(ev.from.toMultihash().bytes), addrs: [] })
          }
        }
      } catch (err) {
        signal.throwIfAborted()
        this.init.log('lookup ended early - %e', err)
      }
      // a lookup cut short by its deadline still found the peers that answered
      const peers = final.size > 0 ? [...final.values()] : closest(dhtKey(mh), [...responders.values()], this.k)
      if (peers.length > 0) return peers
      this.counters.failures++
      if (attempt >= this.init.retries) {
        this.init.log.error('no DHT peer found for a region after %d attempts', attempt + 1)
        return []
      }
      this.counters.retries++
      await sleep(this.init.retryBackoffMs * 2 ** attempt, signal)
    }
  }
}

interface Region {
  prefix: number
  start: number
  end: number
  /** The middle entry: its closest peers stand for the region's. */
  probe: KeyEntry
}

function cutRegions (entries: KeyEntry[], bits: number): Region[] {
  const regions: Region[] = []
  let start = 0
  while (start < entries.length) {
    const prefix = prefixOf(entries[start].key, bits)
    let end = start + 1
    while (end < entries.length && prefixOf(entries[end].key, bits) === prefix) end++
    regions.push({ prefix, start, end, probe: entries[(start + end) >> 1] })
    start = end
  }
  return regions
}

function unionPeers (a: RegionPeer[], b: RegionPeer[]): RegionPeer[] {
  const out = new Map<string, RegionPeer>()
  for (const p of [...a, ...b]) out.set(p.id.toString(), p)
  return [...out.values()]
}

function closest (key: Uint8Array, peers: RegionPeer[], k: number): RegionPeer[] {
  return peers
    .map(p => ({ p, d: distance64(key, p.key) }))
    .sort((x, y) => x.d - y.d)
    .slice(0, k)
    .map(x => x.p)
}

/** For each peer, the indices of the batch entries it is among the k closest of. */
function assign (batch: KeyEntry[], candidates: RegionPeer[], k: number): Map<RegionPeer, number[]> {
  const out = new Map<RegionPeer, number[]>()
  if (candidates.length <= k) {
    const all = batch.map((_, i) => i)
    for (const p of candidates) out.set(p, all)
    return out
  }
  for (const p of candidates) out.set(p, [])
  const d = new Float64Array(candidates.length)
  const order = candidates.map((_, i) => i)
  for (let i = 0; i < batch.length; i++) {
    const key = batch[i].key
    for (let c = 0; c < candidates.length; c++) d[c] = distance64(key, candidates[c].key)
    order.sort((x, y) => d[x] - d[y])
    for (let j = 0; j < k; j++) out.get(candidates[order[j]])!.push(i)
  }
  for (const [p, list] of out) if (list.length === 0) out.delete(p)
  return out
}

async function runBounded (jobs: Array<() => Promise<void>>, concurrency: number): Promise<void> {
  let next = 0
  const errors: unknown[] = []
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const job = jobs[next++]
      try { await job() } catch (err) { errors.push(err) }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker))
  if (errors.length > 0) throw errors[0]
}

export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => { clearTimeout(timer); reject(signal?.reason) }
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
