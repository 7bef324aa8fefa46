// Evening out spread pins (docs/DESIGN.md §5 "Spread pins"): when a peer joins, or a peer's offered space
// changes, the writer of a spread pin (the live trusted peer XOR-closest to its CID) moves whole partitions from
// the fullest peers to the emptiest, make-before-break: the gaining peers are added first (those partitions have
// one copy more for a while), and the peers giving them up are dropped only once every gaining peer says it holds
// its new share. A spread pin still being fetched, or with a holder gone (the repin on peer loss moves that), is
// left alone.
import { ShuttingDownError } from '../errors.js'
import { ZERO_TIME } from '../types/wire.js'
import { heldPinKey } from '../utils/keys.js'
import { closestPeer } from './views.js'
import type { Peerset } from './peerset.js'
import type { AbortOptions, Allocator, Monitor, Pinset, PinTracker, Startable } from '../components.js'
import type { Rpc } from '../rpc/index.js'
import type { Pin, PinInfo } from '../types/wire.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'

/**
 * The shares (held / room) of the fullest and the emptiest peer must be this far apart before anything moves: a
 * peer joining (0 against the others' share) or offering much more, not metrics that wobble.
 */
const EVEN_FROM = 0.25
const NS_PER_MS = 1_000_000

export interface SpreadBalanceInit {
  isTrusted: (peerId: string) => boolean
  isWriter: () => boolean
  /** How often spread pins are checked (0: never). */
  intervalMs: number
  /** A move whose gaining peers have not all fetched their new share by then is given up (the map keeps the extra copies; the next check plans again). Default 1 h. */
  moveDeadlineMs?: number
}

export interface SpreadBalanceComponents {
  peerset: Pick<Peerset, 'self'>
  pinset: Pick<Pinset, 'list' | 'get' | 'put'>
  monitor: Pick<Monitor, 'peerset' | 'latest'>
  allocator: Pick<Allocator, 'allocateSpread'>
  tracker: Pick<PinTracker, 'status'>
  rpc: Pick<Rpc, 'callOne'>
  logger: ComponentLogger
}

export interface SpreadBalancer extends Startable {
  /** One check of every spread pin this peer writes (the scheduled one; tests call it). Resolves with the pins changed. */
  check(options?: AbortOptions): Promise<number>
}

/** A move under way: the map written with the gaining peers added, and the map to end with. */
interface Move {
  /** The timestamp of the pin written with both old and new holders: a pin changed since (a new version) ends the move. */
  written: string
  target: Record<string, number[]>
  gaining: string[]
  since: number
}

/** Each peer's partitions in `to` that it does not hold in `from`. */
export function gained (from: Readonly<Record<string, number[]>>, to: Readonly<Record<string, number[]>>): Record<string, number[]> {
  const out: Record<string, number[]> = {}
  for (const [peer, parts] of Object.entries(to)) {
    const had = new Set(from[peer] ?? [])
    const more = parts.filter(p => !had.has(p))
    if (more.length > 0) out[peer] = more
  }
  return out
}

/** Both maps at once: every partition on its current and its new holders. */
export function union (a: Readonly<Record<string, number[]>>, b: Readonly<Record<string, number[]>>): Record<string, number[]> {
  const out: Record<string, number[]> = {}
  for (const map of [a, b]) {
    for (const [peer, parts] of Object.entries(map)) out[peer] = [...new Set([...(out[peer] ?? []), ...parts])].sort((x, y) => x - y)
  }
  return out
}

export function createSpreadBalancer (init: SpreadBalanceInit, components: SpreadBalanceComponents): SpreadBalancer {
  const { pinset, monitor, allocator } = components
  const log: Logger = components.logger.forComponent('cairn:cluster:spread-balance')
  const self = components.peerset.self
  const deadline = init.moveDeadlineMs ?? 3_600_000
  const moves = new Map<string, Move>()
  /** When a pin's last move ended: the next is planned only on freespace metrics published after it. */
  const settled = new Map<string, number>()
  let timer: NodeJS.Timeout | undefined
  let shutdown = new AbortController()
  let busy = false

  async function statusOn (peer: string, cid: string, signal: AbortSignal): Promise<PinInfo | undefined> {
    try {
      return peer === self
        ? await components.tracker.status(heldPinKey(cid), { signal })
        : await components.rpc.callOne<PinInfo>(peer, 'status', { cid }, { signal })
    } catch (err) {
      log('status of %s on %s: %e', cid, peer, err)
      return undefined
    }
  }

  /** Whether each peer says it holds its share of this very pin (its view of the pin has this timestamp). */
  async function allHold (peers: string[], pin: Pin, signal: AbortSignal): Promise<boolean> {
    const infos = await Promise.all(peers.map(async p => await statusOn(p, pin.cid, signal)))
    return infos.every(i => i?.status === 'pinned' && i.created === pin.timestamp)
  }

  async function write (pin: Pin, shares: Record<string, number[]>, signal: AbortSignal): Promise<Pin> {
    const next: Pin = {
      ...pin,
      allocations: Object.keys(shares).sort(),
      spread_map: { ...pin.spread_map!, shares },
      timestamp: new Date().toISOString()
    }
    await pinset.put([next], { signal })
    return next
  }

  /** Moves one pin a step on: ends a move whose gaining peers hold their share, or starts one. Whether it wrote. */
  async function balance (pin: Pin, live: string[], signal: AbortSignal): Promise<boolean> {
    const map = pin.spread_map!
    const key = heldPinKey(pin.cid)
    const move = moves.get(key)
    if (move != null) {
      if (move.written !== pin.timestamp) {
        // a new version or a repin rewrote the map meanwhile: it decides; a later check starts again from it
        moves.delete(key)
        return false
      }
      if (!await allHold(move.gaining, pin, signal)) {
        if (Date.now() - move.since < deadline) return false
        log.error('%s: peers %s did not fetch their new partitions within %d ms: the move is given up (their copies stay in the map)', pin.cid, move.gaining.join(', '), deadline)
        moves.delete(key)
        return false
      }
      await write(pin, move.target, signal)
      moves.delete(key)
      settled.set(key, Date.now())
      log('%s: partitions moved to %s; their previous holders let them go', pin.cid, move.gaining.join(', '))
      return true
    }
    const holders = Object.keys(map.shares)
    // a holder gone is the repin on peer loss's to handle (src/cluster/rebalance.ts)
    if (holders.some(h => !live.includes(h))) return false
    // after a move, metrics measured before it end say the gaining peers have all their room still, and would
    // move more to them: wait for every peer's next freespace metric
    const since = settled.get(key)
    if (since != null) {
      if (monitor.latest('freespace').some(m => live.includes(m.peer) && m.received_at / NS_PER_MS <= since)) return false
      settled.delete(key)
    }
    let target: Record<string, number[]>
    try {
      target = allocator.allocateSpread({
        cid: pin.cid,
        min: pin.replication_factor_min,
        max: pin.replication_factor_max,
        partitionBytes: map.partition_bytes,
        skeletonBytes: map.skeleton_bytes,
        candidates: live,
        current: map.shares,
        even: true,
        evenFrom: EVEN_FROM
      })
    } catch (err) {
      log('%s: no better map: %e', pin.cid, err)
      return false
    }
    const more = gained(map.shares, target)
    const gaining = Object.keys(more)
    const dropped = gained(target, map.shares)
    if (gaining.length === 0 && Object.keys(dropped).length === 0) return false
    // only a settled pin moves: every holder has its share (a version still being fetched would move twice)
    if (!await allHold(holders, pin, signal)) return false
    if (gaining.length === 0) {
      // nothing to fetch (a peer offers less now and others already hold those partitions): drop at once
      await write(pin, target, signal)
      settled.set(key, Date.now())
      log('%s: partitions dropped from %s', pin.cid, Object.keys(dropped).join(', '))
      return true
    }
    const written = await write(pin, union(map.shares, target), signal)
    moves.set(key, { written: written.timestamp, target, gaining, since: Date.now() })
    const count = Object.values(more).reduce((a, p) => a + p.length, 0)
    log('%s: moving %d partitions to %s (make-before-break)', pin.cid, count, gaining.join(', '))
    return true
  }

  async function check (options: AbortOptions = {}): Promise<number> {
    if (!init.isWriter()) return 0
    const signal = options.signal != null ? AbortSignal.any([options.signal, shutdown.signal]) : shutdown.signal
    const live = monitor.peerset()
    const trusted = live.filter(p => init.isTrusted(p))
    if (!trusted.includes(self)) trusted.push(self)
    const now = Date.now()
    let changed = 0
    for (const pin of [...pinset.list()]) {
      if (pin.spread !== true || pin.spread_map == null) continue
      if (pin.expire_at !== ZERO_TIME && Date.parse(pin.expire_at) <= now) continue
      if (closestPeer(heldPinKey(pin.cid), trusted) !== self) continue
      signal.throwIfAborted()
      try {
        if (await balance(pin, live, signal)) changed++
      } catch (err) {
        if (signal.aborted) throw err
        log.error('evening out spread pin %s failed: %e', pin.cid, err)
      }
    }
    // moves of pins gone from the pinset
    for (const key of [...moves.keys()]) if (pinset.get(key) == null) moves.delete(key)
    for (const key of [...settled.keys()]) if (pinset.get(key) == null) settled.delete(key)
    return changed
  }

  async function tick (): Promise<void> {
    if (busy) return
    busy = true
    try {
      await check()
    } catch (err) {
      if (!shutdown.signal.aborted) log.error('spread balance check failed: %e', err)
    } finally {
      busy = false
    }
  }

  return {
    check,
    async start () {
      shutdown = new AbortController()
      if (init.intervalMs > 0) {
        timer = setInterval(() => { void tick() }, init.intervalMs)
        timer.unref()
      }
    },
    async stop () {
      clearInterval(timer)
      shutdown.abort(new ShuttingDownError())
      moves.clear()
      settled.clear()
    }
  }
}
