// Membership: who takes part in the cluster now. Peers with a live ping (the monitor), plus connected peers
// that identified as speaking the cluster's protocols (before their first ping arrives); their names; the lost.
import { rpcProtocol } from '../rpc/index.js'
import type { LostPeer, Monitor, Startable } from '../components.js'
import type { Identify } from '@libp2p/identify'
import type { ComponentLogger, Libp2p, Logger, PeerId } from '@libp2p/interface'

/** A connected peer that is not a cluster peer is identified again this long after, then with doubling gaps. */
const STRANGER_FIRST_RETRY_MS = 5000
const STRANGER_RETRIES = 5

export interface PeersetInit {
  cluster: string
  peername: string
  /** A connected stranger is identified again after this, then with doubling gaps, 5 times (default 5 s). */
  strangerRetryMs?: number
  /** Whether a peer may take part at all (default: anyone); asked at every use. */
  isMember?: (peerId: string) => boolean
}

export interface PeersetComponents {
  libp2p: Libp2p
  monitor: Pick<Monitor, 'peerset' | 'peerInfo' | 'lost'>
  logger: ComponentLogger
}

export interface Peerset extends Startable {
  /** This peer's id. */
  readonly self: string
  /** Peers taking part in the cluster now (this one included), by id. */
  peers(): Promise<string[]>
  /** A peer's name as last heard ('' when never). */
  nameOf(peer: string): string
  /** Records a peer's name from one of its answers. */
  setName(peer: string, name: string): void
  /** Lost peers (their ping expired; not back, not removed) other than those of `peers`. */
  lostOutside(peers: string[]): LostPeer[]
}

export function createPeerset (init: PeersetInit, components: PeersetComponents): Peerset {
  return new ClusterPeerset(init, components)
}

class ClusterPeerset implements Peerset {
  readonly self: string
  private readonly log: Logger
  private readonly names = new Map<string, string>()
  private readonly protocol: string
  /** Connected peers known to speak this cluster's protocols (kept from libp2p events, no store reads). */
  private readonly members = new Set<string>()
  private memberTimer?: NodeJS.Timeout
  /** Connected peers that did not identify as cluster peers: when each is asked again, and how often it was. */
  private readonly strangers = new Map<string, { attempts: number, next: number }>()

  constructor (private readonly init: PeersetInit, private readonly components: PeersetComponents) {
    this.log = components.logger.forComponent('cairn:cluster:peerset')
    this.self = components.libp2p.peerId.toString()
    this.names.set(this.self, init.peername)
    this.protocol = rpcProtocol(init.cluster)
  }

  async start (): Promise<void> {
    const { libp2p } = this.components
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
  }

  async stop (): Promise<void> {
    const { libp2p } = this.components
    clearInterval(this.memberTimer)
    libp2p.removeEventListener('peer:identify', this.onIdentify)
    libp2p.removeEventListener('peer:update', this.onUpdate)
    libp2p.removeEventListener('peer:disconnect', this.onDisconnect)
  }

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

  async peers (): Promise<string[]> {
    const { libp2p, monitor } = this.components
    const connected = new Set(libp2p.getPeers().map(String))
    const out = new Set([this.self])
    for (const p of monitor.peerset()) out.add(p)
    for (const p of this.members) if (connected.has(p) && this.init.isMember?.(p) !== false) out.add(p)
    for (const p of out) {
      const name = monitor.peerInfo(p)?.peer_name
      if (name != null && name !== '') this.names.set(p, name)
    }
    return [...out]
  }

  nameOf (peer: string): string {
    return this.names.get(peer) ?? ''
  }

  setName (peer: string, name: string): void {
    this.names.set(peer, name)
  }

  lostOutside (peers: string[]): LostPeer[] {
    return this.components.monitor.lost().filter(l => !peers.includes(l.peer))
  }
}
