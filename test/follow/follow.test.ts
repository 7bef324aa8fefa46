// `cairn follow`: a volunteer joins a published cluster with one command. Real things throughout: the config
// is served over HTTP on 127.0.0.1, follower folders live in a temp CAIRN_FOLLOW_PATH, the offline listing
// reads a pinset and a Helia datastore written by the real components, and `follow run` is a real process.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { dirname, join, relative, resolve } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { runCli } from '../../src/cli/program.js'
import { ZERO_TIME, type Pin } from '../../src/types/wire.js'
import { API_FILE, LAST_GOOD_FILE } from '../../src/config/index.js'
import { createIpfs } from '../../src/ipfs/index.js'
import { createPinset } from '../../src/pinset/index.js'
import { listPinsetOffline } from '../../src/pinset/offline.js'
import { closedUrl, startConfigServer, type ConfigServer } from '../config/serve.js'
import { quietLogger, tempDir, waitFor } from '../util.js'
import { freePorts } from '../../bench/lib.js'

/** The repo root: this file runs as dist/test/follow/follow.test.js. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const CAIRN = join(ROOT, 'bin', 'cairn.js')

interface Run { code: number, out: string, err: string }

const readJson = async (file: string): Promise<any> => JSON.parse(await readFile(file, 'utf8'))
const exists = async (file: string): Promise<boolean> => await stat(file).then(() => true, () => false)

async function cidOf (text: string): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(text)))
}

function pinOf (cid: string, name: string, allocations: string[] = []): Pin {
  return {
    cid, type: 'pin', name, mode: 'recursive', replication_factor_min: -1, replication_factor_max: -1, allocations,
    shard_size: 0, max_depth: -1, reference: null, expire_at: ZERO_TIME, metadata: {}, origins: [], pin_update: null,
    user_allocations: null, timestamp: new Date().toISOString()
  }
}

describe('cairn follow', () => {
  let server: ConfigServer
  let root: string
  let trustedId: string
  const cleanups: Array<() => Promise<void>> = []

  async function cairn (...args: string[]): Promise<Run> {
    let out = ''
    let err = ''
    const code = await runCli(args, { out: s => { out += s }, err: s => { err += s }, env: { CAIRN_FOLLOW_PATH: root } })
    return { code, out, err }
  }

  async function cairnOk (...args: string[]): Promise<string> {
    const run = await cairn(...args)
    assert.equal(run.code, 0, `cairn ${args.join(' ')} exited ${run.code}: ${run.err}`)
    return run.out
  }

  before(async () => {
    trustedId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    server = await startConfigServer({ name: 'mirrors', trusted_peers: [trustedId], dht: { profile: 'lan' } })
    const t = await tempDir('cairn-follow-')
    root = t.path
    cleanups.push(t.cleanup)
  })
  after(async () => {
    await server.close()
    for (const c of cleanups) await c()
  })

  it('init creates a follower folder from a URL: own identity, fixed ports, the source, a last good copy', async () => {
    const out = await cairnOk('follow', 'init', 'mirrors', server.url)
    const dir = join(root, 'mirrors')
    const identity = await readJson(join(dir, 'identity.json'))
    assert.match(out, new RegExp(`^initialized follower mirrors: peer ${identity.id} in ${dir}\n`))
    assert.match(out, /cluster: mirrors \(1 trusted peers\)/)
    const peer = await readJson(join(dir, 'peer.json'))
    assert.equal(peer.cluster_config, server.url)
    // the first follower in a folder: a trusted peer's default ports + 1000
    assert.deepEqual(peer.swarm.listen, ['/ip4/0.0.0.0/tcp/10096'])
    assert.equal(peer.rest.listen, '127.0.0.1:10094')
    assert.deepEqual([peer.pinsvc.listen, peer.gateway.listen, peer.metrics.listen], ['127.0.0.1:10097', '127.0.0.1:9080', '127.0.0.1:9888'])
    assert.match(out, /\n {2}gateway: +http:\/\/127\.0\.0\.1:9080\n/)
    assert.notEqual(identity.id, trustedId)
    assert.equal((await readJson(join(dir, LAST_GOOD_FILE))).source, server.url)

    // --json gives the same facts to scripts
    const json = JSON.parse(await cairnOk('follow', 'init', 'mirrors-2', server.url, '--json'))
    assert.equal(json.path, join(root, 'mirrors-2'))
    assert.equal(json.id, (await readJson(join(root, 'mirrors-2', 'identity.json'))).id)
    assert.equal(json.cluster, 'mirrors')
    // the next follower there: the next set of ports, 10 further
    assert.deepEqual(json.urls, {
      api: 'http://127.0.0.1:10104', pinsvc: 'http://127.0.0.1:10107', gateway: 'http://127.0.0.1:9090', metrics: 'http://127.0.0.1:9898/metrics', swarm: ['/ip4/0.0.0.0/tcp/10106']
    })
  })

  it('init takes a flag for every listener, keeps each follower clear of the others\' ports, and checks the values', async () => {
    const own = await tempDir('cairn-follow-ports-')
    cleanups.push(own.cleanup)
    const env = { CAIRN_FOLLOW_PATH: own.path }
    const run = async (...args: string[]): Promise<Run> => {
      let out = ''
      let err = ''
      const code = await runCli(args, { out: s => { out += s }, err: s => { err += s }, env })
      return { code, out, err }
    }
    const listens = async (name: string): Promise<string[]> => {
      const peer = await readJson(join(own.path, name, 'peer.json'))
      return [...peer.swarm.listen, peer.rest.listen, peer.pinsvc.listen, peer.gateway.listen, peer.metrics.listen]
    }
    const flagged = ['--swarm-listen', '/ip4/0.0.0.0/tcp/4001,/ip6/::/tcp/4001', '--rest-listen', '127.0.0.1:5094', '--pinsvc-listen', '127.0.0.1:5097',
      '--gateway-listen', '0.0.0.0:5080', '--metrics-listen', '127.0.0.1:5888']
    assert.equal((await run('follow', 'init', 'flagged', server.url, ...flagged)).code, 0)
    assert.deepEqual(await listens('flagged'), ['/ip4/0.0.0.0/tcp/4001', '/ip6/::/tcp/4001', '127.0.0.1:5094', '127.0.0.1:5097', '0.0.0.0:5080', '127.0.0.1:5888'])
    // defaults beside it, then a second one, then one flag alone
    assert.equal((await run('follow', 'init', 'first', server.url)).code, 0)
    assert.equal((await run('follow', 'init', 'second', server.url)).code, 0)
    assert.equal((await run('follow', 'init', 'one-flag', server.url, '--gateway-listen', '127.0.0.1:7080')).code, 0)
    assert.deepEqual(await listens('first'), ['/ip4/0.0.0.0/tcp/10096', '127.0.0.1:10094', '127.0.0.1:10097', '127.0.0.1:9080', '127.0.0.1:9888'])
    assert.deepEqual(await listens('second'), ['/ip4/0.0.0.0/tcp/10106', '127.0.0.1:10104', '127.0.0.1:10107', '127.0.0.1:9090', '127.0.0.1:9898'])
    assert.deepEqual(await listens('one-flag'), ['/ip4/0.0.0.0/tcp/10116', '127.0.0.1:10114', '127.0.0.1:10117', '127.0.0.1:7080', '127.0.0.1:9908'])
    // replacing a follower gives it back its own ports
    assert.equal((await run('follow', 'init', 'first', server.url, '--force')).code, 0)
    assert.deepEqual(await listens('first'), ['/ip4/0.0.0.0/tcp/10096', '127.0.0.1:10094', '127.0.0.1:10097', '127.0.0.1:9080', '127.0.0.1:9888'])

    const info = await run('follow', 'info', 'flagged')
    assert.match(info.out, /\nREST API: +http:\/\/127\.0\.0\.1:5094\ngateway: +http:\/\/0\.0\.0\.0:5080\npinning: +http:\/\/127\.0\.0\.1:5097\nmetrics: +http:\/\/127\.0\.0\.1:5888\/metrics\nswarm: +\/ip4\/0\.0\.0\.0\/tcp\/4001\nswarm: +\/ip6\/::\/tcp\/4001/)

    // a bad value names the key and leaves no folder behind
    for (const [flag, value, key] of [['--gateway-listen', 'nowhere', 'gateway.listen'], ['--swarm-listen', '9096', 'swarm.listen\\[0\\]'], ['--metrics-listen', '127.0.0.1:70000', 'metrics.listen']]) {
      const bad = await run('follow', 'init', 'bad', server.url, flag, value)
      assert.equal(bad.code, 1, `${flag} ${value}`)
      assert.match(bad.err, new RegExp(`peer\\.json: ${key}: `), bad.err)
      assert.equal(await exists(join(own.path, 'bad')), false)
    }
  })

  it('init refuses an existing name unless --force, and names that are not plain folder names', async () => {
    await cairnOk('follow', 'init', 'again', server.url)
    const first = (await readJson(join(root, 'again', 'identity.json'))).id
    const refused = await cairn('follow', 'init', 'again', server.url)
    assert.equal(refused.code, 1)
    assert.match(refused.err, /follower "again" already exists in .*again; use --force/)
    assert.equal((await readJson(join(root, 'again', 'identity.json'))).id, first)
    await cairnOk('follow', 'init', 'again', server.url, '--force')
    assert.notEqual((await readJson(join(root, 'again', 'identity.json'))).id, first, 'a new identity')

    for (const bad of ['../escape', 'a/b', '..', 'with space']) {
      const run = await cairn('follow', 'init', bad, server.url)
      assert.equal(run.code, 1, bad)
      assert.match(run.err, /invalid follower name/)
    }
  })

  it('init fails clearly when the source cannot be read and nothing is cached, leaving no folder', async () => {
    const down = await closedUrl()
    const run = await cairn('follow', 'init', 'unreachable', down)
    assert.equal(run.code, 1)
    assert.match(run.err, new RegExp(`could not fetch the cluster config from ${down} \\(.*ECONNREFUSED.*\\) and there is no last good copy of it`))
    assert.equal(await exists(join(root, 'unreachable')), false)

    const missing = await cairn('follow', 'init', 'nofile', join(root, 'no-such.json'))
    assert.equal(missing.code, 1)
    assert.match(missing.err, /no cluster config at .*no-such\.json/)
  })

  it('init makes a path source absolute', async () => {
    const file = join(root, 'published.json')
    await writeFile(file, JSON.stringify({ name: 'from-file', trusted_peers: [trustedId] }))
    await cairnOk('follow', 'init', 'by-path', relative(process.cwd(), file))
    assert.equal((await readJson(join(root, 'by-path', 'peer.json'))).cluster_config, file)
    const info = JSON.parse(await cairnOk('follow', 'info', 'by-path', '--json'))
    assert.equal(info.cluster.name, 'from-file')
    assert.equal(info.config.origin, 'file')
  })

  it('info tells what a follower follows, where its config came from and whether it runs', async () => {
    await cairnOk('follow', 'init', 'inf', server.url)
    const dir = join(root, 'inf')
    const id = (await readJson(join(dir, 'identity.json'))).id
    const info = JSON.parse(await cairnOk('follow', 'info', 'inf', '--json'))
    const peer = await readJson(join(dir, 'peer.json'))
    assert.deepEqual({ ...info, config: { ...info.config, fetched_at: undefined } }, {
      name: 'inf',
      path: dir,
      id,
      peername: info.peername,
      source: server.url,
      cluster: { name: 'mirrors', trusted_peers: 1 },
      role: 'follower',
      config: { origin: 'fetched', fetched_at: undefined },
      running: false,
      urls: {
        api: `http://${peer.rest.listen}`,
        pinsvc: `http://${peer.pinsvc.listen}`,
        gateway: `http://${peer.gateway.listen}`,
        metrics: `http://${peer.metrics.listen}/metrics`,
        swarm: peer.swarm.listen
      }
    })
    const text = await cairnOk('follow', 'info', 'inf')
    assert.match(text, new RegExp(`peer id: +${id}`))
    assert.match(text, /cluster: +mirrors, 1 trusted peers; this peer is a follower/)
    assert.match(text, /config: +fetched from the source at \d{4}-/)
    assert.match(text, /running: +no/)
    assert.match(text, new RegExp(`\ngateway: +http://${peer.gateway.listen}\n`))

    // the publisher is down: the last good copy, and when it is from
    const { fetched_at: fetchedAt } = await readJson(join(dir, LAST_GOOD_FILE))
    server.serveRaw(500, 'oops')
    try {
      const down = await cairnOk('follow', 'info', 'inf')
      assert.match(down, new RegExp(`config: +last good copy from ${fetchedAt} \\(the source failed: HTTP 500 Internal Server Error\\)`))
    } finally {
      server.serveJson({ name: 'mirrors', trusted_peers: [trustedId], dht: { profile: 'lan' } })
    }

    const none = await cairn('follow', 'info', 'nobody')
    assert.equal(none.code, 1)
    assert.match(none.err, /no follower named "nobody" in .*: run "cairn follow init nobody <cluster config URL or path>" first/)
  })

  it('ls lists the followers', async () => {
    await cairnOk('follow', 'init', 'zz-last', server.url)
    const names = (await cairnOk('follow', 'ls')).trim().split('\n')
    assert.ok(names.includes('mirrors') && names.includes('zz-last') && names.includes('again'), names.join(','))
    assert.deepEqual(names, [...names].sort())
    assert.ok(!names.includes('unreachable'))
    const items = (await cairnOk('follow', 'ls', '--json')).trim().split('\n').map(l => JSON.parse(l))
    assert.deepEqual(items.find(i => i.name === 'zz-last'), { name: 'zz-last', path: join(root, 'zz-last'), running: false })

    const empty = await runCli(['follow', 'ls'], { out: () => { assert.fail('no output expected') }, err: () => {}, env: { CAIRN_FOLLOW_PATH: join(root, 'none') } })
    assert.equal(empty, 0)
  })

  it('list reads the pinset and Helia pin records of a stopped follower, and says when the store is locked', async () => {
    await cairnOk('follow', 'init', 'offline', server.url)
    const dir = join(root, 'offline')
    const followerId = (await readJson(join(dir, 'identity.json'))).id

    // nothing has run yet: no pins, and no stores created by looking
    assert.equal(await cairnOk('follow', 'list', 'offline'), '')
    assert.deepEqual((await readdir(dir)).filter(f => f === 'pinset' || f === 'datastore'), [])

    // a trusted peer's pins, written through the real pinset into the follower's store; one block really pinned
    const key = await generateKeyPair('Ed25519')
    const logger = quietLogger()
    const ipfs = createIpfs({
      dataDir: dir,
      host: { privateKey: key, listen: ['/ip4/127.0.0.1/tcp/0'], dht: { protocol: '/cairn-test/kad/1.0.0', clientMode: false, keepPrivateAddresses: true }, logger }
    }, { logger })
    await ipfs.start()
    const pinset = createPinset({ cluster: 'mirrors', dataDir: dir, isTrusted: () => true }, { libp2p: ipfs.libp2p, privateKey: key, logger })
    await pinset.start()
    const bytes = new TextEncoder().encode('held by the follower')
    const held = CID.createV1(raw.code, await sha256.digest(bytes))
    const queued = await cidOf('not fetched yet')
    const elsewhere = await cidOf('allocated to another peer')
    let stopped = false
    try {
      await ipfs.helia.blockstore.put(held, bytes)
      await ipfs.pin(held)
      await pinset.put([pinOf(held.toString(), 'held'), pinOf(queued.toString(), 'queued', [followerId, trustedId]), pinOf(elsewhere.toString(), 'elsewhere', [trustedId])])
      await pinset.put([pinOf((await cidOf('removed later')).toString(), 'gone')])
      await pinset.remove([(await cidOf('removed later')).toString()])

      // the running peer holds the stores
      const locked = await cairn('follow', 'list', 'offline')
      assert.equal(locked.code, 1)
      assert.match(locked.err, /the stores of follower "offline" are locked by another process, but no api\.json says where its REST API is/)
      const dead = new URL(await closedUrl()).origin
      await writeFile(join(dir, API_FILE), JSON.stringify({ url: dead, pid: process.pid }))
      const lockedApi = await cairn('follow', 'list', 'offline')
      assert.equal(lockedApi.code, 1)
      assert.match(lockedApi.err, new RegExp(`locked by a running daemon \\(pid ${process.pid}\\), but its REST API at ${dead} did not answer`))
      await rm(join(dir, API_FILE))

      await pinset.stop()
      await ipfs.stop()
      stopped = true
    } finally {
      if (!stopped) {
        await pinset.stop().catch(() => {})
        await ipfs.stop().catch(() => {})
      }
    }

    const offlinePins = []
    for await (const p of listPinsetOffline(dir)) offlinePins.push(p)
    assert.deepEqual(offlinePins.map(p => p.name).sort(), ['elsewhere', 'held', 'queued'])
    assert.deepEqual(offlinePins.find(p => p.name === 'queued')?.allocations, [followerId, trustedId])

    const run = await cairn('follow', 'list', 'offline')
    assert.equal(run.code, 0, run.err)
    assert.deepEqual(run.out.trim().split('\n').sort(), [
      `${elsewhere.toString()} | elsewhere | REMOTE`,
      `${held.toString()} | held | PINNED`,
      `${queued.toString()} | queued | PIN_QUEUED`
    ].sort())
    assert.match(run.err, /follower "offline" is not running: pins and statuses read from /)
    const json = (await cairnOk('follow', 'list', 'offline', '--json')).trim().split('\n').map(l => JSON.parse(l))
    assert.deepEqual(json.find(i => i.name === 'held'), { cid: held.toString(), name: 'held', status: 'pinned', offline: true })

    // a stale api.json of a process that is gone does not stop the offline listing
    await writeFile(join(dir, API_FILE), JSON.stringify({ url: 'http://127.0.0.1:9', pid: 2 ** 22 + 12345 }))
    assert.equal((await cairn('follow', 'list', 'offline')).code, 0)
    await rm(join(dir, API_FILE))
  })

  it('run starts the follower (re-reading its source), publishes api.json, answers list and info, stops on SIGTERM, and restarts on the same ports', async () => {
    const [swarm, rest, pinsvc, gateway, metrics] = await freePorts(5)
    await cairnOk('follow', 'init', 'live', server.url, '--swarm-listen', `/ip4/127.0.0.1/tcp/${swarm}`, '--rest-listen', `127.0.0.1:${rest}`,
      '--pinsvc-listen', `127.0.0.1:${pinsvc}`, '--gateway-listen', `127.0.0.1:${gateway}`, '--metrics-listen', `127.0.0.1:${metrics}`)
    const dir = join(root, 'live')
    // a pin already in its store, so the online listing has something to show
    const key = await generateKeyPair('Ed25519')
    const logger = quietLogger()
    const ipfs = createIpfs({ dataDir: dir, host: { privateKey: key, listen: ['/ip4/127.0.0.1/tcp/0'], dht: { protocol: '/cairn-test/kad/1.0.0', clientMode: false, keepPrivateAddresses: true }, logger } }, { logger })
    await ipfs.start()
    const pinset = createPinset({ cluster: 'mirrors', dataDir: dir, isTrusted: () => true }, { libp2p: ipfs.libp2p, privateKey: key, logger })
    await pinset.start()
    const wanted = await cidOf('wanted by the cluster')
    await pinset.put([pinOf(wanted.toString(), 'wanted', [trustedId])])
    await pinset.stop()
    await ipfs.stop()

    const env: NodeJS.ProcessEnv = { CAIRN_FOLLOW_PATH: root }
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CAIRN_') || k.startsWith('CAIRN_TEST_')) env[k] = v
    /** `cairn follow run live` until it has written api.json; `stop` sends SIGTERM and checks it ends cleanly. */
    async function start (): Promise<{ api: any, output: () => string, pid: number, stop: () => Promise<void> }> {
      const child = spawn(process.execPath, [CAIRN, 'follow', 'run', 'live'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
      let output = ''
      child.stdout.on('data', (d: Buffer) => { output += d.toString() })
      child.stderr.on('data', (d: Buffer) => { output += d.toString() })
      const exited = once(child, 'exit')
      const stop = async (): Promise<void> => {
        child.kill('SIGTERM')
        const [code] = await exited
        assert.equal(code, 0, output)
        assert.match(output, /stopped\n$/)
        assert.equal(await exists(join(dir, API_FILE)), false, 'api.json removed on stop')
      }
      try {
        const api = await waitFor(async () => {
          if (child.exitCode != null) throw new Error(`follow run exited with ${child.exitCode}: ${output}`)
          const file = await exists(join(dir, API_FILE)) ? await readJson(join(dir, API_FILE)) : undefined
          return file?.pid === child.pid ? file : undefined
        }, { timeoutMs: 60_000, message: `api.json (output so far: ${output})` })
        return { api, output: () => output, pid: child.pid!, stop }
      } catch (err) {
        child.kill('SIGKILL')
        throw err
      }
    }

    // the publisher is down at start: the follower still starts, from its last good copy, and says so
    server.serveRaw(502, 'bad gateway')
    const first = await start()
    try {
      assert.equal(first.api.url, `http://127.0.0.1:${rest}`)
      assert.deepEqual([first.api.pinsvc, first.api.gateway, first.api.metrics], [`http://127.0.0.1:${pinsvc}`, `http://127.0.0.1:${gateway}`, `http://127.0.0.1:${metrics}/metrics`])
      assert.match(first.output(), /could not fetch the cluster config from .* \(HTTP 502 Bad Gateway\); using the last good copy from /)
      assert.match(first.output(), /follower: read-only/)
      assert.match(first.output(), new RegExp(`gateway: +http://127\\.0\\.0\\.1:${gateway}\n`))

      const list = await cairn('follow', 'list', 'live', '--json')
      assert.equal(list.code, 0, list.err)
      const items = list.out.trim().split('\n').map(l => JSON.parse(l))
      assert.deepEqual(items.map(i => [i.cid, i.name, i.status, i.offline]), [[wanted.toString(), 'wanted', 'remote', false]])
      assert.doesNotMatch(list.err, /not running/)

      const info = JSON.parse(await cairnOk('follow', 'info', 'live', '--json'))
      assert.equal(info.running, true)
      assert.equal(info.api, first.api.url)
      assert.equal(info.pid, first.pid)
      assert.equal(info.urls.gateway, `http://127.0.0.1:${gateway}`)
      assert.equal(info.urls.metrics, `http://127.0.0.1:${metrics}/metrics`)
      assert.ok(info.urls.swarm.some((a: string) => a.startsWith(`/ip4/127.0.0.1/tcp/${swarm}/p2p/`)), info.urls.swarm.join(' '))
      const text = await cairnOk('follow', 'info', 'live')
      assert.match(text, new RegExp(`\ngateway: +http://127\\.0\\.0\\.1:${gateway}\npinning: +http://127\\.0\\.0\\.1:${pinsvc}\nmetrics: +http://127\\.0\\.0\\.1:${metrics}/metrics\n`))
      assert.equal((await fetch(`${info.urls.metrics as string}`)).status, 200)
      assert.equal((await cairn('follow', 'run', 'live')).err.includes(`already running (pid ${first.pid}`), true)
    } finally {
      server.serveJson({ name: 'mirrors', trusted_peers: [trustedId], dht: { profile: 'lan' } })
      await first.stop()
    }

    // restarted: the same ports, so the same URLs
    const second = await start()
    try {
      assert.equal(second.api.url, first.api.url)
      assert.deepEqual([second.api.pinsvc, second.api.gateway, second.api.metrics], [first.api.pinsvc, first.api.gateway, first.api.metrics])
      assert.equal((await fetch(`http://127.0.0.1:${gateway}/mirror/`)).status, 200, 'the gateway answers on its port')
    } finally {
      await second.stop()
    }
  })
})
