// Moving pins off a peer: when its ping expires (repin on peer loss), when it fails a storage audit, and on
// `peers rm` (vacate). Each change is written by exactly one peer: the live trusted peer XOR-closest to the CID
// (as IPFS Cluster does), or the one that found the audit failure or was asked.
import { ShuttingDownError, UnknownPeerError } from '../errors.js'
import { ZERO_TIME } from '../types/wire.js'
import { parseCid } from '../utils/cid.js'
import { heldPinKey } from '../utils/keys.js'
import { closestPeer } from './views.js'
import { requireWriter, type Pins } from './pins.js'
import type { Peerset } from './peerset.js'
import type { AuditorAPI } from '../audit/index.js'
import type { AbortOptions, Monitor, Pinset, Startable } from '../components.js'
import type { Rpc } from '../rpc/index.js'
import type { Pin } from '../types/wire.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export interface RebalanceInit {
  isTrusted: (peerId: string) => boolean
  isWriter: () => boolean
  /** Re-allocate the pins of a peer whose ping expired (default true; IPFS Cluster's default is off). */
  repinOnPeerLoss?: boolean
}

export interface RebalanceComponents {
  peerset: Peerset
  pins: Pick<Pins, 'build'>
  pinset: Pick<Pinset, 'list' | 'put'>
  monitor: Pick<Monitor, 'peerset' | 'onAlert' | 'forgetLost'>
  rpc: Pick<Rpc, 'callOne'>
  trust?: Pick<AuditorAPI, 'onFailed'>
  logger: ComponentLogger
}

export interface Rebalancer extends Startable {
  /**
   * Re-allocates every pin allocated to the peer to other peers, and has every peer forget it if it is lost;
   * UnknownPeerError when it is neither in the peerset, nor lost, nor in any allocation. Resolves with the pins moved.
   */
  vacate(peerId: string, options?: AbortOptions): Promise<number>
}

export function createRebalancer (init: RebalanceInit, components: RebalanceComponents): Rebalancer {
  const { peerset, pinset, monitor } = components
  const log: Logger = components.logger.forComponent('cairn:cluster:rebalance')
  const self = peerset.self
  let running = false
  let shutdown = new AbortController()
  let stopAlerts: (() => void) | undefined
  let stopAuditFailures: (() => void) | undefined

  /** Re-allocates the pins (those `mine` selects) allocated to `gone` without it; returns how many moved. */
  async function reallocateAway (gone: string, mine: (pin: Pin) => boolean, options: AbortOptions = {}): Promise<number> {
    const changed: Pin[] = []
    // allocate among the peers that remain: the departing one is left out even while it is still alive
    const exclude = new Set([gone])
    const now = Date.now()
    for (const pin of [...pinset.list()]) {
      if (!pin.allocations.includes(gone) || !mine(pin)) continue
      options.signal?.throwIfAborted()
      // an expired pin is not moved: expiry removes it (./expiry.ts)
      if (pin.expire_at !== ZERO_TIME && Date.parse(pin.expire_at) <= now) {
        log.error('cannot re-allocate %s away from peer %s: its expire-at %s has passed', pin.cid, gone, pin.expire_at)
        continue
      }
      try {
        const next = await components.pins.build(parseCid(pin.cid), {
          name: pin.name, mode: pin.mode, replication_factor_min: pin.replication_factor_min,
          replication_factor_max: pin.replication_factor_max, shard_size: pin.shard_size,
          expire_at: pin.expire_at, metadata: pin.metadata ?? undefined, origins: pin.origins,
          pin_update: pin.pin_update ?? undefined, spread: pin.spread
        }, { type: pin.type, existing: { ...pin, allocations: pin.allocations.filter(p => p !== gone) }, exclude })
        changed.push({ ...next, reference: pin.reference, user_allocations: pin.user_allocations?.filter(p => p !== gone) ?? null })
      } catch (err) {
        log.error('cannot re-allocate %s away from peer %s: %e', pin.cid, gone, err)
      }
    }
    if (changed.length === 0) return 0
    await pinset.put(changed, options)
    log('re-allocated %d pins away from peer %s', changed.length, gone)
    return changed.length
  }

  /** A peer's ping expired: every pin allocated to it is re-allocated without it. */
  async function repinFrom (lost: string): Promise<void> {
    if (!init.isWriter()) return
    const live = monitor.peerset()
    if (live.includes(lost)) return // it came back
    const trusted = live.filter(p => init.isTrusted(p) && p !== lost)
    if (!trusted.includes(self)) trusted.push(self)
    await reallocateAway(lost, pin => closestPeer(heldPinKey(pin.cid), trusted) === self, { signal: shutdown.signal })
  }

  async function vacate (peerId: string, options: AbortOptions = {}): Promise<number> {
    requireWriter(init.isWriter)
    const peers = await peerset.peers()
    const lost = peerset.lostOutside(peers).some(l => l.peer === peerId)
    const known = lost || peers.includes(peerId) || [...pinset.list()].some(p => p.allocations.includes(peerId))
    if (!known) throw new UnknownPeerError(`unknown peer: ${peerId} is not a cluster peer and holds no allocation`)
    const moved = await reallocateAway(peerId, () => true, options)
    if (lost) {
      // removed: no longer shown as lost, here nor on the other peers (those that do not answer keep showing it)
      monitor.forgetLost(peerId)
      await Promise.all(peers.filter(p => p !== self && p !== peerId).map(async peer => {
        await components.rpc.callOne(peer, 'forgetLost', { peer: peerId }, options).catch(err => { log('%s did not forget lost peer %s: %e', peer, peerId, err) })
      }))
    }
    return moved
  }

  return {
    vacate,
    async start () {
      running = true
      shutdown = new AbortController()
      if (init.repinOnPeerLoss !== false) {
        stopAlerts = monitor.onAlert(alert => {
          if (alert.name === 'ping') void repinFrom(alert.peer).catch(err => { log.error('repinning the pins of lost peer %s failed: %e', alert.peer, err) })
        })
      }
      // the auditor that found a peer failing moves its pins: other trusted peers may not have audited it yet
      stopAuditFailures = components.trust?.onFailed(peer => {
        if (!init.isWriter() || !running) return
        void reallocateAway(peer, () => true).catch(err => { log.error('moving the pins of peer %s, which failed an audit, failed: %e', peer, err) })
      })
    },
    async stop () {
      running = false
      shutdown.abort(new ShuttingDownError())
      stopAlerts?.()
      stopAuditFailures?.()
    }
  }
}
