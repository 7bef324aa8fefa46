import assert from 'node:assert/strict'
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import { describe, it } from 'node:test'
import { defaultPeerPath, initPeer, loadConfig, parseClusterConfig, parsePeerConfig, peerExists } from '../../src/config/index.js'
import { assertConfigError, tempDir } from './helpers.js'
import { closedUrl } from './serve.js'

const readJson = async (file: string): Promise<any> => JSON.parse(await readFile(file, 'utf8'))

describe('initPeer', () => {
  it('creates the peer folder with a private identity and a one-peer cluster that trusts only itself', async () => {
    const dir = join(await tempDir(), 'nested', 'peer')
    const loaded = await initPeer(dir, { env: {} })
    const id = loaded.identity.peerId.toString()

    assert.deepEqual((await readdir(dir)).sort(), ['cluster.json', 'identity.json', 'peer.json'])
    assert.equal((await stat(join(dir, 'identity.json'))).mode & 0o777, 0o600)
    assert.equal((await readJson(join(dir, 'identity.json'))).id, id)

    const peer = parsePeerConfig(await readJson(join(dir, 'peer.json')))
    assert.equal(peer.cluster_config, 'cluster.json')
    assert.deepEqual(peer.swarm.listen, ['/ip4/0.0.0.0/tcp/9096'])
    assert.equal(peer.rest.listen, '127.0.0.1:9094')

    const cluster = parseClusterConfig(await readJson(join(dir, 'cluster.json')))
    assert.deepEqual(cluster.trusted_peers, [id])
    assert.equal(cluster.replication_factor_min, -1)
    assert.equal(loaded.clusterConfigPath, join(dir, 'cluster.json'))
    assert.ok(await peerExists(dir))
  })

  it('writes the options it is given', async () => {
    const dir = await tempDir()
    const loaded = await initPeer(dir, {
      env: {},
      peername: 'trusted-1',
      rest_listen: '127.0.0.1:0',
      swarm_listen: ['/ip4/127.0.0.1/tcp/0'],
      cluster: { name: 'cairn-demo', replication_factor_min: 2, replication_factor_max: 3, dht: { profile: 'lan' } }
    })
    assert.equal(loaded.peer.peername, 'trusted-1')
    assert.equal(loaded.peer.rest.listen, '127.0.0.1:0')
    assert.deepEqual(loaded.peer.swarm.listen, ['/ip4/127.0.0.1/tcp/0'])
    assert.equal(loaded.cluster.name, 'cairn-demo')
    assert.equal(loaded.cluster.replication_factor_max, 3)
    assert.deepEqual(loaded.cluster.trusted_peers, [loaded.identity.peerId.toString()])
    assert.equal(loaded.cluster.dht.keep_private_addresses, true)
    assert.equal(loaded.cluster.dht.client_mode, false)
  })

  it('points peer.json at an existing cluster config by absolute path, so two peers share it', async () => {
    const dir = await tempDir()
    const shared = join(dir, 'cluster.config.json')
    await writeFile(shared, JSON.stringify({ name: 'shared', replication_factor_min: 1, replication_factor_max: 2 }))
    const a = await initPeer(join(dir, 'a'), { env: {}, cluster: shared })
    const b = await initPeer(join(dir, 'b'), { env: {}, cluster: shared })
    assert.ok(isAbsolute((await readJson(join(dir, 'a', 'peer.json'))).cluster_config))
    assert.equal(a.clusterConfigPath, shared)
    assert.equal(b.cluster.name, 'shared')
    assert.notEqual(a.identity.peerId.toString(), b.identity.peerId.toString())
    assert.deepEqual((await readdir(join(dir, 'a'))).sort(), ['identity.json', 'peer.json'])
  })

  it('refuses to initialise twice unless forced, and --force makes a new identity', async () => {
    const dir = await tempDir()
    const first = await initPeer(dir, { env: {} })
    await assertConfigError(async () => await initPeer(dir, { env: {} }), `peer already initialised at ${dir}; use --force`)
    assert.equal((await loadConfig(dir, { env: {} })).identity.peerId.toString(), first.identity.peerId.toString())
    const second = await initPeer(dir, { env: {}, force: true })
    assert.notEqual(second.identity.peerId.toString(), first.identity.peerId.toString())
  })

  it('refuses when only identity.json is there', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, 'identity.json'), '{}')
    await assertConfigError(async () => await initPeer(dir, { env: {} }), 'already initialised')
  })

  it('leaves nothing behind when an option is invalid', async () => {
    const root = await tempDir()
    await assertConfigError(async () => await initPeer(join(root, 'p1'), { env: {}, rest_listen: 'abc' }), 'rest.listen', '"abc"')
    await assertConfigError(async () => await initPeer(join(root, 'p2'), { env: {}, cluster: { replication_factor_min: 0 } }), 'replication_factor_min')
    await assertConfigError(async () => await initPeer(join(root, 'p3'), { env: {}, cluster: join(root, 'missing.json') }), 'no cluster config at')
    const down = await closedUrl()
    await assertConfigError(async () => await initPeer(join(root, 'p4'), { env: {}, cluster: down }),
      `could not fetch the cluster config from ${down}`, 'no last good copy')
    assert.deepEqual(await readdir(root), [])
  })
})

describe('loadConfig', () => {
  it('round-trips what init wrote', async () => {
    const dir = await tempDir()
    const initial = await initPeer(dir, { env: {}, peername: 'p' })
    const loaded = await loadConfig(dir, { env: {} })
    assert.deepEqual(loaded.peer, initial.peer)
    assert.deepEqual(loaded.cluster, initial.cluster)
    assert.equal(loaded.path, dir)
    assert.ok(loaded.identity.peerId.equals(initial.identity.peerId))
    assert.ok(loaded.identity.privateKey.equals(initial.identity.privateKey))
  })

  it('resolves a relative cluster_config against the peer folder, not the working directory', async () => {
    const root = await tempDir()
    const dir = join(root, 'peers', 'p')
    await initPeer(dir, { env: {} })
    await writeFile(join(root, 'peers', 'cluster.config.json'), JSON.stringify({ name: 'up-one' }))
    const peerFile = join(dir, 'peer.json')
    await writeFile(peerFile, JSON.stringify({ ...(await readJson(peerFile)), cluster_config: '../cluster.config.json' }))
    const loaded = await loadConfig(dir, { env: {} })
    assert.equal(loaded.cluster.name, 'up-one')
    assert.equal(loaded.clusterConfigPath, join(root, 'peers', 'cluster.config.json'))
  })

  it('leaves trusted_peers as written (self is not added)', async () => {
    const dir = await tempDir()
    await initPeer(dir, { env: {}, cluster: { trusted_peers: [] } })
    assert.deepEqual((await loadConfig(dir, { env: {} })).cluster.trusted_peers, [])
  })

  it('tells the user to run init when there is no peer', async () => {
    const dir = await tempDir()
    await assertConfigError(async () => await loadConfig(dir, { env: {} }), `no peer at ${dir}: run "cairn init" first`)
    assert.equal(await peerExists(dir), false)
  })

  it('names the file of malformed JSON', async () => {
    const dir = await tempDir()
    await initPeer(dir, { env: {} })
    await writeFile(join(dir, 'cluster.json'), '{"name": "x",')
    await assertConfigError(async () => await loadConfig(dir, { env: {} }), join(dir, 'cluster.json'), 'invalid JSON')
    await writeFile(join(dir, 'peer.json'), 'peername: x')
    await assertConfigError(async () => await loadConfig(dir, { env: {} }), join(dir, 'peer.json'), 'invalid JSON')
  })

  it('names the file and key of a bad value on disk', async () => {
    const dir = await tempDir()
    await initPeer(dir, { env: {} })
    const peerFile = join(dir, 'peer.json')
    const peer = await readJson(peerFile)
    await writeFile(peerFile, JSON.stringify({ ...peer, tracker: { ...peer.tracker, concurrent_pins: -2 } }))
    await assertConfigError(async () => await loadConfig(dir, { env: {} }), `${peerFile}: tracker.concurrent_pins: expected a positive integer`)
  })

  it('names the env var that set a cluster config URL which cannot be fetched', async () => {
    const dir = await tempDir()
    await initPeer(dir, { env: {} })
    const down = await closedUrl()
    await assertConfigError(async () => await loadConfig(dir, { env: { CAIRN_PEER_CLUSTER_CONFIG: down } }),
      `CAIRN_PEER_CLUSTER_CONFIG: could not fetch the cluster config from ${down}`)
  })

  it('reports a missing identity', async () => {
    const dir = await tempDir()
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, 'peer.json'), '{}')
    await writeFile(join(dir, 'cluster.json'), '{}')
    await assertConfigError(async () => await loadConfig(dir, { env: {} }), `no identity at ${join(dir, 'identity.json')}`)
  })
})

describe('defaultPeerPath', () => {
  it('uses CAIRN_PATH, else ~/.cairn', () => {
    assert.equal(defaultPeerPath({ CAIRN_PATH: '/srv/cairn' }), '/srv/cairn')
    assert.equal(defaultPeerPath({}), join(homedir(), '.cairn'))
  })
})
