// Issue 19, "must show": disks do not fill with garbage as a mirror changes. A one-peer cluster; a tree of 200
// random (incompressible) files, 24 MiB, published with `cairn mirror sync --keep 2` ten times, 5% of the files
// rewritten with new bytes before each re-sync and `cairn repo gc` after each: the peer's block folder (`du`) and
// `repo stat`'s disk_bytes then hold at most 1.25x what the two kept versions need, counted by walking both roots
// (the distinct blocks they reach, which must equal repo stat's pinned_bytes). Then `pin rm` of a big file and
// `repo gc` give its space back on disk, not only in a counter.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { runCli } from '../../src/cli/program.js'
import { createClient, type Client } from '../../src/client/index.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { distinctBlocks, oneFile, sleep, tempDir, waitFor } from '../util.js'
import type { MirrorSyncResult } from '../../src/mirror/index.js'
import type { RepoStat } from '../../src/types/wire.js'

const FILES = 200
const VERSIONS = 10
const CHANGED = FILES / 20
/** What the two kept versions may take on disk, at most, against what they need. */
const BOUND = 1.25

/** `du` (the real program) of a folder, in bytes of allocated disk blocks. */
async function du (dir: string): Promise<number> {
  const { stdout } = await promisify(execFile)('du', ['-s', '-B1', dir])
  return parseInt(stdout, 10)
}

/** Bytes of the value log's segment files (their length; one compacted away meanwhile counts 0). */
async function segmentBytes (dir: string): Promise<number> {
  let total = 0
  for (const name of await readdir(dir)) if (name.endsWith('.seg')) total += await stat(join(dir, name)).then(s => s.size, () => 0)
  return total
}

/** File sizes of 2 KiB - ~240 KiB, 24 MiB in all, in 20 package folders. */
const sizeOf = (i: number): number => 2048 + (i * 7919) % 245_000

describe('a mirror synced 10 times with --keep 2 stays within 1.25x of its two kept versions on disk', { timeout: 180_000 }, () => {
  let tc: TestCluster
  let tmp: { path: string, cleanup: () => Promise<void> }
  let client: Client
  let tree: string
  let blocksDir: string
  const paths: string[] = []

  before(async () => {
    tmp = await tempDir('cairn-keep-gc-')
    tree = join(tmp.path, 'tree')
    for (let i = 0; i < FILES; i++) {
      const dir = join('pool', `p${i % 20}`)
      await mkdir(join(tree, dir), { recursive: true })
      paths.push(join(dir, `pkg${i}.deb`))
      await writeFile(join(tree, paths[i]), randomBytes(sizeOf(i)))
    }
    // no scheduled GC: each is asked for, as an operator's cron would; an add's hold on GC (until its pin follows)
    // of 0.5 s, so that a GC right after a sync need not wait 5 s
    tc = await createTestCluster(1, { name: 'keep-gc', gc: { interval_ms: 0 }, noPinHoldMs: 500 })
    client = createClient({ api: tc.url(0) })
    blocksDir = join(tc.configs[0].path, 'blocks-vlog')
  })
  after(async () => {
    await tc?.close()
    await tmp?.cleanup()
  })

  async function cairn (...args: string[]): Promise<string> {
    let out = ''
    let err = ''
    const code = await runCli(['--api', tc.url(0), ...args], { out: s => { out += s }, err: s => { err += s }, env: {} })
    assert.equal(code, 0, `cairn ${args.join(' ')}: ${err}`)
    return out
  }

  /** Waits until the segment files have not changed for a second (compaction runs in the background). */
  async function settled (): Promise<void> {
    let last = -1
    await waitFor(async () => {
      const now = await segmentBytes(blocksDir)
      const same = now === last
      last = now
      if (!same) await sleep(1000)
      return same
    }, { timeoutMs: 60_000, intervalMs: 0, message: 'the segment files stop changing' })
  }

  /** The distinct blocks the roots reach, and their bytes, read from the peer's own store. */
  async function needed (roots: string[]): Promise<{ blocks: number, bytes: number }> {
    return await distinctBlocks(tc.peer(0).ipfs.helia.blockstore, roots, { timeoutMs: 5000 })
  }

  it('holds at most 1.25x the distinct blocks of the two kept versions (du of the block folder, disk_bytes)', async t => {
    const cache = join(tmp.path, 'mirror-cache.json')
    const results: MirrorSyncResult[] = []
    let written = 0
    for (let v = 1; v <= VERSIONS; v++) {
      if (v > 1) {
        // 5% of the files rewritten with new bytes, a different 5% each time
        for (let k = 0; k < CHANGED; k++) {
          const i = ((v - 2) * CHANGED + k) % FILES
          await writeFile(join(tree, paths[i]), randomBytes(sizeOf(i)))
          written += sizeOf(i)
        }
      }
      results.push(JSON.parse(await cairn('--json', 'mirror', 'sync', tree, '--name', 'deb', '--keep', '2', '--cache', cache)) as MirrorSyncResult)
      assert.equal(results.at(-1)?.version, v)
      if (v > 1) assert.equal(results.at(-1)?.files.changed, CHANGED)
      assert.match(await cairn('repo', 'gc', '--local'), /blocks deleted/)
    }
    const kept = results.slice(-2).map(r => r.root)
    const pins: string[] = []
    for await (const pin of client.allocations()) pins.push(pin.cid)
    pins.sort()
    assert.deepEqual(pins, [...kept].sort(), 'only the two newest versions are pinned')
    await settled()

    const need = await needed(kept)
    const total = results[0].bytes_read + written
    const repo = JSON.parse(await cairn('--json', 'repo', 'stat')) as RepoStat
    // what the two versions need, counted two ways: walking the roots, and the pin records
    assert.equal(repo.pinned_bytes, need.bytes, 'pinned_bytes is the distinct blocks of the two kept roots')
    assert.equal(repo.garbage_bytes, 0)
    assert.equal(repo.cache_bytes, 0)
    const onDisk = await du(blocksDir)
    const segments = await segmentBytes(blocksDir)
    const figures = `written ${total}, needed ${need.bytes} (${need.blocks} blocks), segments ${segments}, du ${onDisk}, disk_bytes ${repo.disk_bytes}`
    t.diagnostic(`${figures}; du/needed ${(onDisk / need.bytes).toFixed(3)}, disk_bytes/needed ${(repo.disk_bytes / need.bytes).toFixed(3)}`)
    assert.ok(total > 1.3 * need.bytes, `more was written than is needed: ${figures}`)
    assert.ok(segments <= BOUND * need.bytes, `segment files ${(segments / need.bytes).toFixed(3)}x: ${figures}`)
    assert.ok(onDisk <= BOUND * need.bytes, `du of the block folder ${(onDisk / need.bytes).toFixed(3)}x: ${figures}`)
    assert.ok(repo.disk_bytes <= BOUND * need.bytes, `disk_bytes ${(repo.disk_bytes / need.bytes).toFixed(3)}x: ${figures}`)
    assert.ok(repo.disk_bytes >= onDisk, `disk_bytes counts the whole peer folder: ${figures}`)
  })

  it('pin rm then repo gc gives a big file\'s space back on disk (du), not only in the counters', async () => {
    await settled()
    const before = await du(blocksDir)
    let root = ''
    for await (const out of tc.peer(0).cluster.add(oneFile('big.bin', randomBytes(16 * 1024 * 1024)), { chunk_size: 262_144, raw_leaves: true, cid_version: 1 })) root = out.cid
    await waitFor(async () => await tc.peer(0).ipfs.isPinned(CID.parse(root)), { timeoutMs: 30_000, message: 'the big file pinned' })
    const held = await du(blocksDir)
    assert.ok(held >= before + 16e6, `the file takes its space: ${before} -> ${held}`)
    await cairn('pin', 'rm', root)
    await waitFor(async () => !await tc.peer(0).ipfs.isPinned(CID.parse(root)), { timeoutMs: 30_000, message: 'the big file unpinned' })
    assert.match(await cairn('repo', 'gc', '--local'), /peer-0 .*: 65 blocks deleted/)
    await settled()
    const afterGc = await du(blocksDir)
    const repo = JSON.parse(await cairn('--json', 'repo', 'stat')) as RepoStat
    assert.ok(afterGc <= before + 1024 * 1024, `du of the block folder ${before} -> ${held} -> ${afterGc}`)
    assert.ok(repo.disk_bytes < held, `disk_bytes ${repo.disk_bytes}, ${held} while the file was pinned`)
  })
})
