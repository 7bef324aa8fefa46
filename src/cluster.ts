// The orchestrator: pin/unpin/add flows over the pinset, global status across peers over RPC.
// request -> validate -> allocate -> pinset (durable, gossiped) -> every peer's tracker -> ipfs.
import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { CID } from 'multiformats/cid'
import { allocate, allocateBalanced, allocateWithProbation, DEFAULT_ALLOCATE_BY } from './allocator/index.js'
import {
  FollowerModeError, InvalidParameterError, NotInPinsetError, ShuttingDownError, UnknownPeerError
} from './errors.js'
import { createRpc, rpcProtocol, type Rpc } from './rpc/index.js'
import { checkShardSize, readClusterDag, shardDag, type ShardedDag } from './sharding.js'
import { checkReadable, cidKey, parseUserCid, pinsetKey } from './utils/cid.js'
import { mapLimit } from './utils/concurrency.js'
import { turnBudget } from './utils/turns.js'
import type { LostPeer, Monitor } from './monitor/index.js'
import type { AuditorAPI } from './audit/index.js'
import type { ClusterSecret } from './secret.js'
import { VERSION } from './version.js'
import { lostPeerError, ZERO_TIME } from './components.js'
import type {
  AbortOptions, AddedOutput, AddEntry, AlertInfo, ConnectGraph, MetricInfo, AddParams, ClusterAPI, GlobalPinInfo, GlobalRepoGC, IDInfo, Pin, PinInfo, PinInfoShort,
  PinOptions, Pinset, PinTracker, PinType, RepoGC, Startable, TrackerStatus
} from './components.js'
import type { GcOptions } from './ipfs/index.js'
import type { Helia } from '@helia/interface'
import type { Identify } from '@libp2p/identify'
import type { ComponentLogger, Libp2p, Logger, PeerId } from '@libp2p/interface'

export const RPC_PROTOCOL_VERSION = '/cairn/rpc/1.0.0'
/** How long a peer's repo GC may take when another peer asked for it (a GC waits up to 60 s, then scans the store). */
const GC_DEADLINE_MS = 30 * 60_000
/** How long an add without a pin keeps repo GC off after it ends (its pin comes in the next request). */
const NO_PIN_HOLD_MS = 30_000
/** Status calls at once while a repo GC checks the content held here for other peers. */
const GC_STATUS_CONCURRENCY = 8

export interface ClusterInit {
  cluster: string
  peername: string
  replication_factor_min: number
  replication_factor_max: number
  isTrusted: (peerId: string) => boolean
  /** false on followers: the API refuses writes. Asked on every write, so trust changes apply at once. */
  isWriter: () => boolean
  /** How long to wait for a peer's answer (default 15 s, as IPFS Cluster). */
  rpcTimeoutMs?: number
  /** Re-allocate the pins of a peer whose ping expired (default true; IPFS Cluster's default is off). */
  repinOnPeerLoss?: boolean
  /** How often expired pins (expire_at passed) are looked for (default 10 s). */
  expiryIntervalMs?: number
  /** How long an add without a pin keeps repo GC off after it ends (default 30 s; its pin comes next). */
  noPinHoldMs?: number
  /** A connected stranger is identified again after this, then with doubling gaps, 5 times (default 5 s). */
  strangerRetryMs?: number
  /** A repo GC this often when the pinset changed since the last one (default 0: none). */
  gcIntervalMs?: number
  secret?: ClusterSecret
  /**
   * Whether a peer may take part at all (default: anyone). A closed cluster's allow-list: others are neither in
   * the peerset nor answered over RPC. Asked at every use, so a config change applies at once.
   */
  isMember?: (peerId: string) => boolean
}

export interface Importer {
  addEntries(entries: AsyncIterable<AddEntry>, params: AddParams, options?: AbortOptions): AsyncIterable<AddedOutput>
  addCar(bytes: AsyncIterable<Uint8Array>, options?: AbortOptions): AsyncIterable<AddedOutput>
  /** Holds off repo GC (an add's blocks are not pinned until its pin is in the pinset); returns the release. */
  holdBlocks(signal?: AbortSignal): Promise<() => void>
  /** Repo GC (src/ipfs): deletes the blocks no local pin holds and none of `keep` reaches; the CIDs deleted. */
  gc(options?: GcOptions): Promise<CID[]>
  hasBlock(cid: CID, options?: AbortOptions): Promise<boolean>
  /** Whether the pin with this pinset key is held here. */
  holdsPin(key: string): boolean
  /** The local store, for sharded adds. */
  readonly helia: Pick<Helia, 'blockstore' | 'getCodec' | 'getHasher'>
  /** Deletes those of the blocks that no local pin protects; resolves with how many were deleted. */
  dropUnpinned(cids: CID[], options?: AbortOptions): Promise<number>
}

export interface ClusterComponents {
  /** Peers with a live ping and their names; optional so the cluster also runs without it (tests). */
  monitor?: Pick<Monitor, 'peerset' | 'peerInfo' | 'names' | 'latest' | 'alerts' | 'onAlert' | 'lost' | 'forgetLost'>
  pinset: Pinset
  tracker: PinTracker
  importer: Importer
  libp2p: Libp2p
  logger: ComponentLogger
  /**
   * Whose copies count toward replication_factor_min (src/audit/); without it every peer's do. Peers on
   * probation get extra copies only, failed ones none, and a peer that fails an audit has its pins moved.
   */
  trust?: Pick<AuditorAPI, 'trustOf' | 'trialLoad' | 'trialLimit' | 'onFailed' | 'alerts' | 'peerTrust'>
}

export interface Cluster extends ClusterAPI, Startable {
  /** Peers taking part in the cluster now (this one included), by id. */
  peerset(): Promise<string[]>
}

export function createCluster (init: ClusterInit, components: ClusterComponents): Cluster {
  return new CairnCluster(init, components)
}

function toShort (info: PinInfo): PinInfoShort {
  return {
    peername: info.peername,
    ipfs_peer_id: info.ipfs_peer_id,
    status: info.status,
    timestamp: info.timestamp,
    error: info.error,
    attempt_count: info.attempt_count,
    priority_pin: info.priority_pin
  }
}

/** A connected peer that is not a cluster peer is identified again this long after, then with doubling gaps. */
const STRANGER_FIRST_RETRY_MS = 5000
const STRANGER_RETRIES = 5

class CairnCluster implements Cluster {
  private readonly log: Logger
  private readonly rpc: Rpc
  private readonly self: string
  private readonly names = new Map<string, string>()

  constructor (private readonly init: ClusterInit, private readonly components: ClusterComponents) {
    this.log = components.logger.forComponent('cairn:cluster')
    this.self = components.libp2p.peerId.toString()
    this.names.set(this.self, init.peername)
    const { tracker } = components
    this.rpc = createRpc({
      cluster: init.cluster,
      isTrusted: init.isTrusted,
      // a closed cluster answers its members only; a whole status goes to members with a live ping here (a
      // stranger who only connects has none)
      admits: init.isMember,
      isMember: peer => this.components.monitor?.peerset().includes(peer) === true,
      timeoutMs: init.rpcTimeoutMs,
      secret: init.secret,
      methods: {
        id: { handler: async () => await this.localId() },
        connections: { handler: async () => this.components.libp2p.getPeers().map(String) },
        // `peers rm` of a lost peer, asked by the trusted peer that vacated it
        forgetLost: { trustedOnly: true, handler: async (p: { peer: string }) => this.components.monitor?.forgetLost(String(p?.peer)) ?? false },
        status: { handler: async (p: { cid: string }, { signal }) => await tracker.status(String(p?.cid), { signal }) },
        // this peer's whole status (300k pins: ~100 MB of frames): cluster members only
        statusAll: { membersOnly: true, handler: (_p, { signal }) => tracker.statusAll({ signal }) },
        recover: { trustedOnly: true, handler: async (p: { cid: string }, { signal }) => await tracker.recover(String(p?.cid), { signal }) },
        recoverAll: { trustedOnly: true, handler: (_p, { signal }) => tracker.recoverAll({ signal }) },
        repoGC: {
          trustedOnly: true,
          deadlineMs: GC_DEADLINE_MS,
          handler: async (_p, { signal }) => {
            // as IPFS Cluster's followers close RepoGCLocal: the cluster's maintainers cannot GC a volunteer
            if (!this.init.isWriter()) throw new FollowerModeError('this peer is a follower: its repo GC runs only from its own API')
            return await this.repoGCLocal({ signal })
          }
        }
      }
    }, components)
  }

  async start (): Promise<void> {
    const { libp2p } = this.components
    this.running = true
    this.shutdown = new AbortController()
    await this.rpc.start()
    libp2p.addEventListener('peer:identify', this.onIdentify)
    libp2p.addEventListener('peer:update', this.onUpdate)
    libp2p.addEventListener('peer:disconnect', this.onDisconnect)
    // Peers identified before the listeners existed.
    for (const peer of libp2p.getPeers()) {
      const known = await libp2p.peerStore.get(peer).catch(() => undefined)
      if (known?.protocols.includes(this.protocol) === true) this.members.add(peer.toString())
    }
    this.memberTimer = setInterval(() => { this.checkStrangers() }, this.init.strangerRetryMs ?? STRANGER_FIRST_RETRY_MS)
    this.memberTimer.unref()
    // Pins with an expiry, kept from pinset changes so a check never scans the whole pinset.
    const { pinset } = this.components
    this.stopExpiryIndex = pinset.onChange(change => {
      for (const pin of change.added) this.indexExpiry(pin)
      for (const cid of change.removed) this.expiring.delete(pinsetKey(cid))
      // a pin removed, or moved away from this peer, leaves garbage for the next scheduled GC
      this.gcDue = true
    })
    for (const pin of pinset.list()) this.indexExpiry(pin)
    this.expiryTimer = setInterval(() => {
      void this.removeExpired().catch(err => { this.log.error('removing expired pins failed: %e', err) })
    }, this.init.expiryIntervalMs ?? 10_000)
    this.expiryTimer.unref()
    const gcInterval = this.init.gcIntervalMs ?? 0
    if (gcInterval > 0) {
      this.gcTimer = setInterval(() => { void this.scheduledGC() }, gcInterval)
      this.gcTimer.unref()
    }
    if (this.init.repinOnPeerLoss !== false) {
      this.stopAlerts = this.components.monitor?.onAlert(alert => {
        if (alert.name === 'ping') void this.repinFrom(alert.peer).catch(err => { this.log.error('repinning the pins of lost peer %s failed: %e', alert.peer, err) })
      })
    }
    // the auditor that found a peer failing moves its pins: other trusted peers may not have audited it yet
    this.stopAuditFailures = this.components.trust?.onFailed(peer => {
      if (!this.writable || !this.running) return
      void this.reallocateAway(peer, () => true).catch(err => { this.log.error('moving the pins of peer %s, which failed an audit, failed: %e', peer, err) })
    })
  }

  private stopAlerts?: () => void
  private stopAuditFailures?: () => void
  private stopExpiryIndex?: () => void
  private gcTimer?: NodeJS.Timeout
  /** The pinset changed since the last scheduled GC (true at start: what an earlier run left). */
  private gcDue = true
  private gcRunning = false
  private expiryTimer?: NodeJS.Timeout
  /** cidKey -> expiry (ms since epoch) of every pin that has one. */
  private readonly expiring = new Map<string, number>()

  private indexExpiry (pin: Pin): void {
    const key = pinsetKey(pin.cid)
    const t = pin.expire_at === ZERO_TIME ? NaN : Date.parse(pin.expire_at)
    if (Number.isNaN(t)) this.expiring.delete(key)
    else this.expiring.set(key, t)
  }

  /**
   * Pins whose expire_at has passed are removed by the live trusted peer XOR-closest to the CID, so one peer
   * writes each removal (and another takes over when that one is down).
   */
  private async removeExpired (): Promise<void> {
    if (!this.writable || this.expiring.size === 0) return
    const now = Date.now()
    const due = [...this.expiring].filter(([, t]) => t <= now).map(([cid]) => cid)
    if (due.length === 0) return
    const trusted = (this.components.monitor?.peerset() ?? []).filter(p => this.init.isTrusted(p))
    if (!trusted.includes(this.self)) trusted.push(this.self)
    const mine = due.filter(cid => closestPeer(cid, trusted) === this.self && this.components.pinset.has(cid))
    if (mine.length === 0) return
    await this.components.pinset.remove(mine, { signal: this.shutdown.signal })
    this.log('removed %d expired pins', mine.length)
  }

  /**
   * A peer's ping expired: every pin allocated to it is re-allocated without it, by the one live trusted peer
   * XOR-closest to the CID (so exactly one peer writes each change, as IPFS Cluster does).
   */
  private async repinFrom (lost: string): Promise<void> {
    if (!this.writable) return
    const live = this.components.monitor?.peerset() ?? []
    if (live.includes(lost)) return // it came back
    const trusted = live.filter(p => this.init.isTrusted(p) && p !== lost)
    if (!trusted.includes(this.self)) trusted.push(this.self)
    await this.reallocateAway(lost, pin => closestPeer(pin.cid, trusted) === this.self, { signal: this.shutdown.signal })
  }

  /** Re-allocates the pins (those `mine` selects) allocated to `gone` without it; returns how many moved. */
  private async reallocateAway (gone: string, mine: (pin: Pin) => boolean, options: AbortOptions = {}): Promise<number> {
    const changed: Pin[] = []
    // allocate among the peers that remain: the departing one is left out even while it is still alive
    const exclude = new Set([gone])
    for (const pin of [...this.components.pinset.list()]) {
      if (!pin.allocations.includes(gone) || !mine(pin)) continue
      options.signal?.throwIfAborted()
      try {
        const next = await this.buildPin(pin.cid, {
          name: pin.name, mode: pin.mode, replication_factor_min: pin.replication_factor_min,
          replication_factor_max: pin.replication_factor_max, shard_size: pin.shard_size,
          expire_at: pin.expire_at, metadata: pin.metadata ?? undefined, origins: pin.origins,
          pin_update: pin.pin_update ?? undefined
        }, pin.type, { ...pin, allocations: pin.allocations.filter(p => p !== gone) }, exclude)
        changed.push({ ...next, reference: pin.reference, user_allocations: pin.user_allocations?.filter(p => p !== gone) ?? null })
      } catch (err) {
        this.log.error('cannot re-allocate %s away from peer %s: %e', pin.cid, gone, err)
      }
    }
    if (changed.length === 0) return 0
    await this.components.pinset.put(changed, options)
    this.log('re-allocated %d pins away from peer %s', changed.length, gone)
    return changed.length
  }

  async vacate (peerId: string, options: AbortOptions = {}): Promise<number> {
    this.requireWritable()
    const peers = await this.peerset()
    const lost = this.lostOutside(peers).some(l => l.peer === peerId)
    const known = lost || peers.includes(peerId) || [...this.components.pinset.list()].some(p => p.allocations.includes(peerId))
    if (!known) throw new UnknownPeerError(`unknown peer: ${peerId} is not a cluster peer and holds no allocation`)
    const moved = await this.reallocateAway(peerId, () => true, options)
    if (lost) {
      // removed: no longer shown as lost, here nor on the other peers (those that do not answer keep showing it)
      this.components.monitor?.forgetLost(peerId)
      await Promise.all(peers.filter(p => p !== this.self && p !== peerId).map(async peer => {
        await this.rpc.callOne(peer, 'forgetLost', { peer: peerId }, options).catch(err => { this.log('%s did not forget lost peer %s: %e', peer, peerId, err) })
      }))
    }
    return moved
  }

  async graph (options: AbortOptions = {}): Promise<ConnectGraph> {
    const peers = await this.peerset()
    const graph: ConnectGraph = {
      cluster_id: this.self, id_to_peername: {}, ipfs_links: {}, cluster_links: {}, cluster_trust_links: {}, cluster_to_ipfs: {}
    }
    const members = new Set(peers)
    await Promise.all(peers.map(async peer => {
      graph.cluster_trust_links[peer] = this.init.isTrusted(peer)
      // one host: a peer's IPFS identity is its cluster identity
      graph.cluster_to_ipfs[peer] = peer
      graph.id_to_peername[peer] = this.names.get(peer) ?? ''
      try {
        const connected = peer === this.self
          ? this.components.libp2p.getPeers().map(String)
          : await this.rpc.callOne<string[]>(peer, 'connections', {}, options)
        graph.ipfs_links[peer] = connected.filter(p => p !== peer).sort()
        graph.cluster_links[peer] = connected.filter(p => p !== peer && members.has(p)).sort()
      } catch (err) {
        this.log('graph: %s did not answer: %e', peer, err)
        graph.ipfs_links[peer] = []
        graph.cluster_links[peer] = []
      }
    }))
    return graph
  }

  private running = false
  /** Aborted at stop: the background work (expiry, repin, dropping foreign shards) gives up. */
  private shutdown = new AbortController()

  async stop (): Promise<void> {
    this.running = false
    this.shutdown.abort(new ShuttingDownError())
    const { libp2p } = this.components
    clearInterval(this.memberTimer)
    clearInterval(this.expiryTimer)
    clearInterval(this.gcTimer)
    this.stopExpiryIndex?.()
    this.stopAlerts?.()
    this.stopAuditFailures?.()
    libp2p.removeEventListener('peer:identify', this.onIdentify)
    libp2p.removeEventListener('peer:update', this.onUpdate)
    libp2p.removeEventListener('peer:disconnect', this.onDisconnect)
    await this.rpc.stop()
  }

  // ----- peers

  private get protocol (): string { return rpcProtocol(this.init.cluster) }
  /** Connected peers known to speak this cluster's protocols (kept from libp2p events, no store reads). */
  private readonly members = new Set<string>()
  private memberTimer?: NodeJS.Timeout
  /** Connected peers that did not identify as cluster peers: when each is asked again, and how often it was. */
  private readonly strangers = new Map<string, { attempts: number, next: number }>()

  private readonly onIdentify = (evt: CustomEvent<{ peerId: PeerId, protocols: string[] }>): void => {
    if (evt.detail.protocols.includes(this.protocol)) this.members.add(evt.detail.peerId.toString())
  }

  private readonly onUpdate = (evt: CustomEvent<{ peer: { id: PeerId, protocols: string[] } }>): void => {
    const { id, protocols } = evt.detail.peer
    if (protocols.includes(this.protocol)) this.members.add(id.toString())
    else this.members.delete(id.toString())
  }

  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => {
    this.members.delete(evt.detail.toString())
    this.strangers.delete(evt.detail.toString())
  }

  /**
   * A peer identified before it registered the cluster protocols (libp2p starts first), or whose identify
   * timed out or whose push got lost, looks like a stranger: ask it again at the next check, then 5, 10, 20 and
   * 40 s later, then no more while the connection lasts (a later change of its protocols comes as an identify push).
   * On the public DHT most connected peers are strangers: asking each every 5 s for ever was tens of identifies
   * a second.
   */
  private checkStrangers (): void {
    const identify = (this.components.libp2p.services as { identify?: Identify }).identify
    if (identify == null) return
    const now = Date.now()
    for (const conn of this.components.libp2p.getConnections()) {
      const id = conn.remotePeer.toString()
      if (this.members.has(id) || conn.status !== 'open') continue
      let known = this.strangers.get(id)
      if (known == null) {
        known = { attempts: 0, next: now }
        this.strangers.set(id, known)
      }
      if (known.attempts >= STRANGER_RETRIES || now < known.next) continue
      known.next = now + (this.init.strangerRetryMs ?? STRANGER_FIRST_RETRY_MS) * 2 ** known.attempts
      known.attempts++
      identify.identify(conn, { signal: AbortSignal.timeout(10_000) })
        .catch(err => { this.log('identify of %s failed: %e', id, err) })
    }
  }

  /** Peers with a live ping (monitor), plus connected peers that speak the cluster protocols (before their first ping arrives). */
  async peerset (): Promise<string[]> {
    const connected = new Set(this.components.libp2p.getPeers().map(String))
    const out = new Set([this.self])
    for (const p of this.components.monitor?.peerset() ?? []) out.add(p)
    for (const p of this.members) if (connected.has(p) && this.init.isMember?.(p) !== false) out.add(p)
    for (const p of out) {
      const name = this.components.monitor?.peerInfo(p)?.peer_name
      if (name != null && name !== '') this.names.set(p, name)
    }
    return [...out]
  }

  private async localId (): Promise<IDInfo> {
    const { libp2p } = this.components
    const peers = await this.peerset()
    const addresses = libp2p.getMultiaddrs().map(String)
    const others = peers.filter(p => p !== this.self)
    const otherAddrs: string[] = []
    for (const p of others) {
      for (const conn of libp2p.getConnections()) if (conn.remotePeer.toString() === p) otherAddrs.push(`${conn.remoteAddr.toString()}`)
    }
    return {
      id: this.self,
      addresses,
      cluster_peers: peers,
      cluster_peers_addresses: otherAddrs,
      version: VERSION,
      commit: '',
      rpc_protocol_version: RPC_PROTOCOL_VERSION,
      error: '',
      ipfs: { id: this.self, addresses, error: '' },
      peername: this.init.peername,
      trusted: this.init.isTrusted(this.self)
    }
  }

  async id (): Promise<IDInfo> { return await this.localId() }

  async * peers (options?: AbortOptions): AsyncIterable<IDInfo> {
    const peers = await this.peerset()
    const results = await Promise.all(peers.map(async (peer): Promise<IDInfo> => {
      if (peer === this.self) return await this.localId()
      try {
        const id = await this.rpc.callOne<IDInfo>(peer, 'id', {}, options)
        this.names.set(peer, id.peername)
        return id
      } catch (err) {
        return {
          id: peer, addresses: [], cluster_peers: [], cluster_peers_addresses: [], version: '', commit: '',
          rpc_protocol_version: '', error: (err as Error).message, ipfs: { id: '', addresses: [], error: '' }, peername: this.names.get(peer) ?? ''
        }
      }
    }))
    yield * results.map(id => this.withTrust(id))
    // lost peers, with what they were last seen as and how many pins are allocated to them
    const lost = this.lostOutside(peers)
    if (lost.length === 0) return
    const held = new Map(lost.map(l => [l.peer, 0]))
    for (const pin of this.components.pinset.list()) {
      for (const l of lost) if (this.holds(pin, l.peer)) held.set(l.peer, (held.get(l.peer) ?? 0) + 1)
    }
    for (const l of lost) {
      const n = held.get(l.peer) ?? 0
      yield this.withTrust({
        id: l.peer, addresses: l.addresses, cluster_peers: [], cluster_peers_addresses: [], version: '', commit: '', rpc_protocol_version: '',
        error: `${lostPeerError(l.since)}; ${n} pin${n === 1 ? '' : 's'} allocated to it`,
        ipfs: { id: l.peer, addresses: l.addresses, error: '' }, peername: l.peer_name
      })
    }
  }

  /** Lost peers (their ping expired; not back, not removed) other than those of `peers`. */
  private lostOutside (peers: string[]): LostPeer[] {
    return (this.components.monitor?.lost() ?? []).filter(l => !peers.includes(l.peer))
  }

  /** Whether the peer is to hold the pin (a meta-pin is held by no one: its shards are). */
  private holds (pin: Pin, peer: string): boolean {
    return pin.type !== 'meta-pin' && this.isAllocated(pin, peer)
  }

  /** A lost peer's entry in the status of a pin allocated to it. */
  private lostShort (l: LostPeer): PinInfoShort {
    return { peername: l.peer_name, ipfs_peer_id: l.peer, status: 'cluster_error', timestamp: l.since, error: lostPeerError(l.since), attempt_count: 0, priority_pin: false }
  }

  /** This peer's judgment of the peer's storage (cairn extension fields: IPFS Cluster's are left as they are). */
  private withTrust (id: IDInfo): IDInfo {
    const trust = this.components.trust
    if (trust == null) return id
    const t = trust.peerTrust(id.id)
    return { ...id, trust: t.trust, audits: { passed: t.audits_passed, failed: t.audits_failed, last: t.last_audit, error: t.last_error } }
  }

  // ----- pinset writes

  get writable (): boolean { return this.init.isWriter() }

  private requireWritable (): void {
    if (!this.writable) throw new FollowerModeError()
  }

  /**
   * Validates the options and allocates. `existing` is the pin now in the pinset under this CID: its allocations
   * are kept first while the replication stays the same.
   */
  private async buildPin (cid: string | CID, options: PinOptions, type: PinType = 'pin', existing?: Pin, exclude?: Set<string>, debit?: Map<string, number>): Promise<Pin> {
    const parsed = typeof cid === 'string' ? parseUserCid(cid) : cid
    const cidString = parsed.toString()
    let min = options.replication_factor_min ?? 0
    let max = options.replication_factor_max ?? 0
    if (min === 0) min = this.init.replication_factor_min
    if (max === 0) max = this.init.replication_factor_max
    if (min < -1 || max < -1) throw new InvalidParameterError(`replication factors must be >= -1 (got min ${min}, max ${max})`)
    if ((min === -1) !== (max === -1)) throw new InvalidParameterError(`replication-min and replication-max must both be -1 (everywhere) or both positive (got ${min} and ${max})`)
    if (max !== -1 && min > max) throw new InvalidParameterError(`replication-min ${min} is greater than replication-max ${max}`)
    if (options.expire_at != null && options.expire_at !== ZERO_TIME) {
      const t = Date.parse(options.expire_at)
      if (Number.isNaN(t)) throw new InvalidParameterError(`invalid expire-at "${options.expire_at}"`)
      if (t <= Date.now()) throw new InvalidParameterError(`expire-at ${options.expire_at} is in the past`)
    }
    if (options.pin_update != null) parseUserCid(options.pin_update)
    const priority = options.user_allocations ?? []
    // replication -1 allocates to every peer: the peerset only serves to check user allocations
    const peers = max === -1 && priority.length === 0 ? [] : (await this.peerset()).filter(p => exclude?.has(p) !== true)
    for (const p of priority) {
      if (!peers.includes(p)) throw new UnknownPeerError(`unknown peer in user-allocations: ${p} is not a cluster peer`)
    }
    const current = existing != null && existing.replication_factor_max === max ? existing.allocations : []
    const { monitor, trust } = this.components
    let allocations: string[] = []
    if (max !== -1 && monitor == null) {
      allocations = allocate({ cid: cidString, min, max, current, priority, candidates: peers })
    } else if (max !== -1 && monitor != null) {
      // Balanced by live metrics: spread over tag groups, most free space first, full peers never chosen.
      const metrics = Object.fromEntries(DEFAULT_ALLOCATE_BY.map(name => [name, monitor.latest(name).filter(m => peers.includes(m.peer)).map(m => {
        // space promised to earlier shards of the same add is not free any more, though no metric says so yet
        const owed = name === 'freespace' ? debit?.get(m.peer) ?? 0 : 0
        return owed === 0 ? m : { ...m, weight: Math.max(0, m.weight - owed), value: String(Math.max(0, m.weight - owed)) }
      })]))
      if (trust == null) {
        allocations = allocateBalanced({ cid: cidString, min, max, current, priority, metrics })
      } else {
        // only trusted and proven peers count toward min; peers on probation get extra copies; failed ones none
        const chosen = allocateWithProbation({
          cid: cidString, min, max, current, priority, metrics,
          exclude: new Set(peers.filter(p => trust.trustOf(p) === 'failed')),
          counts: p => this.counts(p),
          trialLoad: p => trust.trialLoad(p),
          trialLimit: trust.trialLimit
        })
        allocations = chosen.allocations
        if (chosen.counted.length < min) {
          this.log('%s: %d trusted or proven peers among its allocations, below replication_factor_min %d: under-replicated until peers on probation prove themselves', cidString, chosen.counted.length, min)
        }
      }
    }
    const mode = options.mode ?? 'recursive'
    return {
      cid: cidString,
      type,
      name: options.name ?? '',
      mode,
      replication_factor_min: min,
      replication_factor_max: max,
      allocations,
      shard_size: options.shard_size ?? 0,
      max_depth: mode === 'direct' ? 0 : -1,
      reference: null,
      expire_at: options.expire_at ?? ZERO_TIME,
      metadata: options.metadata ?? {},
      origins: options.origins ?? [],
      pin_update: options.pin_update ?? null,
      user_allocations: options.user_allocations ?? null,
      timestamp: new Date().toISOString()
    }
  }

  async pin (cid: string, options: PinOptions, opts?: AbortOptions): Promise<Pin> {
    this.requireWritable()
    const parsed = parseUserCid(cid)
    // every peer runs the same codecs: a CID this one cannot read would only be a pin_error everywhere (a direct
    // pin too: the walker decodes every block it fetches, as Kubo's pin add does)
    await checkReadable(parsed, this.components.importer.helia)
    let existing = this.components.pinset.get(cid)
    const updateFrom = options.pin_update != null ? parseUserCid(options.pin_update) : undefined
    if (updateFrom != null && cidKey(updateFrom) !== cidKey(parsed)) {
      // As IPFS Cluster's PinUpdate, whether or not the new CID is pinned already: the new pin takes the old one's
      // replication and allocations (so the same peers pin it and fetch only the blocks that differ), and its
      // other options unless given
      const from = this.components.pinset.get(updateFrom.toString())
      if (from == null) throw new InvalidParameterError(`pin-update: ${options.pin_update} is not in the pinset`)
      if (from.type !== 'pin') throw new InvalidParameterError(`pin-update: ${options.pin_update} is a ${from.type}, which cannot be updated`)
      if (existing != null && existing.type !== 'pin') throw new InvalidParameterError(`${cid} is already pinned as ${existing.type}; its type cannot change`)
      options = {
        ...options,
        replication_factor_min: options.replication_factor_min ?? from.replication_factor_min,
        replication_factor_max: options.replication_factor_max ?? from.replication_factor_max,
        mode: options.mode ?? from.mode,
        origins: options.origins ?? from.origins,
        metadata: options.metadata ?? from.metadata ?? undefined,
        expire_at: options.expire_at ?? (from.expire_at !== ZERO_TIME && Date.parse(from.expire_at) > Date.now() ? from.expire_at : undefined),
        user_allocations: options.user_allocations ?? from.user_allocations ?? undefined,
        pin_update: updateFrom.toString()
      }
      existing = { ...from, replication_factor_max: options.replication_factor_max ?? from.replication_factor_max }
      const pin = await this.buildPin(parsed, options, 'pin', existing)
      await this.components.pinset.put([pin], opts)
      return pin
    }
    const pin = await this.buildPin(parsed, options, 'pin', existing)
    if (existing != null && existing.type !== pin.type) throw new InvalidParameterError(`${cid} is already pinned as ${existing.type}; its type cannot change`)
    await this.components.pinset.put([pin], opts)
    return pin
  }

  async unpin (cid: string, opts?: AbortOptions): Promise<Pin> {
    this.requireWritable()
    parseUserCid(cid)
    const pin = this.components.pinset.get(cid)
    if (pin == null) throw new NotInPinsetError()
    if (pin.type === 'shard-pin' || pin.type === 'clusterdag-pin') {
      throw new InvalidParameterError(`${pin.cid} is a ${pin.type} of the sharded content ${pin.reference ?? '(unknown root)'}: unpin the root ${pin.reference ?? ''} instead`.trimEnd())
    }
    const removed = [pin.cid]
    if (pin.type === 'meta-pin') removed.push(...await this.shardPinsOf(pin, opts))
    await this.components.pinset.remove(removed, opts)
    return pin
  }

  /** The clusterdag and shard pins of a sharded root (from its clusterdag node, else by scanning the pinset). */
  private async shardPinsOf (meta: Pin, options: AbortOptions = {}): Promise<string[]> {
    const { pinset, importer } = this.components
    const out = new Set<string>()
    if (meta.reference != null) {
      out.add(meta.reference)
      try {
        const signal = AbortSignal.any([AbortSignal.timeout(10_000), ...(options.signal != null ? [options.signal] : [])])
        for (const shard of await readClusterDag(importer.helia, CID.parse(meta.reference), { signal })) out.add(shard.toString())
      } catch (err) {
        this.log('reading clusterdag %s failed, scanning the pinset instead: %e', meta.reference, err)
      }
    }
    for (const p of pinset.list()) {
      if ((p.type === 'shard-pin' || p.type === 'clusterdag-pin') && p.reference === meta.cid) out.add(p.cid)
    }
    return [...out].filter(c => pinset.has(c))
  }

  allocations (types?: Set<PinType>): Iterable<Pin> {
    const pins = this.components.pinset.list()
    if (types == null || types.size === 0) return pins
    return (function * () { for (const p of pins) if (types.has(p.type)) yield p })()
  }

  allocation (cid: string): Pin {
    parseUserCid(cid)
    const pin = this.components.pinset.get(cid)
    if (pin == null) throw new NotInPinsetError()
    return pin
  }

  // ----- status

  private globalFrom (cid: string, pin: Pin | undefined, peerMap: Record<string, PinInfoShort>): GlobalPinInfo {
    return {
      cid: pin?.cid ?? cid,
      name: pin?.name ?? '',
      allocations: pin?.allocations ?? [],
      origins: pin?.origins ?? [],
      created: pin?.timestamp ?? ZERO_TIME,
      metadata: pin?.metadata ?? null,
      peer_map: peerMap
    }
  }

  private remoteShort (peer: string, pin: Pin, status: TrackerStatus = 'remote', error = ''): PinInfoShort {
    return {
      peername: this.names.get(peer) ?? '',
      ipfs_peer_id: peer,
      status,
      timestamp: pin?.timestamp ?? new Date().toISOString(),
      error,
      attempt_count: 0,
      priority_pin: false
    }
  }

  /** Whether this peer's copies count toward replication_factor_min here (every peer's without an auditor). */
  private counts (peer: string): boolean {
    const t = this.components.trust?.trustOf(peer)
    return t == null || t === 'trusted' || t === 'proven' || t === 'unknown'
  }

  private isAllocated (pin: Pin | undefined, peer: string): boolean {
    return pin == null || pin.allocations.length === 0 || pin.allocations.includes(peer)
  }

  async status (cid: string, options: AbortOptions & { local?: boolean } = {}): Promise<GlobalPinInfo> {
    parseUserCid(cid)
    const pin = this.components.pinset.get(cid)
    const { tracker } = this.components
    if (options.local === true) {
      const info = await tracker.status(cid, options)
      return this.globalFrom(cid, pin, { [this.self]: toShort(info) })
    }
    const peerMap: Record<string, PinInfoShort> = {}
    const peers = await this.peerset()
    await Promise.all(peers.map(async peer => {
      if (!this.isAllocated(pin, peer)) { peerMap[peer] = this.remoteShort(peer, pin!); return }
      try {
        const info = peer === this.self
          ? await tracker.status(cid, options)
          : await this.rpc.callOne<PinInfo>(peer, 'status', { cid }, options)
        this.names.set(peer, info.peername)
        peerMap[peer] = toShort(info)
      } catch (err) {
        peerMap[peer] = this.remoteShort(peer, pin!, 'cluster_error', (err as Error).message)
      }
    }))
    if (pin != null) for (const l of this.lostOutside(peers)) if (this.holds(pin, l.peer)) peerMap[l.peer] = this.lostShort(l)
    return this.globalFrom(cid, pin, peerMap)
  }

  async * statusAll (options: AbortOptions & { local?: boolean, filter?: Set<TrackerStatus>, cids?: string[] } = {}): AsyncIterable<GlobalPinInfo> {
    const filter = options.filter != null && options.filter.size > 0 ? options.filter : undefined
    const keep = (g: GlobalPinInfo): boolean => filter == null || Object.values(g.peer_map).some(s => filter.has(s.status))
    if (options.cids != null && options.cids.length > 0) {
      // As IPFS Cluster: with explicit cids the filter is ignored.
      for (const cid of options.cids) yield await this.status(cid, options)
      return
    }
    const { tracker, pinset } = this.components
    if (options.local === true) {
      for await (const info of tracker.statusAll(options)) {
        const g = this.globalFrom(info.cid, pinset.get(info.cid), { [this.self]: toShort(info) })
        if (keep(g)) yield g
      }
      return
    }
    // Ask every peer for its whole status at once, then merge per CID (IPFS Cluster also collects first).
    const byCid = new Map<string, Record<string, PinInfoShort>>()
    const peers = await this.peerset()
    const failed = new Map<string, string>()
    await Promise.all(peers.map(async peer => {
      try {
        const source = peer === this.self ? tracker.statusAll(options) : this.rpc.call<PinInfo>(peer, 'statusAll', {}, options)
        for await (const info of source) {
          this.names.set(peer, info.peername)
          const key = cidKey(info.cid)
          let map = byCid.get(key)
          if (map == null) { map = {}; byCid.set(key, map) }
          map[peer] = toShort(info)
        }
      } catch (err) {
        failed.set(peer, (err as Error).message)
      }
    }))
    const lost = this.lostOutside(peers)
    const emit = (key: string, pin: Pin | undefined): GlobalPinInfo => {
      const map = byCid.get(key) ?? {}
      for (const peer of peers) {
        if (map[peer] != null) continue
        if (!this.isAllocated(pin, peer)) map[peer] = this.remoteShort(peer, pin!)
        else if (failed.has(peer)) map[peer] = this.remoteShort(peer, pin!, 'cluster_error', failed.get(peer))
      }
      if (pin != null) for (const l of lost) if (this.holds(pin, l.peer)) map[l.peer] = this.lostShort(l)
      byCid.delete(key)
      return this.globalFrom(key, pin, map)
    }
    const turn = turnBudget()
    for (const pin of pinset.list()) {
      options.signal?.throwIfAborted()
      if (turn.spent()) await turn.yield()
      const g = emit(cidKey(pin.cid), pin)
      if (keep(g)) yield g
    }
    // CIDs no longer in the pinset that some peer still reports (unpinning, unpin_error).
    for (const key of [...byCid.keys()]) {
      const g = emit(key, undefined)
      if (keep(g)) yield g
    }
  }

  async recover (cid: string, options: AbortOptions & { local?: boolean } = {}): Promise<GlobalPinInfo> {
    parseUserCid(cid)
    if (options.local === true) {
      const info = await this.components.tracker.recover(cid, options)
      return this.globalFrom(cid, this.components.pinset.get(cid), { [this.self]: toShort(info) })
    }
    const pin = this.components.pinset.get(cid)
    await Promise.all((await this.peerset()).map(async peer => {
      if (!this.isAllocated(pin, peer)) return
      if (peer === this.self) await this.components.tracker.recover(cid, options)
      else await this.rpc.callOne(peer, 'recover', { cid }, options).catch(err => { this.log('recover on %s failed: %e', peer, err) })
    }))
    return await this.status(cid, options)
  }

  async * recoverAll (options: AbortOptions & { local?: boolean } = {}): AsyncIterable<GlobalPinInfo> {
    const { tracker, pinset } = this.components
    if (options.local === true) {
      for await (const info of tracker.recoverAll(options)) {
        yield this.globalFrom(info.cid, pinset.get(info.cid), { [this.self]: toShort(info) })
      }
      return
    }
    const byCid = new Map<string, Record<string, PinInfoShort>>()
    await Promise.all((await this.peerset()).map(async peer => {
      try {
        const source = peer === this.self ? tracker.recoverAll(options) : this.rpc.call<PinInfo>(peer, 'recoverAll', {}, options)
        for await (const info of source) {
          const key = cidKey(info.cid)
          byCid.set(key, { ...byCid.get(key), [peer]: toShort(info) })
        }
      } catch (err) {
        this.log('recover all on %s failed: %e', peer, err)
      }
    }))
    for (const [key, map] of byCid) yield this.globalFrom(key, pinset.get(key), map)
  }

  // ----- repo gc

  async repoGC (options: AbortOptions & { local?: boolean } = {}): Promise<GlobalRepoGC> {
    // a follower reports on itself only, as IPFS Cluster's followers do
    const peers = options.local === true || !this.init.isWriter() ? [this.self] : await this.peerset()
    const entries = await Promise.all(peers.map(async (peer): Promise<RepoGC> => {
      try {
        return peer === this.self ? await this.repoGCLocal(options) : await this.rpc.callOne<RepoGC>(peer, 'repoGC', {}, { ...options, timeoutMs: GC_DEADLINE_MS })
      } catch (err) {
        return { peer, peername: this.names.get(peer) ?? '', keys: [], error: (err as Error).message }
      }
    }))
    return { peer_map: Object.fromEntries(entries.map(e => [e.peer, e])) }
  }

  /** The scheduled GC: only when the pinset changed since the last one; a busy repo is tried at the next tick. */
  private async scheduledGC (): Promise<void> {
    if (!this.gcDue || this.gcRunning || !this.running) return
    this.gcDue = false
    this.gcRunning = true
    try {
      await this.repoGCLocal({})
    } catch (err) {
      if (!this.running) return
      this.gcDue = true
      this.log.error('scheduled repo gc: %e', err)
    } finally {
      this.gcRunning = false
    }
  }

  private async repoGCLocal (options: AbortOptions): Promise<RepoGC> {
    const removed = await this.components.importer.gc({ signal: options.signal, keep: async () => await this.gcKeep(options) })
    this.log('repo gc deleted %d blocks', removed.length)
    return { peer: this.self, peername: this.init.peername, keys: removed.map(cid => ({ key: cid.toString() })) }
  }

  /**
   * What a repo GC must leave although no local pin holds it (asked under the GC lock): pins allocated here not
   * pinned yet (an add's blocks wait here for the tracker), and pins allocated elsewhere whose root is held here
   * (an add made here, shards kept for other peers) until enough of their allocations have pinned them.
   */
  private async gcKeep (options: AbortOptions): Promise<Array<{ cid: CID, depth: number }>> {
    const { pinset, importer } = this.components
    const keep: Array<{ cid: CID, depth: number }> = []
    const root = (pin: Pin): { cid: CID, depth: number } => ({ cid: CID.parse(pin.cid), depth: pin.max_depth < 0 ? Infinity : pin.max_depth })
    // one pass without awaiting (the pinset may change between awaits), keeping only the pins not held here
    const elsewhere: Pin[] = []
    for (const pin of pinset.list()) {
      if (pin.type === 'meta-pin' || importer.holdsPin(cidKey(pin.cid))) continue
      if (this.isAllocated(pin, this.self)) keep.push(root(pin))
      else elsewhere.push(pin)
    }
    const held: Pin[] = []
    for (const pin of elsewhere) {
      options.signal?.throwIfAborted()
      if (await importer.hasBlock(CID.parse(pin.cid), options)) held.push(pin)
    }
    const owed = await mapLimit(held, GC_STATUS_CONCURRENCY, async pin => {
      const signal = options.signal != null ? AbortSignal.any([options.signal, AbortSignal.timeout(30_000)]) : AbortSignal.timeout(30_000)
      const status = await this.status(pin.cid, { signal }).catch(() => undefined)
      // a peer on probation saying "pinned" proves nothing yet: only copies that count let this one go
      const pinned = pin.allocations.filter(p => this.counts(p) && status?.peer_map[p]?.status === 'pinned').length
      return pinned < Math.max(1, pin.replication_factor_min)
    })
    keep.push(...held.filter((_, i) => owed[i]).map(root))
    return keep
  }

  // ----- add

  async * add (entries: AsyncIterable<AddEntry>, params: AddParams, options: AbortOptions = {}): AsyncIterable<AddedOutput> {
    this.requireWritable()
    // Validate the pin options before reading the body, so a bad request fails before any import work.
    if (params.no_pin !== true) await this.buildPin('bafkqaaa', { ...params, name: params.name ?? '' })
    if ((params.shard_size ?? 0) > 0) {
      checkShardSize(params.shard_size ?? 0)
      if (params.format === 'car') throw new InvalidParameterError('shard: a CAR cannot be added sharded; add the files instead')
    }
    const { importer } = this.components
    // no repo GC until the pin is in the pinset: the blocks imported belong to no pin before
    const release = await importer.holdBlocks(options.signal)
    let lingering = false
    try {
      yield * this.addHeld(entries, params, options)
      // An add without a pin is how `cairn add` and `mirror sync` upload blocks, then pin the root by CID in a
      // second request: the hold lasts a little longer, so that no GC comes in between
      if (params.no_pin === true) {
        lingering = true
        setTimeout(release, this.init.noPinHoldMs ?? NO_PIN_HOLD_MS).unref()
      }
    } finally {
      if (!lingering) release()
    }
  }

  private async * addHeld (entries: AsyncIterable<AddEntry>, params: AddParams, options: AbortOptions): AsyncIterable<AddedOutput> {
    const { importer } = this.components
    let root: AddedOutput | undefined
    let source: AsyncIterable<AddedOutput>
    if (params.format === 'car') {
      source = (async function * () {
        for await (const entry of entries) {
          if (entry.content == null) continue
          yield * importer.addCar(entry.content, options)
          return
        }
        throw new InvalidParameterError('no CAR file in the request')
      })()
    } else {
      source = importer.addEntries(entries, params, options)
    }
    for await (const out of source) {
      if (out.cid !== '') root = out
      yield out
    }
    if (root == null) throw new InvalidParameterError('no files in the request')
    if (params.no_pin === true) return
    if ((params.shard_size ?? 0) > 0) {
      await this.pinSharded(CID.parse(root.cid), { ...params, name: params.name ?? root.name }, options)
      return
    }
    const pin = await this.pin(root.cid, { ...params, name: params.name ?? root.name }, options)
    this.log('added and pinned %s (%s)', pin.cid, pin.name)
  }

  /**
   * Shards the DAG just imported, allocates each shard on its own (free space taken by earlier shards counts),
   * writes shard pins, the clusterdag pin and the meta pin in one pinset change. This peer keeps only its own
   * shards: once the others are pinned where they were allocated, their blocks are deleted here.
   */
  private async pinSharded (root: CID, params: AddParams, options: AbortOptions): Promise<void> {
    const shardSize = params.shard_size ?? 0
    const { importer } = this.components
    const existing = this.components.pinset.get(root.toString())
    if (existing != null && existing.type !== 'meta-pin') throw new InvalidParameterError(`${root} is already pinned as ${existing.type}; unpin it before adding it sharded`)
    const dag = await shardDag(importer.helia, root, shardSize, options)
    const name = params.name ?? ''
    const base: PinOptions = {
      name, replication_factor_min: params.replication_factor_min, replication_factor_max: params.replication_factor_max,
      user_allocations: params.user_allocations, expire_at: params.expire_at, metadata: params.metadata, shard_size: shardSize
    }
    const debit = new Map<string, number>()
    const pins: Pin[] = []
    for (const [i, shard] of dag.shards.entries()) {
      // a peer whose free space (less what earlier shards took) cannot hold this shard is not a candidate
      const noRoom = new Set((this.components.monitor?.latest('freespace') ?? [])
        .filter(m => m.weight - (debit.get(m.peer) ?? 0) < shard.bytes).map(m => m.peer))
      const pin = await this.buildPin(shard.cid, { ...base, name: `${name}-shard-${i}` }, 'shard-pin', undefined, noRoom, debit)
      for (const p of pin.allocations) debit.set(p, (debit.get(p) ?? 0) + shard.bytes)
      pins.push({ ...pin, max_depth: 1, reference: root.toString() })
    }
    const clusterDag = await this.buildPin(dag.clusterDag, { ...base, name: `${name}-clusterDAG`, replication_factor_min: -1, replication_factor_max: -1 }, 'clusterdag-pin')
    pins.push({ ...clusterDag, max_depth: 0, mode: 'direct', reference: root.toString() })
    const meta = await this.buildPin(root, base, 'meta-pin')
    pins.push({ ...meta, allocations: [], reference: dag.clusterDag.toString() })
    await this.components.pinset.put(pins, options)
    this.log('added %s sharded: %d shards of <= %d bytes', root, dag.shards.length, shardSize)
    void this.dropForeignShards(dag, pins).catch(err => { this.log.error('dropping the shards of %s held for other peers failed: %e', root, err) })
  }

  /** After each shard not allocated here is pinned on its allocations, deletes its blocks here (unless pinned). */
  private async dropForeignShards (dag: ShardedDag, pins: Pin[], timeoutMs = 3_600_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    const foreign = dag.shards.filter((_, i) => !this.isAllocated(pins[i], this.self))
    const { signal } = this.shutdown
    while (foreign.length > 0 && Date.now() < deadline && !signal.aborted) {
      for (let i = foreign.length - 1; i >= 0 && !signal.aborted; i--) {
        const shard = foreign[i]
        const pin = this.components.pinset.get(shard.cid.toString())
        if (pin == null) { foreign.splice(i, 1); continue } // unpinned meanwhile
        const status = await this.status(shard.cid.toString(), { signal: AbortSignal.any([signal, AbortSignal.timeout(30_000)]) }).catch(() => undefined)
        const pinned = pin.allocations.filter(p => this.counts(p) && status?.peer_map[p]?.status === 'pinned').length
        if (pinned < Math.max(1, pin.replication_factor_min)) continue
        const dropped = await this.components.importer.dropUnpinned([shard.cid, ...shard.blocks])
        this.log('shard %s is pinned on %d peers: dropped %d of its blocks here', shard.cid, pinned, dropped)
        foreign.splice(i, 1)
      }
      if (foreign.length > 0) await sleep(1000, undefined, { signal, ref: false }).catch(() => {})
    }
  }

  metricNames (): string[] {
    return this.components.monitor?.names() ?? []
  }

  metrics (name: string): MetricInfo[] {
    return this.components.monitor?.latest(name) ?? []
  }

  alerts (): AlertInfo[] {
    const all = [...this.components.monitor?.alerts() ?? [], ...this.components.trust?.alerts() ?? []]
    return all.sort((a, b) => a.triggered_at < b.triggered_at ? 1 : a.triggered_at > b.triggered_at ? -1 : 0)
  }
}

/** The peer XOR-closest to a CID (sha256 of both), so every trusted peer agrees on who acts for it. */
export function closestPeer (cid: string, peers: string[]): string | undefined {
  const key = createHash('sha256').update(cidKey(cid)).digest()
  let best: string | undefined
  let bestDist: Buffer | undefined
  for (const p of peers) {
    const h = createHash('sha256').update(p).digest()
    const d = Buffer.alloc(32)
    for (let i = 0; i < 32; i++) d[i] = h[i] ^ key[i]
    if (bestDist == null || Buffer.compare(d, bestDist) < 0) { best = p; bestDist = d }
  }
  return best
}
