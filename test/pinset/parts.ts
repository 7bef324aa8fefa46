// The pinset's local pieces wired by hand over a real level store, without libp2p: a document, the group commit
// writing signed envelopes into the store, and what the commit told (published seqs, stored counts, changes).
import assert from 'node:assert/strict'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createGroupCommit, type CommitInit, type GroupCommit } from '../../src/pinset/commit.js'
import { PinsetDocument } from '../../src/pinset/document.js'
import { decodeEnvelope, type Envelope } from '../../src/pinset/protocol.js'
import { PinsetStore, SeqTracker } from '../../src/pinset/store.js'
import { quietLogger } from '../util.js'
import type { PinsetChange } from '../../src/components.js'
import type { PrivateKey } from '@libp2p/interface'

export interface LocalParts {
  self: string
  key: PrivateKey
  commits: GroupCommit
  document: PinsetDocument
  store: PinsetStore
  seqs: SeqTracker
  published: Array<{ seq: number, bytes: Uint8Array }>
  stored: number[]
  changes: PinsetChange[]
  started: boolean
  close: () => Promise<void>
}

/** Opens a store at `path` and wires a started group commit to it; `onStored` sees what the commit stored. */
export async function localParts (path: string, key: PrivateKey, init: Partial<CommitInit> = {}, onStored?: (n: number) => void): Promise<LocalParts> {
  const logger = quietLogger()
  const self = peerIdFromPrivateKey(key).toString()
  const store = new PinsetStore(path)
  await store.open()
  const document = new PinsetDocument({ logger, onMalformed: detail => { assert.fail(detail) } })
  document.observe()
  const seqs = new SeqTracker()
  const published: LocalParts['published'] = []
  const stored: number[] = []
  const changes: PinsetChange[] = []
  document.onChange(change => { changes.push(change) })
  const commits = createGroupCommit({ cluster: 'test', self, ...init }, {
    document, store, seqs, privateKey: key, logger, isStarted: () => parts.started,
    onStored: n => { stored.push(n); onStored?.(n) },
    publish: (seq, bytes) => { published.push({ seq, bytes }) }
  })
  const parts: LocalParts = {
    self, key, commits, document, store, seqs, published, stored, changes, started: true,
    close: async () => {
      await store.close()
      document.destroy()
    }
  }
  return parts
}

/** The stored envelopes of an author, in order. */
export async function storedEnvelopes (store: PinsetStore, author: string): Promise<Envelope[]> {
  const out = []
  for await (const { bytes } of store.envelopesAfter(author, 0)) out.push(decodeEnvelope(bytes))
  return out
}
