// Repo GC under load (issue 19, "Must show"): 50 rounds of a GC on one peer racing 10 pins being fetched by
// it over bitswap, 10 unpins and a mirror re-sync. Afterwards every DAG pinned there is whole (its blocks walked
// and hashed again by `repo verify`, and each file's bytes read from that peer alone), and the garbage was
// really reclaimed: the peer folder's `du` fell by the bytes of the removed pins.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { createClient } from '../../src/client/index.js'
import { syncMirror } from '../../src/mirror/index.js'
import { diskUsage } from '../../src/storage/disk.js'
import { pinKey } from '../../src/utils/keys.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { oneFile, sha256Hex, sleep, tempDir, waitFor } from '../util.js'

const KiB = 1024
const MiB = 1024 * KiB
const ROUNDS = 50
const PER_ROUND = 10
const MIRROR_FILES = 40

describe('repo gc under load', { timeout: 300_000 }, () => {
  let tc: TestCluster
  let tmp: { path: string, cleanup: () => Promise<void> }

  before(async () => {
    tmp = await tempDir('cairn-gc-load-')
    // no scheduled GC: every GC here is one the test starts
    tc = await createTestCluster(2, { name: 'gc-load', gc: { interval_ms: 0 }, tracker: { concurrent_pins: 10 } })
    await waitFor(async () => (await tc.peer(1).cluster.peerset()).length === 2, { message: 'peers see each other', timeoutMs: 30_000 })
  })
  after(async () => {
    await tc?.close()
    await tmp?.cleanup()
  })

  it(`${ROUNDS} rounds of GC racing ${PER_ROUND} pins, ${PER_ROUND} unpins and a mirror re-sync leave every pinned DAG whole and give the garbage back`, async t => {
    const source = tc.peer(0)
    const victim = tc.peer(1)
    const both = { replication_factor_min: 2, replication_factor_max: 2 }
    const dir = tc.configs[1].path
    const emptyDu = await diskUsage(dir)
    /** Content pinned now, by CID, with its bytes. */
    const live = new Map<string, Buffer>()
    let removedBytes = 0
    let deleted = 0
    const gcErrors: string[] = []

    const add = async (): Promise<string> => {
      // 48-80 KiB in 16 KiB chunks: a small DAG of a few blocks; 50 rounds bring ~30 MiB, more than the 4 MiB of
      // dead bytes after which the segment appended to is compacted
      const bytes = randomBytes(48 * KiB + Math.floor(Math.random() * 32 * KiB))
      let cid = ''
      for await (const out of source.cluster.add(oneFile('f.bin', bytes), { ...both, cid_version: 1, raw_leaves: true, chunk_size: 16 * KiB })) cid = out.cid
      live.set(cid, bytes)
      return cid
    }
    const unpin = async (cid: string): Promise<void> => {
      removedBytes += live.get(cid)!.byteLength
      live.delete(cid)
      await source.cluster.unpin(CID.parse(cid))
    }

    // the mirror: re-synced over and over while the rounds run, 5% of its files changed each time, two kept
    const tree = join(tmp.path, 'mirror')
    await mkdir(join(tree, 'pool'), { recursive: true })
    for (let f = 0; f < MIRROR_FILES; f++) await writeFile(join(tree, 'pool', `p${f}.deb`), randomBytes(8 * KiB))
    const client = createClient({ api: tc.url(0) })
    const mirrorParams = { dir: tree, name: 'load', keep: 2, cacheFile: join(tmp.path, 'cache.json'), pollMs: 100, pinTimeoutMs: 120_000, replication_factor_min: 2, replication_factor_max: 2 }
    const syncing = { on: true }
    let syncs = 0
    const mirror = (async () => {
      while (syncing.on) {
        for (let k = 0; k < MIRROR_FILES / 20; k++) await writeFile(join(tree, 'pool', `p${Math.floor(Math.random() * MIRROR_FILES)}.deb`), randomBytes(8 * KiB))
        await syncMirror(client, mirrorParams)
        syncs++
        // a re-sync every second or so is enough to race every GC with one now and then
        await sleep(1000)
      }
    })()

    // each round: a GC on the victim, started with 10 adds (which the victim fetches over bitswap while the GC
    // runs) and the unpins of the 10 pins of two rounds ago (pinned on the victim by then)
    const rounds: string[][] = []
    for (let round = 0; round < ROUNDS; round++) {
      const gc = victim.cluster.repoGC({ local: true })
      const added = Promise.all(Array.from({ length: PER_ROUND }, add))
      await Promise.all([
        added,
        ...(rounds[round - 2] ?? []).map(unpin),
        gc.then(r => { const e = Object.values(r.peer_map)[0]; deleted += e.keys.length; if (e.error != null) gcErrors.push(e.error) })
      ])
      rounds.push(await added)
      // the last round's pins are on the victim before they are unpinned in the next round but one
      if (round > 0) {
        await waitFor(async () => (await Promise.all(rounds[round - 1].map(async c => await victim.ipfs.isPinned(CID.parse(c))))).every(Boolean),
          { timeoutMs: 30_000, message: `round ${round - 1}'s pins on the victim` })
      }
    }
    syncing.on = false
    await mirror
    t.diagnostic(`${ROUNDS} rounds: ${live.size} pins live, ${removedBytes} bytes of content unpinned, ${deleted} blocks deleted by the racing GCs, ${syncs} mirror syncs, GC errors: ${JSON.stringify(gcErrors.slice(0, 3))} (${gcErrors.length})`)
    assert.ok(deleted > 0, 'the GCs that raced the pins deleted nothing')
    assert.ok(syncs >= 2, `the mirror was synced again during the rounds (${syncs} syncs)`)

    // every pin the pinset gives the victim is pinned there
    const allocated = [...victim.pinset.list()].filter(p => p.allocations.includes(victim.id))
    await waitFor(async () => {
      for (const p of allocated) {
        const s = await victim.tracker.status(pinKey(p.cid))
        assert.notEqual(s.status, 'pin_error', `${p.cid}: ${s.error}`)
        if (s.status !== 'pinned') return false
      }
      return true
    }, { timeoutMs: 60_000, message: 'every pin allocated to the victim is pinned there' })

    // whole: no block of a pin missing or corrupt (verify reads every block and hashes it), and each file's bytes
    // read from the victim's own store
    const verify = await victim.ipfs.repoVerify()
    assert.deepEqual(verify.problems, [], 'repo verify found problems')
    for (const [cid, bytes] of live) {
      const chunks: Uint8Array[] = []
      for await (const c of victim.ipfs.cat(CID.parse(cid))) chunks.push(c)
      assert.equal(sha256Hex(Buffer.concat(chunks)), sha256Hex(bytes), `${cid} read whole from the victim's store`)
    }

    // the rest of the content is unpinned; after a quiet GC the folder's du is back to what the mirror's kept
    // versions need, plus the databases (measured before anything was added)
    const last = [...live.keys()]
    for (const cid of last) await unpin(cid)
    await waitFor(async () => {
      for (const cid of last) if (await victim.ipfs.isPinned(CID.parse(cid))) return false
      return true
    }, { timeoutMs: 30_000, message: 'the victim unpinned the last pins' })
    await victim.cluster.repoGC({ local: true })
    const stat = await victim.ipfs.repoStat()
    assert.equal(stat.garbage_bytes, 0, 'garbage left after a quiet GC')
    const bound = emptyDu + stat.pinned_bytes * 1.25 + 8 * MiB
    let du = 0
    await waitFor(async () => { du = await diskUsage(dir); return du <= bound }, { timeoutMs: 30_000, message: 'the space given back on disk' }).catch(err => {
      throw new Error(`${(err as Error).message}: du ${du} bytes, ${stat.pinned_bytes} pinned, ${emptyDu} before anything was added (${removedBytes} bytes unpinned in all)`)
    })
    t.diagnostic(`du of the victim's folder: ${emptyDu} bytes at start, ${du} at the end with ${stat.pinned_bytes} bytes pinned; ${removedBytes} bytes of content unpinned in all`)
  })
})
