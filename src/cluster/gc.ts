// Repo GC across the cluster (IPFS Cluster's RepoGC): each peer deletes the blocks none of its pins holds,
// but keeps what other peers still need from it; on a schedule when the pinset changed since the last one, or
// when held bytes passed the high watermark of storage_max.
import { copiesCount } from '../allocator/index.js'
import { parseCid } from '../utils/cid.js'
import { heldPinKey } from '../utils/keys.js'
import pMap from 'p-map'
import { isAllocated } from './views.js'
import type { Peerset } from './peerset.js'
import type { ClusterStatus } from './status.js'
import type { AbortOptions, Importer, Pinset, Startable, TrustView } from '../components.js'
import type { Rpc } from '../rpc/index.js'
import type { GlobalRepoGC, Pin, RepoGC } from '../types/wire.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

/** How long a peer's repo GC may take when another peer asked for it (a GC waits up to 60 s, then scans the store). */
export const GC_DEADLINE_MS = 30 * 60_000
/** Status calls at once while a repo GC checks the content held here for other peers. */
const GC_STATUS_CONCURRENCY = 8

export interface RepoGcInit {
  peername: string
  /** false on followers: a follower's GC runs only for its own API, and reports on itself only. */
  isWriter: () => boolean
  /** A repo GC this often when the pinset changed since the last one (default 0: none). */
  intervalMs?: number
}

export interface RepoGcComponents {
  peerset: Peerset
  pinset: Pick<Pinset, 'list' | 'onChange'>
  importer: Pick<Importer, 'gc' | 'holdsPin' | 'hasBlock' | 'overHighWatermark'>
  status: Pick<ClusterStatus, 'status'>
  rpc: Pick<Rpc, 'callOne'>
  trust?: Pick<TrustView, 'trustOf'>
  logger: ComponentLogger
}

export interface ClusterGc extends Startable {
  /** Every peer's repo GC (local: this one's only). */
  repoGC(options?: AbortOptions & { local?: boolean }): Promise<GlobalRepoGC>
  /** This peer's repo GC (also the RPC `repoGC` another peer asks for). */
  local(options: AbortOptions): Promise<RepoGC>
}

export function createRepoGc (init: RepoGcInit, components: RepoGcComponents): ClusterGc {
  const { peerset, pinset, importer } = components
  const log: Logger = components.logger.forComponent('cairn:cluster:gc')
  const self = peerset.self
  let running = false
  let timer: NodeJS.Timeout | undefined
  let stopChanges: (() => void) | undefined
  /** The pinset changed since the last scheduled GC (true at start: what an earlier run left). */
  let due = true
  let busy = false

  /**
   * What a repo GC must leave although no local pin holds it (asked under the GC lock): pins allocated here not
   * pinned yet (an add's blocks wait here for the tracker), and pins allocated elsewhere whose root is held here
   * (an add made here, shards kept for other peers) until enough of their allocations have pinned them.
   */
  async function keep (options: AbortOptions): Promise<Array<{ cid: CID, depth: number }>> {
    const out: Array<{ cid: CID, depth: number }> = []
    const root = ({ pin, cid }: { pin: Pin, cid: CID }): { cid: CID, depth: number } => ({ cid, depth: pin.max_depth < 0 ? Infinity : pin.max_depth })
    // one pass without awaiting (the pinset may change between awaits), keeping only the pins not held here
    const elsewhere: Array<{ pin: Pin, cid: CID }> = []
    for (const pin of pinset.list()) {
      if (pin.type === 'meta-pin' || importer.holdsPin(heldPinKey(pin.cid))) continue
      const held = { pin, cid: parseCid(pin.cid) }
      // a spread pin's other shares are kept here like a pin allocated elsewhere (until their peers hold them);
      // this peer's own share comes back from those peers when it is pinned
      if (isAllocated(pin, self) && pin.spread !== true) out.push(root(held))
      else elsewhere.push(held)
    }
    const held: Array<{ pin: Pin, cid: CID }> = []
    for (const h of elsewhere) {
      options.signal?.throwIfAborted()
      if (await importer.hasBlock(h.cid, options)) held.push(h)
    }
    const owed = await pMap(held, async ({ pin, cid }) => {
      const signal = options.signal != null ? AbortSignal.any([options.signal, AbortSignal.timeout(30_000)]) : AbortSignal.timeout(30_000)
      const status = await components.status.status(cid, { signal }).catch(() => undefined)
      // a peer on probation saying "pinned" proves nothing yet: only copies that count let this one go
      const pinned = pin.allocations.filter(p => copiesCount(components.trust, p) && status?.peer_map[p]?.status === 'pinned').length
      // a spread pin is on its peers once every other allocated peer holds its share
      if (pin.spread === true) return pinned < pin.allocations.filter(p => p !== self).length
      return pinned < Math.max(1, pin.replication_factor_min)
    }, { concurrency: GC_STATUS_CONCURRENCY })
    out.push(...held.filter((_, i) => owed[i]).map(root))
    // a spread pin's layout index goes with it
    for (const [i, h] of held.entries()) {
      const layout = h.pin.spread_map?.layout
      if (owed[i] && layout != null) out.push({ cid: parseCid(layout), depth: Infinity })
    }
    return out
  }

  async function local (options: AbortOptions): Promise<RepoGC> {
    const removed = await importer.gc({ signal: options.signal, keep: async () => await keep(options) })
    log('repo gc deleted %d blocks', removed.length)
    return { peer: self, peername: init.peername, keys: removed.map(cid => ({ key: cid.toString() })) }
  }

  async function repoGC (options: AbortOptions & { local?: boolean } = {}): Promise<GlobalRepoGC> {
    // a follower reports on itself only, as IPFS Cluster's followers do
    const peers = options.local === true || !init.isWriter() ? [self] : await peerset.peers()
    const entries = await Promise.all(peers.map(async (peer): Promise<RepoGC> => {
      try {
        return peer === self ? await local(options) : await components.rpc.callOne<RepoGC>(peer, 'repoGC', {}, { ...options, timeoutMs: GC_DEADLINE_MS })
      } catch (err) {
        return { peer, peername: peerset.nameOf(peer), keys: [], error: (err as Error).message }
      }
    }))
    return { peer_map: Object.fromEntries(entries.map(e => [e.peer, e])) }
  }

  /**
   * The scheduled GC: when the pinset changed since the last one, or held bytes passed the high watermark of
   * storage_max (garbage no pin change made: adds without a pin, cache over the bound); a busy repo is tried at
   * the next tick.
   */
  async function scheduled (): Promise<void> {
    if ((!due && importer.overHighWatermark?.() !== true) || busy || !running) return
    due = false
    busy = true
    try {
      await local({})
    } catch (err) {
      if (!running) return
      due = true
      log.error('scheduled repo gc: %e', err)
    } finally {
      busy = false
    }
  }

  return {
    repoGC,
    local,
    async start () {
      running = true
      // a pin removed, or moved away from this peer, leaves garbage for the next scheduled GC
      stopChanges = pinset.onChange(() => { due = true })
      const interval = init.intervalMs ?? 0
      if (interval > 0) {
        timer = setInterval(() => { void scheduled() }, interval)
        timer.unref()
      }
    },
    async stop () {
      running = false
      clearInterval(timer)
      stopChanges?.()
    }
  }
}
