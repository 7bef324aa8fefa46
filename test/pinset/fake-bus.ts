// An in-memory stand-in for the libp2p host a pinset is given (yjs' test connector, in libp2p's shape): gossip is
// queued until the test flushes it, links are made and cut by the test, and catch-up streams are in-memory stream
// pairs. Only what createPinset's components use is there: pubsub (topic validators, message events, publish),
// handle/dialProtocol, peer:identify events, getConnections and the peer store's protocols.
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { streamPair } from '@libp2p/utils'
import type { PinsetComponents } from '../../src/pinset/index.js'
import type { PeerId, PrivateKey, Stream } from '@libp2p/interface'

type Validator = (from: PeerId, msg: { type: 'signed', from: PeerId, topic: string, data: Uint8Array }) => Promise<TopicValidatorResult> | TopicValidatorResult
type Handler = (stream: Stream, connection: { remotePeer: PeerId }) => void

interface Gossip { from: FakeHost, topic: string, data: Uint8Array }

export class FakeHost extends EventTarget {
  readonly peerId: PeerId
  readonly handlers = new Map<string, Handler>()
  readonly links = new Set<FakeHost>()
  readonly topics = new Set<string>()
  readonly services: { pubsub: FakePubsub }
  readonly peerStore = {
    get: async (peer: PeerId): Promise<{ protocols: string[] }> => {
      const remote = [...this.links].find(h => h.peerId.equals(peer))
      if (remote == null) throw new Error(`${peer.toString()} is not known`)
      return { protocols: [...remote.handlers.keys()] }
    }
  }

  constructor (privateKey: PrivateKey, readonly bus: FakeBus) {
    super()
    this.peerId = peerIdFromPrivateKey(privateKey)
    this.services = { pubsub: new FakePubsub(this) }
  }

  /** What createPinset takes as components.libp2p (only the parts it uses are real). */
  asLibp2p (): PinsetComponents['libp2p'] {
    return this as unknown as PinsetComponents['libp2p']
  }

  async handle (protocol: string, handler: Handler): Promise<void> { this.handlers.set(protocol, handler) }
  async unhandle (protocol: string): Promise<void> { this.handlers.delete(protocol) }
  getConnections (): Array<{ remotePeer: PeerId }> { return [...this.links].map(h => ({ remotePeer: h.peerId })) }

  async dialProtocol (peer: PeerId, protocol: string, options: { signal?: AbortSignal } = {}): Promise<Stream> {
    options.signal?.throwIfAborted()
    const remote = [...this.links].find(h => h.peerId.equals(peer))
    if (remote == null) throw new Error(`not connected to ${peer.toString()}`)
    const handler = remote.handlers.get(protocol)
    if (handler == null) throw new Error(`${peer.toString()} does not speak ${protocol}`)
    const [outbound, inbound] = await streamPair({ protocol })
    handler(inbound, { remotePeer: this.peerId })
    return outbound
  }
}

class FakePubsub extends EventTarget {
  readonly topicValidators = new Map<string, Validator>()

  constructor (private readonly host: FakeHost) { super() }

  subscribe (topic: string): void { this.host.topics.add(topic) }
  unsubscribe (topic: string): void { this.host.topics.delete(topic) }

  async publish (topic: string, data: Uint8Array): Promise<{ recipients: PeerId[] }> {
    this.host.bus.queue.push({ from: this.host, topic, data })
    return { recipients: [] }
  }
}

export class FakeBus {
  readonly queue: Gossip[] = []

  host (privateKey: PrivateKey): FakeHost {
    return new FakeHost(privateKey, this)
  }

  /** Links two hosts; each is told the other's protocols (as identify does), which starts a catch-up. */
  connect (a: FakeHost, b: FakeHost): void {
    a.links.add(b)
    b.links.add(a)
    a.dispatchEvent(new CustomEvent('peer:identify', { detail: { peerId: b.peerId, protocols: [...b.handlers.keys()] } }))
    b.dispatchEvent(new CustomEvent('peer:identify', { detail: { peerId: a.peerId, protocols: [...a.handlers.keys()] } }))
  }

  disconnect (a: FakeHost, b: FakeHost): void {
    a.links.delete(b)
    b.links.delete(a)
  }

  /**
   * Delivers the queued gossip (and what it leads to) to the publisher's linked subscribers, through their topic
   * validators as gossipsub does; returns how many deliveries were accepted. Gossip to a host not linked now is
   * lost, as on a network.
   */
  async flush (): Promise<number> {
    let accepted = 0
    while (this.queue.length > 0) {
      const { from, topic, data } = this.queue.shift()!
      for (const to of from.links) {
        if (!to.topics.has(topic)) continue
        const pubsub = to.services.pubsub
        const msg = { type: 'signed' as const, from: from.peerId, topic, data }
        const verdict = await pubsub.topicValidators.get(topic)?.(from.peerId, msg) ?? TopicValidatorResult.Accept
        if (verdict !== TopicValidatorResult.Accept) continue
        accepted++
        pubsub.dispatchEvent(new CustomEvent('message', { detail: msg }))
      }
    }
    return accepted
  }
}
