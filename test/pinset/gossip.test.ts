// The pinset's gossip alone (src/pinset/gossip.ts) over a fake pubsub: what the topic validator accepts,
// ignores (no blame) and rejects (blame: the sender's score is recomputed), per-sender rates with one catch-up
// afterwards, and what is published. Real gossipsub runs in attacker.test.ts and daemon-attack.test.ts.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { clusterSecret, type ClusterSecret } from '../../src/secret.js'
import { PinsetCounters } from '../../src/pinset/counters.js'
import { createGossip, type GossipInit, type PinsetGossip } from '../../src/pinset/gossip.js'
import { decodeGossip, encodeBody, encodeEnvelope, encodeNotice, signingPayload, type Envelope } from '../../src/pinset/protocol.js'
import { SeqTracker } from '../../src/pinset/store.js'
import { Verifier } from '../../src/pinset/verify.js'
import { quietLogger, waitFor } from '../util.js'
import type { GossipSub } from '@libp2p/gossipsub'
import type { PeerId, PrivateKey } from '@libp2p/interface'

const TOPIC = 'cairn/test/pinset'

interface Author { key: PrivateKey, id: PeerId }

async function author (): Promise<Author> {
  const key = await generateKeyPair('Ed25519')
  return { key, id: peerIdFromPrivateKey(key) }
}

async function envelope (by: Author, seq: number, cluster = 'test'): Promise<Uint8Array> {
  const body = encodeBody(cluster, by.id.toString(), seq, Uint8Array.of(0, 0))
  return encodeEnvelope(body, await by.key.sign(signingPayload(body)))
}

type Validator = (from: PeerId, msg: { type: 'signed', from: PeerId, data: Uint8Array }) => Promise<TopicValidatorResult>

/** Just what gossip.ts uses of gossipsub: validators, message events, subscribe, publish, the score cache. */
class FakePubsub extends EventTarget {
  readonly topicValidators = new Map<string, Validator>()
  readonly subscribed = new Set<string>()
  readonly published: Uint8Array[] = []
  readonly score = { scoreCache: new Map<string, number>() }
  subscribe (topic: string): void { this.subscribed.add(topic) }
  unsubscribe (topic: string): void { this.subscribed.delete(topic) }
  async publish (_topic: string, data: Uint8Array): Promise<{ recipients: PeerId[] }> {
    this.published.push(data)
    return { recipients: [] }
  }

  /** Runs the validator, as gossipsub does before relaying; `source` is the peer it came from. */
  async validate (data: Uint8Array, publisher: PeerId, source = publisher): Promise<TopicValidatorResult> {
    this.score.scoreCache.set(source.toString(), 0)
    const result = await this.topicValidators.get(TOPIC)!(source, { type: 'signed', from: publisher, data })
    await new Promise(resolve => setImmediate(resolve))
    return result
  }

  deliver (data: Uint8Array, from: PeerId): void {
    this.dispatchEvent(new CustomEvent('message', { detail: { topic: TOPIC, data, type: 'signed', from } }))
  }
}

interface Rig {
  gossip: PinsetGossip
  pubsub: FakePubsub
  counters: PinsetCounters
  seqs: SeqTracker
  ingested: Envelope[]
  syncs: string[]
  self: Author
}

async function rig (trusted: Author[], init: Partial<GossipInit> = {}, secret: ClusterSecret = clusterSecret('')): Promise<Rig> {
  const logger = quietLogger()
  const self = await author()
  const pubsub = new FakePubsub()
  const counters = new PinsetCounters({ logger })
  const seqs = new SeqTracker()
  const ingested: Envelope[] = []
  const syncs: string[] = []
  const ids = new Set(trusted.map(a => a.id.toString()))
  const gossip = createGossip({ topic: TOPIC, self: self.id.toString(), ...init }, {
    pubsub: pubsub as unknown as GossipSub,
    secret,
    seqs,
    verifier: new Verifier({ cluster: 'test', self: self.id.toString(), isTrusted: id => ids.has(id) }),
    counters,
    ingest: async envs => {
      for (const e of envs) { seqs.add(e.author, e.seq); ingested.push(e) }
      return envs.length
    },
    logger,
    isStarted: () => true,
    syncSoon: peer => { syncs.push(peer) }
  })
  gossip.start()
  return { gossip, pubsub, counters, seqs, ingested, syncs, self }
}

describe('pinset gossip', () => {
  it('accepts a trusted author\'s envelope and ingests it when delivered; ignores one already held, without blame', async () => {
    const a = await author()
    const r = await rig([a])
    assert.ok(r.pubsub.subscribed.has(TOPIC))
    const env = await envelope(a, 1)
    assert.equal(await r.pubsub.validate(env, a.id), TopicValidatorResult.Accept)
    r.pubsub.deliver(env, a.id)
    await waitFor(() => r.ingested.length === 1, { message: 'ingested' })
    assert.deepEqual([r.ingested[0].author, r.ingested[0].seq], [a.id.toString(), 1])
    assert.equal(await r.pubsub.validate(env, a.id), TopicValidatorResult.Ignore)
    assert.equal(r.counters.duplicates, 1)
    assert.ok(r.pubsub.score.scoreCache.has(a.id.toString()), 'no blame')
    assert.equal(r.counters.rejectedTotal(), 0)

    // an envelope above a gap: ingested, and its sender asked for catch-up
    r.pubsub.deliver(await envelope(a, 3), a.id)
    await waitFor(() => r.syncs.length === 1, { message: 'a catch-up for the gap' })
    assert.deepEqual(r.syncs, [a.id.toString()])

    r.gossip.stop()
    assert.equal(r.pubsub.topicValidators.size, 0)
    assert.equal(r.pubsub.subscribed.size, 0)
  })

  it('rejects what no honest peer sends, by reason, and has the sender\'s score recomputed', async () => {
    const [a, stranger] = await Promise.all([author(), author()])
    const r = await rig([a])
    const forged = await envelope(a, 1)
    forged[forged.length - 1] ^= 1
    const cases: Array<[string, Uint8Array, PeerId]> = [
      ['untrusted', await envelope(stranger, 1), stranger.id],
      ['cluster', await envelope(a, 2, 'other'), a.id],
      ['signature', forged, a.id],
      ['sender', encodeNotice({ author: a.id.toString(), seq: 5 }), stranger.id],
      ['malformed', Uint8Array.of(0x7f, 1, 2), stranger.id]
    ]
    for (const [reason, data, from] of cases) {
      assert.equal(await r.pubsub.validate(data, from), TopicValidatorResult.Reject, reason)
      assert.equal(r.counters.rejected.get(reason), 1, reason)
      assert.equal(r.pubsub.score.scoreCache.has(from.toString()), false, `${reason}: the score is recomputed`)
    }

    const sealed = await rig([a], {}, clusterSecret(randomBytes(32).toString('hex')))
    assert.equal(await sealed.pubsub.validate(await envelope(a, 1), a.id), TopicValidatorResult.Reject)
    assert.equal(sealed.counters.rejected.get('secret'), 1)
  })

  it('drops gossip past a sender\'s rate and asks it for catch-up once; notices are blamed only on their author', async () => {
    const [a, relay] = await Promise.all([author(), author()])
    const slow = { perSecond: 0.001, burst: 2 }
    const r = await rig([a], { gossipRate: { envelopes: slow, notices: slow } })
    const results = []
    for (let seq = 1; seq <= 5; seq++) results.push(await r.pubsub.validate(await envelope(a, seq), a.id))
    assert.deepEqual(results, [TopicValidatorResult.Accept, TopicValidatorResult.Accept, TopicValidatorResult.Ignore, TopicValidatorResult.Ignore, TopicValidatorResult.Ignore])
    assert.equal(r.counters.rejected.get('rate'), 3)
    assert.ok(r.pubsub.score.scoreCache.has(a.id.toString()), 'an honest writer bursting is not blamed')
    assert.deepEqual(r.syncs, [], 'not at once')
    await waitFor(() => r.syncs.length > 0, { message: 'a catch-up with the sender' })
    assert.deepEqual(r.syncs, [a.id.toString()], 'once')

    const notice = (seq: number): Uint8Array => encodeNotice({ author: a.id.toString(), seq })
    assert.equal(await r.pubsub.validate(notice(10), a.id), TopicValidatorResult.Accept)
    assert.equal(await r.pubsub.validate(notice(11), a.id), TopicValidatorResult.Accept)
    assert.equal(await r.pubsub.validate(notice(12), a.id, relay.id), TopicValidatorResult.Ignore, 'a relay is not blamed')
    assert.equal(await r.pubsub.validate(notice(13), a.id), TopicValidatorResult.Reject, 'the author flooding is')
  })

  it('publishes an envelope as it is, or a notice of it when larger than maxGossipBytes, sealed with the secret', async () => {
    const secret = clusterSecret(randomBytes(32).toString('hex'))
    const r = await rig([], { maxGossipBytes: 200 }, secret)
    const small = await envelope(r.self, 1)
    r.gossip.publish(1, small)
    const large = encodeEnvelope(encodeBody('test', r.self.id.toString(), 2, new Uint8Array(300)), new Uint8Array(64))
    r.gossip.publish(2, large)
    await waitFor(() => r.pubsub.published.length === 2, { message: 'published' })
    assert.ok(Buffer.from(secret.open(r.pubsub.published[0])).equals(small), 'the envelope, sealed')
    assert.deepEqual(decodeGossip(secret.open(r.pubsub.published[1])), { type: 'notice', notice: { author: r.self.id.toString(), seq: 2 } })
  })
})
