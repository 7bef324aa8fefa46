// Catch-up, the requesting side (protocol 1.1.0): our version vector, the server's offer, our choice (trusted
// authors it has more of, and maybe its checkpoint), then exactly that, each envelope verified as it comes. A
// server that sends what does not verify or was not chosen is dropped at its first bad frame and not asked
// again for a while.
import { peerIdFromString } from '@libp2p/peer-id'
import { SecretMismatchError, withProof, type ClusterSecret } from '../secret.js'
import { readFrames, sendFrame } from '../utils/stream.js'
import {
  classifyFrame, decodeCheckpointHeader, decodeEnvelope, decodeHave, encodeSyncRequest, encodeWant, MalformedMessageError,
  MAX_CHUNK_FRAME, MAX_CONTROL_FRAME, MAX_ENVELOPE_BYTES, type CheckpointHeader, type Envelope, type VersionVector
} from './protocol.js'
import { badCheckpoint, type Checkpoints } from './checkpoints.js'
import type { AbortOptions } from '../components.js'
import type { PinsetCounters } from './counters.js'
import type { Ingest } from './ingest.js'
import type { SyncSources } from './sources.js'
import type { StateWriter } from './state.js'
import type { PinsetStore, SeqTracker } from './store.js'
import type { Verifier } from './verify.js'
import type { ComponentLogger, Libp2p, Logger } from '@libp2p/interface'

/** Largest checkpoint state accepted (a 1M-pin state is ~200 MB). */
const MAX_CHECKPOINT_STATE = 2 ** 31 - 1
/** Catch-up envelopes are verified as they come, and stored and applied in batches of this many, or bytes. */
const INGEST_BATCH = 500
const INGEST_BATCH_BYTES = 16 * 1024 * 1024

/** A catch-up server sent what does not verify or was not asked for: it is not asked again for a while. */
function breachError (why: string): Error {
  const err = new MalformedMessageError(why)
  err.name = 'SyncBreachError'
  return err
}

export interface SyncClientInit {
  /** The catch-up protocol (pinsetSyncProtocol). */
  protocol: string
  /** This peer. */
  self: string
  /** Limit for one catch-up (default 120 s). */
  syncTimeoutMs?: number
  /** Envelope bytes one catch-up stream may bring; past it a new stream continues (default 256 MiB). */
  maxSyncBytes?: number
  /** Take checkpoints from peers when far behind (default true; false replays every envelope). */
  acceptCheckpoints?: boolean
}

export interface SyncClientComponents {
  libp2p: Pick<Libp2p, 'dialProtocol'>
  store: PinsetStore
  seqs: SeqTracker
  verifier: Verifier
  counters: PinsetCounters
  checkpoints: Checkpoints
  sources: SyncSources
  secret: ClusterSecret
  ingest: Ingest
  logger: ComponentLogger
  isStarted: () => boolean
  /** The pinset's shutdown: ends every catch-up under way. */
  shutdown: AbortSignal
}

export class SyncClient {
  private readonly log: Logger
  private readonly syncing = new Map<string, Promise<number>>()
  /** Peers that served a bad checkpoint: their checkpoints are refused for a while. */
  private readonly badCheckpointFrom = new Map<string, number>()

  constructor (private readonly init: SyncClientInit, private readonly components: SyncClientComponents) {
    this.log = components.logger.forComponent('cairn:pinset')
  }

  /** The catch-ups under way (stop() waits for them). */
  running (): Array<Promise<number>> { return [...this.syncing.values()] }

  /** Catches up from one peer now (unless it misbehaved lately); returns how many envelopes were applied. */
  async syncWith (peerId: string, options: AbortOptions = {}): Promise<number> {
    if (this.components.sources.isBanned(peerId)) {
      this.log('not asking %s for catch-up: it sent what does not verify or was not asked for, lately', peerId)
      return 0
    }
    const running = this.syncing.get(peerId)
    if (running != null) return await running
    const p = this.doSync(peerId, options).finally(() => this.syncing.delete(peerId))
    this.syncing.set(peerId, p)
    return await p
  }

  private async doSync (peerId: string, options: AbortOptions): Promise<number> {
    const { sources } = this.components
    let total = 0
    for (;;) {
      const checkpoints = (this.badCheckpointFrom.get(peerId) ?? 0) <= Date.now() && this.init.acceptCheckpoints !== false
      let pulled
      try {
        pulled = await this.pull(peerId, checkpoints, options)
      } catch (err) {
        if ((err as Error).name === 'SyncBreachError') sources.ban(peerId)
        if ((err as Error).name !== 'BadCheckpointError') throw err
        // a signed checkpoint whose state is cut short or corrupt: a trusted peer's disk may be at fault, so its
        // envelopes (verified one by one) are still taken; a stranger's word is not
        if (!this.components.verifier.trusts(peerId)) { sources.ban(peerId); throw err }
        this.badCheckpointFrom.set(peerId, Date.now() + 10 * 60_000)
        continue
      }
      total += pulled.applied
      // a stream that reached the byte limit with progress: the next one continues
      if (!pulled.more || pulled.applied === 0 || !this.components.isStarted()) return total
    }
  }

  /** A catch-up frame error, counted, that drops the server for a while (doSync bans it). */
  private breach (peerId: string, reason: string, detail: string): Error {
    this.components.counters.reject(reason, `catch-up from ${peerId}: ${detail}`)
    return breachError(`catch-up from ${peerId}: ${detail}`)
  }

  /**
   * One catch-up stream: request (our vector), the server's offer, our choice (trusted authors it has more of, and
   * maybe its checkpoint), then exactly that. Every envelope is verified as it comes; the first one that does not
   * verify or was not chosen ends the stream. Frames are refused from their length prefix past the size of their
   * kind; at most maxSyncBytes of envelopes come in one stream (`more`: a new stream continues).
   */
  private async pull (peerId: string, acceptCheckpoint: boolean, options: AbortOptions): Promise<{ applied: number, more: boolean }> {
    const { store, seqs, verifier, counters, secret, ingest } = this.components
    const { protocol, self } = this.init
    const signal = AbortSignal.any([
      this.components.shutdown, AbortSignal.timeout(this.init.syncTimeoutMs ?? 120_000),
      ...(options.signal != null ? [options.signal] : [])
    ])
    const stream = await this.components.libp2p.dialProtocol(peerIdFromString(peerId), protocol, { signal })
    let limit = MAX_CONTROL_FRAME
    const frames = readFrames(stream, { signal, maxDataLength: () => limit })[Symbol.asyncIterator]()
    const next = async (): Promise<Uint8Array | undefined> => {
      let r
      try {
        r = await frames.next()
      } catch (err) {
        if ((err as Error).name === 'FrameTooLongError') throw this.breach(peerId, 'frame', (err as Error).message)
        throw err
      }
      if (r.done === true) return undefined
      counters.syncBytesIn += r.value.length
      return r.value
    }
    let applied = 0
    let more = false
    let batch: Envelope[] = []
    // a checkpoint's state is written to a file as it arrives, then checked, then applied piece by piece
    let checkpoint: { header: CheckpointHeader, state: StateWriter } | undefined
    try {
      const ours = seqs.versionVector()
      await sendFrame(stream, withProof(secret.proof(protocol, self, peerId), encodeSyncRequest({ vv: ours, acceptCheckpoint })), { signal })
      if (secret.enabled) {
        const proof = await next()
        if (proof == null || !secret.verify(proof, protocol, peerId, self)) {
          counters.reject('secret', `catch-up answer from ${peerId} without the cluster secret`)
          throw new SecretMismatchError(`peer ${peerId} did not prove the cluster secret`)
        }
      }
      const offer = await next()
      if (offer == null) return { applied, more }
      let have
      try { have = decodeHave(offer) } catch (err) { throw this.breach(peerId, 'malformed', `its offer: ${(err as Error).message}`) }
      let header: CheckpointHeader | undefined
      if (have.checkpoint) {
        const frame = await next()
        if (frame == null) return { applied, more }
        header = await this.offeredCheckpoint(frame, peerId, ours, acceptCheckpoint)
      }
      // what to take: trusted authors the server has more of, after its checkpoint if we take that
      const base: VersionVector = { ...ours }
      if (header != null) for (const [a, n] of Object.entries(header.vv)) base[a] = Math.max(base[a] ?? 0, n)
      const want: VersionVector = {}
      const upTo = new Map<string, number>()
      for (const [author, n] of Object.entries(have.vv)) {
        const after = base[author] ?? 0
        if (n > after && verifier.trusts(author)) { want[author] = after; upTo.set(author, n) }
      }
      if (header == null && upTo.size === 0) {
        await stream.close({ signal })
        return { applied, more }
      }
      await sendFrame(stream, encodeWant({ vv: want, checkpoint: header != null }), { signal })
      await stream.close({ signal })
      limit = MAX_ENVELOPE_BYTES
      if (header != null) {
        checkpoint = { header, state: await store.createState('checkpoint') }
        limit = MAX_CHUNK_FRAME
      }
      const last = new Map<string, number>()
      let batchBytes = 0
      let total = 0
      for (;;) {
        if (checkpoint != null && checkpoint.state.bytes === checkpoint.header.stateLength) {
          const cp = checkpoint
          checkpoint = undefined
          await this.components.checkpoints.load(cp.header, cp.state, peerId)
          limit = MAX_ENVELOPE_BYTES
        }
        const frame = await next()
        if (frame == null) break
        let f
        try { f = classifyFrame(frame) } catch (err) { throw this.breach(peerId, 'malformed', (err as Error).message) }
        if (checkpoint != null) {
          if (f.type !== 'chunk') throw this.breach(peerId, 'checkpoint', `a ${f.type} frame before the checkpoint state was complete`)
          if (checkpoint.state.bytes + f.data.length > checkpoint.header.stateLength) throw this.breach(peerId, 'checkpoint', 'state longer than announced')
          await checkpoint.state.write(f.data)
          continue
        }
        if (f.type !== 'envelope') throw this.breach(peerId, 'unpromised', `a ${f.type} frame among the envelopes`)
        let env
        try { env = decodeEnvelope(f.bytes) } catch (err) { throw this.breach(peerId, 'malformed', (err as Error).message) }
        const promised = upTo.get(env.author)
        if (promised == null || env.seq <= want[env.author] || env.seq > promised || env.seq <= (last.get(env.author) ?? 0)) {
          throw this.breach(peerId, 'unpromised', `envelope ${env.author} seq ${env.seq}, which it did not offer or was not asked for`)
        }
        last.set(env.author, env.seq)
        if (seqs.has(env.author, env.seq)) { counters.duplicates++; continue }
        const why = await verifier.check(env)
        if (why != null) throw this.breach(peerId, why, `envelope ${env.author} seq ${env.seq} does not verify`)
        batch.push(env)
        batchBytes += f.bytes.length
        total += f.bytes.length
        if (batch.length >= INGEST_BATCH || batchBytes >= INGEST_BATCH_BYTES) {
          const verified = batch
          batch = []
          batchBytes = 0
          applied += await ingest(verified, { verified: true })
        }
        if (total >= (this.init.maxSyncBytes ?? 256 * 1024 * 1024)) { more = true; break }
      }
      if (checkpoint != null) {
        counters.reject('checkpoint', `state of ${checkpoint.state.bytes} bytes, ${checkpoint.header.stateLength} announced (from ${peerId})`)
        throw badCheckpoint('truncated state')
      }
      applied += await ingest(batch, { verified: true })
      batch = []
      if (more) stream.abort(new Error('catch-up byte limit reached; a new stream continues'))
    } catch (err) {
      stream.abort(err as Error)
      if (checkpoint != null) await store.discard(checkpoint.state)
      // what verified before the breach is kept
      if (batch.length > 0) await ingest(batch, { verified: true }).catch(() => 0)
      throw err
    }
    if (applied > 0) this.log('caught up %d envelopes from %s', applied, peerId)
    return { applied, more }
  }

  /**
   * The checkpoint a server offers: the header if we take it; undefined to decline (not signed by an author we
   * trust, or nothing new); a breach when it is forged or was not asked for.
   */
  private async offeredCheckpoint (frame: Uint8Array, peerId: string, ours: VersionVector, accept: boolean): Promise<CheckpointHeader | undefined> {
    const { verifier } = this.components
    if (!accept) throw this.breach(peerId, 'checkpoint', 'a checkpoint offered though none was asked for')
    let header
    try { header = decodeCheckpointHeader(frame) } catch (err) { throw this.breach(peerId, 'checkpoint', (err as Error).message) }
    if (!verifier.trusts(header.author)) {
      this.components.counters.reject('checkpoint', `checkpoint by untrusted author ${header.author} (from ${peerId})`)
      return undefined
    }
    const why = await verifier.checkCheckpoint(header)
    if (why != null) throw this.breach(peerId, 'checkpoint', why)
    if (!Number.isSafeInteger(header.stateLength) || header.stateLength < 0 || header.stateLength > MAX_CHECKPOINT_STATE) {
      throw this.breach(peerId, 'checkpoint', `state of ${header.stateLength} bytes announced`)
    }
    if (!Object.entries(header.vv).some(([a, n]) => n > (ours[a] ?? 0) && verifier.trusts(a))) return undefined
    return header
  }
}
