// The answering side of the audit protocol, run by every peer: the blocks an auditor names, from the local
// store only (never fetched from the network: the question is what this peer holds), and failure reports from
// other auditors. Only trusted peers audit, so only they are answered; one message per stream, bounded in size
// and time.
import { PROOF_LENGTH, SecretMismatchError, splitProof, type ClusterSecret } from '../secret.js'
import { readOneFrame, sendFrame } from '../utils/stream.js'
import { AUDIT_NOTED, decodeAuditMessage, encodeAuditAnswer, MAX_AUDIT_BLOCK_BYTES, MAX_AUDIT_REQUEST_BYTES, type AuditAnswer } from './protocol.js'
import { concatChunks } from '../utils/bytes.js'
import type { AbortOptions } from '../components.js'
import type { Connection, Logger, Stream } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

export interface AuditServerInit {
  protocol: string
  self: string
  secret: ClusterSecret
  isTrusted: (peer: string) => boolean
  /** Deadline of one stream, request to last answer. */
  timeoutMs: number
  /** A trusted peer says `peer` failed an audit. */
  onReport: (from: string, peer: string, reason: string) => Promise<void>
}

export interface LocalBlocks {
  /** The block's bytes from the local store, or undefined when it is not held here: never a network fetch. */
  get(cid: CID, options?: AbortOptions): Promise<Uint8Array | undefined>
}

/** Serves one audit stream; never throws (a bad stream is aborted and logged). */
export async function serveAudit (init: AuditServerInit, blocks: LocalBlocks, stream: Stream, connection: Connection, shutdown: AbortSignal, log: Logger): Promise<void> {
  const peer = connection.remotePeer.toString()
  const signal = AbortSignal.any([shutdown, AbortSignal.timeout(init.timeoutMs)])
  try {
    if (!init.isTrusted(peer)) throw new Error(`audit request from ${peer}, which is not a trusted peer`)
    const frame = await readOneFrame(stream, { signal, maxDataLength: MAX_AUDIT_REQUEST_BYTES + PROOF_LENGTH })
    const { proof, rest } = splitProof(init.secret, frame)
    if (!init.secret.verify(proof, init.protocol, peer, init.self)) throw new SecretMismatchError(`audit request from ${peer} without the cluster secret`)
    if (init.secret.enabled) await sendFrame(stream, init.secret.proof(init.protocol, init.self, peer), { signal })
    const message = decodeAuditMessage(rest)
    if (message.type === 'report') {
      await init.onReport(peer, message.peer, message.reason)
      await sendFrame(stream, AUDIT_NOTED, { signal })
    } else {
      for (const cid of message.cids) await sendFrame(stream, encodeAuditAnswer(await answerFor(blocks, cid, signal)), { signal })
    }
    await stream.close({ signal })
  } catch (err) {
    log('audit stream from %s failed: %e', peer, err)
    stream.abort(err as Error)
  }
}

async function answerFor (blocks: LocalBlocks, cid: CID, signal: AbortSignal): Promise<AuditAnswer> {
  const bytes = await blocks.get(cid, { signal })
  if (bytes == null) return { status: 'absent' }
  if (bytes.length > MAX_AUDIT_BLOCK_BYTES) return { status: 'too_large' }
  return { status: 'held', bytes }
}

/** LocalBlocks over Helia's blockstore read offline: a missing block is undefined, not fetched. */
export function offlineBlocks (blockstore: { get(cid: CID, options: AbortOptions & { offline: true }): AsyncIterable<Uint8Array> | Iterable<Uint8Array> }): LocalBlocks {
  return {
    async get (cid, options = {}) {
      try {
        return await concatChunks(blockstore.get(cid, { ...options, offline: true }))
      } catch (err) {
        // missing, or deleted by a GC between its has() and its read
        if (['NotFoundError', 'BlockNotFoundWhileOfflineError'].includes((err as Error).name)) return undefined
        throw err
      }
    }
  }
}
