// The pinset on disk across restarts: a snapshot of the document (with the version vector it covers) written
// every snapshotEvery envelopes and at stop, and at start the snapshot, the stored checkpoint, then the logged
// envelopes neither covers. One snapshot is written at a time.
import { decodeEnvelope, type VersionVector } from './protocol.js'
import { liveEntries, type PinsetDocument } from './document.js'
import type { PinsetStore, SeqTracker } from './store.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export interface SnapshotsInit {
  /** Write a snapshot of the document after this many envelopes applied since the last one (default 5000). */
  snapshotEvery?: number
}

export interface SnapshotsComponents {
  document: PinsetDocument
  store: PinsetStore
  seqs: SeqTracker
  logger: ComponentLogger
  /** Restores the stored checkpoint, given the vector the snapshot covers. */
  restoreCheckpoint: (snapshotVv: VersionVector | undefined) => Promise<void>
  /** Whether the document holds local changes no stored envelope has (they must not reach a snapshot). */
  hasUnsaved: () => boolean
}

export class Snapshots {
  private readonly log: Logger
  private sinceSnapshot = 0
  private snapshotting?: Promise<void>

  constructor (private readonly init: SnapshotsInit, private readonly components: SnapshotsComponents) {
    this.log = components.logger.forComponent('cairn:pinset')
  }

  /** Loads the snapshot, then applies the logged envelopes it does not cover. */
  async restore (): Promise<void> {
    const { document, store, seqs } = this.components
    const snapshot = await store.getSnapshot()
    if (snapshot != null) await document.applyState(snapshot.source)
    await this.components.restoreCheckpoint(snapshot?.vv)
    for await (const { author, seq } of store.keys()) seqs.add(author, seq)
    let applied = 0
    for (const author of await store.authors()) {
      let batch: Uint8Array[] = []
      const flush = (): void => {
        document.transactRemote(() => { for (const u of batch) document.applyUpdate(u) })
        applied += batch.length
        batch = []
      }
      for await (const { bytes } of store.envelopesAfter(author, snapshot?.vv[author] ?? 0)) {
        batch.push(decodeEnvelope(bytes).update)
        if (batch.length >= 1000) flush()
      }
      flush()
    }
    this.sinceSnapshot = applied
    this.log('loaded %d pins, %d envelopes (%d replayed after the snapshot)', liveEntries(document.map), seqs.count(), applied)
  }

  /** Counts envelopes applied since the last snapshot, and writes one when enough have been. */
  noteApplied (n: number): void {
    this.sinceSnapshot += n
    void this.maybeWrite()
  }

  /** Writes a snapshot after the one under way, if any: one at a time, and stop() waits for it. */
  async write (): Promise<void> {
    while (this.snapshotting != null) await this.snapshotting.catch(() => {})
    // a snapshot holding changes no stored envelope has would hide them from peers after a restart
    if (this.sinceSnapshot === 0 || this.components.hasUnsaved() || this.components.store.refusal() != null) return
    const p = this.snapshot().finally(() => { this.snapshotting = undefined })
    this.snapshotting = p
    await p
  }

  private async snapshot (): Promise<void> {
    const { store, seqs, document } = this.components
    // The vector is the contiguous prefix: envelopes above a gap are replayed again at load, which is harmless.
    const state = await store.createState('snapshot')
    try {
      // the state and the vector it covers, taken in the same tick
      state.writeDoc(document.doc)
      const vv = seqs.versionVector()
      this.sinceSnapshot = 0
      await state.finish()
      await store.adoptSnapshot(state, vv)
    } catch (err) {
      await store.discard(state)
      throw err
    }
  }

  private async maybeWrite (): Promise<void> {
    if (this.snapshotting == null && this.sinceSnapshot >= (this.init.snapshotEvery ?? 5000)) {
      await this.write().catch(err => { this.log.error('writing the pinset snapshot failed: %e', err) })
    }
  }
}
