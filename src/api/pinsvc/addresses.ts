// Where a cluster peer's IPFS node can be dialled, for PinStatus.delegates: this peer's own listen addresses,
// else what the peer reported in its last ping (monitor), else what identify left in the peer store.
import { peerIdFromString } from '@libp2p/peer-id'
import type { Libp2p } from '@libp2p/interface'

export function peerAddresses (libp2p: Pick<Libp2p, 'peerId' | 'getMultiaddrs' | 'peerStore'>, reported?: (peer: string) => string[] | undefined): (peer: string) => Promise<string[]> {
  const self = libp2p.peerId.toString()
  return async peer => {
    if (peer === self) return libp2p.getMultiaddrs().map(String)
    const fromPing = reported?.(peer) ?? []
    if (fromPing.length > 0) return fromPing
    try {
      const known = await libp2p.peerStore.get(peerIdFromString(peer))
      return known.addresses.map(a => `${a.multiaddr.toString()}/p2p/${peer}`)
    } catch {
      return []
    }
  }
}
