// Checkpoints: a trusted peer signs the whole document with the version vector it covers and compacts the log
// below it; a peer far behind loads one instead of replaying every envelope. This module makes them (on a
// timer, or when asked), restores the stored one at start, verifies and adopts one received by catch-up, and
// tells the catch-up server when a requester should get one.
import { repeatingTask, type RepeatingTask } from '@libp2p/utils'
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import {
  checkpointSigningPayload, decodeCheckpointHeader, encodeCheckpointBody, encodeCheckpointHeader, MalformedMessageError,
  type CheckpointHeader, type VersionVector
} from './protocol.js'
import type { AbortOptions, CheckpointInfo } from '../components.js'
import type { PinsetCounters } from './counters.js'
import type { PinsetDocument } from './document.js'
import type { StateWriter } from './state.js'
import type { PinsetStore, SeqTracker } from './store.js'
import type { ComponentLogger, Logger, PrivateKey } from '@libp2p/interface'

export function badCheckpoint (why: string): Error {
  const err = new MalformedMessageError(`bad checkpoint: ${why}`)
  err.name = 'BadCheckpointError'
  return err
}

export interface CheckpointSchedule {
  /** How often a trusted peer considers making a checkpoint (default 10 min). */
  intervalMs?: number
  /** ... and only when at least this many envelopes arrived since the last one (default 1000). */
  minEnvelopes?: number
  /** Envelopes kept per author below a checkpoint, for peers that are only a little behind (default 1000). */
  keepTail?: number
}

export interface CheckpointsInit {
  cluster: string
  /** This peer: the author of the checkpoints it makes. */
  self: string
  /** This peer authors checkpoints (a trusted peer); followers only relay the ones they received. */
  isWriter?: () => boolean
  checkpoint?: CheckpointSchedule
  /** A requester missing more envelopes than this is sent a checkpoint instead (default 256). */
  checkpointThreshold?: number
}

export interface CheckpointsComponents {
  document: PinsetDocument
  store: PinsetStore
  seqs: SeqTracker
  privateKey: PrivateKey
  counters: PinsetCounters
  logger: ComponentLogger
  isStarted: () => boolean
  /** The pinset's shutdown: ends a checkpoint under way between its steps. */
  shutdown: AbortSignal
}

export class Checkpoints {
  private readonly log: Logger
  private last?: CheckpointHeader
  /** author -> highest seq dropped from the log (covered by a checkpoint). */
  private compacted = new Map<string, number>()
  private sinceCheckpoint = 0
  private task?: RepeatingTask
  private checkpointing?: Promise<CheckpointInfo | undefined>

  constructor (private readonly init: CheckpointsInit, private readonly components: CheckpointsComponents) {
    this.log = components.logger.forComponent('cairn:pinset')
  }

  start (): void {
    this.task = repeatingTask(async () => {
      if (this.init.isWriter?.() === true && this.sinceCheckpoint >= (this.init.checkpoint?.minEnvelopes ?? 1000)) {
        await this.checkpoint().catch(err => { this.log.error('making a checkpoint failed: %e', err) })
      }
    }, this.init.checkpoint?.intervalMs ?? 600_000)
    this.task.start()
  }

  stop (): void {
    this.task?.stop()
  }

  /** The checkpoint under way, if any (stop() waits for it). */
  pending (): Promise<unknown> | undefined { return this.checkpointing }

  /** The newest checkpoint this peer holds. */
  newest (): CheckpointHeader | undefined { return this.last }

  /** Counts envelopes stored since the last checkpoint. */
  noteApplied (n: number): void { this.sinceCheckpoint += n }

  /**
   * At start, after the snapshot (covering `snapshotVv`): the stored checkpoint's state when the snapshot does not
   * contain it (a crash after receiving one), and what it and compaction cover.
   */
  async restore (snapshotVv: VersionVector | undefined): Promise<void> {
    const { store, seqs } = this.components
    this.compacted = await store.compacted()
    const header = await store.getCheckpointHeader()
    if (header != null) {
      this.last = decodeCheckpointHeader(header)
      const cpvv = this.last.vv
      // Only when the snapshot does not already contain it (a crash after receiving a checkpoint).
      if (Object.entries(cpvv).some(([a, n]) => (snapshotVv?.[a] ?? 0) < n)) {
        const cp = await store.getCheckpoint()
        if (cp != null) await this.components.document.applyState(cp.source)
      }
      for (const [a, n] of Object.entries(cpvv)) seqs.cover(a, n)
    }
    for (const [a, n] of this.compacted) seqs.cover(a, n)
  }

  /**
   * Signs a snapshot of the whole document with the version vector it covers, then compacts the log. One at a
   * time; stop() waits for it; the signal (and stop) end it between its steps.
   */
  async checkpoint (options: AbortOptions = {}): Promise<CheckpointInfo | undefined> {
    options.signal?.throwIfAborted()
    while (this.checkpointing != null) await this.checkpointing.catch(() => {})
    if (this.init.isWriter?.() !== true || !this.components.isStarted()) return undefined
    const signal = AbortSignal.any([this.components.shutdown, ...(options.signal != null ? [options.signal] : [])])
    const p = this.makeCheckpoint(signal).finally(() => { this.checkpointing = undefined })
    this.checkpointing = p
    return await p
  }

  private async makeCheckpoint (signal: AbortSignal): Promise<CheckpointInfo> {
    const { store, seqs, document } = this.components
    const state = await store.createState('checkpoint')
    let bytes: Uint8Array
    let vv: VersionVector
    let length: number
    try {
      // the state and the vector it covers, taken in the same tick
      state.writeDoc(document.doc)
      vv = seqs.versionVector()
      signal.throwIfAborted()
      const written = await state.finish()
      signal.throwIfAborted()
      length = written.length
      const body = encodeCheckpointBody({
        cluster: this.init.cluster, author: this.init.self, created: Date.now(), vv, stateLength: length, stateHash: written.hash
      })
      bytes = encodeCheckpointHeader(body, await this.components.privateKey.sign(checkpointSigningPayload(body)))
      signal.throwIfAborted()
      await store.adoptCheckpoint(state, bytes)
    } catch (err) {
      await store.discard(state)
      throw err
    }
    this.last = decodeCheckpointHeader(bytes)
    this.sinceCheckpoint = 0
    this.components.counters.checkpointsMade++
    // compacting later is harmless: the next checkpoint does it
    if (!signal.aborted) await this.compact(vv)
    this.log('checkpoint of %d pins (%d bytes) covering %o', document.size(), length, vv)
    return { author: this.init.self, created: new Date(this.last.created).toISOString(), version_vector: vv, bytes: length }
  }

  /** Drops envelopes a checkpoint covers, keeping a tail for peers that are only a little behind. */
  private async compact (vv: VersionVector): Promise<void> {
    const keep = this.init.checkpoint?.keepTail ?? 1000
    for (const [author, n] of Object.entries(vv)) {
      const through = n - keep
      if (through <= (this.compacted.get(author) ?? 0)) continue
      await this.components.store.compact(author, through)
      this.compacted.set(author, through)
    }
  }

  /** Whether to answer a catch-up request with the checkpoint first. */
  shouldSend (req: VersionVector, accept: boolean): boolean {
    const { seqs } = this.components
    const cp = this.last
    if (!accept || cp == null) return false
    if (!Object.entries(cp.vv).some(([a, n]) => (req[a] ?? 0) < n)) return false
    // We no longer hold envelopes the requester needs: only the checkpoint can bring it up to date.
    for (const [a, n] of this.compacted) if ((req[a] ?? 0) < n) return true
    let missing = 0
    for (const a of seqs.authors()) missing += Math.max(0, seqs.max(a) - (req[a] ?? 0))
    return missing > (this.init.checkpointThreshold ?? 256)
  }

  /** Verifies a state received by catch-up against the signed hash, then merges it and marks what it covers. */
  async load (header: CheckpointHeader, state: StateWriter, from: string): Promise<void> {
    const { store, counters } = this.components
    let adopted = false
    try {
      const { length, hash } = await state.finish()
      if (length !== header.stateLength) { counters.reject('checkpoint', `state of ${length} bytes, ${header.stateLength} announced`); throw badCheckpoint('truncated state') }
      if (!uint8ArrayEquals(hash, header.stateHash)) {
        counters.reject('checkpoint', `state does not match its signed hash (from ${from})`)
        throw badCheckpoint('state does not match its signed hash')
      }
      try {
        await this.components.document.applyState({ path: state.path })
      } catch (err) {
        // signed by a trusted author but not a state: what was applied of it stays (it came from that author)
        counters.reject('checkpoint', `undecodable state: ${(err as Error).message}`)
        throw badCheckpoint('undecodable state')
      }
      for (const [a, n] of Object.entries(header.vv)) this.components.seqs.cover(a, n)
      await store.adoptCheckpoint(state, encodeCheckpointHeader(header.body, header.signature))
      adopted = true
    } finally {
      if (!adopted) await store.discard(state)
    }
    this.last = header
    counters.checkpointsLoaded++
    // No snapshot here: the snapshot module's restore re-applies the stored checkpoint when the snapshot is behind it.
    this.log('loaded a checkpoint by %s of %d bytes from %s', header.author, header.stateLength, from)
  }
}
