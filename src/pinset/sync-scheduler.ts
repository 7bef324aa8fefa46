// When the pinset catches up, and from whom: a peer that speaks the catch-up protocol when it is identified,
// a peer whose gossip showed a gap or gave notice, and a periodic safety resync with a few trusted peers. Trusted
// peers first; a stranger only when no trusted peer is connected or trusted peers left gaps (sources.ts).
import { repeatingTask, type RepeatingTask } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import type { AbortOptions } from '../components.js'
import type { SyncSources } from './sources.js'
import type { PinsetStore, SeqTracker } from './store.js'
import type { Verifier } from './verify.js'
import type { ComponentLogger, Libp2p, Logger, PeerId } from '@libp2p/interface'

function shuffle<T> (items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]]
  }
  return items
}

export interface SyncSchedulerInit {
  /** The catch-up protocol (pinsetSyncProtocol). */
  protocol: string
  /** This peer. */
  self: string
  /** Safety resync with connected peers (default 30 s). */
  syncIntervalMs?: number
}

export interface SyncSchedulerComponents {
  libp2p: Pick<Libp2p, 'getConnections' | 'peerStore' | 'addEventListener' | 'removeEventListener'>
  seqs: SeqTracker
  store: PinsetStore
  verifier: Verifier
  sources: SyncSources
  logger: ComponentLogger
  isStarted: () => boolean
  /** Catches up from one peer (the sync client). */
  syncWith: (peerId: string, options?: AbortOptions) => Promise<number>
}

export class SyncScheduler {
  private readonly log: Logger
  private task?: RepeatingTask
  private round?: Promise<void>
  private readonly onIdentify = (evt: CustomEvent<{ peerId: PeerId, protocols: string[] }>): void => {
    if (evt.detail.protocols.includes(this.init.protocol)) this.syncInBackground(evt.detail.peerId.toString())
  }

  constructor (private readonly init: SyncSchedulerInit, private readonly components: SyncSchedulerComponents) {
    this.log = components.logger.forComponent('cairn:pinset')
  }

  /** Listens for identified peers and starts the periodic resync timer (start() of the pinset runs the first round). */
  start (): void {
    this.components.libp2p.addEventListener('peer:identify', this.onIdentify)
    this.task = repeatingTask(() => { this.periodicSync() }, this.init.syncIntervalMs ?? 30_000)
    this.task.start()
  }

  stop (): void {
    this.task?.stop()
    this.components.libp2p.removeEventListener('peer:identify', this.onIdentify)
  }

  /** The periodic round under way, if any (stop() waits for it). */
  pending (): Promise<void> | undefined { return this.round }

  /** A reason to catch up with a peer (it connected, gave notice, or gossip showed a gap): trusted peers first. */
  syncInBackground (peerId: string): void {
    // nothing pulled could be stored (the disk filled): the catch-up after the restart
    if (!this.components.isStarted() || peerId === this.init.self || this.components.store.refusal() != null) return
    if (this.components.verifier.trusts(peerId)) {
      this.components.syncWith(peerId).catch(err => { this.log('catch-up with %s failed: %e', peerId, err) })
      return
    }
    this.syncStrangers([peerId]).catch(err => { this.log.error('catch-up with strangers failed: %e', err) })
  }

  /** Safety resync (also repairs missed gossip): a few trusted peers, then maybe a stranger. One round at a time. */
  periodicSync (): void {
    if (this.round != null || !this.components.isStarted()) return
    this.round = this.syncRound()
      .catch(err => { this.log.error('the periodic catch-up failed: %e', err) })
      .finally(() => { this.round = undefined })
  }

  /** Connected peers that speak our catch-up protocol (and did not misbehave lately), trusted ones apart. */
  private async connectedSources (): Promise<{ trusted: string[], strangers: string[] }> {
    const { libp2p, sources, verifier } = this.components
    const peers = new Set<string>()
    for (const conn of libp2p.getConnections()) peers.add(conn.remotePeer.toString())
    const trusted: string[] = []
    const strangers: string[] = []
    for (const peer of peers) {
      if (sources.isBanned(peer)) continue
      const protocols = await libp2p.peerStore.get(peerIdFromString(peer)).then(p => p.protocols, (): string[] => [])
      if (!protocols.includes(this.init.protocol)) continue
      if (verifier.trusts(peer)) trusted.push(peer)
      else strangers.push(peer)
    }
    return { trusted, strangers }
  }

  /**
   * Asks one of the strangers, when trusted peers cannot give what is missing: none is connected, or gaps are
   * left. One stranger at a time, each at most every strangerSyncIntervalMs.
   */
  private async syncStrangers (candidates: string[]): Promise<void> {
    const { sources } = this.components
    if (candidates.length === 0) return
    if (!this.components.seqs.hasGaps() && (await this.connectedSources()).trusted.length > 0) return
    for (const peer of candidates) {
      if (!this.components.isStarted()) return
      if (!sources.claimStranger(peer)) continue
      try {
        await this.components.syncWith(peer)
      } catch (err) {
        this.log('catch-up with stranger %s failed: %e', peer, err)
      } finally {
        sources.releaseStranger()
      }
      return
    }
  }

  private async syncRound (): Promise<void> {
    this.components.sources.prune()
    const { trusted, strangers } = await this.connectedSources()
    await Promise.allSettled(shuffle(trusted).slice(0, 3).map(async peer => {
      await this.components.syncWith(peer).catch(err => { this.log('catch-up with %s failed: %e', peer, err) })
    }))
    if (this.components.isStarted()) await this.syncStrangers(shuffle(strangers))
  }
}
