// Pins whose expire_at has passed are removed by the live trusted peer XOR-closest to the CID, so one peer
// writes each removal (and another takes over when that one is down). Pins with an expiry are indexed from
// pinset changes, so a check never scans the whole pinset.
import { ShuttingDownError } from '../errors.js'
import { heldPinKey, type PinKey } from '../utils/keys.js'
import { ZERO_TIME } from '../types/wire.js'
import { closestPeer } from './views.js'
import type { Monitor, Pinset, Startable } from '../components.js'
import type { Pin } from '../types/wire.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export interface ExpiryInit {
  isTrusted: (peerId: string) => boolean
  /** false on followers: they never write the pinset. */
  isWriter: () => boolean
  /** How often expired pins are looked for (default 10 s). */
  intervalMs?: number
}

export interface ExpiryComponents {
  /** This peer's id. */
  self: string
  pinset: Pick<Pinset, 'onChange' | 'list' | 'has' | 'remove'>
  monitor: Pick<Monitor, 'peerset'>
  logger: ComponentLogger
}

export function createExpiry (init: ExpiryInit, components: ExpiryComponents): Startable {
  const { self, pinset, monitor } = components
  const log: Logger = components.logger.forComponent('cairn:cluster:expiry')
  /** heldPinKey -> expiry (ms since epoch) of every pin that has one. */
  const expiring = new Map<PinKey, number>()
  let timer: NodeJS.Timeout | undefined
  let stopIndex: (() => void) | undefined
  let shutdown = new AbortController()

  function index (pin: Pin): void {
    const key = heldPinKey(pin.cid)
    const t = pin.expire_at === ZERO_TIME ? NaN : Date.parse(pin.expire_at)
    if (Number.isNaN(t)) expiring.delete(key)
    else expiring.set(key, t)
  }

  async function removeExpired (): Promise<void> {
    if (!init.isWriter() || expiring.size === 0) return
    const now = Date.now()
    const due = [...expiring].filter(([, t]) => t <= now).map(([cid]) => cid)
    if (due.length === 0) return
    const trusted = monitor.peerset().filter(p => init.isTrusted(p))
    if (!trusted.includes(self)) trusted.push(self)
    const mine = due.filter(cid => closestPeer(cid, trusted) === self && pinset.has(cid))
    if (mine.length === 0) return
    await pinset.remove(mine, { signal: shutdown.signal })
    log('removed %d expired pins', mine.length)
  }

  return {
    async start () {
      shutdown = new AbortController()
      stopIndex = pinset.onChange(change => {
        for (const pin of change.added) index(pin)
        for (const cid of change.removed) expiring.delete(heldPinKey(cid))
      })
      for (const pin of pinset.list()) index(pin)
      timer = setInterval(() => {
        void removeExpired().catch(err => { log.error('removing expired pins failed: %e', err) })
      }, init.intervalMs ?? 10_000)
      timer.unref()
    },
    async stop () {
      shutdown.abort(new ShuttingDownError())
      clearInterval(timer)
      stopIndex?.()
    }
  }
}
