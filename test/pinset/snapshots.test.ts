// What a restart finds (src/pinset/snapshots.ts with checkpoints.ts), over a real level store: the snapshot, a
// checkpoint newer than it, then the log above both; and when snapshots are written.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { Checkpoints } from '../../src/pinset/checkpoints.js'
import { PinsetCounters } from '../../src/pinset/counters.js'
import { Snapshots } from '../../src/pinset/snapshots.js'
import { pinKey } from '../../src/utils/keys.js'
import { quietLogger, tempDir } from '../util.js'
import { fakeCid, pinOf } from './fixtures.js'
import { localParts, storedEnvelopes, type LocalParts } from './parts.js'
import type { PrivateKey } from '@libp2p/interface'

interface Peer { parts: LocalParts, snapshots: Snapshots, checkpoints: Checkpoints }

describe('pinset snapshots and restart', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  let key: PrivateKey
  let path: string
  const open: Peer[] = []

  beforeEach(async () => {
    dir = await tempDir()
    key = await generateKeyPair('Ed25519')
    path = join(dir.path, 'pinset')
  })

  afterEach(async () => {
    for (const peer of open.splice(0)) await peer.parts.close()
    await dir.cleanup()
  })

  /** The pinset's local pieces on `path`, wired as src/pinset/index.ts wires them (no network). */
  async function start (snapshotEvery = 5000): Promise<Peer> {
    const logger = quietLogger()
    let peer: Peer | undefined
    const parts = await localParts(path, key, {}, n => { peer?.checkpoints.noteApplied(n); peer?.snapshots.noteApplied(n) })
    const { document, store, seqs, commits } = parts
    const checkpoints = new Checkpoints({ cluster: 'test', self: parts.self, isWriter: () => true, checkpoint: { keepTail: 0 } }, {
      document, store, seqs, privateKey: key, counters: new PinsetCounters({ logger }), logger, isStarted: () => parts.started, shutdown: new AbortController().signal
    })
    const snapshots = new Snapshots({ snapshotEvery }, {
      document, store, seqs, logger,
      restoreCheckpoint: async vv => { await checkpoints.restore(vv) },
      hasUnsaved: () => commits.hasUnsaved()
    })
    peer = { parts, snapshots, checkpoints }
    open.push(peer)
    return peer
  }

  async function restart (peer: Peer): Promise<Peer> {
    await peer.parts.close()
    open.splice(open.indexOf(peer), 1)
    const again = await start()
    await again.snapshots.restore()
    return again
  }

  async function putEach (peer: Peer, names: string[]): Promise<string[]> {
    const cids = await Promise.all(names.map(fakeCid))
    for (const cid of cids) await peer.parts.commits.put([pinOf(cid)])
    return cids
  }

  const keysOf = (peer: Peer): string[] => [...peer.parts.document.list()].map(p => p.cid).sort()

  it('restores the snapshot, then the logged envelopes above it (the log below it compacted away)', async () => {
    const a = await start()
    const first = await putEach(a, ['s1', 's2', 's3'])
    await a.snapshots.write()
    await a.parts.store.compact(a.parts.self, 3)
    const later = await putEach(a, ['l1', 'l2'])
    assert.deepEqual((await storedEnvelopes(a.parts.store, a.parts.self)).map(e => e.seq), [4, 5])

    const b = await restart(a)
    assert.deepEqual(keysOf(b), [...first, ...later].map(pinKey).sort())
    assert.deepEqual(b.parts.seqs.versionVector(), { [b.parts.self]: 5 }, 'the compacted seqs count as held')
    // the next commit goes on after them
    await putEach(b, ['n1'])
    assert.deepEqual(b.parts.published.map(p => p.seq), [6])
  })

  it('restores a stored checkpoint the snapshot does not contain', async () => {
    const a = await start()
    const first = await putEach(a, ['c1', 'c2', 'c3'])
    await a.snapshots.write()
    const later = await putEach(a, ['c4', 'c5'])
    const made = await a.checkpoints.checkpoint()
    assert.deepEqual(made?.version_vector, { [a.parts.self]: 5 })
    assert.deepEqual(await storedEnvelopes(a.parts.store, a.parts.self), [], 'the checkpoint compacted the whole log (keepTail 0)')

    const b = await restart(a)
    assert.deepEqual(keysOf(b), [...first, ...later].map(pinKey).sort())
    assert.deepEqual(b.parts.seqs.versionVector(), { [b.parts.self]: 5 })
    assert.equal(b.checkpoints.newest()?.author, b.parts.self)
  })

  it('writes a snapshot every snapshotEvery envelopes, one at a time, and none holding a change no envelope has', async () => {
    const a = await start(2)
    const { store } = a.parts
    let writing = 0
    let most = 0
    const createState = store.createState.bind(store)
    const discard = store.discard.bind(store)
    const adoptSnapshot = store.adoptSnapshot.bind(store)
    store.createState = async kind => {
      const state = await createState(kind)
      if (kind === 'snapshot') most = Math.max(most, ++writing)
      return state
    }
    store.adoptSnapshot = async (state, vv) => { try { await adoptSnapshot(state, vv) } finally { writing-- } }
    store.discard = async state => { try { await discard(state) } finally { writing-- } }

    await putEach(a, ['e1', 'e2', 'e3'])
    await Promise.all([a.snapshots.write(), a.snapshots.write(), a.snapshots.write()])
    assert.equal(most, 1, `${most} snapshots were written at once`)
    assert.deepEqual((await store.getSnapshot())?.vv, { [a.parts.self]: 3 })

    // a refused commit leaves its change (undone) in the document and in no envelope: no snapshot may hold it
    await putEach(a, ['e4'])
    const putEnvelopes = store.putEnvelopes.bind(store)
    store.putEnvelopes = async () => { throw new Error('disk full (test)') }
    await assert.rejects(a.parts.commits.put([pinOf(await fakeCid('refused'))]), /disk full/)
    await a.snapshots.write()
    assert.deepEqual((await store.getSnapshot())?.vv, { [a.parts.self]: 3 }, 'no snapshot while a change is unsaved')
    store.putEnvelopes = putEnvelopes
    await putEach(a, ['e5'])
    await a.snapshots.write()
    assert.deepEqual((await store.getSnapshot())?.vv, { [a.parts.self]: 5 })
    assert.equal(writing, 0)
  })
})
