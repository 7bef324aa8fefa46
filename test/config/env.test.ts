import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { initPeer, loadConfig, parseClusterConfig, parsePeerConfig } from '../../src/config/index.js'
import { assertConfigError, tempDir } from './helpers.js'

const A = '12D3KooWHFrmLWTTDD4NodngtRMEVYgxrsDMp4F9wUtShFzp7sBq'
const B = '12D3KooWMVXK7SWCBbcubAzDuPoNXN97xeNK2PQCoWTQVD5FDMQy'

describe('CAIRN_<SECTION>_<KEY> overrides', () => {
  it('parses numbers, booleans and strings', () => {
    const peer = parsePeerConfig({ tracker: { concurrent_pins: 10 } }, 'peer.json', {
      CAIRN_TRACKER_CONCURRENT_PINS: '4',
      CAIRN_REST_LISTEN: '127.0.0.1:9999',
      CAIRN_PEER_PEERNAME: 'from-env',
      CAIRN_LOG_LEVEL: 'debug'
    })
    assert.equal(peer.tracker.concurrent_pins, 4)
    assert.equal(peer.tracker.max_retries, 5, 'other keys of the section keep their values')
    assert.equal(peer.rest.listen, '127.0.0.1:9999')
    assert.equal(peer.peername, 'from-env')
    assert.equal(peer.log.level, 'debug')
    assert.equal(parseClusterConfig({}, 'c', { CAIRN_DHT_CLIENT_MODE: 'true' }).dht.client_mode, true)
  })

  it('takes lists as comma-separated text or a JSON array', () => {
    assert.deepEqual(parseClusterConfig({ trusted_peers: [A] }, 'c', { CAIRN_CLUSTER_TRUSTED_PEERS: `${A}, ${B}` }).trusted_peers, [A, B])
    assert.deepEqual(parseClusterConfig({}, 'c', { CAIRN_CLUSTER_TRUSTED_PEERS: JSON.stringify([B]) }).trusted_peers, [B])
    assert.deepEqual(parseClusterConfig({ trusted_peers: [A] }, 'c', { CAIRN_CLUSTER_TRUSTED_PEERS: '' }).trusted_peers, [])
    assert.deepEqual(parsePeerConfig({}, 'p', { CAIRN_SWARM_LISTEN: '/ip4/127.0.0.1/tcp/0' }).swarm.listen, ['/ip4/127.0.0.1/tcp/0'])
    assert.deepEqual(parseClusterConfig({}, 'c', { CAIRN_CLUSTER_FOLLOWERS: `${A},${B}` }).followers, [A, B])
    assert.equal(parsePeerConfig({}, 'p', { CAIRN_AUDIT_INTERVAL_MS: '60000' }).audit.interval_ms, 60_000)
  })

  it('takes objects as JSON', () => {
    const peer = parsePeerConfig({}, 'p', { CAIRN_REST_BASIC_AUTH_CREDENTIALS: '{"admin":"pw"}' })
    assert.deepEqual(peer.rest.basic_auth_credentials, { admin: 'pw' })
    assert.equal(parsePeerConfig({ rest: { basic_auth_credentials: { a: 'b' } } }, 'p', { CAIRN_REST_BASIC_AUTH_CREDENTIALS: 'null' }).rest.basic_auth_credentials, null)
  })

  it('switches the DHT profile, and lan keeps private addresses', () => {
    const dht = parseClusterConfig({ dht: { profile: 'public' } }, 'c', { CAIRN_DHT_PROFILE: 'lan' }).dht
    assert.equal(dht.profile, 'lan')
    assert.equal(dht.keep_private_addresses, true)
    assert.equal(dht.client_mode, false)
  })

  it('applies the replication pair and checks the result', async () => {
    const env = { CAIRN_CLUSTER_REPLICATION_FACTOR_MIN: '2', CAIRN_CLUSTER_REPLICATION_FACTOR_MAX: '3' }
    assert.equal(parseClusterConfig({}, 'c', env).replication_factor_min, 2)
    await assertConfigError(() => parseClusterConfig({}, 'c', { CAIRN_CLUSTER_REPLICATION_FACTOR_MIN: '2' }),
      'CAIRN_CLUSTER_REPLICATION_FACTOR_MIN: is 2 but replication_factor_max is -1')
  })

  it('names the variable of a bad value', async () => {
    await assertConfigError(() => parsePeerConfig({}, 'p', { CAIRN_TRACKER_CONCURRENT_PINS: 'four' }), 'CAIRN_TRACKER_CONCURRENT_PINS: expected a positive integer')
    assert.equal(parsePeerConfig({}, 'p', { CAIRN_REST_MAX_HEAVY_REQUESTS: '2' }).rest.max_heavy_requests, 2)
    await assertConfigError(() => parsePeerConfig({}, 'p', { CAIRN_TRACKER_CONCURRENT_PINS: '0' }), 'CAIRN_TRACKER_CONCURRENT_PINS: expected a positive integer')
    await assertConfigError(() => parseClusterConfig({}, 'c', { CAIRN_CLUSTER_TRUSTED_PEERS: `${A},nope` }), 'CAIRN_CLUSTER_TRUSTED_PEERS[1]: expected a libp2p peer ID')
    await assertConfigError(() => parseClusterConfig({}, 'c', { CAIRN_DHT_CLIENT_MODE: 'yes' }), 'CAIRN_DHT_CLIENT_MODE: expected true or false')
    await assertConfigError(() => parsePeerConfig({}, 'p', { CAIRN_REST_BASIC_AUTH_CREDENTIALS: '{admin:pw}' }), 'CAIRN_REST_BASIC_AUTH_CREDENTIALS: invalid JSON')
    await assertConfigError(() => parsePeerConfig({}, 'p', { CAIRN_REST_LISTEN: 'abc' }), 'CAIRN_REST_LISTEN: expected host:port, got "abc"')
  })

  it('rejects an unknown CAIRN_ variable by name', async () => {
    await assertConfigError(() => parsePeerConfig({}, 'p', { CAIRN_TRACKER_CONCURENT_PINS: '4' }), 'CAIRN_TRACKER_CONCURENT_PINS', 'unknown setting')
    await assertConfigError(() => parsePeerConfig({}, 'p', { CAIRN_RESTAPI_LISTEN: 'x' }), 'CAIRN_RESTAPI_LISTEN', 'unknown setting')
    await assertConfigError(() => parseClusterConfig({}, 'c', { CAIRN_CLUSTER_DHT: '{}' }), 'CAIRN_CLUSTER_DHT', 'unknown setting')
    await assertConfigError(() => parseClusterConfig({}, 'c', { CAIRN_PEER_SWARM: '{}' }), 'CAIRN_PEER_SWARM', 'unknown setting')
  })

  it('ignores CAIRN_PATH and variables without the prefix', () => {
    const peer = parsePeerConfig({}, 'p', { CAIRN_PATH: '/tmp/x', CLUSTER_PEERNAME: 'x', HOME: '/root' })
    assert.notEqual(peer.peername, 'x')
  })

  it('applies to loadConfig without touching the files', async () => {
    const dir = await tempDir()
    await initPeer(dir, { env: {} })
    const before = await readFile(join(dir, 'cluster.json'), 'utf8')
    const env = { CAIRN_PATH: dir, CAIRN_DHT_PROFILE: 'lan', CAIRN_CLUSTER_NAME: 'renamed', CAIRN_TRACKER_CONCURRENT_PINS: '4' }
    const loaded = await loadConfig(dir, { env })
    assert.equal(loaded.cluster.name, 'renamed')
    assert.equal(loaded.cluster.dht.keep_private_addresses, true, 'init left keep_private_addresses to follow the profile')
    assert.deepEqual(loaded.cluster.dht.bootstrap, [], 'init left dht.bootstrap to follow the profile: lan has no public peers')
    assert.equal(JSON.parse(before).dht.bootstrap, undefined)
    assert.equal(loaded.peer.tracker.concurrent_pins, 4)
    assert.equal(await readFile(join(dir, 'cluster.json'), 'utf8'), before)
    await assertConfigError(async () => await loadConfig(dir, { env: { CAIRN_BOGUS: '1' } }), 'CAIRN_BOGUS')
  })
})
