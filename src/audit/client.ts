// The asking side of the audit protocol: one stream, one request, one answer per block asked.
import { peerIdFromString } from '@libp2p/peer-id'
import { withProof, type ClusterSecret } from '../secret.js'
import { readFrames, sendFrame } from '../utils/stream.js'
import { AUDIT_NOTED, decodeAuditAnswer, encodeAuditReport, encodeAuditRequest, MAX_AUDIT_ANSWER_BYTES, type AuditAnswer } from './protocol.js'
import type { AbortOptions } from '../components.js'
import type { Libp2p, Stream } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export interface AskInit {
  protocol: string
  self: string
  secret: ClusterSecret
}

/** A peer that did not answer an audit request in full (unreachable, no such protocol, cut off, garbled). */
export class AuditUnansweredError extends Error {
  static override name = 'AuditUnansweredError'
  override name = 'AuditUnansweredError'
}

/** Asks `peer` for the blocks; the answers in the order asked. Throws AuditUnansweredError. */
export async function askBlocks (libp2p: Libp2p, init: AskInit, peer: string, cids: CID[], options: AbortOptions = {}): Promise<AuditAnswer[]> {
  const frames = await exchange(libp2p, init, peer, encodeAuditRequest(cids), cids.length, options)
  return frames.map(f => decodeAuditAnswer(f))
}

/** Tells trusted peer `to` that `peer` failed an audit; resolves once it noted it. Throws AuditUnansweredError. */
export async function reportFailure (libp2p: Libp2p, init: AskInit, to: string, peer: string, reason: string, options: AbortOptions = {}): Promise<void> {
  const [frame] = await exchange(libp2p, init, to, encodeAuditReport(peer, reason), 1, options)
  if (frame.length !== 1 || frame[0] !== AUDIT_NOTED[0]) throw new AuditUnansweredError(`${to} did not note the report`)
}

/** One message out, exactly `expected` frames back (after the server's secret proof). */
async function exchange (libp2p: Libp2p, init: AskInit, peer: string, message: Uint8Array, expected: number, options: AbortOptions): Promise<Uint8Array[]> {
  let stream: Stream
  try {
    stream = await libp2p.dialProtocol(peerIdFromString(peer), init.protocol, options)
  } catch (err) {
    throw new AuditUnansweredError(`cannot open an audit stream: ${(err as Error).message}`)
  }
  const frames: Uint8Array[] = []
  try {
    await sendFrame(stream, withProof(init.secret.proof(init.protocol, init.self, peer), message), options)
    await stream.close(options)
    let proven = !init.secret.enabled
    for await (const frame of readFrames(stream, { ...options, maxDataLength: MAX_AUDIT_ANSWER_BYTES })) {
      if (!proven) {
        if (!init.secret.verify(frame, init.protocol, peer, init.self)) throw new Error('the answer does not prove the cluster secret')
        proven = true
        continue
      }
      if (frames.length === expected) throw new Error(`more than ${expected} answers`)
      frames.push(frame)
    }
  } catch (err) {
    stream.abort(err as Error)
    throw new AuditUnansweredError(`audit stream failed after ${frames.length} of ${expected} answers: ${(err as Error).message}`)
  }
  if (frames.length < expected) throw new AuditUnansweredError(`${frames.length} answers, ${expected} expected`)
  return frames
}
