// How the reprovider reaches its DHT's first peers: the dht.bootstrap list, dialled at start and whenever the
// routing table is empty, and what the user is told when that list is empty or none of it answers.
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Libp2p } from '@libp2p/interface'

/** What bootstrapNotice looks at: the cluster config's DHT settings and this peer's id. */
export interface BootstrapNoticeInit {
  /** dht.profile */
  profile: 'public' | 'lan'
  /** dht.bootstrap as in effect (the profile's default already applied). */
  dhtBootstrap: readonly string[]
  /** The cluster's own bootstrap peers (top-level `bootstrap`): they run the same DHT. */
  clusterBootstrap: readonly string[]
  /** This peer's id: itself in a bootstrap list does not count. */
  self: string
}

/**
 * The line a user should see at start when this peer has no DHT peer to start from (undefined when it has).
 * Without one, the reprovider announces nothing and no outside node finds what the peer holds.
 */
export function bootstrapNotice (init: BootstrapNoticeInit): string | undefined {
  const others = (list: readonly string[]): number => list.filter(a => peerOf(a) !== init.self).length
  if (others(init.dhtBootstrap) > 0) return undefined
  const howTo = init.profile === 'public'
    ? 'remove dht.bootstrap from the cluster config to use the IPFS public bootstrap peers, or list DHT peers there'
    : 'list the DHT\'s peers in dht.bootstrap (dht.profile "lan" has no default list)'
  if (others(init.clusterBootstrap) === 0) {
    return `dht.bootstrap is empty (and so is bootstrap): this peer knows no DHT peer, so the CIDs it holds are not findable through the DHT until some DHT peer dials it; ${howTo}`
  }
  return init.profile === 'public'
    ? `dht.bootstrap is empty: this peer reaches the public DHT only through the cluster's bootstrap peers (bootstrap); ${howTo}`
    : undefined
}

/** The result of one round of bootstrap dials. */
export interface BootstrapRound {
  /** Peers dialled (those already connected, and this peer itself, are not). */
  dialled: number
  /** The dials that failed, with why. */
  failed: Array<{ addr: string, error: Error }>
}

/**
 * Dials each listed peer not connected now (a /dnsaddr is resolved by libp2p: offline, that fails like any dial).
 * Never throws for a failed dial; `timeoutMs` bounds each one.
 */
export async function dialBootstrap (libp2p: Libp2p, list: readonly string[], options: { signal?: AbortSignal, timeoutMs: number }): Promise<BootstrapRound> {
  const round: BootstrapRound = { dialled: 0, failed: [] }
  await Promise.all(list.map(async addr => {
    const ma = multiaddr(addr)
    const id = peerOf(addr)
    if (id == null) return
    const peer = peerIdFromString(id)
    if (peer.equals(libp2p.peerId) || libp2p.getConnections(peer).length > 0) return
    round.dialled++
    try {
      await libp2p.dial(ma, { signal: AbortSignal.any([AbortSignal.timeout(options.timeoutMs), ...(options.signal != null ? [options.signal] : [])]) })
    } catch (err) {
      round.failed.push({ addr, error: err as Error })
    }
  }))
  return round
}

function peerOf (addr: string): string | undefined {
  try {
    return multiaddr(addr).getComponents().findLast(c => c.name === 'p2p')?.value
  } catch {
    return undefined
  }
}
