// The kad-dht wire format, the few fields the reprovider needs. @libp2p/kad-dht 16 does not export its Message
// codec, so ADD_PROVIDER and PING are written here (dht.proto: Message{type=1, key=2, providers=9},
// PeerInfo{id=1, multiaddrs=2}), framed with an unsigned-varint length like every kad message.
//
// A channel keeps one stream per DHT peer and writes many ADD_PROVIDER messages on it back to back; the peer
// handles the messages of a stream one after another, so a PING at the end answered by the peer means every
// record before it was stored: that is the acknowledgement ADD_PROVIDER itself does not have.
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

const FIELD_TYPE = 0x08 // field 1, varint
const FIELD_KEY = 0x12 // field 2, bytes
const FIELD_PROVIDERS = 0x4a // field 9, bytes
const PEER_ID = 0x0a // PeerInfo field 1, bytes
const PEER_ADDRS = 0x12 // PeerInfo field 2, bytes
/** MessageType values on the wire (kad-dht exports the enum with string members). */
export const ADD_PROVIDER = 2
export const PING = 5

/** Messages per write on the stream. */
const WRITE_CHUNK = 256

export function varint (n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return out
}

function field (tag: number, bytes: Uint8Array): Uint8Array {
  const head = [tag, ...varint(bytes.byteLength)]
  const out = new Uint8Array(head.length + bytes.byteLength)
  out.set(head)
  out.set(bytes, head.length)
  return out
}

function concat (parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.byteLength
  }
  return out
}

/** The `providers` field of ADD_PROVIDER: this peer and its addresses, the same in every message. */
export function providerField (peerId: PeerId, addrs: Multiaddr[]): Uint8Array {
  const info = concat([field(PEER_ID, peerId.toMultihash().bytes), ...addrs.map(a => field(PEER_ADDRS, a.bytes))])
  return field(FIELD_PROVIDERS, info)
}

/** One ADD_PROVIDER message (without its length prefix). */
export function addProviderMessage (mh: Uint8Array, provider: Uint8Array): Uint8Array {
  const key = field(FIELD_KEY, mh)
  const out = new Uint8Array(2 + key.byteLength + provider.byteLength)
  out[0] = FIELD_TYPE
  out[1] = ADD_PROVIDER
  out.set(key, 2)
  out.set(provider, 2 + key.byteLength)
  return out
}

export function pingMessage (): Uint8Array {
  return Uint8Array.of(FIELD_TYPE, PING)
}

/** The `type` field of a kad message (0 when absent, proto3's default). */
export function messageType (bytes: Uint8Array): number {
  let i = 0
  while (i < bytes.byteLength) {
    let tag = 0
    let shift = 0
    let b: number
    do { b = bytes[i++]; tag += (b & 0x7f) * 2 ** shift; shift += 7 } while (b >= 0x80 && i < bytes.byteLength)
    const wire = tag & 7
    let value = 0
    shift = 0
    if (wire === 0) {
      do { b = bytes[i++]; value += (b & 0x7f) * 2 ** shift; shift += 7 } while (b >= 0x80 && i < bytes.byteLength)
      if (tag >>> 3 === 1) return value
    } else if (wire === 2) {
      do { b = bytes[i++]; value += (b & 0x7f) * 2 ** shift; shift += 7 } while (b >= 0x80 && i < bytes.byteLength)
      i += value
    } else {
      return -1
    }
  }
  return 0
}

export interface ChannelInit {
  libp2p: Libp2p
  protocol: string
  peer: PeerId
  /** Addresses learnt from the lookup, for a peer we are not connected to. */
  addrs: Multiaddr[]
}

/** One reused stream to one DHT peer. */
export class PeerChannel {
  readonly peer: PeerId
  private readonly init: ChannelInit
  private stream?: Stream
  private lp?: LengthPrefixedStream<Stream>
  private lastUsed = 0
  private busy = 0
  /** Batches on one stream go one after the other: each waits for its own PING answer. */
  private queue: Promise<void> = Promise.resolve()

  constructor (init: ChannelInit) {
    this.init = init
    this.peer = init.peer
  }

  /** Writes one ADD_PROVIDER per multihash, then a PING; resolves when the PING comes back. */
  async send (mhs: Uint8Array[], provider: Uint8Array, signal: AbortSignal, idleMs: number): Promise<void> {
    const prior = this.queue
    let release!: () => void
    this.queue = new Promise(resolve => { release = resolve })
    this.busy++
    try {
      await prior
      signal.throwIfAborted()
      const lp = await this.open(signal, idleMs)
      for (let i = 0; i < mhs.length; i += WRITE_CHUNK) {
        await lp.writeV(mhs.slice(i, i + WRITE_CHUNK).map(mh => addProviderMessage(mh, provider)), { signal })
      }
      await lp.write(pingMessage(), { signal })
      for (;;) {
        const reply = await lp.read({ signal })
        if (messageType(reply.subarray()) === PING) break
      }
      this.lastUsed = Date.now()
    } catch (err) {
      this.abort(err as Error)
      throw err
    } finally {
      this.busy--
      release()
    }
  }

  private async open (signal: AbortSignal, idleMs: number): Promise<LengthPrefixedStream<Stream>> {
    // the remote closes a stream idle for 10 s (kad's incomingMessageTimeout): open a new one before that
    if (this.stream != null && (this.stream.status !== 'open' || this.stream.writeStatus !== 'writable' || Date.now() - this.lastUsed > idleMs)) {
      this.close()
    }
    if (this.stream == null || this.lp == null) {
      const { libp2p, peer, addrs } = this.init
      if (libp2p.getConnections(peer).length === 0 && addrs.length > 0) {
        await libp2p.peerStore.merge(peer, { multiaddrs: addrs })
      }
      this.stream = await libp2p.dialProtocol(peer, this.init.protocol, { signal })
      this.lp = lpStream(this.stream)
    }
    return this.lp
  }

  /** ms since the last batch went through (Infinity before the first). */
  idleFor (): number {
    if (this.busy > 0) return 0
    return this.lastUsed === 0 ? Infinity : Date.now() - this.lastUsed
  }

  close (): void {
    const stream = this.stream
    this.stream = undefined
    this.lp = undefined
    stream?.close().catch(err => { stream.abort(err) })
  }

  abort (err: Error): void {
    const stream = this.stream
    this.stream = undefined
    this.lp = undefined
    stream?.abort(err)
  }
}
