// Remote envelopes (from gossip or catch-up) into the pinset: verified unless already done, stored in the log
// (not fsynced: a lost one comes back by catch-up), then applied to the document in one transaction.
import { encodeEnvelope, type Envelope } from './protocol.js'
import type { PinsetCounters } from './counters.js'
import type { PinsetDocument } from './document.js'
import type { PinsetStore, SeqTracker } from './store.js'
import type { Verifier } from './verify.js'

export interface IngestComponents {
  document: PinsetDocument
  store: PinsetStore
  seqs: SeqTracker
  verifier: Verifier
  counters: PinsetCounters
  isStarted: () => boolean
  /** Told how many envelopes were stored and applied (snapshot and checkpoint schedules). */
  onApplied: (n: number) => void
}

/** Verifies (unless already done), stores and applies envelopes; resolves with how many were new. */
export type Ingest = (envelopes: Envelope[], options?: { verified?: boolean }) => Promise<number>

export function createIngest (components: IngestComponents): Ingest {
  const { document, store, seqs, verifier, counters } = components
  return async (envelopes, options = {}) => {
    const fresh: Envelope[] = []
    const seen = new Set<string>()
    for (const env of envelopes) {
      const id = `${env.author}/${env.seq}`
      if (seqs.has(env.author, env.seq) || seen.has(id)) continue
      if (options.verified !== true) {
        const why = await verifier.check(env)
        if (why != null) { counters.reject(why, `author ${env.author} seq ${env.seq}`); continue }
      }
      seen.add(id)
      fresh.push(env)
    }
    if (fresh.length === 0 || !components.isStarted()) return 0
    // the store takes no writes (the disk filled): a catch-up after the restart brings them
    if (store.refusal() != null) return 0
    await store.putEnvelopes(fresh.map(e => ({ author: e.author, seq: e.seq, bytes: encodeEnvelope(e.body, e.signature) })), false)
    let applied = 0
    document.transactRemote(() => {
      for (const env of fresh) {
        if (!seqs.add(env.author, env.seq)) continue // a concurrent ingest got it first
        document.applyUpdate(env.update)
        applied++
      }
    })
    counters.envelopesApplied += applied
    components.onApplied(applied)
    return applied
  }
}
