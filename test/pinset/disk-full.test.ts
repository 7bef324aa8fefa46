// The pinset of a peer whose disk fills up: a change it could not store is refused and never seen (not in the
// pinset, not told to listeners, not sent to peers), the peer stops cleanly, and after a restart it holds every
// change it acknowledged and its new changes reach its peers.
import assert from 'node:assert/strict'
import { rm, statfs, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Libp2p } from 'libp2p'
import type { CairnServices } from '../../src/libp2p/index.js'
import { createPinset, pinsetTopic } from '../../src/pinset/index.js'
import { mountSmallDisk } from '../small-disk.js'
import { loopbackHost, quietLogger, tempDir, waitFor } from '../util.js'
import { fakeCid, pinOf } from './fixtures.js'
import type { Pinset, PinsetChange } from '../../src/components.js'
import type { PrivateKey } from '@libp2p/interface'

interface Node { libp2p: Libp2p<CairnServices>, pinset: Pinset }

describe('pinset on a disk that fills up', () => {
  it('refuses a change it cannot store, unseen by listeners and peers; after a restart holds every acknowledged one', { timeout: 60_000 }, async t => {
    const disk = await mountSmallDisk(8)
    if (typeof disk === 'string') {
      t.skip(disk)
      return
    }
    const other = await tempDir()
    const keys = await Promise.all([0, 1].map(async () => await generateKeyPair('Ed25519')))
    const trusted = new Set(keys.map(k => peerIdFromPrivateKey(k).toString()))
    const nodes: Node[] = []
    const start = async (key: PrivateKey, dataDir: string): Promise<Node> => {
      const logger = quietLogger()
      const libp2p = await loopbackHost({ privateKey: key, logger })
      const pinset = createPinset({ cluster: 'test', dataDir, isTrusted: id => trusted.has(id), syncIntervalMs: 1000 }, { libp2p, privateKey: key, logger })
      await pinset.start()
      const node = { libp2p, pinset }
      nodes.push(node)
      return node
    }
    const stop = async (n: Node): Promise<void> => {
      nodes.splice(nodes.indexOf(n), 1)
      await n.pinset.stop()
      await n.libp2p.stop()
    }
    const link = async (a: Node, b: Node): Promise<void> => {
      await a.libp2p.dial(b.libp2p.getMultiaddrs()[0])
      await waitFor(() => [a, b].every(n => n.libp2p.services.pubsub.getSubscribers(pinsetTopic('test')).length >= 1), { message: 'gossip mesh' })
    }
    try {
      let full = await start(keys[0], disk.dir)
      const peer = await start(keys[1], other.path)
      await link(full, peer)
      const told: PinsetChange[] = []
      full.pinset.onChange(change => { told.push(change) })

      const fs = await statfs(disk.dir)
      await writeFile(join(disk.dir, 'filler'), new Uint8Array(Number(fs.bavail) * Number(fs.bsize) - 3000))
      const acked: string[] = []
      let refused: { cid: string, err: Error } | undefined
      for (let i = 0; i < 200 && refused == null; i++) {
        const cid = await fakeCid(`full-${i}`)
        try {
          await full.pinset.put([pinOf(cid, `pin ${i}`)])
          acked.push(cid)
        } catch (err) {
          refused = { cid, err: err as Error }
        }
      }
      assert.ok(refused != null, 'no put failed on the full disk')
      assert.equal(refused.err.name, 'InsufficientStorageError')
      assert.match(refused.err.message, new RegExp(`lack of space on the disk holding ${join(disk.dir, 'pinset')} \\(.*mounted at ${disk.dir}, `))
      // never seen: not in the pinset, not told to listeners
      assert.equal(full.pinset.get(refused.cid), undefined)
      assert.equal(full.pinset.size(), acked.length)
      const toldCids = new Set(told.flatMap(c => c.added.map(p => p.cid)))
      assert.ok(!toldCids.has(refused.cid), 'listeners were told of the refused pin')
      assert.deepEqual([...toldCids].sort(), [...acked].sort())
      // the next is refused before the document changes
      const next = await fakeCid('next')
      await assert.rejects(full.pinset.put([pinOf(next)]), /insufficient storage: writes to .* are refused since/)
      assert.equal(full.pinset.has(next), false)
      await waitFor(() => acked.every(cid => peer.pinset.has(cid)), { message: 'the acknowledged pins reach the other peer' })
      assert.equal(peer.pinset.has(refused.cid), false)

      // a stop with the disk full: the snapshot cannot be written, the store still closes
      await stop(full)
      await rm(join(disk.dir, 'filler'))
      full = await start(keys[0], disk.dir)
      assert.deepEqual(acked.filter(cid => !full.pinset.has(cid)), [], 'acknowledged pins missing after the restart')
      assert.equal(full.pinset.has(refused.cid), false)
      // its next change reaches the peer: no gap in what the peer was sent
      await link(full, peer)
      const after = await fakeCid('after restart')
      await full.pinset.put([pinOf(after)])
      await waitFor(() => peer.pinset.has(after), { message: 'a pin made after the restart reaches the other peer' })
    } finally {
      await Promise.allSettled([...nodes].map(stop))
      await disk.remove()
      await other.cleanup()
    }
  })
})
