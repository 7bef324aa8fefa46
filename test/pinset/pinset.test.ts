// The shared pinset between real libp2p peers on 127.0.0.1: gossip, trust, catch-up, persistence.
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Libp2p } from 'libp2p'
import { sha256 } from 'multiformats/hashes/sha2'
import type { Pinset } from '../../src/components.js'
import type { CairnServices } from '../../src/libp2p/index.js'
import { createPinset, pinsetSyncProtocol, pinsetTopic, type PinsetInit } from '../../src/pinset/index.js'
import {
  checkpointSigningPayload, decodeSyncRequest, decodeWant, encodeBody, encodeCheckpointBody, encodeCheckpointHeader,
  encodeChunk, encodeEnvelope, encodeHave, signingPayload
} from '../../src/pinset/protocol.js'
import { readFrames, sendFrame } from '../../src/utils/stream.js'
import { loopbackHost, quietLogger, tempDir, waitFor } from '../util.js'
import { fakeCid, pinOf } from './fixtures.js'
import type { PrivateKey } from '@libp2p/interface'
import * as Y from 'yjs'

interface Node { key: PrivateKey, id: string, libp2p: Libp2p<CairnServices>, pinset: Pinset, dir: string }

describe('pinset over libp2p', () => {
  const dirs: Array<() => Promise<void>> = []
  const running: Node[] = []
  after(async () => {
    await Promise.allSettled([...running].map(async n => await stopNode(n)))
    for (const c of dirs) await c()
  })

  let trusted = new Set<string>()

  async function startNode (key?: PrivateKey, dir?: string, cluster = 'test', extra: Partial<PinsetInit> = {}): Promise<Node> {
    key ??= await generateKeyPair('Ed25519')
    if (dir == null) { const t = await tempDir(); dirs.push(t.cleanup); dir = t.path }
    const logger = quietLogger()
    const libp2p = await loopbackHost({ privateKey: key, logger })
    const pinset = createPinset({ cluster, dataDir: dir, isTrusted: id => trusted.has(id), syncIntervalMs: 1000, ...extra }, { libp2p, privateKey: key, logger })
    await pinset.start()
    const node = { key, id: peerIdFromPrivateKey(key).toString(), libp2p, pinset, dir }
    running.push(node)
    return node
  }

  async function stopNode (n: Node): Promise<void> {
    running.splice(running.indexOf(n), 1)
    await n.pinset.stop()
    await n.libp2p.stop()
  }

  async function connect (a: Node, b: Node): Promise<void> {
    await a.libp2p.dial(b.libp2p.getMultiaddrs()[0])
  }

  async function meshed (nodes: Node[]): Promise<void> {
    await waitFor(() => nodes.every(n => n.libp2p.services.pubsub.getSubscribers(pinsetTopic('test')).length >= 1), { message: 'gossip mesh' })
  }

  function snapshot (p: Pinset): string[] {
    return [...p.list()].map(x => `${x.cid}:${x.name}`).sort()
  }

  it('replicates puts and removes to every peer, durable and signed', async () => {
    const keys = await Promise.all([0, 1, 2].map(async () => await generateKeyPair('Ed25519')))
    trusted = new Set(keys.map(k => peerIdFromPrivateKey(k).toString()))
    const [a, b, c] = await Promise.all(keys.map(async k => await startNode(k)))
    await connect(a, b); await connect(b, c); await connect(a, c)
    await meshed([a, b, c])

    const cids = await Promise.all([1, 2, 3].map(fakeCid))
    await a.pinset.put(cids.map(cid => pinOf(cid, 'from-a')))
    await waitFor(() => b.pinset.size() === 3 && c.pinset.size() === 3, { message: 'pins reach b and c' })
    assert.equal(c.pinset.get(cids[0])?.name, 'from-a')

    await b.pinset.remove([cids[1]])
    await waitFor(() => !a.pinset.has(cids[1]) && !c.pinset.has(cids[1]), { message: 'remove reaches a and c' })
    assert.deepEqual(snapshot(a.pinset), snapshot(c.pinset))

    // Concurrent writes: different CIDs and the same CID under different names, from a and b at once.
    const same = await fakeCid('same')
    const more = await Promise.all([10, 11, 12, 13].map(fakeCid))
    await Promise.all([
      a.pinset.put([pinOf(same, 'name-a'), pinOf(more[0]), pinOf(more[1])]),
      b.pinset.put([pinOf(same, 'name-b'), pinOf(more[2]), pinOf(more[3])])
    ])
    await waitFor(() => {
      const s = snapshot(a.pinset)
      return s.length === 7 && JSON.stringify(s) === JSON.stringify(snapshot(b.pinset)) && JSON.stringify(s) === JSON.stringify(snapshot(c.pinset))
    }, { message: 'all three converge to one pinset' })
    assert.ok(['name-a', 'name-b'].includes(a.pinset.get(same)!.name))

    // Restart c: pinset kept from its own level store (snapshot + log), before any peer is dialled.
    const before = snapshot(c.pinset)
    await stopNode(c)
    const c2 = await startNode(c.key, c.dir)
    assert.deepEqual(snapshot(c2.pinset), before)
    await stopNode(c2)

    // 100 pins while c is down; on restart it catches up over the sync stream.
    const hundred = await Promise.all(Array.from({ length: 100 }, async (_, i) => await fakeCid(`h${i}`)))
    for (const cid of hundred) await a.pinset.put([pinOf(cid)])
    const c3 = await startNode(c.key, c.dir)
    await connect(c3, a)
    await waitFor(() => hundred.every(cid => c3.pinset.has(cid)), { message: 'c3 caught up with 100 pins' })
    assert.deepEqual(snapshot(c3.pinset), snapshot(a.pinset))
  })

  it('drops envelopes from untrusted authors, with bad signatures or for another cluster', async () => {
    const keys = await Promise.all([0, 1].map(async () => await generateKeyPair('Ed25519')))
    trusted = new Set(keys.map(k => peerIdFromPrivateKey(k).toString()))
    const [a, b] = await Promise.all(keys.map(async k => await startNode(k)))
    const mallory = await startNode()
    await connect(a, b); await connect(mallory, a); await connect(mallory, b)
    await meshed([a, b, mallory])
    // mallory must know b subscribes, or what it publishes goes to a only (which drops it)
    await waitFor(() => mallory.libp2p.services.pubsub.getSubscribers(pinsetTopic('test')).length === 2, { message: 'mallory sees both' })

    // Mallory writes through its own pinset: it trusts itself, nobody else does.
    await mallory.pinset.put([pinOf(await fakeCid('evil'))])
    // A forged envelope claiming to be from a, signed by mallory.
    const doc = new Y.Doc()
    const updates: Uint8Array[] = []
    doc.on('update', (u: Uint8Array) => updates.push(u))
    doc.getMap('pins').set(await fakeCid('forged'), pinOf(await fakeCid('forged')))
    const body = encodeBody('test', a.id, 999, updates[0])
    await mallory.libp2p.services.pubsub.publish(pinsetTopic('test'), encodeEnvelope(body, await mallory.key.sign(signingPayload(body))))
    // A correctly signed envelope by mallory for another cluster.
    const other = encodeBody('other', mallory.id, 1, updates[0])
    await mallory.libp2p.services.pubsub.publish(pinsetTopic('test'), encodeEnvelope(other, await mallory.key.sign(signingPayload(other))))

    await waitFor(() => b.pinset.stats().envelopes_rejected >= 2, { message: 'b counts rejections' })
    // A legit write after the attack still flows, and nothing of mallory's arrived.
    await a.pinset.put([pinOf(await fakeCid('good'))])
    await waitFor(async () => b.pinset.has(await fakeCid('good')), { message: 'legit pin reaches b' })
    assert.equal(b.pinset.size(), 1)
    assert.equal(a.pinset.size(), 1)
    const reasons = b.pinset.stats().rejected_by_reason
    assert.ok((reasons.untrusted ?? 0) + (reasons.signature ?? 0) + (reasons.cluster ?? 0) >= 2, JSON.stringify(reasons))

    // Catch-up from mallory (it serves its own envelopes) brings nothing either.
    await b.pinset.syncWith(mallory.id)
    assert.equal(b.pinset.size(), 1)
  })

  it('a follower joining a 20,000-pin cluster loads a checkpoint instead of replaying the log', async () => {
    const aKey = await generateKeyPair('Ed25519')
    trusted = new Set([peerIdFromPrivateKey(aKey).toString()])
    const a = await startNode(aKey, undefined, 'test', { isWriter: () => true, checkpoint: { keepTail: 100 } })
    const cids = await Promise.all(Array.from({ length: 20_000 }, async (_, i) => await fakeCid(`big-${i}`)))
    for (let i = 0; i < cids.length; i += 50) await a.pinset.put(cids.slice(i, i + 50).map(c => pinOf(c, 'pkg')))
    assert.equal(a.pinset.stats().envelopes, 400)
    const cp = await a.pinset.checkpoint()
    assert.ok(cp != null && cp.version_vector[a.id] === 400)
    // Writes after the checkpoint still reach the follower as envelopes.
    const later = await Promise.all([1, 2, 3, 4, 5].map(async i => await fakeCid(`later-${i}`)))
    for (const cid of later) await a.pinset.put([pinOf(cid)])

    const follower = await startNode(undefined, undefined, 'test')
    // listeners hear of every pin, in slices (a 1M-pin checkpoint must not become 1M Pin objects at once)
    const heard = new Set<string>()
    let largest = 0
    follower.pinset.onChange(c => { for (const p of c.added) heard.add(p.cid); largest = Math.max(largest, c.added.length) })
    await connect(follower, a)
    await waitFor(() => follower.pinset.size() === 20_005, { timeoutMs: 60_000, message: 'follower holds every pin' })
    await waitFor(() => heard.size === 20_005, { message: 'listeners heard of every pin' })
    assert.ok(largest <= 10_000, `${largest} pins in one change event`)
    const st = follower.pinset.stats()
    assert.equal(st.checkpoints_loaded, 1)
    assert.ok(st.envelopes_applied <= 5, `replayed ${st.envelopes_applied} envelopes, expected only the 5 after the checkpoint`)
    assert.equal(follower.pinset.get(cids[12345])?.name, 'pkg')
    // The follower has the checkpoint and can serve it in turn.
    assert.equal(st.checkpoint?.author, a.id)
    assert.equal(await follower.pinset.checkpoint(), undefined, 'followers do not author checkpoints')
  })

  it('rejects bad checkpoints (untrusted author, bad signature, corrupt state): a forger is dropped, a trusted peer\'s envelopes still count', async () => {
    const aKey = await generateKeyPair('Ed25519')
    trusted = new Set([peerIdFromPrivateKey(aKey).toString()])
    const a = await startNode(aKey, undefined, 'test', { isWriter: () => true })
    const good = await fakeCid('good-before')
    await a.pinset.put([pinOf(good)])

    // Catch-up servers offering a checkpoint "by a" whose state does not match the signed hash, one signed by the
    // forger itself, and one whose signature is garbage; the last one is a trusted peer with a corrupt state.
    const doc = new Y.Doc()
    doc.getMap('pins').set(await fakeCid('forged-cp'), 'x')
    const state = Y.encodeStateAsUpdate(doc)
    const forger = await generateKeyPair('Ed25519')
    const forgerId = peerIdFromPrivateKey(forger).toString()
    const served: Record<string, number> = {}
    async function server (variant: string): Promise<Node> {
      const evil = await startNode(variant === 'untrusted' ? forger : undefined)
      await evil.libp2p.unhandle(pinsetSyncProtocol('test'))
      await evil.libp2p.handle(pinsetSyncProtocol('test'), async (stream) => {
        const frames = readFrames(stream)[Symbol.asyncIterator]()
        const req = decodeSyncRequest((await frames.next()).value as Uint8Array)
        served[variant] = (served[variant] ?? 0) + 1
        if (!req.acceptCheckpoint) {
          await sendFrame(stream, encodeHave({ vv: {}, checkpoint: false }))
          await stream.close()
          return
        }
        const author = variant === 'untrusted' ? forgerId : a.id
        const hashOf = variant.startsWith('corrupt') ? new Uint8Array(32) : (await sha256.digest(state)).digest
        const body = encodeCheckpointBody({ cluster: 'test', author, created: Date.now(), vv: { [a.id]: 10 }, stateLength: state.length, stateHash: hashOf })
        const signer = variant === 'untrusted' ? forger : aKey
        let sig = await signer.sign(checkpointSigningPayload(body))
        if (variant === 'signature') sig = sig.map(b => b ^ 1)
        await sendFrame(stream, encodeHave({ vv: { [a.id]: 10 }, checkpoint: true }))
        await sendFrame(stream, encodeCheckpointHeader(body, sig))
        const choice = await frames.next()
        if (choice.done !== true && decodeWant(choice.value).checkpoint) await sendFrame(stream, encodeChunk(state))
        await stream.close()
      })
      return evil
    }

    const follower = await startNode(undefined, undefined, 'test', { checkpointThreshold: 0 })
    const expected: Record<string, string | undefined> = { corrupt: 'BadCheckpointError', untrusted: undefined, signature: 'SyncBreachError' }
    for (const [variant, error] of Object.entries(expected)) {
      const evil = await server(variant)
      await connect(follower, evil)
      const outcome = await follower.pinset.syncWith(evil.id).then(() => undefined, (err: Error) => err.name)
      assert.equal(outcome, error, variant)
      assert.equal(follower.pinset.size(), 0)
      // a forger is not asked again for a while; a checkpoint by an author we do not trust is only declined
      await follower.pinset.syncWith(evil.id).catch(() => {})
      assert.equal(served[variant], error == null ? 2 : 1, `${variant}: asked ${served[variant]} times`)
    }
    // corrupt, signature, and untrusted twice (declined each time it is offered)
    assert.equal(follower.pinset.stats().rejected_by_reason.checkpoint, 4)

    // A trusted peer whose checkpoint state is corrupt (its disk, say): its checkpoints are refused for a while,
    // its envelopes are still asked for in the same catch-up.
    const trustedServer = await server('corrupt-trusted')
    trusted.add(trustedServer.id)
    await connect(follower, trustedServer)
    assert.equal(await follower.pinset.syncWith(trustedServer.id), 0)
    assert.equal(served['corrupt-trusted'], 2, 'asked again, for envelopes only')
    assert.equal(follower.pinset.stats().rejected_by_reason.checkpoint, 5)
    assert.equal(follower.pinset.stats().checkpoints_loaded, 0)
    // A good source still works.
    await connect(follower, a)
    await waitFor(() => follower.pinset.has(good), { message: 'follower syncs from the trusted peer' })
  })

  it('a big batch is signed as envelopes of at most 1000 pins and about 1 MiB, each gossiped whole; a pin too big for one is refused, changing nothing', async () => {
    const keys = await Promise.all([0, 1].map(async () => await generateKeyPair('Ed25519')))
    trusted = new Set(keys.map(k => peerIdFromPrivateKey(k).toString()))
    const [a, b] = await Promise.all(keys.map(async k => await startNode(k, undefined, 'test', { syncIntervalMs: 60_000 })))
    await connect(a, b)
    await meshed([a, b])
    const envelopes = (): number => a.pinset.stats().envelopes
    // 2,500 pins in one put (moving every pin of a lost peer is one such put): 3 envelopes, not one of any size
    const cids = await Promise.all(Array.from({ length: 2500 }, async (_, i) => await fakeCid(`batch-${i}`)))
    await a.pinset.put(cids.map(cid => pinOf(cid)))
    assert.equal(envelopes(), 3)
    // 40 pins with 100 KiB of metadata each, in one put: envelopes of about 1 MiB (gossip carries them whole)
    const heavy = await Promise.all(Array.from({ length: 40 }, async (_, i) => await fakeCid(`heavy-${i}`)))
    await a.pinset.put(heavy.map(cid => ({ ...pinOf(cid), metadata: { blob: 'x'.repeat(100 * 1024) } })))
    const split = envelopes() - 3
    assert.ok(split >= 4 && split <= 6, `${split} envelopes for 4 MB of pins`)
    await waitFor(() => b.pinset.size() === 2540, { message: `b has every pin (${b.pinset.size()})` })
    assert.equal(b.pinset.stats().sync_bytes_in < 64 * 1024, true, 'by gossip, not catch-up')
    // A pin whose metadata alone is over the envelope limit: refused with a clear error, with the rest of its
    // put, while a put committed in the same batch goes through.
    const big = await fakeCid('too-big')
    const [refused, other] = await Promise.allSettled([
      a.pinset.put([pinOf(await fakeCid('fine')), { ...pinOf(big), metadata: { blob: 'x'.repeat(3 * 1024 * 1024) } }]),
      a.pinset.put([pinOf(await fakeCid('other'))])
    ])
    assert.equal(refused.status, 'rejected')
    assert.match(String((refused as PromiseRejectedResult).reason), /InvalidParameterError: the pin of \S+ takes \d+ bytes in the pinset; at most \d+ fit/)
    assert.equal(other.status, 'fulfilled')
    assert.equal(a.pinset.has(big), false)
    assert.equal(a.pinset.has(await fakeCid('fine')), false, 'the put is refused whole')
    assert.equal(a.pinset.has(await fakeCid('other')), true)
    assert.equal(envelopes(), 3 + split + 1)
  })

  it('catches up a long log over several streams when one stream may bring only so many bytes', async () => {
    const aKey = await generateKeyPair('Ed25519')
    trusted = new Set([peerIdFromPrivateKey(aKey).toString()])
    const a = await startNode(aKey)
    const cids = await Promise.all(Array.from({ length: 30 }, async (_, i) => await fakeCid(`long-${i}`)))
    for (const cid of cids) await a.pinset.put([{ ...pinOf(cid), metadata: { blob: 'y'.repeat(50 * 1024) } }])
    const follower = await startNode(undefined, undefined, 'test', { maxSyncBytes: 200 * 1024, acceptCheckpoints: false, syncIntervalMs: 60_000 })
    // count the catch-up streams the follower opens
    let streams = 0
    const dialProtocol = follower.libp2p.dialProtocol.bind(follower.libp2p)
    follower.libp2p.dialProtocol = (async (...args: Parameters<typeof dialProtocol>) => {
      if (args[1] === pinsetSyncProtocol('test')) streams++
      return await dialProtocol(...args)
    }) as typeof dialProtocol
    await connect(follower, a)
    await waitFor(() => cids.every(cid => follower.pinset.has(cid)), { message: `the follower has every pin (${follower.pinset.size()})` })
    // 1.5 MB of envelopes, 200 KiB a stream: one after the other, without waiting for the next resync
    assert.ok(streams >= 6, `${streams} streams`)
  })

  it('stop() waits for a checkpoint or a snapshot under way, one snapshot runs at a time, and checkpoint() takes an abort signal', async () => {
    const aKey = await generateKeyPair('Ed25519')
    trusted = new Set([peerIdFromPrivateKey(aKey).toString()])
    const a = await startNode(aKey, undefined, 'test', { isWriter: () => true, snapshotEvery: 1 })
    // count the snapshot states being written at once
    const store = (a.pinset as unknown as { store: { createState: (k: string) => Promise<unknown>, adoptSnapshot: (s: unknown, vv: unknown) => Promise<void>, discard: (s: unknown) => Promise<void> } }).store
    let writing = 0
    let most = 0
    const snapshots = new Set<unknown>()
    const createState = store.createState.bind(store)
    store.createState = async kind => {
      const state = await createState(kind)
      if (kind === 'snapshot') { snapshots.add(state); most = Math.max(most, ++writing) }
      return state
    }
    for (const name of ['adoptSnapshot', 'discard'] as const) {
      const original = (store[name] as (...args: unknown[]) => Promise<void>).bind(store)
      store[name] = (async (state: unknown, ...rest: unknown[]) => {
        try { return await original(state, ...rest) } finally { if (snapshots.delete(state)) writing-- }
      }) as never
    }
    const cids = await Promise.all(Array.from({ length: 3000 }, async (_, i) => await fakeCid(`stop-${i}`)))
    await Promise.all(Array.from({ length: 30 }, async (_, i) => { await a.pinset.put(cids.slice(i * 100, i * 100 + 100).map(cid => pinOf(cid))) }))
    assert.equal(most, 1, `${most} snapshots were written at once`)

    await assert.rejects(a.pinset.checkpoint({ signal: AbortSignal.abort() }), { name: 'AbortError' })
    let checkpointSettled = false
    const checkpoint = a.pinset.checkpoint().then(() => 'made', (err: Error) => err.name).finally(() => { checkpointSettled = true })
    await a.pinset.put([pinOf(await fakeCid('last'))])
    await stopNode(a)
    assert.equal(checkpointSettled, true, 'stop() returned before the checkpoint settled')
    assert.ok(['made', 'AbortError'].includes(await checkpoint), await checkpoint)
    assert.equal(writing, 0, 'no snapshot is left half-written')
    const again = await startNode(aKey, a.dir)
    assert.equal(again.pinset.size(), 3001)
  })
})
