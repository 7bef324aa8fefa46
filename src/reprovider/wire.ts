// The kad-dht messages the reprovider writes and reads: ADD_PROVIDER and PING, in the Message of the DHT's
// protobuf (dht.proto, compiled by protons into dht.ts; @libp2p/kad-dht 16 does not export its codec), each
// framed with an unsigned-varint length like every kad message.
//
// A channel keeps one stream per DHT peer and writes many ADD_PROVIDER messages on it back to back; the peer
// handles the messages of a stream one after another, so a PING answered by the peer means every record before
// it was stored: that is the acknowledgement ADD_PROVIDER itself does not have. A batch goes out as chunks of
// RECORDS_PER_ACK records, each followed by a PING: the answers show the peer's progress (a slow peer is not
// taken for a dead one) and say which records to send again after a failure.
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import { PeerUnreachableError } from '../errors.js'
import { raceSignal } from 'race-signal'
import { lengthPrefixed } from '../utils/bytes.js'
import { Message, MessageType, type PeerInfo } from './dht.js'
import type { Libp2p, PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/** Records per PING: the unit of acknowledgement, and of what is sent again after a failure. */
export const RECORDS_PER_ACK = 128
/**
 * Chunks written beyond the last acknowledged one. The peer buffers what it has not read yet and resets a
 * stream past 4 MiB (@libp2p/utils byteStream): 8 chunks of ~110-byte records stay far below that whatever
 * reprovide.batch_size is, and keep the peer busy between acknowledgements.
 */
const WINDOW = 2

/** This peer as the `providers` entry of its ADD_PROVIDER messages (the same in every message). */
export function providerInfo (peerId: PeerId, addrs: Multiaddr[]): PeerInfo {
  return { id: peerId.toMultihash().bytes, multiaddrs: addrs.map(a => a.bytes) }
}

/** One ADD_PROVIDER message (without its length prefix). */
export function addProviderMessage (mh: Uint8Array, provider: PeerInfo): Uint8Array {
  // protons' types ask for ArrayBuffer-backed bytes; it only reads them
  return Message.encode({ type: MessageType.ADD_PROVIDER, key: mh as Uint8Array<ArrayBuffer>, closer: [], providers: [provider] })
}

export function pingMessage (): Uint8Array {
  return Message.encode({ type: MessageType.PING, closer: [], providers: [] })
}

/** A PING with its length prefix, as written on the stream. */
const PING_FRAME = lengthPrefixed(pingMessage())

/**
 * What one peer is sent of a batch: chunks of up to RECORDS_PER_ACK records (`frames[i]` is the framed
 * ADD_PROVIDER of the batch's record i; `indices` picks the peer's records, default all), each ending with a
 * PING. The frames are built once per batch and shared by every peer that takes the same records.
 */
export function encodeChunks (frames: Uint8Array[], indices?: number[]): Uint8Array[] {
  const count = indices?.length ?? frames.length
  const chunks: Uint8Array[] = []
  for (let start = 0; start < count; start += RECORDS_PER_ACK) {
    const end = Math.min(count, start + RECORDS_PER_ACK)
    let size = PING_FRAME.byteLength
    for (let j = start; j < end; j++) size += frames[indices?.[j] ?? j].byteLength
    const chunk = new Uint8Array(size)
    let offset = 0
    for (let j = start; j < end; j++) {
      const f = frames[indices?.[j] ?? j]
      chunk.set(f, offset)
      offset += f.byteLength
    }
    chunk.set(PING_FRAME, offset)
    chunks.push(chunk)
  }
  return chunks
}

/** How many records chunk `i` of encodeChunks(…, indices of length `count`) carries. */
export function chunkRange (i: number, count: number): { start: number, end: number } {
  return { start: i * RECORDS_PER_ACK, end: Math.min(count, (i + 1) * RECORDS_PER_ACK) }
}

/** Whether a reply is a PING (a reply that does not decode is not one). */
function isPing (bytes: Uint8Array): boolean {
  try {
    return Message.decode(bytes).type === MessageType.PING
  } catch {
    return false
  }
}

export interface ChannelInit {
  libp2p: Libp2p
  protocol: string
  peer: PeerId
  /** Addresses learnt from the lookup, for a peer we are not connected to. */
  addrs: Multiaddr[]
}

export interface SendOptions {
  signal: AbortSignal
  /** The send fails when opening the stream takes this long, or the peer then acknowledges nothing for this long (a slow peer that keeps answering does not fail). */
  timeoutMs: number
  /** A stream unused for this long is replaced before writing (the peer closes idle ones). */
  idleMs: number
  /** Chunk `i` (in order) was acknowledged: its records are stored on the peer. */
  onAck?: (i: number) => void
}

/** One reused stream to one DHT peer. */
export class PeerChannel {
  readonly peer: PeerId
  private readonly init: ChannelInit
  private stream?: Stream
  private lp?: LengthPrefixedStream<Stream>
  private lastUsed = 0
  private busy = 0
  /** Batches on one stream go one after the other: each waits for its own PING answers. */
  private queue: Promise<void> = Promise.resolve()

  constructor (init: ChannelInit) {
    this.init = init
    this.peer = init.peer
  }

  /**
   * Writes the chunks (from encodeChunks) and resolves when every one was acknowledged. A stream reused from an
   * earlier batch that fails before any acknowledgement (the peer or a dropped connection closed it meanwhile)
   * is replaced and the chunks written again on the new one: that is no failure of the peer.
   */
  async send (chunks: Uint8Array[], options: SendOptions): Promise<void> {
    const prior = this.queue
    let release!: () => void
    const mine = new Promise<void>(resolve => { release = resolve })
    // the next send waits for this one and, should this one give up waiting, for the one before it
    this.queue = prior.then(async () => { await mine })
    this.busy++
    try {
      await raceSignal(prior, options.signal)
      let acked = 0
      for (;;) {
        const reused = this.usable(options.idleMs)
        if (!reused) this.close()
        const before = acked
        try {
          const { stream, lp } = await this.open(AbortSignal.any([options.signal, AbortSignal.timeout(options.timeoutMs)]))
          await this.exchange(stream, lp, chunks.slice(acked), options.timeoutMs, options.signal, () => {
            options.onAck?.(acked)
            acked++
          })
          this.lastUsed = Date.now()
          return
        } catch (err) {
          this.abort(err as Error)
          if (!reused || acked > before || options.signal.aborted || (err as Error).name === 'PeerUnreachableError') throw err
        }
      }
    } finally {
      this.busy--
      release()
    }
  }

  /** Writes the chunks (at most WINDOW ahead of the answers) and reads one PING answer per chunk. */
  private async exchange (stream: Stream, lp: LengthPrefixedStream<Stream>, chunks: Uint8Array[], timeoutMs: number, outer: AbortSignal, onAck: () => void): Promise<void> {
    const stalled = new AbortController()
    let timer: ReturnType<typeof setTimeout> | undefined
    const arm = (): void => {
      clearTimeout(timer)
      timer = setTimeout(() => { stalled.abort(new PeerUnreachableError(`DHT peer ${this.peer.toString()} acknowledged nothing for ${timeoutMs} ms`)) }, timeoutMs)
    }
    const signal = AbortSignal.any([outer, stalled.signal])
    let acked = 0
    let ackWaiter: (() => void) | undefined
    const writing = (async () => {
      for (let i = 0; i < chunks.length; i++) {
        // eslint-disable-next-line no-unmodified-loop-condition -- `acked` grows in the reader below
        while (i - acked >= WINDOW) {
          await raceSignal(new Promise<void>(resolve => { ackWaiter = resolve }), signal)
        }
        signal.throwIfAborted()
        if (!stream.send(chunks[i])) await drained(stream, signal)
      }
    })()
    // a failed write ends the reads too
    writing.catch(err => { stalled.abort(err) })
    arm()
    try {
      while (acked < chunks.length) {
        const reply = await lp.read({ signal })
        if (!isPing(reply.subarray())) continue
        acked++
        arm()
        onAck()
        ackWaiter?.()
        ackWaiter = undefined
      }
      await writing
    } finally {
      clearTimeout(timer)
      // releases a write still waiting for room in the window
      stalled.abort(new Error('the exchange is over'))
    }
  }

  /** The current stream can take another batch: open both ways at both ends, and not idle for too long. */
  private usable (idleMs: number): boolean {
    const s = this.stream
    return s != null && s.status === 'open' && s.readStatus === 'readable' && s.writeStatus === 'writable' &&
      s.remoteReadStatus === 'readable' && s.remoteWriteStatus === 'writable' && Date.now() - this.lastUsed <= idleMs
  }

  private async open (signal: AbortSignal): Promise<{ stream: Stream, lp: LengthPrefixedStream<Stream> }> {
    if (this.stream == null || this.lp == null) {
      const { libp2p, peer, addrs } = this.init
      if (libp2p.getConnections(peer).length === 0 && addrs.length > 0) {
        await libp2p.peerStore.merge(peer, { multiaddrs: addrs })
      }
      const stream = await libp2p.dialProtocol(peer, this.init.protocol, { signal })
      this.stream = stream
      this.lp = lpStream(stream)
    }
    return { stream: this.stream, lp: this.lp }
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

/** Resolves when the stream can take more data; rejects when it closes or `signal` aborts first. */
async function drained (stream: Stream, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const done = (): void => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
      signal.removeEventListener('abort', onAbort)
    }
    const onDrain = (): void => { done(); resolve() }
    const onClose = (): void => { done(); reject(new Error('the stream closed while writing')) }
    const onAbort = (): void => { done(); reject(signal.reason) }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
    signal.addEventListener('abort', onAbort)
  })
}
