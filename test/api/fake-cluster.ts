// An in-memory ClusterAPI for the REST API's own tests: it records what the API hands it and answers with
// IPFS Cluster's shapes. Never use it to test anything but src/api.
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { FollowerModeError, NotInPinsetError, UnknownPeerError } from '../../src/errors.js'
import { ZERO_TIME } from '../../src/types/wire.js'
import { tryPinKey } from '../../src/utils/keys.js'
import { sleep } from '../util.js'
import type { AbortOptions, AddEntry, AddParams, ClusterAPI, PinOptions } from '../../src/components.js'
import type { AddedOutput, ConnectGraph, GlobalPinInfo, GlobalRepoGC, IDInfo, Pin, PinType, TrackerStatus, AlertInfo, MetricInfo } from '../../src/types/wire.js'

export const PEER = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'

export interface ReceivedEntry { path: string, content?: string, link?: string }

/** As the real pinset: any form of a CID finds its pin (names that are not CIDs key themselves). */
const keyOf = (cid: string): string => tryPinKey(cid) ?? cid

export class FakeCluster implements ClusterAPI {
  /** By CIDv1 base32 key. */
  readonly pins = new Map<string, Pin>()
  writable = true
  calls: Array<{ method: string, args: unknown[] }> = []
  /** Set to make the next streaming call fail after that many items. */
  streamFailure?: { after: number, error: Error }
  /** Set to make statusAll never end (for client-disconnect tests); flips to true when the generator stops. */
  endless = false
  endlessStopped = false
  added: ReceivedEntry[] = []
  addFailure?: { afterEntries: number, error: Error }

  async graph (): Promise<ConnectGraph> {
    this.record('graph')
    return {
      cluster_id: PEER, id_to_peername: { [PEER]: 'fake' }, ipfs_links: { [PEER]: [] }, cluster_links: { [PEER]: [] },
      cluster_trust_links: { [PEER]: true }, cluster_to_ipfs: { [PEER]: PEER }
    }
  }

  async vacate (peerId: string): Promise<number> {
    this.record('vacate', peerId)
    if (!this.writable) throw new FollowerModeError()
    if (peerId !== PEER) throw new UnknownPeerError(`unknown peer: ${peerId} is not a cluster peer and holds no allocation`)
    return 0
  }

  private record (method: string, ...args: unknown[]): void { this.calls.push({ method, args }) }
  lastCall (method: string): unknown[] | undefined { return this.calls.findLast(c => c.method === method)?.args }

  idInfo (id = PEER): IDInfo {
    return {
      id, addresses: [`/ip4/127.0.0.1/tcp/9096/p2p/${id}`], cluster_peers: [id], cluster_peers_addresses: [],
      version: '0.1.0', commit: '', rpc_protocol_version: '/ipfscluster/1.0/rpc', error: '',
      ipfs: { id, addresses: [], error: '' }, peername: 'fake', trusted: true
    }
  }

  makePin (cid: string, opts: PinOptions = {}, type: PinType = 'pin'): Pin {
    return {
      cid, type, name: opts.name ?? '', mode: opts.mode ?? 'recursive',
      replication_factor_min: opts.replication_factor_min ?? -1, replication_factor_max: opts.replication_factor_max ?? -1,
      allocations: [], shard_size: opts.shard_size ?? 0, max_depth: opts.mode === 'direct' ? 0 : -1, reference: null,
      expire_at: opts.expire_at ?? ZERO_TIME, metadata: opts.metadata ?? {}, origins: opts.origins ?? [],
      pin_update: opts.pin_update ?? null, user_allocations: opts.user_allocations ?? null,
      timestamp: '2024-05-06T10:00:00Z'
    }
  }

  gpi (cid: string, status: TrackerStatus = 'pinned'): GlobalPinInfo {
    return {
      cid, name: this.pins.get(keyOf(cid))?.name ?? '', allocations: [], origins: [], created: '2024-05-06T10:00:00Z', metadata: this.pins.get(keyOf(cid))?.metadata ?? null,
      peer_map: { [PEER]: { peername: 'fake', ipfs_peer_id: PEER, status, timestamp: '2024-05-06T10:00:00Z', error: '', attempt_count: 0, priority_pin: false } }
    }
  }

  private async * stream<T> (items: T[], options?: AbortOptions): AsyncGenerator<T> {
    const failure = this.streamFailure
    this.streamFailure = undefined
    let n = 0
    for (const item of items) {
      if (failure !== undefined && n === failure.after) throw failure.error
      options?.signal?.throwIfAborted()
      yield item
      n++
    }
    if (failure !== undefined && n === failure.after) throw failure.error
  }

  async id (): Promise<IDInfo> { return this.idInfo() }

  peers (options?: AbortOptions): AsyncIterable<IDInfo> {
    // as GET /peers of a trusted peer: each peer's trust and its audits by the answering peer
    const audited = (info: IDInfo): IDInfo => ({ ...info, trust: 'trusted', audits: { passed: 0, failed: 0, last: '', error: '' } })
    return this.stream([this.idInfo(), this.idInfo('12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK')].map(audited), options)
  }

  // each method records the CID as the API's string of it (cid.toString()), which IPFS Cluster echoes
  async pin (parsed: CID, options: PinOptions): Promise<Pin> {
    const cid = parsed.toString()
    this.record('pin', cid, options)
    const pin = this.makePin(cid, options)
    this.pins.set(keyOf(cid), pin)
    return pin
  }

  async unpin (parsed: CID): Promise<Pin> {
    const cid = parsed.toString()
    this.record('unpin', cid)
    const pin = this.pins.get(keyOf(cid))
    if (pin === undefined) throw new NotInPinsetError()
    this.pins.delete(keyOf(cid))
    return pin
  }

  allocations (types?: Set<PinType>): Iterable<Pin> {
    this.record('allocations', types)
    return [...this.pins.values()].filter(p => types === undefined || types.has(p.type))
  }

  allocation (parsed: CID): Pin {
    const cid = parsed.toString()
    const pin = this.pins.get(keyOf(cid))
    if (pin === undefined) throw new NotInPinsetError()
    return pin
  }

  async status (parsed: CID, options?: AbortOptions & { local?: boolean }): Promise<GlobalPinInfo> {
    const cid = parsed.toString()
    this.record('status', cid, { local: options?.local })
    return this.gpi(cid, this.pins.has(keyOf(cid)) ? 'pinned' : 'unpinned')
  }

  statusAll (options?: AbortOptions & { local?: boolean, filter?: Set<TrackerStatus>, cids?: CID[] }): AsyncIterable<GlobalPinInfo> {
    const given = options?.cids?.map(c => c.toString())
    this.record('statusAll', { local: options?.local, filter: options?.filter, cids: given })
    if (this.endless) return this.forever(options)
    const cids = given ?? [...this.pins.values()].map(p => p.cid)
    return this.stream(cids.map(c => this.gpi(c)), options)
  }

  private async * forever (options?: AbortOptions): AsyncGenerator<GlobalPinInfo> {
    try {
      for (let i = 0; ; i++) {
        options?.signal?.throwIfAborted()
        yield this.gpi(`cid-${i}`)
        await sleep(5) // pacing of the endless stream
      }
    } finally {
      this.endlessStopped = true
    }
  }

  async recover (parsed: CID, options?: AbortOptions & { local?: boolean }): Promise<GlobalPinInfo> {
    const cid = parsed.toString()
    this.record('recover', cid, { local: options?.local })
    return this.gpi(cid, 'pin_queued')
  }

  async repoGC (options?: AbortOptions & { local?: boolean }): Promise<GlobalRepoGC> {
    this.record('repoGC', { local: options?.local })
    return { peer_map: { [PEER]: { peer: PEER, peername: 'fake', keys: [{ key: 'bafkqaaa' }] } } }
  }

  recoverAll (options?: AbortOptions & { local?: boolean }): AsyncIterable<GlobalPinInfo> {
    this.record('recoverAll', { local: options?.local })
    return this.stream([...this.pins.values()].map(p => this.gpi(p.cid, 'pin_queued')), options)
  }

  async * add (entries: AsyncIterable<AddEntry>, params: AddParams, options?: AbortOptions): AsyncGenerator<AddedOutput> {
    this.record('add', params)
    this.added = []
    if (!this.writable) throw new FollowerModeError()
    try {
      let root: AddedOutput | undefined
      for await (const line of this.importEntries(entries, options)) {
        root = line
        yield line
      }
      // as a peer: the root (the last line) is pinned unless no_pin
      if (root != null && params.no_pin !== true) this.pins.set(keyOf(root.cid), this.makePin(root.cid, params))
    } finally {
      this.record('add-ended')
    }
  }

  private async * importEntries (entries: AsyncIterable<AddEntry>, options?: AbortOptions): AsyncGenerator<AddedOutput> {
    for await (const entry of entries) {
      if (this.addFailure !== undefined && this.added.length === this.addFailure.afterEntries) throw this.addFailure.error
      let content: string | undefined
      const chunks: Uint8Array[] = []
      if (entry.content !== undefined) {
        for await (const chunk of entry.content) chunks.push(chunk)
        content = Buffer.concat(chunks).toString('utf8')
      }
      this.added.push(entry.link !== undefined ? { path: entry.path, link: entry.link } : { path: entry.path, content })
      options?.signal?.throwIfAborted()
      // a real CID (of the bytes as one raw block, not the UnixFS DAG a peer builds): clients parse it
      const cid = CID.createV1(raw.code, await sha256.digest(Buffer.concat([Buffer.from(entry.path), ...chunks])))
      yield { name: entry.path, cid: cid.toString(), size: content?.length ?? 0 }
    }
  }

  metricNames (): string[] { return ['ping', 'freespace'] }
  metrics (name: string): MetricInfo[] {
    return name === 'ping' ? [{ name, peer: 'p1', value: '{}', expire: 1, valid: true, weight: 0, partitionable: false, received_at: 1 }] : []
  }

  alerts (): AlertInfo[] { return [] }
}
