// The peer's libp2p host, as options: Helia creates the node from them (src/ipfs/), so this module never starts
// anything itself. tcp + noise + yamux; identify, ping, gossipsub, kad-dht, and a small bootstrap redialler.
import { noise } from '@chainsafe/libp2p-noise'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { KEEP_ALIVE } from '@libp2p/interface'
import { kadDHT, passthroughMapper, removePrivateAddressesMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { repeatingTask, type RepeatingTask } from '@libp2p/utils'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { ConfigError } from '../errors.js'
import type { GossipSub } from '@libp2p/gossipsub'
import { createTopicScoreParams, type TopicScoreParams } from '@libp2p/gossipsub/score'
import type { Identify } from '@libp2p/identify'
import type { ComponentLogger, Connection, Logger, PeerId, PeerStore, PrivateKey, Startable } from '@libp2p/interface'
import type { KadDHT } from '@libp2p/kad-dht'
import type { Ping } from '@libp2p/ping'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Datastore } from 'interface-datastore'
import type { Libp2pOptions } from 'libp2p'

export interface DhtInit {
  /** e.g. '/ipfs/kad/1.0.0' (public DHT) or a cluster's own protocol. */
  protocol: string
  /** Client mode does not answer DHT queries; a loopback/LAN cluster needs server mode (false). */
  clientMode: boolean
  /** 'lan' profile: true (passthroughMapper), 'public': false (removePrivateAddressesMapper). */
  keepPrivateAddresses: boolean
}

export interface HostInit {
  /** The peer's identity. */
  privateKey: PrivateKey
  /** Multiaddrs to listen on, e.g. ['/ip4/127.0.0.1/tcp/0']. */
  listen: string[]
  /** Multiaddrs to announce instead of the listen addresses. */
  announce?: string[]
  /** Multiaddrs with /p2p/<id>: dialled on start, kept alive, and redialled every bootstrapInterval when not connected. */
  bootstrap?: string[]
  /** How often to redial disconnected bootstrap peers, in ms. Default 30_000. */
  bootstrapInterval?: number
  dht: DhtInit
  /** The peer's datastore (the peer store is persisted there). */
  datastore: Datastore
  /** Per-peer logger (prefixLogger) so several peers in one process log distinctly. */
  logger?: ComponentLogger
  /** Connection manager limit. Default 300. */
  maxConnections?: number
  /**
   * Gossip topics whose invalid messages (those their validator rejects) lower the sender's gossipsub score, so
   * that a peer sending them is soon no longer read or relayed: the cluster's pinset and metrics topics.
   */
  scoredTopics?: string[]
}

export interface Bootstrapper {
  /** Peer ids of the bootstrap list. */
  readonly peers: PeerId[]
  /** Dial every bootstrap peer we are not connected to now; resolves when all attempts have settled. */
  redial(): Promise<void>
}

// a type, not an interface: libp2p's ServiceMap needs an index signature
export type CairnServices = {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
  dht: KadDHT
  /** Redials the bootstrap list (a no-op service when the list is empty). */
  bootstrap: Bootstrapper
}

export const DEFAULT_MAX_CONNECTIONS = 300

/**
 * Score of a scored topic: only P4, invalid messages (-n² for n invalid messages, halving every minute). With
 * gossipsub's default thresholds a peer gets no gossip from us after 4 invalid messages, none of our publishing
 * after 8, and from 9 on (score below -80) nothing it sends is read at all, until its count has decayed: about
 * 6 minutes after 1,000 invalid messages, 11 after 20,000 (scores of disconnected peers are kept for an hour).
 * The other components are off: P1-P3 reward and demand steady traffic, which the pinset topic does not have
 * (it is quiet for hours, then bursts), so they would only push honest peers out of the mesh. An honest peer
 * may relay a few messages another peer rejects (trusted peers just changed, a clock far off): a few cost it
 * nothing that lasts.
 */
export const SCORED_TOPIC: Partial<TopicScoreParams> = {
  topicWeight: 1,
  timeInMeshWeight: 0,
  firstMessageDeliveriesWeight: 0,
  meshMessageDeliveriesWeight: 0,
  meshFailurePenaltyWeight: 0,
  invalidMessageDeliveriesWeight: -1,
  invalidMessageDeliveriesDecay: 0.5 ** (1 / 60)
}
export const DEFAULT_BOOTSTRAP_INTERVAL = 30_000
/** Tags starting with KEEP_ALIVE make libp2p's reconnect queue redial the peer and the pruner spare it. */
const BOOTSTRAP_TAG = `${KEEP_ALIVE}-cairn-bootstrap`
const BOOTSTRAP_TAG_VALUE = 50

/**
 * libp2p options for one peer (a fresh object per call: each peer needs its own service instances).
 * Validates addresses first: a bad multiaddr is a ConfigError naming it.
 */
export function libp2pOptions (init: HostInit): Libp2pOptions<CairnServices> {
  for (const addr of [...init.listen, ...(init.announce ?? [])]) {
    parseAddr(addr, 'listen/announce')
  }
  const bootstrapList = parseBootstrap(init.bootstrap ?? [])
  const interval = init.bootstrapInterval ?? DEFAULT_BOOTSTRAP_INTERVAL
  if (!(interval > 0)) {
    throw new ConfigError(`bootstrap interval must be a positive number of ms, got ${interval}`)
  }

  return {
    privateKey: init.privateKey,
    datastore: init.datastore,
    ...(init.logger != null ? { logger: init.logger } : {}),
    addresses: {
      listen: init.listen,
      announce: init.announce ?? []
    },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      maxConnections: init.maxConnections ?? DEFAULT_MAX_CONNECTIONS
    },
    // no peerDiscovery (mDNS, public bootstrap), no relay, no autonat/upnp: peers come from config and the DHT
    peerDiscovery: [],
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        globalSignaturePolicy: 'StrictSign',
        scoreParams: {
          topics: Object.fromEntries((init.scoredTopics ?? []).map(topic => [topic, createTopicScoreParams(SCORED_TOPIC)]))
        }
      }),
      dht: kadDHT({
        protocol: init.dht.protocol,
        clientMode: init.dht.clientMode,
        peerInfoMapper: init.dht.keepPrivateAddresses ? passthroughMapper : removePrivateAddressesMapper,
        // cairn's reprovider (src/reprovider/) writes this peer's own provider records and announces them in
        // batched sweeps; kad-dht's own reprovider would also announce each of them again, one lookup per CID, once
        // it is a day old (its default threshold). Threshold 0: only a self record that has expired (no cycle
        // refreshed it for 48 h) is announced by kad-dht. Other peers' expired records are dropped as before.
        reprovide: { threshold: 0 }
      }),
      bootstrap: (components: BootstrapComponents) => new BootstrapRedialler(components, bootstrapList, interval)
    }
  }
}

/**
 * Has gossipsub recompute a peer's score when it next hears from it, instead of using the score it cached for up
 * to a heartbeat (1 s): called after a topic validator rejected a message of that peer, so that a flooding peer is
 * refused after a few hundred messages rather than after a second's worth of them (gossipsub's own note: "Consider
 * clearing score cache on important penalties"). A no-op where the score is not where gossipsub 17 keeps it.
 */
export function rescoreSoon (pubsub: GossipSub, peer: string): void {
  const cache = (pubsub as unknown as { score?: { scoreCache?: Map<string, unknown> } }).score?.scoreCache
  if (!(cache instanceof Map)) return
  // after gossipsub has counted the rejection, which it does once the validator's promise has settled
  setImmediate(() => { cache.delete(peer) })
}

function parseAddr (addr: string, what: string): Multiaddr {
  try {
    return multiaddr(addr)
  } catch (err) {
    throw new ConfigError(`${what}: invalid multiaddr "${addr}": ${(err as Error).message}`)
  }
}

interface BootstrapPeer { id: PeerId, addr: Multiaddr }

function parseBootstrap (list: string[]): BootstrapPeer[] {
  return list.map(addr => {
    const ma = parseAddr(addr, 'bootstrap')
    const p2p = ma.getComponents().findLast(c => c.name === 'p2p')?.value
    if (p2p == null) {
      throw new ConfigError(`bootstrap: multiaddr "${addr}" has no /p2p/<peer id>`)
    }
    try {
      return { id: peerIdFromString(p2p), addr: ma }
    } catch (err) {
      throw new ConfigError(`bootstrap: invalid peer id in "${addr}": ${(err as Error).message}`)
    }
  })
}

/** The slice of libp2p's components the redialler needs. */
interface BootstrapComponents {
  peerId: PeerId
  peerStore: PeerStore
  logger: ComponentLogger
  connectionManager: {
    getConnections(peerId?: PeerId): Connection[]
    openConnection(peer: PeerId | Multiaddr | Multiaddr[], options?: { signal?: AbortSignal }): Promise<Connection>
  }
}

/**
 * @libp2p/bootstrap dials once; a cluster must keep finding its bootstrap peers after they restart, so this
 * service tags them keep-alive (libp2p retries a few times on disconnect) and redials on a timer after that.
 */
class BootstrapRedialler implements Bootstrapper, Startable {
  readonly peers: PeerId[]
  private readonly list: BootstrapPeer[]
  private readonly components: BootstrapComponents
  private readonly interval: number
  private readonly log: Logger
  private task?: RepeatingTask
  private controller?: AbortController
  private running?: Promise<void>
  private quickTimer?: ReturnType<typeof setTimeout>
  private quickRetries = 0

  constructor (components: BootstrapComponents, list: BootstrapPeer[], interval: number) {
    this.components = components
    this.list = list.filter(p => !p.id.equals(components.peerId))
    this.peers = this.list.map(p => p.id)
    this.interval = interval
    this.log = components.logger.forComponent('cairn:libp2p:bootstrap')
  }

  readonly [Symbol.toStringTag] = 'cairn:bootstrap'

  start (): void {
    this.controller = new AbortController()
  }

  async afterStart (): Promise<void> {
    // the tag is persisted with the peer store: peers dropped from the list must stop being kept alive
    const stale = await this.components.peerStore.all({
      filters: [p => p.tags.has(BOOTSTRAP_TAG) && !this.peers.some(id => id.equals(p.id))]
    })
    for (const peer of stale) {
      await this.components.peerStore.merge(peer.id, { tags: { [BOOTSTRAP_TAG]: undefined } })
    }
    if (this.list.length === 0) {
      return
    }
    for (const peer of this.list) {
      await this.components.peerStore.merge(peer.id, {
        multiaddrs: [peer.addr],
        tags: { [BOOTSTRAP_TAG]: { value: BOOTSTRAP_TAG_VALUE } }
      })
    }
    void this.redial()
    this.task = repeatingTask(async () => { await this.redial() }, this.interval)
    this.task.start()
  }

  /** Peers starting together miss each other's first dial: retry soon (1 s, 2 s, 4 s...) until all connect. */
  private scheduleQuickRetry (): void {
    if (this.quickTimer != null || this.controller?.signal.aborted !== false) return
    const delay = Math.min(1000 * 2 ** this.quickRetries++, this.interval)
    this.quickTimer = setTimeout(() => { this.quickTimer = undefined; void this.redial() }, delay)
    this.quickTimer.unref?.()
  }

  async redial (): Promise<void> {
    const signal = this.controller?.signal
    if (signal == null || signal.aborted) {
      return
    }
    // one round at a time: a slow dial must not pile up rounds
    let missed = 0
    this.running ??= Promise.all(this.list.map(async peer => {
      if (this.components.connectionManager.getConnections(peer.id).length > 0) {
        return
      }
      try {
        await this.components.connectionManager.openConnection(peer.id, { signal: AbortSignal.any([signal, AbortSignal.timeout(10_000)]) })
        this.log('connected to bootstrap peer %p', peer.id)
      } catch (err) {
        missed++
        this.log('could not dial bootstrap peer %p - %e', peer.id, err)
      }
    })).then(() => {
      if (missed > 0) this.scheduleQuickRetry()
      else this.quickRetries = 0
    }).finally(() => { this.running = undefined })
    await this.running
  }

  async stop (): Promise<void> {
    this.task?.stop()
    clearTimeout(this.quickTimer)
    this.task = undefined
    this.controller?.abort()
    await this.running
  }
}
