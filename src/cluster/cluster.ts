// Wires the cluster's modules together and answers the REST API (ClusterAPI) by delegating to them; the RPC
// methods other peers call are declared here.
import { createAllocator } from '../allocator/index.js'
import { createAdder, type Adder } from '../adder/index.js'
import { FollowerModeError } from '../errors.js'
import { createRpc, type Rpc } from '../rpc/index.js'
import { createExpiry } from './expiry.js'
import { createRepoGc, GC_DEADLINE_MS, type ClusterGc } from './gc.js'
import { createPeerInfo, type PeerInfo } from './peer-info.js'
import { createPeerset, type Peerset } from './peerset.js'
import { createPins, type Pins } from './pins.js'
import { createRebalancer, type Rebalancer } from './rebalance.js'
import { createSpreadBalancer, type SpreadBalancer } from './spread-balance.js'
import { createStatus, type ClusterStatus } from './status.js'
import { pinKey } from '../utils/keys.js'
import type { CID } from 'multiformats/cid'
import type { Cluster, ClusterComponents, ClusterInit } from './index.js'
import type { AbortOptions, AddEntry, AddParams, PinOptions, Startable } from '../components.js'
import type {
  AddedOutput, AlertInfo, ConnectGraph, GlobalPinInfo, GlobalRepoGC, IDInfo, MetricInfo, Pin, PinType, TrackerStatus
} from '../types/wire.js'

export class ClusterOrchestrator implements Cluster {
  private readonly rpc: Rpc
  private readonly members: Peerset
  private readonly info: PeerInfo
  private readonly pins: Pins
  private readonly statuses: ClusterStatus
  private readonly gc: ClusterGc
  private readonly rebalancer: Rebalancer
  private readonly spreadBalancer: SpreadBalancer
  private readonly adder: Adder
  /** Started in this order, stopped in the reverse one. */
  private readonly parts: Startable[]

  constructor (private readonly init: ClusterInit, private readonly components: ClusterComponents) {
    const { libp2p, logger, monitor, pinset, tracker, importer, trust } = components
    this.members = createPeerset({ cluster: init.cluster, peername: init.peername, strangerRetryMs: init.strangerRetryMs, isMember: init.isMember }, { libp2p, monitor, logger })
    const self = this.members.self
    // the RPC handlers call the modules below, which are built before any call can come (rpc.start)
    this.rpc = createRpc({
      cluster: init.cluster,
      isTrusted: init.isTrusted,
      // a closed cluster answers its members only; a whole status goes to members with a live ping here (a
      // stranger who only connects has none)
      admits: init.isMember,
      isMember: peer => monitor.peerset().includes(peer),
      timeoutMs: init.rpcTimeoutMs,
      secret: init.secret,
      methods: {
        id: { handler: async () => await this.info.id() },
        connections: { handler: async () => libp2p.getPeers().map(String) },
        // `peers rm` of a lost peer, asked by the trusted peer that vacated it
        forgetLost: { trustedOnly: true, handler: async (p: { peer: string }) => monitor.forgetLost(String(p?.peer)) },
        status: { handler: async (p: { cid: string }, { signal }) => await tracker.status(pinKey(String(p?.cid)), { signal }) },
        // this peer's whole status (300k pins: ~100 MB of frames): cluster members only
        statusAll: { membersOnly: true, handler: (_p, { signal }) => tracker.statusAll({ signal }) },
        recover: { trustedOnly: true, handler: async (p: { cid: string }, { signal }) => await tracker.recover(pinKey(String(p?.cid)), { signal }) },
        recoverAll: { trustedOnly: true, handler: (_p, { signal }) => tracker.recoverAll({ signal }) },
        repoGC: {
          trustedOnly: true,
          deadlineMs: GC_DEADLINE_MS,
          handler: async (_p, { signal }) => {
            // as IPFS Cluster's followers close RepoGCLocal: the cluster's maintainers cannot GC a volunteer
            if (!this.init.isWriter()) throw new FollowerModeError('this peer is a follower: its repo GC runs only from its own API')
            return await this.gc.local({ signal })
          }
        }
      }
    }, components)
    const { rpc, members: peerset } = this
    this.info = createPeerInfo({ peername: init.peername, isTrusted: init.isTrusted, isWriter: init.isWriter }, { libp2p, peerset, rpc, pinset, trust, logger })
    const allocator = createAllocator({}, { monitor, trust, logger })
    this.pins = createPins({ replicationFactorMin: init.replicationFactorMin, replicationFactorMax: init.replicationFactorMax, isWriter: init.isWriter }, {
      peerset, pinset, allocator, importer, uploadRoom: async upload => {
      // this peer's freespace published now, then what it would be with the upload collected (the metric stops at 0)
        await monitor.publishNow()
        const metric = monitor.latest('freespace').find(m => m.peer === self)?.weight ?? 0
        const max = init.storageMax ?? 0
        if (max <= 0) return upload
        const used = await importer.quotaBytes?.() ?? 0
        return Math.max(0, Math.min(max, max - used + upload) - metric)
      }, self, logger
    })
    this.statuses = createStatus({}, { peerset, rpc, pinset, tracker, logger })
    this.gc = createRepoGc({ peername: init.peername, isWriter: init.isWriter, intervalMs: init.gcIntervalMs }, { peerset, pinset, importer, status: this.statuses, rpc, trust, logger })
    this.rebalancer = createRebalancer({ isTrusted: init.isTrusted, isWriter: init.isWriter, repinOnPeerLoss: init.repinOnPeerLoss }, { peerset, pins: this.pins, pinset, monitor, rpc, trust, logger })
    this.spreadBalancer = createSpreadBalancer({ isTrusted: init.isTrusted, isWriter: init.isWriter, intervalMs: init.spreadRebalanceIntervalMs ?? 600_000 }, { peerset, pinset, monitor, allocator, tracker, rpc, logger })
    this.adder = createAdder({ isWriter: init.isWriter, noPinHoldMs: init.noPinHoldMs }, { self, importer, pins: this.pins, pinset, monitor, status: this.statuses, trust, logger })
    const expiry = createExpiry({ isTrusted: init.isTrusted, isWriter: init.isWriter, intervalMs: init.expiryIntervalMs }, { self, pinset, monitor, logger })
    this.parts = [this.rpc, this.members, expiry, this.gc, this.rebalancer, this.spreadBalancer, this.adder]
  }

  async start (): Promise<void> {
    for (const part of this.parts) await part.start()
  }

  async stop (): Promise<void> {
    for (const part of [...this.parts].reverse()) await part.stop()
  }

  get writable (): boolean { return this.init.isWriter() }

  async peerset (): Promise<string[]> { return await this.members.peers() }
  async id (): Promise<IDInfo> { return await this.info.id() }
  peers (options?: AbortOptions): AsyncIterable<IDInfo> { return this.info.peers(options) }
  async graph (options?: AbortOptions): Promise<ConnectGraph> { return await this.info.graph(options) }

  async pin (cid: CID, options: PinOptions, opts?: AbortOptions): Promise<Pin> { return await this.pins.pin(cid, options, opts) }
  async unpin (cid: CID, opts?: AbortOptions): Promise<Pin> { return await this.pins.unpin(cid, opts) }
  allocations (types?: Set<PinType>): Iterable<Pin> { return this.pins.allocations(types) }
  allocation (cid: CID): Pin { return this.pins.allocation(cid) }
  add (entries: AsyncIterable<AddEntry>, params: AddParams, options?: AbortOptions): AsyncIterable<AddedOutput> { return this.adder.add(entries, params, options) }

  async status (cid: CID, options?: AbortOptions & { local?: boolean }): Promise<GlobalPinInfo> { return await this.statuses.status(cid, options) }
  statusAll (options?: AbortOptions & { local?: boolean, filter?: Set<TrackerStatus>, cids?: CID[] }): AsyncIterable<GlobalPinInfo> { return this.statuses.statusAll(options) }
  async recover (cid: CID, options?: AbortOptions & { local?: boolean }): Promise<GlobalPinInfo> { return await this.statuses.recover(cid, options) }
  recoverAll (options?: AbortOptions & { local?: boolean }): AsyncIterable<GlobalPinInfo> { return this.statuses.recoverAll(options) }

  async balanceSpread (options?: AbortOptions): Promise<number> { return await this.spreadBalancer.check(options) }
  async vacate (peerId: string, options?: AbortOptions): Promise<number> { return await this.rebalancer.vacate(peerId, options) }
  async repoGC (options?: AbortOptions & { local?: boolean }): Promise<GlobalRepoGC> { return await this.gc.repoGC(options) }

  metricNames (): string[] { return this.components.monitor.names() }
  metrics (name: string): MetricInfo[] { return this.components.monitor.latest(name) }

  alerts (): AlertInfo[] {
    const all = [...this.components.monitor.alerts(), ...this.components.trust?.alerts() ?? []]
    return all.sort((a, b) => a.triggered_at < b.triggered_at ? 1 : a.triggered_at > b.triggered_at ? -1 : 0)
  }
}
