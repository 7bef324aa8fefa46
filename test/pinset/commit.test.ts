// The group commit alone (src/pinset/commit.ts), over a real level store: what is batched into one envelope,
// how a large batch is cut, that a bad operation fails alone, and what a refused write leaves behind.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import * as Y from 'yjs'
import { Verifier } from '../../src/pinset/verify.js'
import { pinKey } from '../../src/utils/keys.js'
import { tempDir } from '../util.js'
import { fakeCid, pinOf } from './fixtures.js'
import { localParts, storedEnvelopes, type LocalParts } from './parts.js'
import type { CommitInit } from '../../src/pinset/commit.js'
import type { Envelope } from '../../src/pinset/protocol.js'
import type { PrivateKey } from '@libp2p/interface'

describe('pinset group commit', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  let key: PrivateKey
  const rigs: LocalParts[] = []

  beforeEach(async () => {
    dir = await tempDir()
    key = await generateKeyPair('Ed25519')
  })

  afterEach(async () => {
    for (const rig of rigs.splice(0)) await rig.close()
    await dir.cleanup()
  })

  async function rig (init: Partial<CommitInit> = {}): Promise<LocalParts> {
    const r = await localParts(join(dir.path, `pinset-${rigs.length}`), key, init)
    rigs.push(r)
    return r
  }

  async function envelopes (r: LocalParts): Promise<Envelope[]> { return await storedEnvelopes(r.store, r.self) }

  /** A fresh document with only the stored envelopes applied (what a peer catching up gets). */
  async function replayed (r: LocalParts): Promise<Y.Map<string>> {
    const doc = new Y.Doc()
    for (const env of await envelopes(r)) Y.applyUpdate(doc, env.update)
    return doc.getMap<string>('pins')
  }

  it('batches operations queued together into one signed envelope, stored before callers resolve, then told and published', async () => {
    const r = await rig()
    const cids = await Promise.all([1, 2, 3].map(fakeCid))
    const puts = cids.map(async cid => { await r.commits.put([pinOf(cid)]) })
    await Promise.all(puts)
    const stored = await envelopes(r)
    assert.equal(stored.length, 1, 'one envelope for three operations')
    assert.equal(stored[0].seq, 1)
    assert.equal(stored[0].author, r.self)
    assert.equal(await new Verifier({ cluster: 'test', self: r.self, isTrusted: () => false }).check(stored[0]), undefined, 'signed by this peer')
    assert.deepEqual(r.seqs.versionVector(), { [r.self]: 1 })
    assert.deepEqual(r.stored, [1])
    assert.deepEqual(r.published.map(p => p.seq), [1])
    assert.equal(r.changes.length, 1, 'listeners told once')
    assert.deepEqual(r.changes[0].added.map(p => p.cid).sort(), cids.map(pinKey).sort())
    assert.equal(r.changes[0].local, true)
    assert.deepEqual([...(await replayed(r)).keys()].sort(), cids.map(pinKey).sort())

    // a removal is an envelope too; drain() waits for what is queued
    void r.commits.remove([cids[0]])
    await r.commits.drain()
    assert.equal(r.document.has(cids[0]), false)
    assert.equal((await envelopes(r)).length, 2)
    assert.deepEqual(r.changes[1], { added: [], removed: [pinKey(cids[0])], local: true })
  })

  it('cuts a large operation into envelopes of at most maxPinsPerEnvelope pins, and of about maxGossipBytes', async () => {
    const r = await rig({ maxPinsPerEnvelope: 2 })
    const cids = await Promise.all([1, 2, 3, 4, 5].map(n => fakeCid(`big-${n}`)))
    await r.commits.put(cids.map(cid => pinOf(cid)))
    assert.deepEqual((await envelopes(r)).map(e => e.seq), [1, 2, 3])
    assert.deepEqual(r.published.map(p => p.seq), [1, 2, 3])
    assert.deepEqual(r.stored, [3], 'stored in one write')
    assert.equal((await replayed(r)).size, 5)

    const small = await rig({ maxGossipBytes: 1 })
    const more = await Promise.all([6, 7, 8].map(n => fakeCid(`big-${n}`)))
    await small.commits.put(more.map(cid => pinOf(cid)))
    assert.deepEqual(small.published.map(p => p.seq), [1, 2, 3], 'one pin per envelope when a pin alone is past the byte target')
  })

  it('fails a pin too big for an envelope alone, not the operations batched with it', async () => {
    const r = await rig()
    const ok = await fakeCid('fits')
    const big = { ...pinOf(await fakeCid('too-big')), metadata: { blob: 'x'.repeat(2 * 1024 * 1024) } }
    const [bad, good] = await Promise.allSettled([r.commits.put([big]), r.commits.put([pinOf(ok)])])
    assert.equal(bad.status, 'rejected')
    assert.equal((bad as PromiseRejectedResult).reason.name, 'InvalidParameterError')
    assert.match((bad as PromiseRejectedResult).reason.message, /takes \d+ bytes in the pinset/)
    assert.equal(good.status, 'fulfilled')
    assert.equal(r.document.has(ok), true)
    assert.deepEqual([...(await replayed(r)).keys()], [pinKey(ok)])
  })

  it('when the store refuses a commit: callers get the error, the change is undone and not told, and the next envelope carries it', async () => {
    const r = await rig()
    const [a, b] = await Promise.all([fakeCid('refused'), fakeCid('after')])
    const putEnvelopes = r.store.putEnvelopes.bind(r.store)
    r.store.putEnvelopes = async () => { throw new Error('disk full (test)') }
    await assert.rejects(r.commits.put([pinOf(a)]), /disk full \(test\)/)
    assert.equal(r.document.has(a), false, 'undone')
    assert.equal(r.changes.length, 0, 'listeners not told')
    assert.equal(r.commits.hasUnsaved(), true)
    assert.deepEqual(r.published, [])
    assert.deepEqual(r.seqs.versionVector(), {})

    r.store.putEnvelopes = putEnvelopes
    await r.commits.put([pinOf(b)])
    assert.equal(r.commits.hasUnsaved(), false)
    const stored = await envelopes(r)
    assert.deepEqual(stored.map(e => e.seq), [1], 'the refused seq is used again')
    // without the refused change and its undo in the envelope, a peer would hold b's update as pending forever
    assert.deepEqual([...(await replayed(r)).keys()], [pinKey(b)])
    assert.deepEqual(r.changes.map(c => c.added.map(p => p.cid)), [[pinKey(b)]])
  })

  it('refuses operations while the pinset is not started, and an aborted signal', async () => {
    const r = await rig()
    const cid = await fakeCid('early')
    await assert.rejects(r.commits.put([pinOf(cid)], { signal: AbortSignal.abort() }), { name: 'AbortError' })
    r.started = false
    await assert.rejects(r.commits.put([pinOf(cid)]), { name: 'NotStartedError' })
    assert.equal((await envelopes(r)).length, 0)
  })
})
