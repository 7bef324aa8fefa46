// What the cluster says about its peers: this peer's ID, every peer's (GET /peers, asked over RPC, then the
// lost ones), and who is connected to whom (GET /health/graph).
import { VERSION } from '../version.js'
import { lostPeerError } from '../types/wire.js'
import { holds } from './views.js'
import type { Peerset } from './peerset.js'
import type { AuditorAPI } from '../audit/index.js'
import type { AbortOptions, Pinset } from '../components.js'
import type { Rpc } from '../rpc/index.js'
import type { ConnectGraph, IDInfo } from '../types/wire.js'
import type { ComponentLogger, Libp2p, Logger } from '@libp2p/interface'

export const RPC_PROTOCOL_VERSION = '/cairn/rpc/1.0.0'

export interface PeerInfoInit {
  peername: string
  isTrusted: (peerId: string) => boolean
  /** Whether this peer is in trusted_peers (isTrusted is true of itself on every peer, followers too). */
  isWriter: () => boolean
}

export interface PeerInfoComponents {
  libp2p: Libp2p
  peerset: Peerset
  rpc: Pick<Rpc, 'callOne'>
  pinset: Pick<Pinset, 'list'>
  trust?: Pick<AuditorAPI, 'peerTrust'>
  logger: ComponentLogger
}

export interface PeerInfo {
  /** This peer's ID (GET /id, and the RPC `id` other peers ask for). */
  id(): Promise<IDInfo>
  /** The peerset's IDs, then those of lost peers. */
  peers(options?: AbortOptions): AsyncIterable<IDInfo>
  graph(options?: AbortOptions): Promise<ConnectGraph>
}

export function createPeerInfo (init: PeerInfoInit, components: PeerInfoComponents): PeerInfo {
  const { libp2p, peerset, rpc } = components
  const log: Logger = components.logger.forComponent('cairn:cluster:peer-info')
  const self = peerset.self

  async function id (): Promise<IDInfo> {
    const peers = await peerset.peers()
    const addresses = libp2p.getMultiaddrs().map(String)
    const others = peers.filter(p => p !== self)
    const otherAddrs: string[] = []
    for (const p of others) {
      for (const conn of libp2p.getConnections()) if (conn.remotePeer.toString() === p) otherAddrs.push(`${conn.remoteAddr.toString()}`)
    }
    return {
      id: self,
      addresses,
      cluster_peers: peers,
      cluster_peers_addresses: otherAddrs,
      version: VERSION,
      commit: '',
      rpc_protocol_version: RPC_PROTOCOL_VERSION,
      error: '',
      ipfs: { id: self, addresses, error: '' },
      peername: init.peername,
      trusted: init.isWriter()
    }
  }

  /** This peer's judgment of the peer's storage (cairn extension fields: IPFS Cluster's are left as they are). */
  function withTrust (info: IDInfo): IDInfo {
    const trust = components.trust
    if (trust == null) return info
    const t = trust.peerTrust(info.id)
    return { ...info, trust: t.trust, audits: { passed: t.audits_passed, failed: t.audits_failed, last: t.last_audit, error: t.last_error } }
  }

  async function * peers (options?: AbortOptions): AsyncIterable<IDInfo> {
    const members = await peerset.peers()
    const results = await Promise.all(members.map(async (peer): Promise<IDInfo> => {
      if (peer === self) return await id()
      try {
        const info = await rpc.callOne<IDInfo>(peer, 'id', {}, options)
        peerset.setName(peer, info.peername)
        // whether it is trusted is this peer's config to say, not the peer's own claim
        return { ...info, trusted: init.isTrusted(peer) }
      } catch (err) {
        return {
          id: peer, addresses: [], cluster_peers: [], cluster_peers_addresses: [], version: '', commit: '',
          rpc_protocol_version: '', error: (err as Error).message, ipfs: { id: '', addresses: [], error: '' }, peername: peerset.nameOf(peer),
          trusted: init.isTrusted(peer)
        }
      }
    }))
    yield * results.map(withTrust)
    // lost peers, with what they were last seen as and how many pins are allocated to them
    const lost = peerset.lostOutside(members)
    if (lost.length === 0) return
    const held = new Map(lost.map(l => [l.peer, 0]))
    for (const pin of components.pinset.list()) {
      for (const l of lost) if (holds(pin, l.peer)) held.set(l.peer, (held.get(l.peer) ?? 0) + 1)
    }
    for (const l of lost) {
      const n = held.get(l.peer) ?? 0
      yield withTrust({
        id: l.peer, addresses: l.addresses, cluster_peers: [], cluster_peers_addresses: [], version: '', commit: '', rpc_protocol_version: '',
        error: `${lostPeerError(l.since)}; ${n} pin${n === 1 ? '' : 's'} allocated to it`,
        ipfs: { id: l.peer, addresses: l.addresses, error: '' }, peername: l.peer_name, trusted: init.isTrusted(l.peer)
      })
    }
  }

  async function graph (options: AbortOptions = {}): Promise<ConnectGraph> {
    const members = await peerset.peers()
    const out: ConnectGraph = {
      cluster_id: self, id_to_peername: {}, ipfs_links: {}, cluster_links: {}, cluster_trust_links: {}, cluster_to_ipfs: {}
    }
    const inCluster = new Set(members)
    await Promise.all(members.map(async peer => {
      out.cluster_trust_links[peer] = init.isTrusted(peer)
      // one host: a peer's IPFS identity is its cluster identity
      out.cluster_to_ipfs[peer] = peer
      out.id_to_peername[peer] = peerset.nameOf(peer)
      try {
        const connected = peer === self
          ? libp2p.getPeers().map(String)
          : await rpc.callOne<string[]>(peer, 'connections', {}, options)
        out.ipfs_links[peer] = connected.filter(p => p !== peer).sort()
        out.cluster_links[peer] = connected.filter(p => p !== peer && inCluster.has(p)).sort()
      } catch (err) {
        log('graph: %s did not answer: %e', peer, err)
        out.ipfs_links[peer] = []
        out.cluster_links[peer] = []
      }
    }))
    return out
  }

  return { id, peers, graph }
}
