// Pure encode/decode of the pinset wire format (no I/O), in the spirit of y-protocols/sync.
//
// Envelope  = body || lp(signature)
// body      = 0x01 || lp(cluster) || lp(author) || varint(seq) || lp(yjs update)
// signature = author's libp2p key over DOMAIN || body
// A gossip message is either a whole envelope (0x01...) or, for envelopes too big to gossip, a notice
// (0x02 || lp(author) || varint(seq)) telling peers to pull it over the catch-up stream.
import * as varint from 'uint8-varint'

const ENVELOPE = 0x01
const NOTICE = 0x02
const DOMAIN = new TextEncoder().encode('cairn-pinset-envelope-v1\n')
const enc = new TextEncoder()
const dec = new TextDecoder('utf-8', { fatal: true })

export interface Envelope {
  cluster: string
  author: string
  seq: number
  update: Uint8Array
  signature: Uint8Array
  /** The signed part, kept to verify without re-encoding. */
  body: Uint8Array
}

export interface Notice {
  author: string
  seq: number
}

export class MalformedMessageError extends Error {
  static override name = 'MalformedMessageError'
  override name = 'MalformedMessageError'
}

// ----- varint / length-prefix primitives

class Writer {
  private readonly parts: Uint8Array[] = []
  private length = 0

  byte (b: number): this {
    this.parts.push(Uint8Array.of(b)); this.length++
    return this
  }

  varint (n: number): this {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`varint out of range: ${n}`)
    const out = varint.encode(n)
    this.parts.push(out); this.length += out.length
    return this
  }

  bytes (b: Uint8Array): this {
    this.varint(b.length)
    this.parts.push(b); this.length += b.length
    return this
  }

  string (s: string): this {
    return this.bytes(enc.encode(s))
  }

  finish (): Uint8Array {
    const out = new Uint8Array(this.length)
    let off = 0
    for (const p of this.parts) { out.set(p, off); off += p.length }
    return out
  }
}

class Reader {
  pos = 0
  constructor (readonly buf: Uint8Array) {}

  byte (): number {
    if (this.pos >= this.buf.length) throw new MalformedMessageError('truncated message')
    return this.buf[this.pos++]
  }

  /**
   * Read by hand rather than with uint8-varint: it bounds a varint to 8 bytes and a safe integer, and accepts
   * the non-minimal forms it always accepted, which decides what a signed envelope may hold.
   */
  varint (): number {
    let n = 0
    let mul = 1
    for (let i = 0; i < 8; i++) {
      const b = this.byte()
      n += (b & 0x7f) * mul
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(n)) break
        return n
      }
      mul *= 128
    }
    throw new MalformedMessageError('bad varint')
  }

  bytes (max = Number.MAX_SAFE_INTEGER): Uint8Array {
    const len = this.varint()
    if (len > max || this.pos + len > this.buf.length) throw new MalformedMessageError('length out of range')
    const out = this.buf.subarray(this.pos, this.pos + len)
    this.pos += len
    return out
  }

  string (max = 256): string {
    try {
      return dec.decode(this.bytes(max))
    } catch (err) {
      if (err instanceof MalformedMessageError) throw err
      throw new MalformedMessageError('invalid utf-8')
    }
  }

  end (): void {
    if (this.pos !== this.buf.length) throw new MalformedMessageError('trailing bytes')
  }
}

// ----- envelopes

export function encodeBody (cluster: string, author: string, seq: number, update: Uint8Array): Uint8Array {
  return new Writer().byte(ENVELOPE).string(cluster).string(author).varint(seq).bytes(update).finish()
}

/** domain || body: what gets signed, so a signature made for one kind of message fits no other. */
export function withDomain (domain: Uint8Array, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(domain.length + body.length)
  out.set(domain, 0)
  out.set(body, domain.length)
  return out
}

/** The bytes an author signs for a body. */
export function signingPayload (body: Uint8Array): Uint8Array {
  return withDomain(DOMAIN, body)
}

export function encodeEnvelope (body: Uint8Array, signature: Uint8Array): Uint8Array {
  const w = new Writer()
  const sig = w.bytes(signature).finish()
  const out = new Uint8Array(body.length + sig.length)
  out.set(body, 0)
  out.set(sig, body.length)
  return out
}

export function decodeEnvelope (bytes: Uint8Array): Envelope {
  const r = new Reader(bytes)
  if (r.byte() !== ENVELOPE) throw new MalformedMessageError('not an envelope')
  const cluster = r.string()
  const author = r.string()
  const seq = r.varint()
  if (seq < 1) throw new MalformedMessageError('seq must be >= 1')
  const update = r.bytes()
  const bodyEnd = r.pos
  const signature = r.bytes(1024)
  r.end()
  return { cluster, author, seq, update, signature, body: bytes.subarray(0, bodyEnd) }
}

export function encodeNotice (notice: Notice): Uint8Array {
  return new Writer().byte(NOTICE).string(notice.author).varint(notice.seq).finish()
}

export type GossipMessage = { type: 'envelope', envelope: Envelope } | { type: 'notice', notice: Notice }

export function decodeGossip (bytes: Uint8Array): GossipMessage {
  if (bytes.length === 0) throw new MalformedMessageError('empty message')
  if (bytes[0] === ENVELOPE) return { type: 'envelope', envelope: decodeEnvelope(bytes) }
  if (bytes[0] === NOTICE) {
    const r = new Reader(bytes)
    r.byte()
    const author = r.string()
    const seq = r.varint()
    r.end()
    return { type: 'notice', notice: { author, seq } }
  }
  throw new MalformedMessageError(`unknown message type ${bytes[0]}`)
}

// ----- version vectors (catch-up request)

export type VersionVector = Record<string, number>

export function encodeVersionVector (vv: VersionVector): Uint8Array {
  const entries = Object.entries(vv)
  const w = new Writer().varint(entries.length)
  for (const [author, seq] of entries) w.string(author).varint(seq)
  return w.finish()
}

export function decodeVersionVector (bytes: Uint8Array): VersionVector {
  const r = new Reader(bytes)
  const n = r.varint()
  if (n > 100_000) throw new MalformedMessageError('version vector too large')
  const vv: VersionVector = {}
  for (let i = 0; i < n; i++) {
    const author = r.string()
    vv[author] = r.varint()
  }
  r.end()
  return vv
}

// ----- checkpoints: a signed snapshot of the document and the version vector it covers
//
// header = 0x03 || lp(cluster) || lp(author) || varint(created ms) || lp(version vector) || varint(state bytes)
//          || lp(sha256 of the state)
// The state itself follows on the catch-up stream in chunk frames (0x04 || bytes), so a pinset of any size
// streams without one huge frame; the signature covers the header and, through the hash, the state.

const CHECKPOINT = 0x03
const CHUNK = 0x04
const CP_DOMAIN = new TextEncoder().encode('cairn-pinset-checkpoint-v1\n')

export interface CheckpointHeader {
  cluster: string
  author: string
  created: number
  vv: VersionVector
  stateLength: number
  stateHash: Uint8Array
  body: Uint8Array
  signature: Uint8Array
}

export function encodeCheckpointBody (h: Omit<CheckpointHeader, 'body' | 'signature'>): Uint8Array {
  return new Writer().byte(CHECKPOINT).string(h.cluster).string(h.author).varint(h.created)
    .bytes(encodeVersionVector(h.vv)).varint(h.stateLength).bytes(h.stateHash).finish()
}

export function checkpointSigningPayload (body: Uint8Array): Uint8Array {
  return withDomain(CP_DOMAIN, body)
}

export function encodeCheckpointHeader (body: Uint8Array, signature: Uint8Array): Uint8Array {
  return encodeEnvelope(body, signature)
}

export function decodeCheckpointHeader (bytes: Uint8Array): CheckpointHeader {
  const r = new Reader(bytes)
  if (r.byte() !== CHECKPOINT) throw new MalformedMessageError('not a checkpoint')
  const cluster = r.string()
  const author = r.string()
  const created = r.varint()
  const vv = decodeVersionVector(r.bytes(16 * 1024 * 1024))
  const stateLength = r.varint()
  const stateHash = r.bytes(64)
  const bodyEnd = r.pos
  const signature = r.bytes(1024)
  r.end()
  return { cluster, author, created, vv, stateLength, stateHash, body: bytes.subarray(0, bodyEnd), signature }
}

export function encodeChunk (data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length + 1)
  out[0] = CHUNK
  out.set(data, 1)
  return out
}

export type SyncFrame =
  | { type: 'envelope', bytes: Uint8Array }
  | { type: 'checkpoint', bytes: Uint8Array }
  | { type: 'chunk', data: Uint8Array }

export function classifyFrame (frame: Uint8Array): SyncFrame {
  switch (frame[0]) {
    case ENVELOPE: return { type: 'envelope', bytes: frame }
    case CHECKPOINT: return { type: 'checkpoint', bytes: frame }
    case CHUNK: return { type: 'chunk', data: frame.subarray(1) }
    default: throw new MalformedMessageError(`unknown sync frame type ${String(frame[0])}`)
  }
}

// ----- catch-up frame sizes: a frame is refused from its length prefix when it is longer than its kind may be

/**
 * Envelopes: a writer splits its changes into envelopes of about 1 MiB; one pin alone may make one bigger, up to
 * this (a pin's name and metadata are far smaller: the pinning API caps a pin's requests at 512 KiB).
 */
export const MAX_ENVELOPE_BYTES = 2 * 1024 * 1024
/** Checkpoint state chunks (0x04 || up to 1 MiB). */
export const MAX_CHUNK_FRAME = 1024 * 1024 + 1
/** Requests, offers, choices, checkpoint headers and proofs: a version vector and a few bytes. */
export const MAX_CONTROL_FRAME = 1024 * 1024

// ----- catch-up offer and choice
//
// After the request (below), the server offers: have = 0x05 || byte(checkpoint follows) || lp(version vector of
// the highest seq per author it would send), then the checkpoint header if it offers one. The requester answers
// with what it takes: want = 0x06 || byte(take the checkpoint) || lp(version vector: author -> send seqs above
// this), naming only authors it trusts and that the server has more of. The server then streams exactly that;
// anything else is a breach the requester drops the server for.

const HAVE = 0x05
const WANT = 0x06

export interface SyncHave {
  vv: VersionVector
  /** A checkpoint header frame follows. */
  checkpoint: boolean
}

export interface SyncWant {
  vv: VersionVector
  /** Send the offered checkpoint's state first. */
  checkpoint: boolean
}

function encodeChoice (type: number, flag: boolean, vv: VersionVector): Uint8Array {
  return new Writer().byte(type).byte(flag ? 1 : 0).bytes(encodeVersionVector(vv)).finish()
}

function decodeChoice (type: number, bytes: Uint8Array, what: string): { flag: boolean, vv: VersionVector } {
  const r = new Reader(bytes)
  if (r.byte() !== type) throw new MalformedMessageError(`not a catch-up ${what}`)
  const flag = r.byte()
  if (flag > 1) throw new MalformedMessageError(`bad catch-up ${what}`)
  const vv = decodeVersionVector(r.bytes())
  r.end()
  return { flag: flag === 1, vv }
}

export function encodeHave (have: SyncHave): Uint8Array { return encodeChoice(HAVE, have.checkpoint, have.vv) }
export function decodeHave (bytes: Uint8Array): SyncHave {
  const { flag, vv } = decodeChoice(HAVE, bytes, 'offer')
  return { checkpoint: flag, vv }
}

export function encodeWant (want: SyncWant): Uint8Array { return encodeChoice(WANT, want.checkpoint, want.vv) }
export function decodeWant (bytes: Uint8Array): SyncWant {
  const { flag, vv } = decodeChoice(WANT, bytes, 'choice')
  return { checkpoint: flag, vv }
}

// ----- catch-up request

export interface SyncRequest {
  vv: VersionVector
  /** The requester takes a checkpoint when the server thinks it is cheaper than the envelopes. */
  acceptCheckpoint: boolean
}

export function encodeSyncRequest (req: SyncRequest): Uint8Array {
  const vv = encodeVersionVector(req.vv)
  const out = new Uint8Array(vv.length + 1)
  out[0] = req.acceptCheckpoint ? 1 : 0
  out.set(vv, 1)
  return out
}

export function decodeSyncRequest (bytes: Uint8Array): SyncRequest {
  if (bytes.length < 1 || bytes[0] > 1) throw new MalformedMessageError('bad sync request')
  return { acceptCheckpoint: bytes[0] === 1, vv: decodeVersionVector(bytes.subarray(1)) }
}
