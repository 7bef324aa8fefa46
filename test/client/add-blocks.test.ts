// `add` with upload 'blocks' (the DAG built by the client, sent as a CAR, the root pinned by CID) against the
// multipart add the peer imports itself: the same lines and CIDs, the same blocks stored, and the pin made with
// the add's options. Two peers, each given one of the two uploads, nothing pinned until the last case so that
// neither fetches the other's blocks.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { cp, mkdir, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import { createClient, type AddOptions } from '../../src/client/index.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { tempDir, waitFor } from '../util.js'
import type { AddedOutput } from '../../src/types/wire.js'
import type { CairnPeer } from '../../src/peer.js'

async function blockKeys (peer: CairnPeer): Promise<Set<string>> {
  const keys = new Set<string>()
  for await (const { cid } of peer.ipfs.helia.blockstore.getAll()) keys.add(cid.toV1().toString())
  return keys
}

async function toBytes (source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  for await (const c of source) chunks.push(c)
  return Buffer.concat(chunks)
}

describe('client add, upload blocks', () => {
  let tc: TestCluster
  let tmp: { path: string, cleanup: () => Promise<void> }
  let tree: string

  before(async () => {
    tmp = await tempDir('cairn-add-blocks-')
    tree = join(tmp.path, 'tree é')
    await mkdir(join(tree, 'sub dir', 'deeper'), { recursive: true })
    await mkdir(join(tree, 'empty'))
    const same = randomBytes(3000)
    await writeFile(join(tree, 'a.txt'), 'hello\n')
    await writeFile(join(tree, 'empty file'), '')
    await writeFile(join(tree, 'twin-1'), same)
    await writeFile(join(tree, 'sub dir', 'twin-2'), same)
    await writeFile(join(tree, 'sub dir', 'big.bin'), randomBytes(700 * 1024))
    await writeFile(join(tree, 'sub dir', 'deeper', 'c+d %20.txt'), randomBytes(70_000))
    await writeFile(join(tree, '.hidden'), 'secret')
    // symlinks are added as links, never followed: a relative one, one to a directory, a dangling one
    await symlink('a.txt', join(tree, 'link to a'))
    await symlink('sub dir', join(tree, 'link to dir'))
    await symlink('../../gone', join(tree, 'sub dir', 'dangling'))
    await writeFile(join(tmp.path, 'single.txt'), 'just one')
    tc = await createTestCluster(2, { name: 'add-blocks' })
  })

  after(async () => {
    await tc?.close()
    await tmp?.cleanup()
  })

  const cases: Array<[string, () => string[], AddOptions]> = [
    ['a tree, CIDv0 (the defaults)', () => [tree], { recursive: true }],
    ['a tree with hidden files, CIDv1', () => [tree], { recursive: true, hidden: true, cidVersion: 1 }],
    ['small chunks, raw leaves', () => [tree], { recursive: true, chunker: 'size-1024', rawLeaves: true }],
    ['several paths, wrapped', () => [join(tree, 'sub dir'), join(tmp.path, 'single.txt')], { recursive: true, wrapWithDirectory: true }],
    ['one file, CIDv1', () => [join(tmp.path, 'single.txt')], { cidVersion: 1 }]
  ]
  for (const [title, paths, options] of cases) {
    it(`gives the lines and stores the blocks a multipart add does: ${title}`, async () => {
      const [files, blocks] = [createClient({ api: tc.url(0) }), createClient({ api: tc.url(1) })]
      const before = await Promise.all([blockKeys(tc.peer(0)), blockKeys(tc.peer(1))])
      const out: AddedOutput[][] = [[], []]
      for await (const line of files.add(paths(), { ...options, noPin: true, upload: 'files' })) out[0].push(line)
      const progress: Array<[number, number]> = []
      for await (const line of blocks.add(paths(), { ...options, noPin: true, upload: 'blocks', onProgress: (sent, total) => progress.push([sent, total]) })) out[1].push(line)
      assert.deepEqual(out[1], out[0])
      const added = await Promise.all([0, 1].map(async i => [...await blockKeys(tc.peer(i))].filter(k => !before[i].has(k)).sort()))
      assert.ok(added[0].length > 0, 'the add stored new blocks')
      assert.deepEqual(added[1], added[0], 'the same new blocks on both peers')
      assert.deepEqual(progress.at(-1)?.[0], progress.at(-1)?.[1], 'progress ends at the total')
    })
  }

  it('pins the root with the add\'s options, named after the root unless named', async () => {
    const client = createClient({ api: tc.url(1) })
    const lines: AddedOutput[] = []
    for await (const line of client.add([tree], { recursive: true, upload: 'blocks', replication_factor_min: 1, replication_factor_max: 1, metadata: { k: 'v' } })) lines.push(line)
    const root = lines.at(-1)!
    assert.equal(root.name, 'tree é')
    const pin = await client.allocation(root.cid)
    assert.equal(pin.name, 'tree é')
    assert.equal(pin.replication_factor_max, 1)
    assert.deepEqual(pin.metadata, { k: 'v' })
    await waitFor(async () => Object.values((await client.status(root.cid)).peer_map).some(s => s.status === 'pinned'),
      { timeoutMs: 20_000, message: `${root.cid} pinned on its allocation` })

    const named: AddedOutput[] = []
    for await (const line of client.add([join(tmp.path, 'single.txt')], { upload: 'blocks', name: 'given' })) named.push(line)
    assert.equal((await client.allocation(named[0].cid)).name, 'given')
  })

  it('stores links as UnixFS symlinks; with dereferenceSymlinks adds what they point to, as a copy of the tree with the links followed', async () => {
    const client = createClient({ api: tc.url(1) })
    const add = async (paths: string[], options: AddOptions): Promise<AddedOutput[]> => {
      const lines: AddedOutput[] = []
      for await (const line of client.add(paths, { recursive: true, cidVersion: 1, noPin: true, ...options })) lines.push(line)
      return lines
    }
    const lines = await add([tree], { upload: 'blocks' })
    const byName = new Map(lines.map(l => [l.name, l.cid]))
    for (const [name, target] of [['tree é/link to a', 'a.txt'], ['tree é/link to dir', 'sub dir'], ['tree é/sub dir/dangling', '../../gone']]) {
      const node = UnixFS.unmarshal(dagPb.decode(await toBytes(tc.peer(1).ipfs.helia.blockstore.get(CID.parse(byName.get(name)!)))).Data!)
      assert.equal(node.type, 'symlink', name)
      assert.equal(new TextDecoder().decode(node.data), target, name)
    }
    assert.ok(!lines.some(l => l.name.startsWith('tree é/link to dir/')), 'a link to a directory is not walked into')

    // followed: the same DAG as a copy of the tree in which each link is what it points to
    const linked = join(tmp.path, 'followed')
    await mkdir(join(linked, 'dir'), { recursive: true })
    await writeFile(join(linked, 'dir', 'f'), 'content of f')
    await symlink('dir/f', join(linked, 'to-f'))
    await symlink('dir', join(linked, 'to-dir'))
    const copy = join(tmp.path, 'copy')
    await cp(linked, copy, { recursive: true, dereference: true })
    const copyRoot = (await add([copy], { upload: 'blocks' })).at(-1)!.cid
    for (const upload of ['blocks', 'files'] as const) {
      const followed = await add([linked], { upload, dereferenceSymlinks: true })
      assert.equal(followed.at(-1)?.cid, copyRoot, `upload ${upload}`)
      assert.ok(followed.some(l => l.name === 'followed/to-dir/f'))
      assert.notEqual((await add([linked], { upload })).at(-1)?.cid, copyRoot, 'not followed, the links are links')
    }
    // a dangling link cannot be followed: refused before anything is sent
    await assert.rejects(add([tree], { upload: 'blocks', dereferenceSymlinks: true }),
      { name: 'InvalidParameterError', message: `cannot follow the symlink ${join(tree, 'link to dir', 'dangling')}: it points to "../../gone", which does not exist` })
  })

  it('refuses bad parameters, and falls back to files for a sharded add', async () => {
    const client = createClient({ api: tc.url(1) })
    await assert.rejects(async () => { for await (const _ of client.add([tree], { recursive: true, upload: 'blocks', chunker: 'size-0' })); },
      { name: 'InvalidParameterError', message: /chunker/ })
    const lines: AddedOutput[] = []
    for await (const line of client.add([join(tree, 'sub dir')], { recursive: true, upload: 'blocks', shard: true, shard_size: 65536 })) lines.push(line)
    assert.equal((await client.allocation(lines.at(-1)!.cid)).type, 'meta-pin', 'sharded by the peer')
  })
})
