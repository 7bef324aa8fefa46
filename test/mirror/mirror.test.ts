// Mirror sync end to end: a tree of 2,000 files synced to a 3-peer cluster (one follower), 1% changed and synced
// again: only the changed files are read, the follower fetches only the new blocks, the old version is unpinned
// once the new one is pinned, `mirror ls` lists it and the gateway serves the new files under /mirror/<name>/.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { createClient, type Client } from '../../src/client/index.js'
import { runCli } from '../../src/cli/program.js'
import { importEntries } from '../../src/ipfs/add.js'
import { buildTree, listMirrors, syncMirror, walkTree, type MirrorSyncResult } from '../../src/mirror/index.js'
import { sortByUtf8, type TreeEntry } from '../../src/mirror/walk.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { tempDir, waitFor } from '../util.js'
import type { CairnPeer } from '../../src/peer.js'
import type { AddEntry } from '../../src/components.js'

const NAME = 'deb'
const FILES = 2000

/** pool/<letter>/<pkg>/<pkg>_<n>.deb: 20 x 10 x 10 files of 100 B - 3 KB, plus two files of several chunks. */
async function generateTree (dir: string): Promise<string[]> {
  const paths: string[] = []
  for (let l = 0; l < 20; l++) {
    for (let p = 0; p < 10; p++) {
      const pkgDir = join('pool', String.fromCharCode(97 + l), `pkg${l}-${p}`)
      await mkdir(join(dir, pkgDir), { recursive: true })
      for (let v = 0; v < 10; v++) paths.push(join(pkgDir, `pkg${l}-${p}_${v}.deb`))
    }
  }
  paths.length = FILES - 2
  paths.push('dists/stable/Packages', 'dists/stable/Release')
  await mkdir(join(dir, 'dists', 'stable'), { recursive: true })
  await mkdir(join(dir, 'empty'))
  for (const [i, path] of paths.entries()) await writeFile(join(dir, path), randomBytes(i >= FILES - 2 ? 600_000 : 100 + (i * 37) % 3000))
  return paths
}

/** Blockstore.get yields the bytes in chunks. */
async function toBytes (source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = []
  for await (const c of source) chunks.push(c)
  return Buffer.concat(chunks)
}

async function countBlocks (peer: CairnPeer): Promise<number> {
  let n = 0
  for await (const _ of peer.ipfs.helia.blockstore.getAll()) n++
  return n
}

async function cli (client: Client, ...args: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await runCli(['--api', client.url, ...args], { out: s => { out += s }, err: s => { err += s }, env: {} })
  return { code, out, err }
}

describe('cairn mirror sync', () => {
  let tc: TestCluster
  let tmp: { path: string, cleanup: () => Promise<void> }
  let client: Client
  let tree: string
  let cacheFile: string
  let paths: string[]
  let first: MirrorSyncResult

  before(async () => {
    tmp = await tempDir('cairn-mirror-')
    tree = join(tmp.path, 'tree')
    cacheFile = join(tmp.path, 'cache', `${NAME}.json`)
    paths = await generateTree(tree)
    tc = await createTestCluster(3, { untrusted: [2], name: 'mirror' })
    await waitFor(async () => (await Promise.all([0, 1, 2].map(async i => (await tc.peer(i).cluster.peerset()).length))).every(n => n === 3),
      { timeoutMs: 30_000, message: 'all 3 peers see each other' })
    client = createClient({ api: tc.url(0) })
  })
  after(async () => {
    await tc?.close()
    await tmp?.cleanup()
  })

  it('first sync reads every file and pins version 1 on every peer, follower included', async () => {
    first = await syncMirror(client, { dir: tree, name: NAME, keep: 1, cacheFile, pollMs: 200, pinTimeoutMs: 120_000 })
    assert.equal(first.version, 1)
    assert.equal(first.previous, null)
    assert.deepEqual(first.files, { total: FILES, added: FILES, changed: 0, removed: 0, unchanged: 0 })
    assert.equal(first.files_read, FILES)
    assert.equal(first.cache, 'none')
    assert.equal(first.pinned_on.length, 3, `pinned on ${first.pinned_on.join(', ')}; unreachable: ${first.unreachable.join(', ')}; ` +
      `peerset of peer 0 now: ${(await tc.peer(0).cluster.peerset()).length} peers; status now: ${JSON.stringify(Object.values((await client.status(first.root)).peer_map).map(p => p.status))}`)
    const root = CID.parse(first.root)
    for (const i of [0, 1, 2]) assert.equal(await tc.peer(i).ipfs.isPinned(root), true, `peer ${i} pinned version 1`)
    const pin = await client.allocation(first.root)
    assert.equal(pin.name, `${NAME}@1`)
    assert.deepEqual(pin.metadata, { 'cairn-mirror': NAME, 'cairn-mirror-version': '1' })
    // mtime and mode are in the root node
    const rootNode = UnixFS.unmarshal(dagPb.decode(await toBytes(tc.peer(1).ipfs.helia.blockstore.get(root))).Data!)
    const st = await stat(tree)
    assert.equal(rootNode.mtime?.secs, BigInt(Math.floor(st.mtimeMs / 1000)))
    assert.equal(rootNode.mode, st.mode & 0o7777)
  })

  it('re-sync after changing 1% reads only the changed files; the follower fetches only the new blocks', async () => {
    const followerBefore = await countBlocks(tc.peer(2))
    const changed = paths.filter((_, i) => i % 100 === 7).slice(0, FILES / 100)
    const contents = new Map<string, Buffer>()
    for (const p of changed) {
      contents.set(p, randomBytes(500))
      await writeFile(join(tree, p), contents.get(p)!)
    }
    for (const p of ['pool/new/new-1.deb', 'pool/new/new-2.deb']) {
      await mkdir(join(tree, 'pool', 'new'), { recursive: true })
      contents.set(p, randomBytes(800))
      await writeFile(join(tree, p), contents.get(p)!)
    }
    const removed = [paths[1], paths[2]]
    for (const p of removed) await rm(join(tree, p))

    const second = await syncMirror(client, { dir: tree, name: NAME, keep: 1, cacheFile, pollMs: 200, pinTimeoutMs: 120_000 })
    assert.equal(second.version, 2)
    assert.deepEqual(second.previous, { version: 1, root: first.root })
    assert.equal(second.cache, 'used')
    assert.deepEqual(second.files, { total: FILES, added: 2, changed: changed.length, removed: 2, unchanged: FILES - changed.length - 2 })
    assert.equal(second.files_read, changed.length + 2, 'only new and changed files are read')
    assert.ok(second.dirs_kept >= 150, `${second.dirs_kept} unchanged package directories kept whole`)
    assert.ok(second.blocks_uploaded < first.blocks_uploaded / 10, `uploaded ${second.blocks_uploaded} blocks (first sync: ${first.blocks_uploaded})`)
    // unchanged directories were kept from the first build, not rebuilt: the root is still the one a build from
    // scratch (every file read) makes
    const entries: TreeEntry[] = []
    for await (const e of walkTree(tree)) entries.push(e)
    const scratch = await buildTree(entries, { sink: async () => {} })
    assert.equal(scratch.root.toString(), second.root)
    assert.equal(scratch.filesRead, FILES)

    // the new version was pinned everywhere before the old one was unpinned (keep 1)
    assert.equal(second.pinned_on.length, 3)
    assert.deepEqual(second.unpinned, [{ version: 1, root: first.root }])
    await assert.rejects(client.allocation(first.root), /not part of the pinset/)
    const root = CID.parse(second.root)
    await waitFor(async () => await tc.peer(2).ipfs.isPinned(root), { message: 'follower pinned version 2' })
    const fetched = (await countBlocks(tc.peer(2))) - followerBefore
    assert.equal(fetched, second.blocks_uploaded, `follower fetched ${fetched} blocks, ${second.blocks_uploaded} were new`)

    // `mirror ls` shows the one version kept
    const mirrors = await listMirrors(client, { name: NAME })
    assert.equal(mirrors.length, 1)
    assert.deepEqual(mirrors[0].versions.map(v => [v.version, v.root]), [[2, second.root]])
    assert.equal(mirrors[0].versions[0].status.pinned, 3)

    // the gateway serves the new files under /mirror/<name>/ (any peer; the follower here)
    const gw = tc.peer(2).gatewayAddress()
    for (const p of [changed[0], 'pool/new/new-1.deb']) {
      const res = await fetch(`http://${gw.host}:${gw.port}/mirror/${NAME}/${p}`)
      assert.equal(res.status, 200, `GET /mirror/${NAME}/${p}`)
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), contents.get(p))
    }
    const gone = await fetch(`http://${gw.host}:${gw.port}/mirror/${NAME}/${removed[0]}`)
    assert.equal(gone.status, 404)
  })

  it('the CLI reports an unchanged tree without uploading, and lists versions', async () => {
    const sync = await cli(client, '--json', 'mirror', 'sync', tree, '--name', NAME, '--keep', '1', '--cache', cacheFile)
    assert.equal(sync.code, 0, sync.err)
    const result = JSON.parse(sync.out) as MirrorSyncResult
    assert.equal(result.unchanged, true)
    assert.equal(result.version, 2)
    assert.equal(result.files_read, 0)
    assert.equal(result.dirs_kept, 1, 'the whole tree is the one of the last sync')
    assert.equal(result.blocks_uploaded, 0)

    const ls = await cli(client, '--json', 'mirror', 'ls')
    assert.equal(ls.code, 0, ls.err)
    const rows = ls.out.trim().split('\n').map(l => JSON.parse(l) as { mirror: string, version: number, root: string })
    assert.deepEqual(rows.map(r => [r.mirror, r.version, r.root]), [[NAME, 2, result.root]])

    const text = await cli(client, 'mirror', 'ls', NAME)
    assert.match(text.out, new RegExp(`^${NAME}:\\n  v2  ${result.root}  .*3 pinned`))

    const bad = await cli(client, 'mirror', 'sync', tree, '--name', '../etc')
    assert.equal(bad.code, 2)
    assert.match(bad.err, /invalid mirror name/)
    const missing = await cli(client, 'mirror', 'sync', join(tmp.path, 'nope'), '--name', 'x', '--cache', join(tmp.path, 'x.json'))
    assert.equal(missing.code, 1)
    assert.match(missing.err, /no such directory/)
  })

  it('without metadata, has the root `cairn add -r -H --cid-version 1` gives, symlinks included, and Kubo\'s for Kubo\'s own symlink test tree', async () => {
    const addRoot = async (...args: string[]): Promise<string> => {
      const run = await cli(client, 'add', '-Q', '--no-pin', ...args)
      assert.equal(run.code, 0, `cairn add ${args.join(' ')}: ${run.err}`)
      return run.out.trim()
    }
    const syncRoot = async (dir: string, name: string): Promise<string> => {
      const run = await cli(client, '--json', 'mirror', 'sync', dir, '--name', name, '--no-metadata', '--cache', join(tmp.path, `${name}.json`))
      assert.equal(run.code, 0, run.err)
      return (JSON.parse(run.out) as MirrorSyncResult).root
    }
    // Kubo's test/sharness/t0044-add-symlink.sh: its tree and the CIDs `ipfs add` gives for it
    const files = join(tmp.path, 'kubo', 'files')
    await mkdir(join(files, 'foo'), { recursive: true })
    await mkdir(join(files, 'bar'))
    await writeFile(join(files, 'foo', 'baz'), 'some text\n')
    await symlink('files/foo/baz', join(files, 'bar', 'baz'))
    await symlink('files/does/not/exist', join(files, 'bad'))
    for (const upload of ['blocks', 'files']) {
      assert.equal(await addRoot('-r', files, '--upload', upload), 'QmWdiHKoeSW8G1u7ATCgpx4yMoUhYaJBQGkyPLkS9goYZ8', `upload ${upload}`)
      assert.equal(await addRoot('-r', '--cid-version', '1', files, '--upload', upload), 'bafybeibyhlx64cklod6isy3h7tsmr4qvam3ae3b74n3hfes5bythjrwyua', `upload ${upload}`)
      // a symlink given as the path is the link itself, a dangling one too
      assert.equal(await addRoot(join(files, 'bar', 'baz'), '--upload', upload), 'QmdocmZeF7qwPT9Z8SiVhMSyKA2KKoA2J7jToW6z6WBmxR')
      assert.equal(await addRoot(join(files, 'bad'), '--upload', upload), 'QmWYN8SEXCgNT2PSjB6BnxAx6NJQtazWoBkTRH9GRfPFFQ')
    }
    assert.equal(await syncRoot(files, 'kubo-t0044'), 'bafybeibyhlx64cklod6isy3h7tsmr4qvam3ae3b74n3hfes5bythjrwyua')

    // links of every kind: relative, into and out of a subdirectory, to a directory, dangling, absolute
    const links = join(tmp.path, 'links')
    await mkdir(join(links, 'sub', 'empty'), { recursive: true })
    await writeFile(join(links, 'sub', 'f.txt'), randomBytes(5000))
    await writeFile(join(links, 'big'), randomBytes(600_000))
    await symlink('sub/f.txt', join(links, 'to-f'))
    await symlink('../big', join(links, 'sub', 'up'))
    await symlink('sub', join(links, 'to-dir'))
    await symlink('nowhere/at all', join(links, 'dangling'))
    await symlink('/etc/hostname', join(links, 'absolute'))
    // a mirror keeps dot-files: so does add with -H
    await writeFile(join(links, '.dot'), 'hidden')
    await symlink('.dot', join(links, 'sub', '.to-dot'))
    const added = await addRoot('-r', '-H', '--cid-version', '1', links)
    assert.equal(await addRoot('-r', '-H', '--cid-version', '1', links, '--upload', 'files'), added)
    assert.equal(await syncRoot(links, 'links'), added)
  })
})

describe('mirror DAG', () => {
  it('builds flat directories itself, node for node as the importer does, with and without metadata, first sync and re-sync', async () => {
    const tmp = await tempDir('cairn-mirror-flat-')
    try {
      const t = join(tmp.path, 'tree')
      for (let d = 0; d < 6; d++) {
        await mkdir(join(t, 'pool', `d${d}`, 'sub'), { recursive: true })
        for (let f = 0; f < 5; f++) await writeFile(join(t, 'pool', `d${d}`, `pkg-${f}_1.0_all.deb`), randomBytes(100 + d * 3000 + f * 50_000))
        await writeFile(join(t, 'pool', `d${d}`, 'sub', 'Release'), `release ${d}`)
      }
      await mkdir(join(t, 'empty', 'deeper'), { recursive: true })
      await writeFile(join(t, 'big.iso'), randomBytes(700_000))
      await writeFile(join(t, 'ünïcode 名前.txt'), 'x')
      await symlink('pool/d1/pkg-0_1.0_all.deb', join(t, 'latest.deb'))
      const walk = async (): Promise<TreeEntry[]> => { const out: TreeEntry[] = []; for await (const e of walkTree(t)) out.push(e); return out }
      const build = async (entries: TreeEntry[], metadata: boolean, useImporter: boolean, before?: Awaited<ReturnType<typeof buildTree>>): Promise<{ built: Awaited<ReturnType<typeof buildTree>>, blocks: string[] }> => {
        const blocks: string[] = []
        const cached = (e: TreeEntry): { cid: string, tsize: number } | undefined => {
          const c = before?.files[e.path]
          return c != null && c[0] === e.size && c[1] === e.mtimeNs.toString() && c[2] === e.mode ? { cid: c[3], tsize: c[4] } : undefined
        }
        const built = await buildTree(entries, {
          metadata,
          useImporter,
          cached,
          previous: before != null ? { dirs: before.dirs, files: before.files } : undefined,
          sink: async cid => { blocks.push(cid.toString()) }
        })
        return { built, blocks: blocks.sort() }
      }
      for (const metadata of [true, false]) {
        const first = await walk()
        const flat = await build(first, metadata, false)
        const imported = await build(first, metadata, true)
        assert.equal(flat.built.root.toString(), imported.built.root.toString(), `metadata ${metadata}: same root`)
        assert.equal(flat.built.rootSize, imported.built.rootSize)
        assert.deepEqual(flat.blocks, imported.blocks, 'the same blocks, no orphan')
        // the importer never hands back empty directories, so its cache lacks them (they are rebuilt each time)
        for (const [path, dir] of Object.entries(imported.built.dirs)) assert.deepEqual(flat.built.dirs[path], dir, path)
        assert.deepEqual(Object.keys(flat.built.dirs).filter(p => imported.built.dirs[p] == null), ['empty/deeper'])
        assert.deepEqual(flat.built.files, imported.built.files)
        assert.equal(flat.built.filesRead, first.filter(e => e.kind === 'file').length)

        // a re-sync: one file changed, one added; the rest comes from the first build
        await writeFile(join(t, 'pool', 'd2', 'pkg-3_1.0_all.deb'), randomBytes(1234))
        await writeFile(join(t, 'pool', 'd4', 'sub', 'new.deb'), randomBytes(4321))
        const second = await walk()
        const flat2 = await build(second, metadata, false, flat.built)
        const imported2 = await build(second, metadata, true, imported.built)
        assert.equal(flat2.built.root.toString(), imported2.built.root.toString(), `metadata ${metadata}: same root after the change`)
        assert.deepEqual(flat2.blocks, imported2.blocks)
        for (const [path, dir] of Object.entries(imported2.built.dirs)) assert.deepEqual(flat2.built.dirs[path], dir, path)
        assert.equal(flat2.built.filesRead, 2, 'only the changed and the new file are read')
        assert.equal(flat2.built.dirsKept, imported2.built.dirsKept)
        const scratch = await build(second, metadata, true)
        assert.equal(flat2.built.root.toString(), scratch.built.root.toString(), 'equal to a build from scratch')
      }
    } finally {
      await tmp.cleanup()
    }
  })

  it('without metadata, equals the peer-side add; a 3,200-entry directory is sharded into blocks well under 1 MiB', async () => {
    const tmp = await tempDir('cairn-mirror-dag-')
    try {
      await mkdir(join(tmp.path, 'flat'))
      await mkdir(join(tmp.path, 'sub', 'empty'), { recursive: true })
      await writeFile(join(tmp.path, 'sub', 'big'), randomBytes(700_000))
      // Debian-long names: 3,200 links are past the 256 KiB estimate at which Kubo shards a directory
      for (let i = 0; i < 3200; i++) await writeFile(join(tmp.path, 'flat', `libreoffice-l10n-${String(i).padStart(5, '0')}_24.2.7-1+deb12u1_all.deb`), `${i}`)
      const entries: TreeEntry[] = []
      for await (const e of walkTree(tmp.path)) entries.push(e)
      const blocks = new Map<string, Uint8Array>()
      const built = await buildTree(entries, { metadata: false, sink: async (cid, bytes) => { blocks.set(cid.toString(), bytes) } })
      async function * asAdd (): AsyncGenerator<AddEntry> {
        for (const e of entries) yield e.kind === 'dir' ? { path: `t/${e.path}` } : { path: `t/${e.path}`, content: createReadStream(e.abs) }
      }
      const peerSide = new Map<string, Uint8Array>()
      let root = ''
      for await (const out of importEntries(asAdd(), { cid_version: 1 }, { put: (cid, bytes) => { peerSide.set(cid.toString(), bytes) } })) root = out.cid
      assert.equal(built.root.toString(), root)
      assert.deepEqual([...blocks.keys()].sort(), [...peerSide.keys()].sort(), 'the same blocks, no orphan')

      const flat = dagPb.decode(blocks.get(built.root.toString())!).Links.find(l => l.Name === 'flat')!
      assert.equal(UnixFS.unmarshal(dagPb.decode(blocks.get(flat.Hash.toString())!).Data!).type, 'hamt-sharded-directory')
      const largest = Math.max(...[...blocks.values()].map(b => b.byteLength))
      assert.ok(largest <= 262_144, `largest block ${largest} bytes`)
    } finally {
      await tmp.cleanup()
    }
  })
})

describe('mirror walk order', () => {
  it('sorts names in UTF-8 byte order, surrogates (characters past U+FFFF) included', () => {
    const pool = ['a', 'B', 'é', '\uE000x', '😀', 'z', '\uFFFDq', 'a\u00ff', 'a\u0100', '日本', '\uD7FF', 'ab', '']
    let seed = 7
    const next = (): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
    for (let i = 0; i < 2000; i++) {
      const names = Array.from({ length: 1 + (i % 12) }, () => pool[Math.floor(next() * pool.length)] + pool[Math.floor(next() * pool.length)])
      const bytewise = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
      assert.deepEqual(sortByUtf8([...names]), bytewise, names.join(' | '))
    }
    // the case where UTF-16 order differs: U+FFFD sorts before an emoji in UTF-8, after it in UTF-16
    assert.deepEqual(sortByUtf8(['😀', '\uFFFD']), ['\uFFFD', '😀'])
  })
})
