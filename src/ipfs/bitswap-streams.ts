// One long-lived outbound bitswap stream per peer, shared by everything this node sends to that peer (blocks,
// presences, its own wants). A new stream per message, as @helia/bitswap 4 opens, costs a protocol negotiation
// each time and made its want messages queue behind each other; receivers (Helia, Kubo) read any number of
// length-prefixed messages from one stream.
import { Uint8ArrayList } from 'uint8arraylist'
import { varintBytes } from './bitswap-wire.js'
import type { AbortOptions } from '../components.js'
import type { ComponentLogger, Libp2p, Logger, PeerId, Stream } from '@libp2p/interface'

export interface OutboundStreamsInit {
  protocol: string
  /** Opening a stream, or a write waiting for the peer to read, gives up after this. */
  sendTimeoutMs: number
  /** A stream nothing was written to for this long is closed (under the receiver's own idle timeout). */
  idleCloseMs: number
}

export interface OutboundStreamsComponents {
  libp2p: Pick<Libp2p, 'dialProtocol'>
  logger: ComponentLogger
}

interface PeerStream {
  peer: PeerId
  stream?: Stream
  opening?: Promise<Stream>
  idleTimer?: ReturnType<typeof setTimeout>
}

export class OutboundStreams {
  private readonly init: OutboundStreamsInit
  private readonly components: OutboundStreamsComponents
  private readonly log: Logger
  private readonly peers = new Map<string, PeerStream>()
  private stopped = false

  constructor (init: OutboundStreamsInit, components: OutboundStreamsComponents) {
    this.init = init
    this.components = components
    this.log = components.logger.forComponent('cairn:ipfs:bitswap-streams')
  }

  /**
   * Writes one message (its length prefix is added here) on the peer's stream, opening one when there is none;
   * waits while the peer is not reading. A failed write resets that stream: the next write opens a new one.
   */
  async write (peer: PeerId, message: Uint8ArrayList, options: AbortOptions = {}): Promise<void> {
    if (this.stopped) throw new Error('bitswap is stopped')
    const entry = this.entryFor(peer)
    clearTimeout(entry.idleTimer)
    const stream = await this.open(entry, options)
    const frame = new Uint8ArrayList(varintBytes(message.byteLength), ...message)
    try {
      if (!stream.send(frame)) {
        const timeout = AbortSignal.timeout(this.init.sendTimeoutMs)
        await stream.onDrain({ signal: options.signal != null ? AbortSignal.any([options.signal, timeout]) : timeout })
      }
    } catch (err) {
      this.reset(entry, stream, err as Error)
      throw err
    }
    this.armIdleClose(entry)
  }

  /** Closes the peer's stream, if any (it disconnected, or we have nothing more for it). */
  close (peer: PeerId): void {
    const entry = this.peers.get(peer.toString())
    if (entry == null) return
    this.peers.delete(peer.toString())
    clearTimeout(entry.idleTimer)
    if (entry.stream != null) this.closeGracefully(entry.stream)
  }

  stop (): void {
    this.stopped = true
    for (const entry of this.peers.values()) {
      clearTimeout(entry.idleTimer)
      if (entry.stream != null) this.closeGracefully(entry.stream)
    }
    this.peers.clear()
  }

  private entryFor (peer: PeerId): PeerStream {
    const id = peer.toString()
    let entry = this.peers.get(id)
    if (entry == null) {
      entry = { peer }
      this.peers.set(id, entry)
    }
    return entry
  }

  private async open (entry: PeerStream, options: AbortOptions): Promise<Stream> {
    const current = entry.stream
    if (current != null && current.status === 'open' && current.writeStatus === 'writable') return current
    entry.stream = undefined
    entry.opening ??= (async () => {
      const timeout = AbortSignal.timeout(this.init.sendTimeoutMs)
      const stream = await this.components.libp2p.dialProtocol(entry.peer, this.init.protocol, {
        signal: options.signal != null ? AbortSignal.any([options.signal, timeout]) : timeout
      })
      // we only write on it; the receiver answers on streams of its own
      await stream.closeRead().catch(() => {})
      if (this.stopped) {
        stream.abort(new Error('bitswap is stopped'))
        throw new Error('bitswap is stopped')
      }
      entry.stream = stream
      return stream
    })().finally(() => { entry.opening = undefined })
    return await entry.opening
  }

  private reset (entry: PeerStream, stream: Stream, err: Error): void {
    if (entry.stream === stream) entry.stream = undefined
    clearTimeout(entry.idleTimer)
    this.log('write to %p failed, stream reset - %e', entry.peer, err)
    stream.abort(err)
  }

  private armIdleClose (entry: PeerStream): void {
    clearTimeout(entry.idleTimer)
    entry.idleTimer = setTimeout(() => {
      const stream = entry.stream
      entry.stream = undefined
      if (stream != null) this.closeGracefully(stream)
    }, this.init.idleCloseMs)
    entry.idleTimer.unref?.()
  }

  private closeGracefully (stream: Stream): void {
    stream.close({ signal: AbortSignal.timeout(this.init.sendTimeoutMs) }).catch(err => {
      stream.abort(err as Error)
    })
  }
}
