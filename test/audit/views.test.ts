// How an auditor names each peer's standing, in open and closed clusters, on trusted peers and followers.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { MemoryDatastore } from 'datastore-core'
import { createAuditor, offlineBlocks } from '../../src/audit/index.js'
import { TrustBook } from '../../src/audit/trust.js'
import { loopbackHost, quietLogger, TEST_DHT } from '../util.js'

describe('trust views', () => {
  it('trusted peers are trusted; others by their audits in an open cluster, proven in a closed one unless they failed; a follower has no view', async () => {
    const key = await generateKeyPair('Ed25519')
    const self = peerIdFromPrivateKey(key).toString()
    const libp2p = await loopbackHost({ privateKey: key, dht: { ...TEST_DHT, protocol: '/cairn-views/kad/1.0.0' } })
    const datastore = new MemoryDatastore()
    // what an earlier run learnt: one peer proven, one failed (cool-down running)
    const book = new TrustBook({ provenAfter: 3, provenPins: 2, cooldownMs: 3_600_000 }, datastore)
    for (const pin of ['a', 'b', 'c']) await book.pass('good', pin)
    await book.fail('bad', 'block x is not held')
    let writer = true
    let closed = false
    const auditor = createAuditor({ cluster: 'views', isTrusted: p => p === self || p === 'other-trusted', isWriter: () => writer, isClosed: () => closed }, {
      libp2p, logger: quietLogger(), pinset: { list: () => [][Symbol.iterator](), onChange: () => () => {} }, monitor: { peerset: () => [] },
      blocks: offlineBlocks({ get: () => { throw new Error('unused') } }), verifier: { getHasher: () => { throw new Error('unused') }, getCodec: () => { throw new Error('unused') } }, datastore
    })
    try {
      await auditor.start()
      const view = (): string[] => [self, 'other-trusted', 'good', 'bad', 'new'].map(p => auditor.trustOf(p))
      assert.deepEqual(view(), ['trusted', 'trusted', 'proven', 'failed', 'probation'])
      assert.equal(auditor.peerTrust('bad').last_error, 'block x is not held')
      closed = true
      assert.deepEqual(view(), ['trusted', 'trusted', 'proven', 'failed', 'proven'], 'a closed cluster vouches for its members, not for a failed one')
      writer = false
      assert.deepEqual(view(), ['unknown', 'trusted', 'unknown', 'unknown', 'unknown'], 'a follower does not audit, itself included')
    } finally {
      await auditor.stop()
      await libp2p.stop()
    }
  })
})
