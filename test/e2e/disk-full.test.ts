// A `cairn daemon` whose disk fills up (issue 17, item 5), on a small file system of its own: writes are refused
// with a 507 naming the disk, its pins that cannot be fetched are in pin_error naming the disk, reads go on, it
// stops at SIGTERM, and once a little space is freed it starts again with every pin it acknowledged.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { access, readFile, rm, statfs, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { RESERVE_FILE, replayBytes } from '../../src/storage/reserve.js'
import { mountSmallDisk, type SmallDisk } from '../small-disk.js'
import { freePorts, tempDir, waitFor } from '../util.js'
import { cairn, cairnOk, ndjson, spawnDaemon, type Daemon as BaseDaemon } from './processes.js'
import type { GlobalPinInfo, Pin } from '../../src/components.js'

const MiB = 1024 * 1024

interface Daemon extends BaseDaemon {
  gateway: string
}

/** Starts `cairn daemon`; resolves once it answers GET /id, rejects with its output if it exits first. */
async function startDaemon (d: Daemon): Promise<void> {
  spawnDaemon(d, {
    CAIRN_PINSVC_LISTEN: '127.0.0.1:0',
    CAIRN_GATEWAY_LISTEN: d.gateway,
    CAIRN_METRICS_LISTEN: '127.0.0.1:0',
    // one attempt: the error stays for the test to read
    CAIRN_TRACKER_MAX_RETRIES: '1'
  })
  const child = d.child!
  await waitFor(async () => {
    if (child.exitCode != null) throw new Error(`${d.name} exited with code ${child.exitCode}:\n${d.output}`)
    const res = await fetch(`http://${d.rest}/id`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined)
    return res?.ok === true
  }, { timeoutMs: 30_000, intervalMs: 200, message: `${d.name} answers GET /id` }).catch(err => {
    throw new Error(`${(err as Error).message}\n--- ${d.name}\n${d.output}`)
  })
}

/** A file of random bytes (nothing deduplicates or compresses it). */
async function randomFile (dir: string, name: string, bytes: number): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, randomBytes(bytes))
  return path
}

const addedCid = (out: string): string => (JSON.parse(out.trim().split('\n').at(-1)!) as { cid: string }).cid

describe('a daemon whose disk fills up', { timeout: 120_000 }, () => {
  let disk: SmallDisk | string
  let tmp: { path: string, cleanup: () => Promise<void> }
  const daemons: Daemon[] = []
  let full: Daemon
  let other: Daemon
  /** Pins the cluster acknowledged (a 200 to add or pin), which the full peer must hold after its restart. */
  const acked: string[] = []

  before(async () => {
    // big enough for the default 128 MiB reserve (made when the disk has room for it twice)
    disk = await mountSmallDisk(320)
    if (typeof disk === 'string') return
    tmp = await tempDir('cairn-disk-full-')
    const clusterConfig = join(tmp.path, 'cluster.config.json')
    await writeFile(clusterConfig, JSON.stringify({ name: 'cairn-disk-full', dht: { profile: 'lan', protocol: '/cairn-disk-full/kad/1.0.0' } }))
    const ports = await freePorts(6)
    for (const [k, name, dir] of [[0, 'full', join(disk.dir, 'peer')], [1, 'other', join(tmp.path, 'other')]] as const) {
      const d: Daemon = { name, dir, rest: `127.0.0.1:${ports[3 * k]}`, gateway: `127.0.0.1:${ports[3 * k + 2]}`, id: '', output: '' }
      const out = await cairnOk('init', '--json', '--path', d.dir, '--peername', name, '--cluster-config', clusterConfig,
        '--rest-listen', d.rest, '--swarm-listen', `/ip4/127.0.0.1/tcp/${ports[3 * k + 1]}`)
      d.id = (JSON.parse(out) as { id: string }).id
      daemons.push(d)
    }
    const bootstrap = daemons.map((d, k) => `/ip4/127.0.0.1/tcp/${ports[3 * k + 1]}/p2p/${d.id}`)
    await writeFile(clusterConfig, JSON.stringify({
      name: 'cairn-disk-full',
      trusted_peers: daemons.map(d => d.id),
      bootstrap,
      dht: { profile: 'lan', protocol: '/cairn-disk-full/kad/1.0.0', bootstrap }
    }, null, 2))
    ;[full, other] = daemons
    await Promise.all(daemons.map(startDaemon))
  })

  after(async () => {
    for (const d of daemons) {
      if (d.child != null && d.child.exitCode == null && d.child.signalCode == null) d.child.kill('SIGKILL')
    }
    await Promise.all(daemons.map(async d => { await d.exit }))
    if (typeof disk !== 'string') await disk?.remove()
    await tmp?.cleanup()
  })

  it('refuses writes with 507 naming the disk, keeps reading, stops at SIGTERM, and starts again with every acknowledged pin', async t => {
    if (typeof disk === 'string') {
      t.skip(disk)
      return
    }
    const mount = disk.dir
    const logs = (): string => daemons.map(d => `--- ${d.name}\n${d.output.split('\n').slice(-20).join('\n')}`).join('\n')
    const reserve = join(full.dir, RESERVE_FILE)
    await waitFor(async () => await access(reserve).then(() => true, () => false), { timeoutMs: 20_000, message: 'the reserve file is made' })

    // leave 60 MiB: the block store's log grows to about that before the disk is full (less than its 64 MiB
    // memtable, so it is still a log at the restart, to be replayed); 10 MiB of it is freed before the restart
    const free = async (): Promise<number> => { const fs = await statfs(mount); return Number(fs.bavail) * Number(fs.bsize) }
    await writeFile(join(mount, 'filler'), new Uint8Array(await free() - 70 * MiB))
    await writeFile(join(mount, 'filler-10m'), new Uint8Array(10 * MiB))

    // acknowledged adds on the peer that will be full
    const held: Array<{ cid: string, bytes: Buffer }> = []
    for (let i = 0; i < 4; i++) {
      const file = await randomFile(tmp.path, `small-${i}`, 4 * MiB)
      const cid = addedCid(await cairnOk('--api', full.rest, 'add', '--json', '--cid-version', '1', file))
      acked.push(cid)
      held.push({ cid, bytes: await readFile(file) })
    }
    // content added on the other peer: the full one fetches it and runs out of space
    const big = addedCid(await cairnOk('--api', other.rest, 'add', '--json', '--cid-version', '1', await randomFile(tmp.path, 'big', 80 * MiB)))
    acked.push(big)

    let seen = ''
    const status = await waitFor(async () => {
      const g = JSON.parse(await cairnOk('--api', full.rest, 'status', big, '--local', '--json')) as GlobalPinInfo
      const s = g.peer_map[full.id]
      seen = `${JSON.stringify(s)}, ${((await free()) / MiB).toFixed(1)} MiB free`
      return s?.status === 'pin_error' ? s : undefined
    }, { timeoutMs: 40_000, intervalMs: 500, message: 'the big pin in pin_error on the full peer' }).catch(err => {
      throw new Error(`${(err as Error).message}: last seen ${seen}\n${logs()}`)
    })
    assert.match(status.error, new RegExp(`^insufficient storage: .*the disk holding ${full.dir}/\\S+ \\(\\S+ mounted at ${mount}, [\\d.]+ [KMG]?i?B free\\)`), status.error)

    // space comes back after the failed fetch (the value log gives back what part of a refused write landed, and
    // writes in flight meet the same): wait until the free space holds still, then fill the disk to its last 64 KiB,
    // less than any write below needs. Space freed later still (a background task of the daemon) would let a write
    // through: then it is acknowledged, and the disk is filled again, at most three times.
    const settled = async (): Promise<void> => {
      let last = -1
      await waitFor(async () => { const now = await free(); const still = now === last; last = now; return still }, { timeoutMs: 20_000, intervalMs: 1000, message: 'the free space holds still' })
    }
    const fillUp = async (name: string): Promise<void> => {
      await settled()
      await writeFile(join(mount, name), new Uint8Array(Math.max(0, await free() - 64 * 1024))).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOSPC') throw err
      })
    }

    // writes: a 507 naming the disk, from the REST API and the CLI
    let res: Response | undefined
    for (let attempt = 0; attempt < 3; attempt++) {
      await fillUp(`filler-full-${attempt}`)
      const form = new FormData()
      form.append('file', new Blob([randomBytes(300_000)]), 'late.bin')
      res = await fetch(`http://${full.rest}/add?cid-version=1`, { method: 'POST', body: form })
      if (res.status !== 200) break
      t.diagnostic(`space was freed after the disk was filled: the add was acknowledged (${(await free() / 1024).toFixed(0)} KiB free now); filling again`)
      acked.push(addedCid(await res.text()))
    }
    assert.equal(res!.status, 507, await res!.clone().text())
    const body = await res!.json() as { code: number, message: string }
    assert.equal(body.code, 507)
    assert.match(body.message, new RegExp(`^insufficient storage: .*mounted at ${mount}, `))
    const cli = await cairn('--api', full.rest, 'add', await randomFile(tmp.path, 'late-cli', 300_000))
    assert.equal(cli.code, 1, cli.stdout)
    assert.match(cli.stderr, /insufficient storage: /)
    // a pin: refused with the same 507 if the pinset's disk writes are refused too, else acknowledged
    const pinTry = await randomFile(tmp.path, 'pin-try', 1000)
    const pinCid = addedCid(await cairnOk('--api', other.rest, 'add', '--json', '--cid-version', '1', '--no-pin', pinTry))
    const pin = await fetch(`http://${full.rest}/pins/${pinCid}`, { method: 'POST' })
    t.diagnostic(`POST /pins on the full peer: ${pin.status}`)
    if (pin.ok) acked.push(pinCid)
    else {
      assert.equal(pin.status, 507)
      assert.match((await pin.json() as { message: string }).message, /^insufficient storage: /)
    }

    // reads go on: the pinset, and the content held here through the gateway
    const allocations = await fetch(`http://${full.rest}/allocations`)
    assert.equal(allocations.status, 200)
    const listed = new Set(ndjson<Pin>(await allocations.text()).map(p => p.cid))
    assert.deepEqual(acked.filter(c => !listed.has(c)), [], 'acknowledged pins missing from GET /allocations on the full peer')
    const got = await fetch(`http://${full.gateway}/ipfs/${held[0].cid}`)
    assert.equal(got.status, 200)
    assert.ok(Buffer.from(await got.arrayBuffer()).equals(held[0].bytes), 'the gateway served other bytes')
    assert.equal(full.child!.exitCode, null, `the full peer exited:\n${full.output}`)

    // SIGTERM: a clean, prompt stop
    const stopping = Date.now()
    full.child!.kill('SIGTERM')
    const exit = await Promise.race([full.exit!, new Promise<undefined>(resolve => { setTimeout(() => { resolve(undefined) }, 15_000) })])
    assert.ok(exit != null, `no exit 15 s after SIGTERM:\n${full.output}`)
    assert.deepEqual(exit, { code: 0, signal: null }, full.output)
    t.diagnostic(`stopped ${Date.now() - stopping} ms after SIGTERM`)

    // the disk full to its last bytes at the restart: less room than the databases' logs replay at open, so the
    // reserve makes up the rest. (With blocks in level, the block store's own log was tens of MiB and freeing
    // 10 MiB left too little; the value log keeps level's logs small, so the disk is filled again instead.)
    await rm(join(mount, 'filler-10m'))
    const replay = await replayBytes(full.dir)
    await writeFile(join(mount, 'filler-last'), new Uint8Array(Math.max(0, await free() - Math.floor(replay / 2)))).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOSPC') throw err
    })
    t.diagnostic(`the logs to replay hold ${(replay / MiB).toFixed(1)} MiB, the disk has ${((await free()) / MiB).toFixed(1)} MiB free beside the reserve`)
    assert.ok(replay > await free(), 'the space freed alone would do: this test would not show the reserve at work')
    await startDaemon(full)
    await assert.rejects(access(reserve), 'the reserve file was not released')
    assert.match(full.output, /deleted the \S+ MiB reserve file/)
    const after = new Set(ndjson<Pin>(await (await fetch(`http://${full.rest}/allocations`)).text()).map(p => p.cid))
    assert.deepEqual(acked.filter(c => !after.has(c)), [], 'acknowledged pins missing after the restart')
    for (const { cid } of held) {
      const g = JSON.parse(await cairnOk('--api', full.rest, 'status', cid, '--local', '--json')) as GlobalPinInfo
      assert.equal(g.peer_map[full.id]?.status, 'pinned', `${cid} after the restart: ${JSON.stringify(g.peer_map[full.id])}`)
    }
    // the space the reserve gave back takes writes again
    addedCid(await cairnOk('--api', full.rest, 'add', '--json', await randomFile(tmp.path, 'after-restart', 1000)))
  })
})
