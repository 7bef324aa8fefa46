// Cluster-wide status: each allocated peer is asked over RPC for its view of a CID (or of every CID) and the
// answers are merged into IPFS Cluster's GlobalPinInfo; recover asks the same peers to retry their errors.
import type { CID } from 'multiformats/cid'
import { pinKey } from '../utils/keys.js'
import { turnBudget } from '../utils/turns.js'
import { globalFrom, holds, isAllocated, lostShort, remoteShort, toShort } from './views.js'
import type { Peerset } from './peerset.js'
import type { AbortOptions, Pinset, PinTracker } from '../components.js'
import type { Rpc } from '../rpc/index.js'
import type { GlobalPinInfo, Pin, PinInfo, PinInfoShort, TrackerStatus } from '../types/wire.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export interface StatusComponents {
  peerset: Peerset
  rpc: Pick<Rpc, 'call' | 'callOne'>
  pinset: Pick<Pinset, 'get' | 'list'>
  tracker: PinTracker
  logger: ComponentLogger
}

export interface LocalOption extends AbortOptions {
  /** This peer's view only, no peer asked. */
  local?: boolean
}

export interface StatusAllOptions extends LocalOption {
  filter?: Set<TrackerStatus>
  cids?: CID[]
}

export interface ClusterStatus {
  status(cid: CID, options?: LocalOption): Promise<GlobalPinInfo>
  statusAll(options?: StatusAllOptions): AsyncIterable<GlobalPinInfo>
  recover(cid: CID, options?: LocalOption): Promise<GlobalPinInfo>
  recoverAll(options?: LocalOption): AsyncIterable<GlobalPinInfo>
}

export function createStatus (_init: object, components: StatusComponents): ClusterStatus {
  const { peerset, rpc, pinset, tracker } = components
  const log: Logger = components.logger.forComponent('cairn:cluster:status')
  const self = peerset.self

  async function status (parsed: CID, options: LocalOption = {}): Promise<GlobalPinInfo> {
    const cid = parsed.toString()
    const key = pinKey(parsed)
    const pin = pinset.get(parsed)
    if (options.local === true) {
      const info = await tracker.status(key, options)
      return globalFrom(cid, pin, { [self]: toShort(info) })
    }
    const peerMap: Record<string, PinInfoShort> = {}
    const peers = await peerset.peers()
    await Promise.all(peers.map(async peer => {
      if (!isAllocated(pin, peer)) { peerMap[peer] = remoteShort(peer, peerset.nameOf(peer), pin); return }
      try {
        const info = peer === self
          ? await tracker.status(key, options)
          : await rpc.callOne<PinInfo>(peer, 'status', { cid }, options)
        peerset.setName(peer, info.peername)
        peerMap[peer] = toShort(info)
      } catch (err) {
        peerMap[peer] = remoteShort(peer, peerset.nameOf(peer), pin, 'cluster_error', (err as Error).message)
      }
    }))
    if (pin != null) for (const l of peerset.lostOutside(peers)) if (holds(pin, l.peer)) peerMap[l.peer] = lostShort(l)
    return globalFrom(cid, pin, peerMap)
  }

  async function * statusAll (options: StatusAllOptions = {}): AsyncIterable<GlobalPinInfo> {
    const filter = options.filter != null && options.filter.size > 0 ? options.filter : undefined
    const keep = (g: GlobalPinInfo): boolean => filter == null || Object.values(g.peer_map).some(s => filter.has(s.status))
    if (options.cids != null && options.cids.length > 0) {
      // As IPFS Cluster: with explicit cids the filter is ignored.
      for (const cid of options.cids) yield await status(cid, options)
      return
    }
    if (options.local === true) {
      for await (const info of tracker.statusAll(options)) {
        const g = globalFrom(info.cid, pinset.get(info.cid), { [self]: toShort(info) })
        if (keep(g)) yield g
      }
      return
    }
    // Ask every peer for its whole status at once, then merge per CID (IPFS Cluster also collects first).
    const byCid = new Map<string, Record<string, PinInfoShort>>()
    const peers = await peerset.peers()
    const failed = new Map<string, string>()
    await Promise.all(peers.map(async peer => {
      try {
        const source = peer === self ? tracker.statusAll(options) : rpc.call<PinInfo>(peer, 'statusAll', {}, options)
        for await (const info of source) {
          peerset.setName(peer, info.peername)
          const key = pinKey(info.cid)
          let map = byCid.get(key)
          if (map == null) { map = {}; byCid.set(key, map) }
          map[peer] = toShort(info)
        }
      } catch (err) {
        failed.set(peer, (err as Error).message)
      }
    }))
    const lost = peerset.lostOutside(peers)
    const emit = (key: string, pin: Pin | undefined): GlobalPinInfo => {
      const map = byCid.get(key) ?? {}
      for (const peer of peers) {
        if (map[peer] != null) continue
        if (!isAllocated(pin, peer)) map[peer] = remoteShort(peer, peerset.nameOf(peer), pin)
        else if (failed.has(peer)) map[peer] = remoteShort(peer, peerset.nameOf(peer), pin, 'cluster_error', failed.get(peer))
      }
      if (pin != null) for (const l of lost) if (holds(pin, l.peer)) map[l.peer] = lostShort(l)
      byCid.delete(key)
      return globalFrom(key, pin, map)
    }
    const turn = turnBudget()
    for (const pin of pinset.list()) {
      options.signal?.throwIfAborted()
      if (turn.spent()) await turn.yield()
      const g = emit(pinKey(pin.cid), pin)
      if (keep(g)) yield g
    }
    // CIDs no longer in the pinset that some peer still reports (unpinning, unpin_error).
    for (const key of [...byCid.keys()]) {
      const g = emit(key, undefined)
      if (keep(g)) yield g
    }
  }

  async function recover (parsed: CID, options: LocalOption = {}): Promise<GlobalPinInfo> {
    const cid = parsed.toString()
    const key = pinKey(parsed)
    if (options.local === true) {
      const info = await tracker.recover(key, options)
      return globalFrom(cid, pinset.get(parsed), { [self]: toShort(info) })
    }
    const pin = pinset.get(parsed)
    await Promise.all((await peerset.peers()).map(async peer => {
      if (!isAllocated(pin, peer)) return
      if (peer === self) await tracker.recover(key, options)
      else await rpc.callOne(peer, 'recover', { cid }, options).catch(err => { log('recover on %s failed: %e', peer, err) })
    }))
    return await status(parsed, options)
  }

  async function * recoverAll (options: LocalOption = {}): AsyncIterable<GlobalPinInfo> {
    if (options.local === true) {
      for await (const info of tracker.recoverAll(options)) {
        yield globalFrom(info.cid, pinset.get(info.cid), { [self]: toShort(info) })
      }
      return
    }
    const byCid = new Map<string, Record<string, PinInfoShort>>()
    await Promise.all((await peerset.peers()).map(async peer => {
      try {
        const source = peer === self ? tracker.recoverAll(options) : rpc.call<PinInfo>(peer, 'recoverAll', {}, options)
        for await (const info of source) {
          const key = pinKey(info.cid)
          byCid.set(key, { ...byCid.get(key), [peer]: toShort(info) })
        }
      } catch (err) {
        log('recover all on %s failed: %e', peer, err)
      }
    }))
    for (const [key, map] of byCid) yield globalFrom(key, pinset.get(key), map)
  }

  return { status, statusAll, recover, recoverAll }
}
