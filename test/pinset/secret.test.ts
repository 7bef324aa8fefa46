// The cluster secret: peers without it (or with another) take no part in gossip, catch-up or RPC.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Libp2p } from 'libp2p'
import type { CairnServices } from '../../src/libp2p/index.js'
import { createPinset, pinsetTopic } from '../../src/pinset/index.js'
import { createRpc, type Rpc } from '../../src/rpc/index.js'
import { clusterSecret } from '../../src/secret.js'
import { loopbackHost, quietLogger, tempDir, waitFor } from '../util.js'
import { fakeCid, pinOf } from './fixtures.js'
import type { Pinset } from '../../src/components.js'

interface Node { id: string, libp2p: Libp2p<CairnServices>, pinset: Pinset, rpc: Rpc }

describe('cluster secret', () => {
  const cleanups: Array<() => Promise<void>> = []
  after(async () => { for (const c of cleanups.reverse()) await c() })

  const S = randomBytes(32).toString('hex')
  const OTHER = randomBytes(32).toString('hex')
  const trusted = new Set<string>()

  async function node (secretHex: string): Promise<Node> {
    const key = await generateKeyPair('Ed25519')
    const id = peerIdFromPrivateKey(key).toString()
    trusted.add(id) // everyone is trusted: only the secret keeps them apart
    const dir = await tempDir()
    const logger = quietLogger()
    const libp2p = await loopbackHost({ privateKey: key, logger })
    const secret = clusterSecret(secretHex)
    const pinset = createPinset({ cluster: 's', dataDir: dir.path, isTrusted: p => trusted.has(p), secret, syncIntervalMs: 500 }, { libp2p, privateKey: key, logger })
    await pinset.start()
    const rpc = createRpc({ cluster: 's', isTrusted: () => true, secret, methods: { hello: { handler: async () => 'hi' } } }, { libp2p, logger })
    await rpc.start()
    cleanups.push(async () => { await rpc.stop(); await pinset.stop(); await libp2p.stop(); await dir.cleanup() })
    return { id, libp2p, pinset, rpc }
  }

  it('keeps peers without the secret out of gossip, catch-up and RPC', async () => {
    const [a, b, wrong, none] = [await node(S), await node(S), await node(OTHER), await node('')]
    for (const x of [b, wrong, none]) await x.libp2p.dial(a.libp2p.getMultiaddrs()[0])
    await wrong.libp2p.dial(b.libp2p.getMultiaddrs()[0])
    await waitFor(() => a.libp2p.services.pubsub.getSubscribers(pinsetTopic('s')).length === 3, { message: 'all subscribed' })

    const cid = await fakeCid('secret-1')
    await a.pinset.put([pinOf(cid)])
    await waitFor(() => b.pinset.has(cid), { message: 'b (same secret) gets the pin' })

    // The outsiders write too (they trust themselves and are even in everyone's trusted set).
    await wrong.pinset.put([pinOf(await fakeCid('from-wrong'))])
    await none.pinset.put([pinOf(await fakeCid('from-none'))])
    await waitFor(() => (a.pinset.stats().rejected_by_reason.secret ?? 0) >= 2, { message: 'a rejects sealed-with-another-key and unsealed gossip' })

    // Catch-up both ways fails without the secret, and brings nothing.
    await assert.rejects(wrong.pinset.syncWith(a.id))
    await assert.rejects(none.pinset.syncWith(a.id))
    await assert.rejects(a.pinset.syncWith(wrong.id))
    assert.equal(wrong.pinset.has(cid), false)
    assert.equal(none.pinset.has(cid), false)
    assert.equal(a.pinset.size(), 1)
    assert.equal(b.pinset.size(), 1)

    // RPC: only a peer with the secret gets an answer.
    assert.equal(await b.rpc.callOne(a.id, 'hello'), 'hi')
    await assert.rejects(wrong.rpc.callOne(a.id, 'hello'))
    await assert.rejects(none.rpc.callOne(a.id, 'hello'))
    await assert.rejects(a.rpc.callOne(none.id, 'hello'))
  })

  it('an RPC call naming a method the peer lacks, or a member of Object.prototype, is answered "unknown rpc method"', async () => {
    const [a, b] = [await node(''), await node('')]
    await b.libp2p.dial(a.libp2p.getMultiaddrs()[0])
    assert.equal(await b.rpc.callOne(a.id, 'hello'), 'hi')
    for (const method of ['nope', '__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      await assert.rejects(b.rpc.callOne(a.id, method), (err: Error) => err.message.includes(`unknown rpc method ${method}`), method)
    }
  })
})
