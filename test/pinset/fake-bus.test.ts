// The pinset over an in-memory bus (no network): the test decides when gossip is delivered and which peers are
// linked, so partitions, missed gossip and concurrent edits are played out exactly; then every peer must agree.
import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createPinset } from '../../src/pinset/index.js'
import { quietLogger, tempDir, waitFor } from '../util.js'
import { FakeBus, type FakeHost } from './fake-bus.js'
import { fakeCid, pinOf } from './fixtures.js'
import type { Pinset } from '../../src/components.js'

interface Peer { id: string, host: FakeHost, pinset: Pinset }

describe('pinset over an in-memory bus', () => {
  const cleanups: Array<() => Promise<void>> = []
  after(async () => { for (const c of cleanups.reverse()) await c() })

  async function peers (n: number, trustedCount = n): Promise<{ bus: FakeBus, peers: Peer[] }> {
    const bus = new FakeBus()
    const keys = await Promise.all(Array.from({ length: n }, async () => await generateKeyPair('Ed25519')))
    const trusted = new Set(keys.slice(0, trustedCount).map(k => peerIdFromPrivateKey(k).toString()))
    const out: Peer[] = []
    for (const key of keys) {
      const dir = await tempDir()
      const host = bus.host(key)
      // no periodic resync within a test: only links and flushes move pins
      const pinset = createPinset({ cluster: 'bus', dataDir: dir.path, isTrusted: p => trusted.has(p), syncIntervalMs: 3_600_000 }, { libp2p: host.asLibp2p(), privateKey: key, logger: quietLogger() })
      await pinset.start()
      cleanups.push(async () => { await pinset.stop(); await dir.cleanup() })
      out.push({ id: host.peerId.toString(), host, pinset })
    }
    return { bus, peers: out }
  }

  const cids = (p: Peer): string[] => [...p.pinset.list()].map(pin => pin.cid).sort()
  const converged = async (all: Peer[], expected: string[], message: string): Promise<void> => {
    const want = [...expected].sort()
    await waitFor(() => all.every(p => JSON.stringify(cids(p)) === JSON.stringify(want)), {
      timeoutMs: 10_000, message, describe: () => JSON.stringify(all.map(p => cids(p).length))
    })
  }

  it('gossip reaches linked peers only when flushed; a peer that missed it catches up when linked again', async () => {
    const { bus, peers: [a, b, c] } = await peers(3)
    bus.connect(a.host, b.host)
    bus.connect(a.host, c.host)
    const first = await Promise.all([1, 2, 3].map(async i => await fakeCid(`bus-${i}`)))
    await a.pinset.put(first.map(cid => pinOf(cid)))
    await bus.flush()
    await converged([a, b, c], first, 'the first pins on every peer')

    // c is cut off; what a writes now is gossiped to b only (no catch-up runs now: the ones the links started are
    // over, and the periodic one is an hour away), and only once flushed
    bus.disconnect(a.host, c.host)
    const second = await fakeCid('bus-4')
    await a.pinset.put([pinOf(second)])
    await a.pinset.remove([first[0]])
    assert.deepEqual(cids(b), [...first].sort(), 'nothing arrives before the bus is flushed')
    assert.equal(await bus.flush(), 2, 'two envelopes delivered to b')
    const now = [...first.slice(1), second]
    await converged([a, b], now, 'a and b to see the change')
    assert.deepEqual(cids(c), [...first].sort(), 'c, cut off, still has the old set')

    // linking c to b (not to a, the author) is enough: the catch-up brings a's envelopes from b
    bus.connect(b.host, c.host)
    await converged([a, b, c], now, 'c to catch up from b')
    assert.deepEqual(a.pinset.versionVector(), c.pinset.versionVector())
  })

  it('concurrent edits on both sides of a partition converge to the same pinset once healed', async () => {
    const { bus, peers: [a, b] } = await peers(2)
    bus.connect(a.host, b.host)
    const [shared, onA, onB] = await Promise.all(['shared', 'on-a', 'on-b'].map(async s => await fakeCid(s)))
    await a.pinset.put([pinOf(shared, 'v1')])
    await bus.flush()
    await converged([a, b], [shared], 'the shared pin on both')

    bus.disconnect(a.host, b.host)
    await a.pinset.put([pinOf(onA)])
    await b.pinset.put([pinOf(onB)])
    await b.pinset.remove([shared])
    await bus.flush() // delivered to nobody: the link is cut
    assert.deepEqual(cids(a), [onA, shared].sort())
    assert.deepEqual(cids(b), [onB])

    bus.connect(a.host, b.host)
    await converged([a, b], [onA, onB], 'both sides to merge (b removed the shared pin after it had seen it)')
  })

  it('an untrusted peer\'s gossip is rejected by the validator and changes nothing', async () => {
    const { bus, peers: [a, b, stranger] } = await peers(3, 2)
    bus.connect(a.host, stranger.host)
    bus.connect(b.host, stranger.host)
    await stranger.pinset.put([pinOf(await fakeCid('from-a-stranger'))])
    assert.equal(await bus.flush(), 0, 'no trusted peer accepts it')
    assert.equal(a.pinset.size(), 0)
    assert.equal(b.pinset.size(), 0)
    // a stranger relays what trusted peers write, and a catch-up through it brings only that
    const trustedPin = await fakeCid('from-a')
    await a.pinset.put([pinOf(trustedPin)])
    await bus.flush()
    await waitFor(() => stranger.pinset.has(trustedPin), { timeoutMs: 10_000, message: 'the stranger to take the trusted pin' })
    bus.connect(a.host, b.host)
    await converged([a, b], [trustedPin], 'a and b hold the trusted pin only')
  })
})
