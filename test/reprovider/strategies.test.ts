// What a reprovide cycle announces under each strategy, read from a real peer's stores after an add through its
// REST API: `roots` the pin roots, `entities` files and directories but not file chunks, `pinned` every block;
// and nothing at all once the content is unpinned.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import { createClient } from '../../src/client/index.js'
import { toHex } from '../../src/reprovider/keys.js'
import { listPhases, type SourceComponents } from '../../src/reprovider/source.js'
import { concatChunks } from '../../src/utils/bytes.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { tempDir, waitFor } from '../util.js'
import type { ReprovideStrategy } from '../../src/reprovider/index.js'
import type { AddedOutput } from '../../src/components.js'

describe('reprovide strategies', () => {
  let cluster: TestCluster
  let files: { path: string, cleanup: () => Promise<void> }
  let added: AddedOutput[]
  let root: CID

  before(async () => {
    files = await tempDir('cairn-strategies-')
    cluster = await createTestCluster(1, { name: 'rps' })
    // a mirror-like tree: small files (one raw block each), a file of 5 chunks, a subdirectory
    const dir = join(files.path, 'pool')
    await mkdir(join(dir, 'main', 'h'), { recursive: true })
    await writeFile(join(dir, 'Release'), 'Origin: test\n')
    await writeFile(join(dir, 'main', 'h', 'hello_1.0.deb'), randomBytes(5 * 1024))
    await writeFile(join(dir, 'main', 'h', 'hello_1.0.dsc'), 'Format: 3.0\n')
    added = []
    for await (const line of createClient({ api: cluster.url(0) }).add([dir], { recursive: true, rawLeaves: true, cidVersion: 1, chunker: 'size-1024' })) added.push(line)
    root = CID.parse(added[added.length - 1].cid)
    await waitFor(async () => await cluster.peer(0).ipfs.isPinned(root), { message: 'the tree is pinned on the peer' })
  })

  after(async () => {
    await cluster?.close()
    await files?.cleanup()
  })

  const components = (): SourceComponents => {
    const ipfs = cluster.peer(0).ipfs
    return { pinLs: o => ipfs.pinLs(o), pinnedBlocks: o => ipfs.pinnedBlocks(o), getBlock: async (c, o) => await ipfs.getBlock(c, o) }
  }

  /** The phases of a cycle as sets of CIDv1-independent multihash hex strings. */
  async function phases (strategy: ReprovideStrategy): Promise<[Set<string>, Set<string>]> {
    const [roots, rest] = await listPhases(strategy, components())
    return [new Set(roots.map(e => toHex(e.mh))), new Set(rest.map(e => toHex(e.mh)))]
  }

  const mhOf = (cid: string | CID): string => toHex((typeof cid === 'string' ? CID.parse(cid) : cid).multihash.bytes)

  it('roots: the pin root alone; entities: every file and directory, no chunk; pinned: every block', async () => {
    const deb = added.find(a => a.name.endsWith('hello_1.0.deb'))
    assert.ok(deb != null, 'the add named the .deb')
    const debNode = dagPb.decode(await concatChunks(cluster.peer(0).ipfs.helia.blockstore.get(CID.parse(deb.cid))))
    const chunks = debNode.Links.map(l => mhOf(l.Hash))
    assert.equal(chunks.length, 5, '5 KiB in 1 KiB chunks')

    const [roots, none] = await phases('roots')
    assert.deepEqual([...roots], [mhOf(root)])
    assert.equal(none.size, 0)

    // every file and directory the add reported (the root is in the first phase only)
    const [eRoots, entities] = await phases('entities')
    assert.deepEqual([...eRoots], [mhOf(root)])
    const expected = new Set(added.map(a => mhOf(a.cid)).filter(mh => mh !== mhOf(root)))
    assert.deepEqual(entities, expected, 'files and directories, nothing else')
    for (const c of chunks) assert.equal(entities.has(c), false, 'a file chunk is not an entity')

    const [, pinned] = await phases('pinned')
    for (const mh of expected) assert.ok(pinned.has(mh), 'every entity is a pinned block')
    for (const c of chunks) assert.ok(pinned.has(c), 'every chunk is a pinned block')
    assert.equal(pinned.size, expected.size + chunks.length, 'and nothing else')
  })

  it('announces nothing of content that is no longer pinned', async () => {
    const res = await fetch(`${cluster.url(0)}/pins/${root.toString()}`, { method: 'DELETE' })
    assert.equal(res.status, 200)
    await waitFor(async () => !(await cluster.peer(0).ipfs.isPinned(root)), { message: 'unpinned on the peer' })
    for (const strategy of ['roots', 'entities', 'pinned'] as const) {
      const [roots, rest] = await phases(strategy)
      assert.equal(roots.size + rest.size, 0, `${strategy}: ${roots.size} roots, ${rest.size} others`)
    }
  })
})
