// The demo cluster of peers/ + cluster.config.json (DESIGN §7) loads, and its ports follow the +100*k rule.
import assert from 'node:assert/strict'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { loadConfig, parseClusterConfig, type LoadedConfig } from '../../src/config/index.js'
import { tempDir } from '../util.js'

/** The repo root: this file runs as dist/test/e2e/demo-config.test.js. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
const CLUSTER_CONFIG = join(ROOT, 'cluster.config.json')
const PEERS = ['trusted-1', 'trusted-2', 'trusted-3']

describe('the demo cluster config', () => {
  let tmp: { path: string, cleanup: () => Promise<void> }
  const loaded: LoadedConfig[] = []

  before(async () => {
    tmp = await tempDir('cairn-demo-config-')
    // as `npm run demo` does: copy each peer folder out of the repo, cluster_config made absolute
    for (const name of PEERS) {
      const src = join(ROOT, 'peers', name)
      const dir = join(tmp.path, name)
      await mkdir(dir)
      const peer = JSON.parse(await readFile(join(src, 'peer.json'), 'utf8')) as Record<string, unknown>
      assert.equal(resolve(src, String(peer.cluster_config)), CLUSTER_CONFIG, `${name}/peer.json: cluster_config must point at the repo's cluster.config.json`)
      await writeFile(join(dir, 'peer.json'), JSON.stringify({ ...peer, cluster_config: CLUSTER_CONFIG }))
      await writeFile(join(dir, 'identity.json'), await readFile(join(src, 'identity.json')), { mode: 0o600 })
      loaded.push(await loadConfig(dir, { env: {} }))
    }
  })

  after(async () => { await tmp?.cleanup() })

  it('is a lan-profile cluster of the three demo peers, with its own DHT protocol', async () => {
    const cluster = parseClusterConfig(JSON.parse(await readFile(CLUSTER_CONFIG, 'utf8')), CLUSTER_CONFIG)
    assert.equal(cluster.name, 'cairn-demo')
    assert.equal(cluster.replication_factor_min, -1)
    assert.equal(cluster.replication_factor_max, -1)
    assert.equal(cluster.dht.profile, 'lan')
    assert.equal(cluster.dht.keep_private_addresses, true)
    // never the public IPFS DHT
    assert.notEqual(cluster.dht.protocol, '/ipfs/kad/1.0.0')
    assert.equal(cluster.trusted_peers.length, 3)
  })

  it('gives each peer an identity whose id is in trusted_peers, in order', () => {
    for (const [k, config] of loaded.entries()) {
      assert.equal(config.peer.peername, PEERS[k])
      assert.equal(config.clusterConfigPath, CLUSTER_CONFIG)
      assert.equal(config.identity.peerId.toString(), config.cluster.trusted_peers[k])
      assert.equal(config.identity.peerId.type, 'Ed25519')
    }
    assert.equal(new Set(loaded.map(c => c.identity.peerId.toString())).size, 3)
  })

  it('listens on the default ports + 100*k on loopback, and bootstraps from the three peers', () => {
    for (const addr of [...loaded[0].cluster.bootstrap, ...loaded[0].cluster.dht.bootstrap]) {
      assert.match(addr, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\//, 'the demo only dials loopback')
    }
    for (const [k, config] of loaded.entries()) {
      assert.equal(config.peer.rest.listen, `127.0.0.1:${9094 + 100 * k}`)
      assert.deepEqual(config.peer.swarm.listen, [`/ip4/127.0.0.1/tcp/${9096 + 100 * k}`])
      const id = config.identity.peerId.toString()
      const expected = `/ip4/127.0.0.1/tcp/${9096 + 100 * k}/p2p/${id}`
      assert.ok(config.cluster.bootstrap.includes(expected), `cluster bootstrap lacks ${expected}`)
    }
  })
})
