// @helia/verified-fetch, a trustless gateway client, reads content from a real cairn peer through its gateway
// alone: every block it gets is checked against its CID before it is used.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { withHTTP } from '@helia/http'
import * as dagPb from '@ipld/dag-pb'
import { createVerifiedFetchWithHelia } from '@helia/verified-fetch'
import { createHeliaLight } from 'helia'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { waitFor } from '../util.js'
import type { AddEntry, AddedOutput } from '../../src/components.js'
import type { Helia } from 'helia'

const enc = new TextEncoder()
const BIG = randomBytes(300 * 1024)
const FILES: Record<string, Uint8Array> = {
  'hello.txt': enc.encode('hello from cairn\n'),
  'big.bin': BIG,
  'docs/a.json': enc.encode('{"a":1}\n'),
  'docs/b.txt': enc.encode('bee\n')
}

async function * entriesOf (files: Record<string, Uint8Array>): AsyncGenerator<AddEntry> {
  for (const [path, bytes] of Object.entries(files)) yield { path: `site/${path}`, content: (async function * () { yield bytes })() }
}

describe('@helia/verified-fetch against a cairn gateway', () => {
  let tc: TestCluster
  let helia: Helia
  let verifiedFetch: Awaited<ReturnType<typeof createVerifiedFetchWithHelia>>
  const tree = new Map<string, AddedOutput>()
  let root: string

  before(async () => {
    tc = await createTestCluster(2)
    await waitFor(async () => (await tc.peer(1).cluster.peerset()).length === 2, { message: 'peers see each other', timeoutMs: 30_000 })
    // added on peer 0, not pinned: peer 1's gateway fetches every block over bitswap
    for await (const line of tc.peer(0).cluster.add(entriesOf(FILES), { cid_version: 1, no_pin: true })) if (line.cid !== '') tree.set(line.name, line)
    root = tree.get('site')!.cid
    const { port } = tc.peer(1).gatewayAddress()
    const gateway = `http://127.0.0.1:${port}`
    // no libp2p, no delegated routers, no public gateway: cairn's gateway is the one place blocks come from
    helia = withHTTP(createHeliaLight(), { delegatedRouters: [], recursiveGateways: [], allowInsecure: true, allowLocal: true })
    // a router naming cairn's gateway as the provider of every CID (Helia's fallback router alone never finishes
    // a provider search when no other router is configured)
    const provider = {
      // 0x0920 (transport-ipfs-gateway-http): how Helia names a gateway provider, by its URL
      id: CID.createV1(0x0920, identity.digest(enc.encode(gateway))),
      multiaddrs: [multiaddr(`/ip4/127.0.0.1/tcp/${port}/http`)],
      protocols: ['transport-ipfs-gateway-http'],
      router: 'cairn-gateway',
      fallback: false
    }
    helia.addRouter({ name: 'cairn-gateway', async * findProviders () { yield provider } })
    await helia.start()
    verifiedFetch = await createVerifiedFetchWithHelia(helia)
  })
  after(async () => {
    await verifiedFetch?.stop()
    await helia?.stop()
    await tc?.close()
  })

  it('fetches and verifies a file, a path below a directory, a directory and a raw block', async () => {
    assert.equal(await tc.peer(1).ipfs.hasBlock(CID.parse(tree.get('site/big.bin')!.cid)), false, 'peer 1 starts without the content')
    const file = await verifiedFetch(`ipfs://${root}/big.bin`)
    assert.equal(file.status, 200)
    assert.deepEqual(new Uint8Array(await file.arrayBuffer()), new Uint8Array(BIG))
    // it came through peer 1's gateway, which fetched it from peer 0
    assert.equal(await tc.peer(1).ipfs.hasBlock(CID.parse(tree.get('site/big.bin')!.cid)), true)

    const sub = await verifiedFetch(`ipfs://${root}/docs/a.json`)
    assert.equal(sub.status, 200)
    assert.equal(await sub.text(), '{"a":1}\n')

    // a directory without index.html: verified-fetch answers with the directory's own (verified) block
    const dir = await verifiedFetch(`ipfs://${root}/docs/`)
    assert.equal(dir.status, 200)
    const dirBlock = new Uint8Array(await dir.arrayBuffer())
    assert.deepEqual((await sha256.digest(dirBlock)).bytes, CID.parse(tree.get('site/docs')!.cid).multihash.bytes)
    assert.deepEqual(dagPb.decode(dirBlock).Links.map(l => [l.Name, l.Hash.toString()]),
      [['a.json', tree.get('site/docs/a.json')!.cid], ['b.txt', tree.get('site/docs/b.txt')!.cid]])

    const rawRes = await verifiedFetch(`ipfs://${root}`, { headers: { Accept: 'application/vnd.ipld.raw' } })
    assert.equal(rawRes.status, 200)
    const block = new Uint8Array(await rawRes.arrayBuffer())
    assert.deepEqual((await sha256.digest(block)).bytes, CID.parse(root).multihash.bytes)
  })
})
