// cairn's bitswap sending (src/ipfs/bitswap-sender.ts, bitswap-streams.ts, bitswap-wire.ts): real transfers
// with a plain Helia node in both directions, a block that arrives after it was wanted, and the sender's rules
// on its own (a fake stream writer, messages decoded here with a protobuf reader of the test's own).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { noise } from '@chainsafe/libp2p-noise'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { createHeliaLight } from 'helia'
import { createLibp2p } from 'libp2p'
import { exporter } from 'ipfs-unixfs-exporter'
import { importer } from 'ipfs-unixfs-importer'
import { varint } from 'multiformats'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { Uint8ArrayList } from 'uint8arraylist'
import { defaultLogger } from '@libp2p/logger'
import { createBitswapSender } from '../../src/ipfs/bitswap-sender.js'
import { blockPart, wantlistPart } from '../../src/ipfs/bitswap-wire.js'
import { chunked, collect, concatBytes, removeDirs, startPeer, stopPeers } from './helpers.js'
import { sleep, waitFor, sha256Hex } from '../util.js'
import type { TestPeer } from './helpers.js'
import type { OutboundStreams } from '../../src/ipfs/bitswap-streams.js'
import type { PeerId } from '@libp2p/interface'

/** A Helia node with @helia/bitswap as it ships (no cairn code), on 127.0.0.1, blocks in memory. */
async function plainHelia (): Promise<ReturnType<typeof withBitswap>> {
  const light = createHeliaLight({ blockstore: new MemoryBlockstore(), datastore: new MemoryDatastore() })
  const helia = withBitswap(withLibp2pLight(light, {
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    services: { identify: identify() }
  }))
  await helia.start()
  return helia
}

describe('bitswap between cairn and plain Helia nodes', () => {
  it('a plain Helia node reads a 4 MiB file from a cairn peer, and a cairn peer pins one from a plain Helia node', async () => {
    let a: TestPeer | undefined
    let helia: Awaited<ReturnType<typeof plainHelia>> | undefined
    try {
      a = await startPeer('a')
      helia = await plainHelia()
      await helia.libp2p.dial(a.node.libp2p.getMultiaddrs()[0])

      // cairn serves: blocks, many per stream, to Helia's own want list
      const served = randomBytes(4 * 1024 * 1024)
      const out = await collect(a.node.addEntries((async function * () { yield { path: 'served.bin', content: chunked(served) } })(), {}))
      const servedRoot = CID.parse(out[0].cid)
      const entry = await exporter(servedRoot, helia.blockstore, { signal: AbortSignal.timeout(20_000) })
      assert.equal(entry.type, 'file')
      const read = await concatBytes(entry.content({ signal: AbortSignal.timeout(20_000) }))
      assert.equal(sha256Hex(read), sha256Hex(served), 'the plain node read the bytes cairn holds')

      // cairn fetches: its wants go to Helia's sender on cairn's long-lived stream
      const held = randomBytes(4 * 1024 * 1024)
      let heldRoot: CID | undefined
      for await (const r of importer([{ path: 'held.bin', content: held }], helia.blockstore, { cidVersion: 1, rawLeaves: true })) heldRoot = r.cid
      assert.ok(heldRoot != null)
      await a.node.pin(heldRoot, { signal: AbortSignal.timeout(20_000) })
      assert.equal(await a.node.isPinned(heldRoot), true)
      assert.equal(sha256Hex(await concatBytes(a.node.cat(heldRoot))), sha256Hex(held), 'cairn pinned the bytes the plain node holds')
    } finally {
      await helia?.stop()
      await stopPeers(a)
      await removeDirs(a)
    }
  })

  it('a block that arrives after a peer wanted it is sent to that peer without being asked again', async () => {
    let a: TestPeer | undefined
    let b: TestPeer | undefined
    try {
      a = await startPeer('a')
      b = await startPeer('b')
      await b.node.libp2p.dial(a.node.libp2p.getMultiaddrs()[0])
      const data = randomBytes(1024 * 1024)
      const block = { bytes: data, cid: CID.createV1(raw.code, await sha256.digest(data)) }
      // nobody holds it yet: b's want reaches a, which answers DONT_HAVE and keeps the want
      const pinning = b.node.pin(block.cid, { signal: AbortSignal.timeout(30_000) })
      let settled = false
      void pinning.then(() => { settled = true }, () => { settled = true })
      // proves a NOT: the pin does not end within a second while nobody holds the block
      await sleep(1000)
      assert.equal(settled, false, 'the pin waits while no peer holds the block')
      // a now stores it (a CAR import goes through the blockstore that announces new blocks)
      for await (const _ of a.node.addEntries((async function * () { yield { path: 'x.car', content: carOf(block) } })(), { format: 'car' })) { /* drain */ }
      await pinning
      assert.equal(await b.node.isPinned(block.cid), true)
      assert.equal(sha256Hex(await concatBytes(b.node.cat(block.cid))), sha256Hex(data))
    } finally {
      await stopPeers(a, b)
      await removeDirs(a, b)
    }
  })
})

describe('bitswap with a forging peer', () => {
  it('a block whose bytes hash to the wanted digest under another hash function is refused; an honest peer then serves it', async () => {
    let b: TestPeer | undefined
    let a: TestPeer | undefined
    let forger: Awaited<ReturnType<typeof createLibp2p>> | undefined
    try {
      b = await startPeer('b', { init: { childLookupDelay: 60_000 } })
      const data = randomBytes(300 * 1024)
      const leaf = { bytes: data, cid: CID.createV1(raw.code, await sha256.digest(data)) }
      // a root linking the leaf: children are fetched from connected peers only (no DHT for a minute)
      const { encode, prepare } = await import('@ipld/dag-pb')
      const rootBytes = encode(prepare({ Links: [{ Hash: leaf.cid, Tsize: data.length }] }))
      const root = { bytes: rootBytes, cid: CID.createV0(await sha256.digest(rootBytes)) }
      for await (const _ of b.node.addEntries((async function * () { yield { path: 'r.car', content: carOf(root) } })(), { format: 'car' })) { /* drain */ }

      // the forger answers every want with the wanted digest as the block, under the identity hash function:
      // @helia/bitswap's want list hashes it (identity) and finds the digest it waits for
      forger = await createLibp2p({
        addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
        transports: [tcp()],
        connectionEncrypters: [noise()],
        streamMuxers: [yamux()],
        services: { identify: identify() }
      })
      let forged = 0
      const node = forger
      await node.handle('/ipfs/bitswap/1.2.0', async (stream, connection) => {
        const buf = new Uint8ArrayList()
        for await (const chunk of stream) {
          buf.append(chunk)
          for (;;) {
            const bytes = buf.subarray()
            if (bytes.length === 0) break
            const [length, n] = varint.decode(bytes)
            if (bytes.length < n + length) break
            const message = bytes.subarray(n, n + length)
            buf.consume(n + length)
            for (const entry of incoming([message]).wantlist.entries) {
              const cid = CID.decode(entry.cid)
              if (entry.cancel === true || cid.multihash.code !== sha256.code) continue
              const prefix = Uint8Array.from([1, raw.code, 0x00, cid.multihash.digest.length])
              const out = await node.dialProtocol(connection.remotePeer, '/ipfs/bitswap/1.2.0')
              const parts = blockPart(prefix, cid.multihash.digest)
              const body = Buffer.concat(parts)
              out.send(Buffer.concat([varint.encodeTo(body.length, new Uint8Array(varint.encodingLength(body.length))), body]))
              await out.close()
              forged++
            }
          }
        }
      })
      await b.node.libp2p.dial(forger.getMultiaddrs()[0])
      const pinning = b.node.pin(root.cid, { signal: AbortSignal.timeout(30_000) })
      await waitFor(() => forged > 0, { timeoutMs: 10_000, message: 'the forger to answer the want' })
      // proves a NOT: in the half second after the forged answer, the forged bytes are not stored
      await sleep(500)
      assert.equal(await b.node.hasBlock(leaf.cid), false, 'the forged bytes were not stored as the block')
      assert.equal(await b.node.isPinned(root.cid), false)
      const forgerId = forger.peerId
      await waitFor(() => b!.node.libp2p.getConnections(forgerId).length === 0, { timeoutMs: 5000, message: 'the forger to be disconnected' })

      // an honest peer holding the leaf: the same pin completes with the right bytes
      a = await startPeer('a')
      for await (const _ of a.node.addEntries((async function * () { yield { path: 'l.car', content: carOf(leaf) } })(), { format: 'car' })) { /* drain */ }
      await b.node.libp2p.dial(a.node.libp2p.getMultiaddrs()[0])
      await pinning
      assert.equal(sha256Hex(await concatBytes(b.node.cat(leaf.cid))), sha256Hex(data))
    } finally {
      await forger?.stop()
      await stopPeers(a, b)
      await removeDirs(a, b)
    }
  })
})

/** A one-block CAR (header with the block as root, then the block). */
async function * carOf (block: { cid: CID, bytes: Uint8Array }): AsyncGenerator<Uint8Array> {
  const { CarWriter } = await import('@ipld/car/writer')
  const { writer, out } = CarWriter.create([block.cid])
  const chunks = collect(out)
  await writer.put(block)
  await writer.close()
  yield * await chunks
}

// ---------------------------------------------------------------------------------------------------------
// The sender alone

interface Decoded {
  blocks: Array<{ cid: CID, data: Uint8Array }>
  presences: Array<{ cid: CID, type: number }>
}

/** Protobuf fields of `buf`: [field number, varint value or bytes]. */
function fields (buf: Uint8Array): Array<[number, number | Uint8Array]> {
  const out: Array<[number, number | Uint8Array]> = []
  let at = 0
  while (at < buf.length) {
    const [tag, n] = varint.decode(buf, at)
    at += n
    if ((tag & 7) === 0) {
      const [v, m] = varint.decode(buf, at)
      at += m
      out.push([tag >> 3, v])
    } else if ((tag & 7) === 2) {
      const [len, m] = varint.decode(buf, at)
      at += m
      out.push([tag >> 3, buf.subarray(at, at + len)])
      at += len
    } else {
      throw new Error(`unexpected wire type ${tag & 7}`)
    }
  }
  return out
}

function decodeMessage (message: Uint8Array): Decoded {
  const decoded: Decoded = { blocks: [], presences: [] }
  for (const [n, value] of fields(message)) {
    if (n === 3) {
      const f = fields(value as Uint8Array)
      const prefix = f.find(([k]) => k === 1)?.[1] as Uint8Array
      const data = f.find(([k]) => k === 2)?.[1] as Uint8Array
      const [version, a] = varint.decode(prefix, 0)
      const [codec, b] = varint.decode(prefix, a)
      const [hash] = varint.decode(prefix, a + b)
      assert.equal(hash, sha256.code)
      decoded.blocks.push({ cid: CID.create(version as 0 | 1, codec, sha256.digest(data) as any), data })
    } else if (n === 4) {
      const f = fields(value as Uint8Array)
      decoded.presences.push({ cid: CID.decode(f.find(([k]) => k === 1)?.[1] as Uint8Array), type: (f.find(([k]) => k === 2)?.[1] as number | undefined) ?? 0 })
    }
  }
  return decoded
}

/** Decodes an outgoing wantlist the way a receiver would: the sender's wire helpers against @helia/bitswap's fields. */
function incoming (parts: Uint8Array[]): { wantlist: { entries: any[], full: boolean } } {
  const entries: any[] = []
  let full = false
  for (const [n, value] of fields(Buffer.concat(parts))) {
    assert.equal(n, 1)
    for (const [m, v] of fields(value as Uint8Array)) {
      if (m === 2) { full = v === 1; continue }
      const f = new Map(fields(v as Uint8Array))
      entries.push({ cid: f.get(1), priority: f.get(2), cancel: f.get(3) === 1, wantType: f.get(4) === 1 ? 'WantHave' : 'WantBlock', sendDontHave: f.get(5) === 1 })
    }
  }
  return { wantlist: { entries, full } }
}

async function blocks (n: number, size: number): Promise<Array<{ cid: CID, data: Uint8Array }>> {
  return await Promise.all(Array.from({ length: n }, async () => {
    const data = randomBytes(size)
    return { cid: CID.createV1(raw.code, await sha256.digest(data)), data }
  }))
}

function fakeStreams (failFirst = 0): { streams: OutboundStreams, written: Decoded[], attempts: () => number } {
  const written: Decoded[] = []
  let attempts = 0
  const streams = {
    async write (_peer: PeerId, message: Uint8ArrayList) {
      attempts++
      await new Promise(resolve => setImmediate(resolve))
      if (attempts <= failFirst) throw new Error('stream reset by the test')
      written.push(decodeMessage(message.subarray()))
    }
  } as unknown as OutboundStreams
  return { streams, written, attempts: () => attempts }
}

describe('bitswap sender', () => {
  it('answers wants with blocks, HAVE, and one DONT_HAVE; a cancel removes a want; a full list replaces the wants', async () => {
    const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const [big, small, other] = await blocks(3, 4096)
    const tiny = (await blocks(1, 100))[0]
    const absent = (await blocks(1, 10))[0]
    const store = new Map([big, small, other, tiny].map(b => [b.cid.toString(), b.data]))
    const { streams, written } = fakeStreams()
    const sender = createBitswapSender({ maxMessageBytes: 2000 }, {
      streams, logger: defaultLogger(), getBlocks: async cids => cids.map(c => store.get(c.toString()))
    })
    try {
      sender.receiveMessage(peer, incoming(wantlistPart([
        { cid: big.cid },
        { cid: small.cid, wantHave: true },
        { cid: tiny.cid, wantHave: true },
        { cid: absent.cid, sendDontHave: true }
      ])))
      await waitFor(() => sender.stats().wants === 1, { timeoutMs: 5000, message: 'the answered wants to be removed' })
      const all = { blocks: written.flatMap(w => w.blocks), presences: written.flatMap(w => w.presences) }
      assert.deepEqual(all.blocks.map(b => b.cid.toString()).sort(), [big.cid, tiny.cid].map(String).sort(), 'the wanted block, and a small one instead of its HAVE')
      assert.deepEqual(all.presences.map(p => [p.cid.toString(), p.type]).sort(), [[absent.cid.toString(), 1], [small.cid.toString(), 0]].sort())
      assert.ok(written.length >= 2, `a 4 KiB block does not share a 2,000-byte message (${written.length} messages)`)
      assert.deepEqual(sender.wantsOf(peer).map(String), [absent.cid.toString()], 'the missing block stays wanted')

      // asked again (the asker may have lost the answer): one more DONT_HAVE; cancelled: gone
      const before = written.length
      sender.receiveMessage(peer, incoming(wantlistPart([{ cid: absent.cid, sendDontHave: true }])))
      await waitFor(() => written.length > before, { timeoutMs: 5000, message: 'the second DONT_HAVE' })
      assert.deepEqual(written.slice(before).flatMap(w => w.presences).map(p => [p.cid.toString(), p.type]), [[absent.cid.toString(), 1]])
      sender.receiveMessage(peer, incoming(wantlistPart([{ cid: absent.cid, cancel: true }])))
      assert.equal(sender.stats().wants, 0)

      // a full wantlist drops what it does not list
      store.delete(other.cid.toString())
      sender.receiveMessage(peer, incoming(wantlistPart([{ cid: other.cid }])))
      await waitFor(() => sender.wantsOf(peer).length === 1, { timeoutMs: 5000, message: 'the want for a missing block to be parked' })
      sender.receiveMessage(peer, incoming(wantlistPart([{ cid: absent.cid }], true)))
      await waitFor(() => sender.wantsOf(peer).map(String).join() === absent.cid.toString(), { timeoutMs: 5000, message: 'the full list to replace the wants' })
    } finally {
      await sender.stop()
    }
  })

  it('keeps at most maxWants wants over all peers, and nothing for a peer whose wants are gone', async () => {
    const [p1, p2] = await Promise.all([0, 1].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))))
    const absent = await blocks(16, 10)
    const held = (await blocks(1, 100))[0]
    const { streams } = fakeStreams()
    const sender = createBitswapSender({ maxWantsPerPeer: 8, maxWants: 10 }, {
      streams, logger: defaultLogger(), getBlocks: async cids => cids.map(c => c.equals(held.cid) ? held.data : undefined)
    })
    try {
      // wants for blocks this peer lacks stay (to be answered when they arrive): 8 from p1 (its cap), then p2's
      // 8 take the total past 10, so p2 keeps 2
      sender.receiveMessage(p1, incoming(wantlistPart(absent.slice(0, 8).map(b => ({ cid: b.cid })))))
      sender.receiveMessage(p2, incoming(wantlistPart(absent.slice(8).map(b => ({ cid: b.cid })))))
      assert.equal(sender.wantsOf(p1).length, 8)
      assert.equal(sender.wantsOf(p2).length, 2)
      assert.deepEqual({ peers: sender.stats().peers, wants: sender.stats().wants }, { peers: 2, wants: 10 })
      // p2 cancels its wants: its ledger goes; a want answered at once leaves none either
      sender.receiveMessage(p2, incoming(wantlistPart(sender.wantsOf(p2).map(cid => ({ cid, cancel: true })))))
      await waitFor(() => sender.stats().peers === 1, { timeoutMs: 5000, message: 'the empty ledger to go' })
      sender.receiveMessage(p2, incoming(wantlistPart([{ cid: held.cid }])))
      await waitFor(() => sender.stats().blocksSent === 1 && sender.stats().peers === 1, { timeoutMs: 5000, message: 'the block sent and the ledger gone' })
    } finally {
      await sender.stop()
    }
  })

  it('a block that could not be written is sent again on the next write; a late block goes to the peer that wanted it', async () => {
    const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const wanted = await blocks(5, 1024)
    const store = new Map(wanted.slice(0, 4).map(b => [b.cid.toString(), b.data]))
    const { streams, written, attempts } = fakeStreams(1)
    const sender = createBitswapSender({ readBatch: 2 }, {
      streams, logger: defaultLogger(), getBlocks: async cids => cids.map(c => store.get(c.toString()))
    })
    try {
      sender.receiveMessage(peer, incoming(wantlistPart(wanted.map(b => ({ cid: b.cid })))))
      await waitFor(() => written.flatMap(w => w.blocks).length === 4, { timeoutMs: 5000, message: 'the four held blocks to be written' })
      assert.equal(sender.stats().sendFailures, 1)
      assert.ok(attempts() > written.length, 'one write failed and was retried')
      assert.deepEqual(written.flatMap(w => w.blocks).map(b => b.cid.toString()).sort(), wanted.slice(0, 4).map(b => b.cid.toString()).sort())

      store.set(wanted[4].cid.toString(), wanted[4].data)
      sender.receivedBlock(wanted[4].cid)
      await waitFor(() => written.flatMap(w => w.blocks).length === 5, { timeoutMs: 5000, message: 'the late block to be written' })
      assert.equal(sender.stats().wants, 0)
      assert.equal(sender.stats().blocksSent, 5)
    } finally {
      await sender.stop()
    }
  })
})
