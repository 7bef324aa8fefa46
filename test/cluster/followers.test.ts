// Issue 3: 3 trusted peers + 2 followers that joined from a cluster config served over HTTP on 127.0.0.1.
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { runCli } from '../../src/cli/program.js'
import { createClient } from '../../src/client/index.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { sleep, waitFor } from '../util.js'
import { pinKey } from '../../src/utils/keys.js'

async function putRaw (tc: TestCluster, on: number[], seed: string): Promise<string> {
  const bytes = new TextEncoder().encode(`follower block ${seed}`)
  const cid = CID.createV1(raw.code, await sha256.digest(bytes))
  for (const i of on) await tc.peer(i).ipfs.helia.blockstore.put(cid, bytes)
  return cid.toString()
}

describe('followers', () => {
  let tc: TestCluster
  before(async () => {
    tc = await createTestCluster(5, { untrusted: [3, 4], serveConfig: true, name: 'mirror' })
    await waitFor(async () => (await Promise.all([0, 1, 2, 3, 4].map(async i => (await tc.peer(i).cluster.peerset()).length))).every(n => n === 5), { timeoutMs: 30_000, message: 'all 5 peers see each other' })
  })
  after(async () => { await tc?.close() })

  it('receive and pin everything, cannot write, and list offline', async () => {
    assert.equal(tc.configs[3].clusterSource.origin, 'fetched', 'follower read the config over HTTP')
    const cids: string[] = []
    for (let i = 0; i < 20; i++) cids.push(await putRaw(tc, [0], `f${i}`))
    const a = createClient({ api: tc.url(0) })
    for (const cid of cids) await a.pin(cid, { name: 'pkg' })
    for (const f of [3, 4]) {
      const seen: Record<string, number> = {}
      await waitFor(async () => {
        for (const k of Object.keys(seen)) delete seen[k]
        for (const cid of cids) {
          const s = await tc.peer(f).tracker.status(pinKey(cid))
          const key = `${s.status}${s.error !== '' ? `: ${s.error}` : ''}`
          seen[key] = (seen[key] ?? 0) + 1
        }
        return seen.pinned === cids.length
      }, { timeoutMs: 60_000, message: `follower ${f} pinned all 20` }).catch(async err => {
        const stuck: string[] = []
        for (const cid of cids) {
          const s = await tc.peer(f).tracker.status(pinKey(cid))
          if (s.status !== 'pinned') stuck.push(`${s.status} has=${String(await tc.peer(f).ipfs.hasBlock(CID.parse(cid)))} on0=${String(await tc.peer(0).ipfs.hasBlock(CID.parse(cid)))}`)
        }
        const conns = tc.peer(f).ipfs.libp2p.getConnections().map(c => tc.peers.findIndex(p => p?.id === c.remotePeer.toString()))
        throw new Error(`${(err as Error).message}; statuses ${JSON.stringify(seen)}, stuck ${stuck.join(' / ')}, connected to ${conns.join(',')}`)
      })
    }

    // A follower's API refuses writes, with the message IPFS Cluster users expect.
    const follower = createClient({ api: tc.url(3) })
    for (const attempt of [
      async () => await follower.pin(await putRaw(tc, [3], 'nope'), {}),
      async () => await follower.unpin(cids[0])
    ]) {
      await assert.rejects(attempt(), (err: Error & { status?: number }) => err.status === 403 && /follower mode: write operations are disabled/.test(err.message))
    }
    const add = await fetch(`${tc.url(3)}/add`, { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=b' }, body: '--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\nhi\r\n--b--\r\n' })
    assert.equal(add.status, 403)
    // Reads work.
    assert.equal((await follower.status(cids[0])).cid, cids[0])

    // A modified follower writing its own envelopes changes nobody's pinset.
    const rogue = await putRaw(tc, [4], 'rogue')
    await tc.peer(4).pinset.put([{ ...tc.peer(0).pinset.get(cids[0])!, cid: rogue, name: 'rogue' }])
    await waitFor(() => tc.peer(0).pinset.stats().rejected_by_reason.untrusted != null, { message: 'trusted peer rejects the follower envelope' })
    for (const i of [0, 1, 2, 3]) assert.equal(tc.peer(i).pinset.has(rogue), false)

    // follow list with the daemon stopped reads the stores directly.
    await tc.stop(3)
    const out: string[] = []
    const code = await runCli(['follow', 'list', 'p3', '--json'], { out: s => out.push(s), err: () => {}, env: { CAIRN_FOLLOW_PATH: tc.root } })
    assert.equal(code, 0)
    const rows = out.join('').trim().split('\n').map(l => JSON.parse(l) as { cid: string, status: string, offline: boolean })
    for (const cid of cids) {
      const row = rows.find(r => CID.parse(r.cid).equals(CID.parse(cid)))
      assert.equal(row?.status, 'pinned', `offline list shows ${cid} pinned`)
      assert.equal(row?.offline, true)
    }
    await tc.start(3)
  })

  it('applies trust changes from the shared config: a removed peer becomes read-only and its writes are dropped', async () => {
    const cfg = JSON.parse(await readFile(tc.clusterFile, 'utf8'))
    const removed = tc.peer(2).id
    await writeFile(tc.clusterFile, JSON.stringify({ ...cfg, trusted_peers: cfg.trusted_peers.filter((p: string) => p !== removed) }))
    await waitFor(() => !tc.peer(2).cluster.writable, { timeoutMs: 10_000, message: 'peer 2 sees it is no longer trusted' })
    const c = createClient({ api: tc.url(2) })
    await assert.rejects(c.pin(await putRaw(tc, [2], 'after-removal'), {}), (err: Error & { status?: number }) => err.status === 403)
    // Its later writes (as a modified peer would make) are dropped once the others re-read the config.
    const untrustedBefore = tc.peer(0).pinset.stats().rejected_by_reason.untrusted ?? 0
    await waitFor(async () => {
      const late = await putRaw(tc, [2], `late-${Date.now()}`)
      await tc.peer(2).pinset.put([{ ...tc.peer(0).pinset.get(tc.peer(0).pinset.list().next().value!.cid)!, cid: late }])
      // proves a NOT each round: the late write, given time to spread, is on neither trusted peer
      await sleep(300)
      return !tc.peer(0).pinset.has(late) && !tc.peer(1).pinset.has(late) &&
        (tc.peer(0).pinset.stats().rejected_by_reason.untrusted ?? 0) > untrustedBefore
    }, { timeoutMs: 15_000, message: 'writes of the removed peer are dropped and counted' })
    // A peer added back is trusted again.
    await writeFile(tc.clusterFile, JSON.stringify(cfg))
    await waitFor(() => tc.peer(2).cluster.writable, { timeoutMs: 10_000, message: 'peer 2 trusted again' })
  })
})
