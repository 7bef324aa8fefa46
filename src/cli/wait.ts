// --wait: poll the global status until every peer that should hold the pin has it.
import { setTimeout as sleep } from 'node:timers/promises'
import { formatDuration } from './parse.js'
import type { Session } from './session.js'
import { isLostPeerError, type GlobalPinInfo, type Pin } from '../types/wire.js'

/** ipfs-cluster-ctl's check interval. */
const POLL_MS = 1000

/**
 * Resolves with the status once every allocated peer (every non-remote peer not lost when pinned everywhere) reports
 * `pinned`; throws as soon as one reports `pin_error`, or when timeoutMs (0 = forever) runs out.
 */
export async function waitPinned (s: Session, pin: Pin, timeoutMs = 0): Promise<GlobalPinInfo> {
  const deadline = timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined
  const bar = s.progress('pinned', String)
  let progress = ''
  try {
    for (;;) {
      const status = await s.client.status(pin.cid, { signal: deadline })
      // pinned everywhere: every peer but those not to hold it and those lost (they pin it when back)
      const peers = pin.allocations?.length > 0
        ? pin.allocations
        : Object.keys(status.peer_map).filter(id => status.peer_map[id].status !== 'remote' && !isLostPeerError(status.peer_map[id].error))
      const failed = peers.find(id => status.peer_map[id]?.status === 'pin_error')
      if (failed != null) {
        const info = status.peer_map[failed]
        throw new Error(`${info.peername || failed} could not pin ${pin.cid}: ${info.error || 'pin_error'}`)
      }
      const pinned = peers.filter(id => status.peer_map[id]?.status === 'pinned').length
      const now = `${pinned}/${peers.length} peers pinned`
      if (bar != null) bar.update(pinned, peers.length)
      else if (now !== progress) s.note(`waiting for ${pin.cid}: ${now}`)
      progress = now
      if (peers.length > 0 && pinned === peers.length) return status
      await sleep(POLL_MS, undefined, { signal: deadline })
    }
  } catch (err) {
    if (deadline?.aborted === true) throw new Error(`gave up waiting for ${pin.cid} after ${formatDuration(timeoutMs)}: ${progress || 'no status yet'}`)
    throw err
  } finally {
    bar?.stop()
  }
}
