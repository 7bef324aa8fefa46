// Pure encode/decode of the audit protocol (no I/O).
//
// One message per stream; every frame is length-prefixed on the stream (src/utils/stream.ts).
// request = 0x01 || varint(n) || n x lp(CID bytes)            1 <= n <= MAX_AUDIT_CIDS
//   then one answer frame per CID asked, in the order asked:
// answer  = 0x00                                              not held here
//         | 0x01 || block bytes                               held here (at most MAX_AUDIT_BLOCK_BYTES)
//         | 0x02                                              held, but larger than MAX_AUDIT_BLOCK_BYTES
// report  = 0x02 || lp(peer id) || lp(reason)                 a trusted peer tells another that a peer failed
//   then one frame 0x00 (noted).
// With a cluster secret the request frame starts with the asker's proof and the server's proof is the first
// frame back, as on the RPC stream (src/secret.ts).
import { CID } from 'multiformats/cid'

const REQUEST = 0x01
const REPORT = 0x02
const NOTED = 0x00
const MAX_PEER_ID_BYTES = 127
const MAX_REASON_BYTES = 1024
const enc = new TextEncoder()
const dec = new TextDecoder('utf-8', { fatal: true })
const ABSENT = 0x00
const HELD = 0x01
const TOO_LARGE = 0x02

/** Blocks named by one request. */
export const MAX_AUDIT_CIDS = 8
/** Blocks bigger than this are not sent: IPFS promises bitswap transfer of blocks up to 2 MiB only. */
export const MAX_AUDIT_BLOCK_BYTES = 2 * 1024 * 1024
/** A CID's bytes (sha2-256: 36, sha2-512: 68); one varint byte says its length. */
const MAX_CID_BYTES = 127
/** Largest first frame: a request with room for MAX_AUDIT_CIDS CIDs, or a report. */
export const MAX_AUDIT_REQUEST_BYTES = Math.max(2 + MAX_AUDIT_CIDS * (1 + MAX_CID_BYTES), 4 + MAX_PEER_ID_BYTES + MAX_REASON_BYTES)
/** Largest answer frame. */
export const MAX_AUDIT_ANSWER_BYTES = 1 + MAX_AUDIT_BLOCK_BYTES

export function auditProtocol (cluster: string): string { return `/cairn/${cluster}/audit/1.0.0` }

export type AuditAnswer =
  | { status: 'held', bytes: Uint8Array }
  | { status: 'absent' }
  | { status: 'too_large' }

export class MalformedAuditError extends Error {
  static override name = 'MalformedAuditError'
  override name = 'MalformedAuditError'
}

/** What a stream's first frame asks. */
export type AuditMessage =
  | { type: 'request', cids: CID[] }
  | { type: 'report', peer: string, reason: string }

export function encodeAuditReport (peer: string, reason: string): Uint8Array {
  const p = enc.encode(peer)
  if (p.length > MAX_PEER_ID_BYTES) throw new RangeError(`peer id of ${p.length} bytes, at most ${MAX_PEER_ID_BYTES}`)
  let r = enc.encode(reason)
  // cut on a character boundary: the receiver decodes strictly
  for (let n = MAX_REASON_BYTES; r.length > MAX_REASON_BYTES; n--) r = enc.encode(reason.slice(0, n))
  const out = new Uint8Array(4 + p.length + r.length)
  out[0] = REPORT
  out[1] = p.length
  out.set(p, 2)
  out[2 + p.length] = r.length >> 8
  out[3 + p.length] = r.length & 0xff
  out.set(r, 4 + p.length)
  return out
}

export const AUDIT_NOTED = Uint8Array.of(NOTED)

/** A stream's first frame: a block request or a failure report. Throws MalformedAuditError. */
export function decodeAuditMessage (frame: Uint8Array): AuditMessage {
  if (frame.length > 0 && frame[0] === REPORT) return decodeReport(frame)
  return { type: 'request', cids: decodeAuditRequest(frame) }
}

function decodeReport (frame: Uint8Array): AuditMessage {
  if (frame.length < 2) throw new MalformedAuditError('truncated report')
  const plen = frame[1]
  if (plen === 0 || plen > MAX_PEER_ID_BYTES || frame.length < 4 + plen) throw new MalformedAuditError('report: peer id length out of range')
  const rlen = (frame[2 + plen] << 8) | frame[3 + plen]
  if (rlen > MAX_REASON_BYTES || frame.length !== 4 + plen + rlen) throw new MalformedAuditError('report: reason length out of range')
  try {
    return { type: 'report', peer: dec.decode(frame.subarray(2, 2 + plen)), reason: dec.decode(frame.subarray(4 + plen)) }
  } catch {
    throw new MalformedAuditError('report: invalid utf-8')
  }
}

export function encodeAuditRequest (cids: CID[]): Uint8Array {
  if (cids.length < 1 || cids.length > MAX_AUDIT_CIDS) throw new RangeError(`an audit request names 1-${MAX_AUDIT_CIDS} blocks, got ${cids.length}`)
  const parts: number[] = [REQUEST, cids.length]
  for (const cid of cids) {
    const bytes = cid.bytes
    if (bytes.length > MAX_CID_BYTES) throw new RangeError(`CID ${cid} is ${bytes.length} bytes, at most ${MAX_CID_BYTES}`)
    parts.push(bytes.length, ...bytes)
  }
  return Uint8Array.from(parts)
}

/** Throws MalformedAuditError on anything but a well-formed request of 1-MAX_AUDIT_CIDS valid CIDs. */
export function decodeAuditRequest (frame: Uint8Array): CID[] {
  if (frame.length > MAX_AUDIT_REQUEST_BYTES) throw new MalformedAuditError(`request of ${frame.length} bytes, at most ${MAX_AUDIT_REQUEST_BYTES}`)
  if (frame.length < 2) throw new MalformedAuditError('truncated request')
  if (frame[0] !== REQUEST) throw new MalformedAuditError(`unknown request type ${frame[0]}`)
  // n and each length fit in one varint byte (< 128), which is all an encoder may write
  const n = frame[1]
  if (n < 1 || n > MAX_AUDIT_CIDS) throw new MalformedAuditError(`a request names 1-${MAX_AUDIT_CIDS} blocks, got ${n}`)
  const cids: CID[] = []
  let pos = 2
  for (let i = 0; i < n; i++) {
    if (pos >= frame.length) throw new MalformedAuditError('truncated request')
    const len = frame[pos++]
    if (len === 0 || len > MAX_CID_BYTES || pos + len > frame.length) throw new MalformedAuditError(`CID ${i}: length out of range`)
    try {
      cids.push(CID.decode(frame.subarray(pos, pos + len)))
    } catch (err) {
      throw new MalformedAuditError(`CID ${i}: ${(err as Error).message}`)
    }
    pos += len
  }
  if (pos !== frame.length) throw new MalformedAuditError(`${frame.length - pos} bytes after the last CID`)
  return cids
}

export function encodeAuditAnswer (answer: AuditAnswer): Uint8Array {
  switch (answer.status) {
    case 'absent': return Uint8Array.of(ABSENT)
    case 'too_large': return Uint8Array.of(TOO_LARGE)
    case 'held': {
      if (answer.bytes.length > MAX_AUDIT_BLOCK_BYTES) throw new RangeError(`a block of ${answer.bytes.length} bytes is answered as too_large`)
      const out = new Uint8Array(1 + answer.bytes.length)
      out[0] = HELD
      out.set(answer.bytes, 1)
      return out
    }
  }
}

export function decodeAuditAnswer (frame: Uint8Array): AuditAnswer {
  if (frame.length === 0) throw new MalformedAuditError('empty answer')
  if (frame.length > MAX_AUDIT_ANSWER_BYTES) throw new MalformedAuditError(`answer of ${frame.length} bytes, at most ${MAX_AUDIT_ANSWER_BYTES}`)
  switch (frame[0]) {
    case ABSENT:
    case TOO_LARGE:
      if (frame.length !== 1) throw new MalformedAuditError('bytes after a status-only answer')
      return frame[0] === ABSENT ? { status: 'absent' } : { status: 'too_large' }
    case HELD: return { status: 'held', bytes: frame.subarray(1) }
    default: throw new MalformedAuditError(`unknown answer type ${frame[0]}`)
  }
}
