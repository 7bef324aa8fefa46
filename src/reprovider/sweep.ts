// Sweep batching (DESIGN §6, after Kubo's sweep provider): the records, sorted by DHT key, are cut into
// keyspace regions sized so that each holds about k DHT servers; each region's closest peers are looked up once,
// and every record of the region goes to its k closest of those peers over one reused stream per peer.
// Lookups run one region ahead of the sends; sends to the peers of a batch run in parallel (bounded). Each
// record's message is encoded once per batch, whatever the number of peers it goes to.
import { setMaxListeners } from 'node:events'
import { repeatingTask, type RepeatingTask } from '@libp2p/utils'
import { dhtKey, distance64, estimateNetworkSize, prefixOf, regionBits, type KeyEntry } from './keys.js'
import { PeerChannel, addProviderMessage, chunkRange, encodeChunks, providerInfo } from './wire.js'
import type { PeerInfo } from './dht.js'
import { lengthPrefixed } from '../utils/bytes.js'
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
  /** A send to a peer fails when the peer acknowledges nothing for this long. */
  sendTimeoutMs: number
  /** Deadline of one region lookup. */
  lookupTimeoutMs: number
  /** Attempts after the first, for a lookup and for a send to a peer. */
  retries: number
  /** First retry delay; doubled each time. */
  retryBackoffMs: number
  /** How long a region's peers (and the region size) are reused, e.g. by fast provides; and a peer that failed every attempt is skipped. */
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

/**
 * Which streams a sweep writes on. Fast provides have streams of their own: on a shared one a pin's root would
 * wait behind a cycle's batch to the same peer (seconds to minutes of records).
 */
export type Lane = 'cycle' | 'fast'

export interface SweepOptions {
  signal: AbortSignal
  /** Default 'cycle'. */
  lane?: Lane
  /** Entries a DHT peer acknowledged for the first time in this sweep (before the batch's other peers answer). */
  onAcked?: (entries: KeyEntry[]) => void
  /** A batch is done: every peer of it answered or was given up on. */
  onBatch?: (result: BatchResult) => void | Promise<void>
}

interface RegionPeer {
  id: PeerId
  key: Uint8Array
  addrs: Multiaddr[]
}

interface CachedRegion {
  peers: RegionPeer[]
  /** How many the lookup found. */
  found: number
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
  private provider?: { info: PeerInfo, at: number }
  /** Streams to DHT peers by lane, kept between sweeps until idle for STREAM_IDLE_MS. */
  private readonly lanes: Record<Lane, Map<string, PeerChannel>> = { cycle: new Map(), fast: new Map() }
  /**
   * Peers that failed every attempt, skipped until the given time. They leave the cached regions too, so later
   * sweeps (each pin's fast provide is one) neither wait for them again nor redo the lookups of every region.
   */
  private readonly down = new Map<string, number>()
  /** Aborted when the peer is given up on: sends to it still waiting their turn (other sweeps') stop too. */
  private readonly peerAborts = new Map<string, AbortController>()
  private reaper?: RepeatingTask

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
    const channels = this.lanes[options.lane ?? 'cycle']
    this.reaper ??= repeatingTask(() => { this.closeIdle() }, STREAM_IDLE_MS)
    this.reaper.start()
    let next: Promise<RegionPeer[]> | undefined = this.regionPeers(regions[0], bits, signal)
    // a failing prefetch is awaited (and so handled) in its turn
    next.catch(() => {})
    let previous: RegionPeer[] = []
    for (let r = 0; r < regions.length; r++) {
      const region = regions[r]
      const peers = await next as RegionPeer[]
      next = r + 1 < regions.length ? this.regionPeers(regions[r + 1], bits, signal) : undefined
      next?.catch(() => {})
      // keys near a region's edge may be closer to the previous region's peers
      let own = peers
      let candidates = bits === 0 ? own : unionPeers(own, previous)
      let relooked = false
      for (let i = region.start; i < region.end; i += this.init.batchSize) {
        signal.throwIfAborted()
        const batch = entries.slice(i, Math.min(i + this.init.batchSize, region.end))
        let result = await this.sendBatch(batch, candidates, channels, signal, options.onAcked)
        if (result.failed.length > 0 && !relooked) {
          // every peer some records went to was given up on (e.g. all the peers a cached lookup named are gone):
          // the region's peers are asked for again (a new lookup when too many of the cached ones were given up on),
          // once per region and sweep, and those records go to the live peers named
          relooked = true
          own = (await this.regionPeers(region, bits, signal)).filter(p => !this.isDown(p.id.toString()))
          candidates = bits === 0 ? own : unionPeers(own, previous.filter(p => !this.isDown(p.id.toString())))
          if (candidates.length > 0) {
            this.init.log('%d records had no live DHT peer: sending them to the region\'s %d live peers', result.failed.length, candidates.length)
            const again = await this.sendBatch(result.failed, candidates, channels, signal, options.onAcked)
            result = { entries: batch, announced: result.announced + again.announced, failed: again.failed }
          }
        }
        await options.onBatch?.(result)
      }
      previous = own
      // streams to peers the next region does not use are closed now
      if (bits > 0) {
        for (const [id, ch] of channels) {
          if (!own.some(p => p.id.toString() === id)) { ch.close(); channels.delete(id) }
        }
      }
    }
  }

  /** Closes every stream (the peer is stopping). */
  close (): void {
    this.reaper?.stop()
    this.reaper = undefined
    for (const channels of Object.values(this.lanes)) {
      for (const ch of channels.values()) ch.close()
      channels.clear()
    }
  }

  private closeIdle (): void {
    for (const channels of Object.values(this.lanes)) {
      for (const [id, ch] of channels) {
        if (ch.idleFor() > STREAM_IDLE_MS) { ch.close(); channels.delete(id) }
      }
    }
    for (const id of this.peerAborts.keys()) {
      if (!this.lanes.cycle.has(id) && !this.lanes.fast.has(id)) this.peerAborts.delete(id)
    }
  }

  private peerSignal (id: string): AbortSignal {
    let controller = this.peerAborts.get(id)
    if (controller == null) {
      controller = new AbortController()
      setMaxListeners(Infinity, controller.signal)
      this.peerAborts.set(id, controller)
    }
    return controller.signal
  }

  private isDown (id: string): boolean {
    const until = this.down.get(id)
    if (until == null) return false
    if (until > Date.now()) return true
    this.down.delete(id)
    return false
  }

  private markDown (id: string): void {
    this.down.set(id, Date.now() + this.init.regionCacheMs)
    this.peerAborts.get(id)?.abort(new Error(`DHT peer ${id} was given up on`))
    this.peerAborts.delete(id)
    for (const channels of Object.values(this.lanes)) {
      channels.get(id)?.close()
      channels.delete(id)
    }
    // a region left with fewer than half the peers its lookup found is looked up again (for their replacements)
    for (const [key, region] of this.regions) {
      region.peers = region.peers.filter(p => p.id.toString() !== id)
      if (region.peers.length * 2 < region.found) this.regions.delete(key)
    }
  }

  /** Sends a batch to each candidate peer that is among the k closest of some entry; counts what came back. */
  private async sendBatch (batch: KeyEntry[], candidates: RegionPeer[], channels: Map<string, PeerChannel>, signal: AbortSignal,
    onAcked?: (entries: KeyEntry[]) => void): Promise<BatchResult> {
    const assignment = assign(batch, candidates, this.k)
    const acked = new Uint8Array(batch.length)
    const provider = this.providerInfo()
    const frames = batch.map(e => lengthPrefixed(addProviderMessage(e.mh, provider)))
    // peers given the same records (all of them, when a region has at most k peers) share the encoded chunks
    const encoded = new Map<number[], Uint8Array[]>()
    const jobs = [...assignment].map(([peer, indices]) => async () => {
      const id = peer.id.toString()
      if (this.isDown(id) || peer.id.equals(this.init.libp2p.peerId)) return
      let ch = channels.get(id)
      if (ch == null) {
        ch = new PeerChannel({ libp2p: this.init.libp2p, protocol: this.init.protocol, peer: peer.id, addrs: peer.addrs })
        channels.set(id, ch)
      }
      let chunks = encoded.get(indices)
      if (chunks == null) {
        chunks = encodeChunks(frames, indices.length === batch.length ? undefined : indices)
        encoded.set(indices, chunks)
      }
      const peerSignal = AbortSignal.any([signal, this.peerSignal(id)])
      // chunks acknowledged so far: a retry sends only the rest
      let done = 0
      for (let attempt = 0; ; attempt++) {
        const base = done
        try {
          await ch.send(chunks.slice(base), {
            signal: peerSignal,
            timeoutMs: this.init.sendTimeoutMs,
            idleMs: STREAM_IDLE_MS,
            onAck: i => {
              const { start, end } = chunkRange(base + i, indices.length)
              const first: KeyEntry[] = []
              for (let j = start; j < end; j++) {
                if (acked[indices[j]] === 0) first.push(batch[indices[j]])
                acked[indices[j]] = 1
              }
              this.counters.records += end - start
              done = base + i + 1
              if (first.length > 0) onAcked?.(first)
            }
          })
          return
        } catch (err) {
          signal.throwIfAborted()
          // given up on meanwhile by another sweep, which counted its failures
          if (this.isDown(id)) return
          this.counters.failures++
          if (attempt >= this.init.retries) {
            this.init.log('giving up on DHT peer %p for %d s after %d attempts - %e', peer.id, Math.round(this.init.regionCacheMs / 1000), attempt + 1, err)
            this.markDown(id)
            return
          }
          this.counters.retries++
          this.init.log('sending %d records to %p failed (attempt %d), retrying - %e', indices.length, peer.id, attempt + 1, err)
          try {
            await sleep(this.init.retryBackoffMs * 2 ** attempt, peerSignal)
          } catch {
            signal.throwIfAborted()
          }
          if (this.isDown(id)) return
          if (channels.get(id) == null) channels.set(id, ch)
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

  /** This peer as ADD_PROVIDER's `providers` entry, rebuilt when its addresses may have changed. */
  private providerInfo (): PeerInfo {
    if (this.provider == null || Date.now() - this.provider.at > 60_000) {
      const { libp2p } = this.init
      const addrs = libp2p.getMultiaddrs().map(a => a.decapsulateCode(421))
      this.provider = { info: providerInfo(libp2p.peerId, addrs), at: Date.now() }
    }
    return this.provider.info
  }

  /** The region prefix length, estimated from one lookup (cached for regionCacheMs). */
  private async networkBits (probe: KeyEntry, signal: AbortSignal): Promise<number> {
    if (this.bits != null && Date.now() - this.bits.at < this.init.regionCacheMs) return this.bits.value
    const peers = await this.lookup(probe.mh, signal)
    const size = peers.length < this.k ? peers.length : estimateNetworkSize(probe.key, peers.map(p => p.key))
    const bits = regionBits(size, this.k)
    // an empty answer (the DHT unreachable) is not kept: the next sweep looks again
    if (peers.length === 0) return bits
    this.reviveIfAllDown(peers)
    this.bits = { value: bits, at: Date.now() }
    this.regions.set(`${bits}:${prefixOf(probe.key, bits)}`, { peers, found: peers.length, at: Date.now() })
    this.init.log('DHT network size ~%d servers: %d region prefix bits', Math.round(size), bits)
    return bits
  }

  private async regionPeers (region: Region, bits: number, signal: AbortSignal): Promise<RegionPeer[]> {
    const id = `${bits}:${region.prefix}`
    const cached = this.regions.get(id)
    if (cached != null && Date.now() - cached.at < this.init.regionCacheMs) return cached.peers
    const peers = await this.lookup(region.probe.mh, signal)
    if (peers.length > 0) this.regions.set(id, { peers, found: peers.length, at: Date.now() })
    this.reviveIfAllDown(peers)
    return peers
  }

  /**
   * A fresh lookup that names only peers given up on says this peer was cut off rather than they all died:
   * they are tried again instead of being skipped until their time runs out.
   */
  private reviveIfAllDown (peers: RegionPeer[]): void {
    if (peers.length > 0 && peers.every(p => this.isDown(p.id.toString()))) {
      for (const p of peers) this.down.delete(p.id.toString())
    }
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
      // kad-dht ends a lookup whose paths get no closer with fewer than k peers (on a small DHT, sometimes only the
      // 2-4 closest), and a lookup cut short by its deadline names none: the peers that answered it are live DHT
      // servers too, so the k closest of all of them are taken, as Kademlia's "k closest known"
      const peers = final.size >= this.k ? [...final.values()] : closest(dhtKey(mh), unionPeers([...responders.values()], [...final.values()]), this.k)
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
