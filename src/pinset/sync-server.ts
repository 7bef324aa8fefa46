// Catch-up, the serving side (protocol 1.1.0): request, offer (what we hold of each author, and maybe our
// checkpoint's header), the requester's choice, then exactly what was chosen. Any peer serves: every envelope
// carries its author's signature.
import { splitProof, type ClusterSecret } from '../secret.js'
import { readFrames, sendFrame } from '../utils/stream.js'
import {
  decodeCheckpointHeader, decodeSyncRequest, decodeWant, encodeChunk, encodeHave, MAX_CONTROL_FRAME, MAX_ENVELOPE_BYTES,
  type VersionVector
} from './protocol.js'
import type { Checkpoints } from './checkpoints.js'
import type { PinsetCounters } from './counters.js'
import type { PinsetStore, SeqTracker } from './store.js'
import type { ComponentLogger, Connection, Logger, Stream } from '@libp2p/interface'

export interface SyncServerInit {
  /** The catch-up protocol (pinsetSyncProtocol). */
  protocol: string
  /** This peer. */
  self: string
  /** Limit for serving one catch-up (default 120 s). */
  syncTimeoutMs?: number
}

export interface SyncServerComponents {
  store: PinsetStore
  seqs: SeqTracker
  counters: PinsetCounters
  checkpoints: Pick<Checkpoints, 'shouldSend'>
  secret: ClusterSecret
  logger: ComponentLogger
  /** The pinset's shutdown: ends every stream served. */
  shutdown: AbortSignal
}

/** Serves one catch-up stream; never throws (a failure aborts the stream and is logged). */
export type SyncServer = (stream: Stream, connection: Connection) => Promise<void>

export function createSyncServer (init: SyncServerInit, components: SyncServerComponents): SyncServer {
  const log: Logger = components.logger.forComponent('cairn:pinset')
  const { store, seqs, counters, secret } = components
  const { protocol, self } = init

  /** What this peer would send of each author: its highest seq (held, or covered by its checkpoint). */
  const haveVector = (): VersionVector => Object.fromEntries(seqs.authors().map(a => [a, seqs.max(a)]))

  /** Serves catch-up: request, offer (have and maybe a checkpoint header), choice (want), then what was chosen. */
  return async (stream, connection) => {
    const signal = AbortSignal.any([components.shutdown, AbortSignal.timeout(init.syncTimeoutMs ?? 120_000)])
    try {
      const remote = connection.remotePeer.toString()
      const frames = readFrames(stream, { signal, maxDataLength: MAX_CONTROL_FRAME })[Symbol.asyncIterator]()
      const first = await frames.next()
      if (first.done === true) throw new Error('stream ended before a request was received')
      const { proof, rest } = splitProof(secret, first.value)
      if (!secret.verify(proof, protocol, remote, self)) {
        counters.reject('secret', `catch-up request from ${remote} without the cluster secret`)
        stream.abort(new Error('cluster secret proof failed'))
        return
      }
      if (secret.enabled) await sendFrame(stream, secret.proof(protocol, self, remote), { signal })
      const req = decodeSyncRequest(rest)
      const have = haveVector()
      const cp = components.checkpoints.shouldSend(req.vv, req.acceptCheckpoint) ? await store.openCheckpoint() : undefined
      let from: VersionVector
      let sentCheckpoint = false
      try {
        await sendFrame(stream, encodeHave({ vv: have, checkpoint: cp != null }), { signal })
        if (cp != null) await sendFrame(stream, cp.header, { signal })
        const choice = await frames.next()
        if (choice.done === true) {
          // the requester needs nothing of ours
          await stream.close({ signal })
          return
        }
        const want = decodeWant(choice.value)
        from = want.vv
        if (cp != null && want.checkpoint) {
          counters.syncBytesOut += cp.header.length + cp.length
          for await (const chunk of cp.chunks) await sendFrame(stream, encodeChunk(chunk), { signal })
          for (const [a, n] of Object.entries(decodeCheckpointHeader(cp.header).vv)) if (a in from) from[a] = Math.max(from[a], n)
          sentCheckpoint = true
        }
      } finally {
        cp?.close()
      }
      let sent = 0
      for (const [author, after] of Object.entries(from)) {
        // only what was offered: the requester drops a server that sends more
        const upTo = have[author] ?? 0
        if (after >= upTo) continue
        for await (const env of store.envelopesAfter(author, after)) {
          if (env.seq > upTo) break
          // one written before envelopes were split (a batch of any size was one envelope) would get this peer
          // dropped as a server: the requester is left a gap, which a checkpoint fills
          if (env.bytes.length > MAX_ENVELOPE_BYTES) {
            log('not serving envelope %s seq %d of %d bytes (over %d)', author, env.seq, env.bytes.length, MAX_ENVELOPE_BYTES)
            continue
          }
          await sendFrame(stream, env.bytes, { signal })
          counters.syncBytesOut += env.bytes.length
          sent++
        }
      }
      await stream.close({ signal })
      log('served %s%d envelopes to %p', sentCheckpoint ? 'a checkpoint and ' : '', sent, connection.remotePeer)
    } catch (err) {
      log('serving catch-up to %p failed: %e', connection.remotePeer, err)
      stream.abort(err as Error)
    }
  }
}
