// Reading a peer's pinset from its level store without starting the peer (`cairn follow list` when the
// daemon is stopped): the snapshot, a stored checkpoint it does not contain, then the logged envelopes it does
// not cover, as Snapshots.restore (snapshots.ts) does.
// Stored envelopes were checked when they arrived, so they are applied as they are.
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import * as Y from 'yjs'
import { decodePin } from './codec.js'
import { decodeCheckpointHeader, decodeEnvelope } from './protocol.js'
import { applyState } from './state.js'
import { PinsetStore } from './store.js'
import type { Pin } from '../components.js'

export const PINSET_DIR = 'pinset'

/**
 * Every pin of the pinset stored under `dataDir`; none when the peer never ran. The store is closed before the
 * first pin is yielded. Opening fails (level's LEVEL_DATABASE_NOT_OPEN, cause LEVEL_LOCKED) while a running
 * peer holds the store: see isStoreLockedError.
 */
export async function * listPinsetOffline (dataDir: string): AsyncIterable<Pin> {
  const path = join(dataDir, PINSET_DIR)
  // opening would create an empty store; a peer that never ran has no pins
  if (!(await isDirectory(path))) return
  const store = new PinsetStore(path)
  const doc = new Y.Doc()
  try {
    await store.open()
    try {
      const snapshot = await store.getSnapshot()
      if (snapshot != null) await applyState(doc, snapshot.source)
      const header = await store.getCheckpointHeader()
      // a checkpoint received after the last snapshot (its envelopes may be compacted away)
      if (header != null && Object.entries(decodeCheckpointHeader(header).vv).some(([a, n]) => (snapshot?.vv[a] ?? 0) < n)) {
        const checkpoint = await store.getCheckpoint()
        if (checkpoint != null) await applyState(doc, checkpoint.source)
      }
      for (const author of await store.authors()) {
        const updates: Uint8Array[] = []
        for await (const { bytes } of store.envelopesAfter(author, snapshot?.vv[author] ?? 0)) updates.push(decodeEnvelope(bytes).update)
        doc.transact(() => {
          for (const update of updates) {
            // a malformed update was already dropped by the running peer; skip it here too
            try { Y.applyUpdate(doc, update) } catch {}
          }
        })
      }
    } finally {
      await store.close()
    }
    for (const [key, value] of doc.getMap<string>('pins').entries()) yield decodePin(value, key)
  } finally {
    doc.destroy()
  }
}

/** Whether an error from opening a level store means another process (or peer) holds it. */
export function isStoreLockedError (err: unknown): boolean {
  for (let e = err as { code?: unknown, cause?: unknown } | undefined; e != null; e = e.cause as typeof e) {
    if (e.code === 'LEVEL_LOCKED') return true
  }
  return false
}

async function isDirectory (path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}
