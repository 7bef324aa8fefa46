import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseClusterConfig, parsePeerConfig } from '../../src/config/index.js'
import { PUBLIC_DHT_BOOTSTRAP } from '../../src/config/schema.js'
import { assertConfigError } from './helpers.js'

const PEER_ID = '12D3KooWHFrmLWTTDD4NodngtRMEVYgxrsDMp4F9wUtShFzp7sBq'

describe('cluster.config.json validation', () => {
  it('fills defaults', () => {
    assert.deepEqual(parseClusterConfig({}), {
      name: 'cairn',
      secret: '',
      trusted_peers: [],
      followers: [],
      bootstrap: [],
      replication_factor_min: -1,
      replication_factor_max: -1,
      spread_rebalance_interval_ms: 600_000,
      dht: { profile: 'public', protocol: '/ipfs/kad/1.0.0', bootstrap: [...PUBLIC_DHT_BOOTSTRAP], client_mode: false, keep_private_addresses: false },
      reprovide: {
        strategy: 'pinned', interval_ms: 22 * 3600_000, validity_ms: 48 * 3600_000, fast_provide: true, concurrency: 32,
        batch_size: 4096, send_timeout_ms: 30_000, lookup_timeout_ms: 60_000, retries: 3, retry_backoff_ms: 1000,
        retry_interval_ms: 5 * 60_000
      }
    })
  })

  it('gives the public profile the IPFS public bootstrap peers, lan none, and keeps an explicit list, even an empty one', () => {
    // as Kubo ships them (config/bootstrap_peers.go): the dnsaddr entries and mars.i.ipfs.io over TCP and QUIC
    assert.equal(PUBLIC_DHT_BOOTSTRAP.length, 7)
    assert.equal(PUBLIC_DHT_BOOTSTRAP.filter(a => a.startsWith('/dnsaddr/bootstrap.libp2p.io/p2p/Qm')).length, 4)
    assert.ok(PUBLIC_DHT_BOOTSTRAP.includes('/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ'))
    assert.ok(PUBLIC_DHT_BOOTSTRAP.includes('/ip4/104.131.131.82/udp/4001/quic-v1/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ'))
    assert.deepEqual(parseClusterConfig({}).dht.bootstrap, PUBLIC_DHT_BOOTSTRAP, 'the default config (public profile)')
    assert.deepEqual(parseClusterConfig({ dht: { profile: 'public' } }).dht.bootstrap, PUBLIC_DHT_BOOTSTRAP)
    assert.deepEqual(parseClusterConfig({ dht: { profile: 'lan' } }).dht.bootstrap, [])
    // `ipfs bootstrap rm --all`: an empty list stays empty (the peer says so at start, test/reprovider/bootstrap.test.ts)
    assert.deepEqual(parseClusterConfig({ dht: { bootstrap: [] } }).dht.bootstrap, [])
    const own = `/ip4/10.0.0.1/tcp/4001/p2p/${PEER_ID}`
    assert.deepEqual(parseClusterConfig({ dht: { bootstrap: [own] } }).dht.bootstrap, [own])
    // the cluster's own peers get no default under either profile
    assert.deepEqual(parseClusterConfig({}).bootstrap, [])
    // each default entry passes the schema itself (dnsaddr, Qm... peer ids, quic-v1)
    assert.deepEqual(parseClusterConfig({ dht: { bootstrap: [...PUBLIC_DHT_BOOTSTRAP] } }).dht.bootstrap, PUBLIC_DHT_BOOTSTRAP)
  })

  it('accepts a full valid config', () => {
    const config = parseClusterConfig({
      name: 'cairn-demo',
      secret: 'ab'.repeat(32),
      trusted_peers: [PEER_ID],
      bootstrap: [`/ip4/127.0.0.1/tcp/9096/p2p/${PEER_ID}`],
      replication_factor_min: 2,
      replication_factor_max: 3,
      dht: { profile: 'lan', keep_private_addresses: false }
    })
    assert.equal(config.replication_factor_min, 2)
    assert.equal(config.dht.keep_private_addresses, false, 'an explicit value beats the profile default')
  })

  const cases: Array<[string, unknown, string]> = [
    ['min > max', { replication_factor_min: 3, replication_factor_max: 2 }, 'cluster.config.json: replication_factor_min: must be <= replication_factor_max'],
    ['min -1 alone', { replication_factor_min: -1, replication_factor_max: 2 }, 'replication_factor_max: is 2 but replication_factor_min is -1 (every peer)'],
    ['max -1 alone', { replication_factor_min: 2, replication_factor_max: -1 }, 'replication_factor_min: is 2 but replication_factor_max is -1'],
    ['zero', { replication_factor_min: 0, replication_factor_max: 0 }, 'replication_factor_min: expected -1 (every peer) or a positive integer, got 0'],
    ['below -1', { replication_factor_min: -2, replication_factor_max: -1 }, 'replication_factor_min:'],
    ['fraction', { replication_factor_min: 1.5, replication_factor_max: 2 }, 'replication_factor_min:'],
    ['bad peer id', { trusted_peers: [PEER_ID, 'not-a-peer'] }, 'trusted_peers[1]: expected a libp2p peer ID, got "not-a-peer"'],
    ['trust-all star', { trusted_peers: ['*'] }, 'trusted_peers[0]'],
    ['bad follower id', { followers: [PEER_ID, 'volunteer'] }, 'followers[1]: expected a libp2p peer ID, got "volunteer"'],
    ['bootstrap without /p2p/', { bootstrap: ['/ip4/127.0.0.1/tcp/9096'] }, 'bootstrap[0]: expected a multiaddr ending in /p2p/<peer ID>'],
    ['bootstrap not a multiaddr', { bootstrap: ['127.0.0.1:9096'] }, 'bootstrap[0]'],
    ['bad ip in multiaddr', { bootstrap: [`/ip4/999.0.0.1/tcp/1/p2p/${PEER_ID}`] }, 'bootstrap[0]'],
    ['empty name', { name: '' }, 'name: expected a non-empty name'],
    ['name with a space', { name: 'my cluster' }, 'name:'],
    ['short secret', { secret: 'abc' }, 'secret: expected 64 hex characters'],
    ['dht profile', { dht: { profile: 'wan' } }, 'dht.profile: expected "public" or "lan", got "wan"'],
    ['dht bootstrap', { dht: { bootstrap: ['/ip4/1.2.3.4/tcp/4001'] } }, 'dht.bootstrap[0]'],
    ['unknown top-level key', { replication_factor: 2 }, 'cluster.config.json: replication_factor: unknown key'],
    ['unknown dht key', { dht: { clientmode: true } }, 'dht.clientmode: unknown key'],
    ['not an object', ['cairn'], 'cluster.config.json: expected a JSON object'],
    ['wrong type', { trusted_peers: PEER_ID }, 'trusted_peers: expected a list of peer IDs']
  ]
  for (const [name, json, fragment] of cases) {
    it(`rejects ${name}`, async () => {
      await assertConfigError(() => parseClusterConfig(json), fragment)
    })
  }

  it('names the source it is given', async () => {
    await assertConfigError(() => parseClusterConfig({ name: '' }, '/etc/cairn/cluster.config.json'), '/etc/cairn/cluster.config.json: name:')
  })

  it('lists every problem, not just the first', async () => {
    await assertConfigError(() => parseClusterConfig({ name: '', trusted_peers: ['x'], typo: 1 }), 'name:', 'trusted_peers[0]:', 'typo: unknown key')
  })
})

describe('peer.json validation', () => {
  it('fills defaults, with the host name as peername', () => {
    const peer = parsePeerConfig({})
    assert.ok(peer.peername.length > 0)
    assert.equal(peer.cluster_config, 'cluster.json')
    assert.deepEqual(peer.swarm, { listen: ['/ip4/0.0.0.0/tcp/9096'], announce: [] })
    assert.deepEqual(peer.rest, { listen: '127.0.0.1:9094', basic_auth_credentials: null, max_heavy_requests: 8 })
    assert.equal(peer.tracker.concurrent_pins, 10)
    assert.equal(peer.tracker.recover_interval_ms, 720000)
    assert.equal(peer.log.level, 'info')
    assert.equal(peer.gateway.cache_max, 4 * 1024 ** 3)
    assert.deepEqual(peer.audit, {
      interval_ms: 600_000, grace_ms: 3_600_000, timeout_ms: 30_000, pins_per_round: 2, proven_after: 3, probation_pins: 16, cooldown_ms: 21_600_000
    })
  })

  it('accepts port 0, IPv6, host names, URLs and credentials', () => {
    for (const listen of ['127.0.0.1:0', '[::1]:9094', 'localhost:65535', 'node-1.example.org:80']) {
      assert.equal(parsePeerConfig({ rest: { listen } }).rest.listen, listen)
    }
    assert.equal(parsePeerConfig({ cluster_config: 'https://example.com/c.json' }).cluster_config, 'https://example.com/c.json')
    assert.deepEqual(parsePeerConfig({ rest: { basic_auth_credentials: { admin: 'pw' } } }).rest.basic_auth_credentials, { admin: 'pw' })
  })

  const cases: Array<[string, unknown, string]> = [
    ['listen without port', { rest: { listen: 'abc' } }, 'peer.json: rest.listen: expected host:port, got "abc"'],
    ['port out of range', { rest: { listen: '127.0.0.1:65536' } }, 'rest.listen: port must be 0-65535'],
    ['bad host', { rest: { listen: '300.1.1.1:80' } }, 'rest.listen: invalid host'],
    ['bare IPv6', { rest: { listen: '::1:80' } }, 'rest.listen:'],
    ['zero concurrency', { tracker: { concurrent_pins: 0 } }, 'peer.json: tracker.concurrent_pins: expected a positive integer'],
    ['no heavy requests', { rest: { max_heavy_requests: 0 } }, 'peer.json: rest.max_heavy_requests: expected a positive integer'],
    ['string number', { tracker: { max_queue_size: '100' } }, 'tracker.max_queue_size: expected a positive integer'],
    ['negative retries', { tracker: { max_retries: -1 } }, 'tracker.max_retries: expected an integer >= 0'],
    ['retry max below base', { tracker: { retry_base_ms: 5000, retry_max_ms: 1000 } }, 'tracker.retry_max_ms: must be >= retry_base_ms'],
    ['swarm listen', { swarm: { listen: ['tcp://0.0.0.0:9096'] } }, 'swarm.listen[0]: expected a multiaddr'],
    ['swarm announce', { swarm: { announce: [''] } }, 'swarm.announce[0]'],
    ['negative reserve', { disk: { reserve_bytes: -1 } }, 'peer.json: disk.reserve_bytes: expected an integer >= 0'],
    ['tiny segments', { disk: { segment_bytes: 4096 } }, 'peer.json: disk.segment_bytes: expected an integer >= 1048576 (1 MiB), got 4096'],
    ['catch-up too often', { pinset: { sync_interval_ms: 10 } }, 'peer.json: pinset.sync_interval_ms: expected an integer >= 100 (ms), got 10'],
    ['gateway cache_max', { gateway: { cache_max: '2GB' } }, 'peer.json: gateway.cache_max: expected an integer >= 0'],
    ['fractional cache_max', { gateway: { cache_max: 1.5 } }, 'peer.json: gateway.cache_max: expected an integer >= 0'],
    ['log level', { log: { level: 'verbose' } }, 'log.level: expected one of trace|debug|info|warn|error|fatal|silent'],
    ['credentials', { rest: { basic_auth_credentials: { admin: 1 } } }, 'rest.basic_auth_credentials.admin: expected a password string'],
    ['empty user', { rest: { basic_auth_credentials: { '': 'pw' } } }, 'rest.basic_auth_credentials[""]: user names must not be empty'],
    ['cluster_config scheme', { cluster_config: 'ftp://example.com/c.json' }, 'cluster_config: expected a file path or an http(s) URL'],
    ['empty peername', { peername: '' }, 'peername:'],
    ['unknown key in a section', { tracker: { concurrent_pin: 4 } }, 'peer.json: tracker.concurrent_pin: unknown key'],
    ['unknown section', { api: {} }, 'peer.json: api: unknown key'],
    ['zero audit interval', { audit: { interval_ms: 0 } }, 'peer.json: audit.interval_ms: expected a positive integer, got 0'],
    ['section not an object', { rest: '127.0.0.1:9094' }, 'peer.json: rest: expected an object']
  ]
  for (const [name, json, fragment] of cases) {
    it(`rejects ${name}`, async () => {
      await assertConfigError(() => parsePeerConfig(json), fragment)
    })
  }
})
