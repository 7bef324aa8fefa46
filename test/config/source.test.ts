// Cluster configs published at an http(s) URL: fetched on every load, kept as a last good copy, and used from
// that copy (with a clear line) when the publisher is down or serves something broken.
import assert from 'node:assert/strict'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  initPeer, LAST_GOOD_FILE, loadConfig, readClusterSource, type LoadedConfig
} from '../../src/config/index.js'
import { assertConfigError, tempDir } from './helpers.js'
import { closedUrl, startConfigServer, type ConfigServer } from './serve.js'

const A = '12D3KooWHFrmLWTTDD4NodngtRMEVYgxrsDMp4F9wUtShFzp7sBq'
const B = '12D3KooWMVXK7SWCBbcubAzDuPoNXN97xeNK2PQCoWTQVD5FDMQy'
const PUBLISHED = { name: 'mirrors', trusted_peers: [A], dht: { profile: 'lan' } }

const readJson = async (file: string): Promise<any> => JSON.parse(await readFile(file, 'utf8'))

describe('a cluster config URL', () => {
  let server: ConfigServer
  before(async () => { server = await startConfigServer(PUBLISHED) })
  after(async () => { await server.close() })

  /** A peer folder whose cluster_config is the server's URL, with a last good copy from a first fetch. */
  async function follower (): Promise<LoadedConfig> {
    server.serveJson(PUBLISHED)
    return await initPeer(await tempDir(), { env: {}, cluster: server.url })
  }

  /** loadConfig collecting what it reports. */
  async function load (dir: string, env: NodeJS.ProcessEnv = {}): Promise<{ config: LoadedConfig, lines: string[] }> {
    const lines: string[] = []
    const config = await loadConfig(dir, { env, report: line => { lines.push(line) }, timeoutMs: 2000 })
    return { config, lines }
  }

  it('is fetched, validated and kept as the last good copy', async () => {
    const before = Date.now()
    const { path, peer, cluster, clusterConfigPath, clusterSource } = await follower()
    assert.equal(peer.cluster_config, server.url)
    assert.equal(clusterConfigPath, server.url)
    assert.equal(cluster.name, 'mirrors')
    assert.deepEqual(cluster.trusted_peers, [A])
    assert.equal(clusterSource.origin, 'fetched')
    const copy = await readJson(join(path, LAST_GOOD_FILE))
    assert.equal(copy.source, server.url)
    assert.deepEqual(copy.config, PUBLISHED, 'the content as served, without defaults filled in')
    assert.ok(Date.parse(copy.fetched_at) >= before - 1000, `fetched_at ${copy.fetched_at} is now`)

    // every load fetches again: a change on the server is seen by the next start
    server.serveJson({ ...PUBLISHED, trusted_peers: [A, B] })
    const hits = server.hits
    const { config, lines } = await load(path)
    assert.equal(server.hits, hits + 1)
    assert.deepEqual(config.cluster.trusted_peers, [A, B])
    assert.deepEqual(lines, [])
    assert.deepEqual((await readJson(join(path, LAST_GOOD_FILE))).config.trusted_peers, [A, B])
    // no temp files left beside it
    assert.deepEqual((await readdir(path)).filter(f => f.endsWith('.tmp')), [])
  })

  it('falls back to the last good copy when the server is down, and says so', async () => {
    const own = await startConfigServer(PUBLISHED)
    const { path } = await initPeer(await tempDir(), { env: {}, cluster: own.url })
    const { fetched_at: fetchedAt } = await readJson(join(path, LAST_GOOD_FILE))
    await own.close()
    const { config, lines } = await load(path)
    assert.equal(config.cluster.name, 'mirrors')
    assert.deepEqual(config.cluster.trusted_peers, [A])
    assert.deepEqual(config.clusterSource, { origin: 'last-good', fetchedAt, fetchError: config.clusterSource.fetchError })
    assert.equal(lines.length, 1)
    assert.match(lines[0], new RegExp(`^could not fetch the cluster config from ${own.url} \\(.*ECONNREFUSED.*\\); using the last good copy from ${fetchedAt}$`))
  })

  it('does not use the last good copy of another URL', async () => {
    const { path } = await follower()
    const down = await closedUrl()
    const peerFile = join(path, 'peer.json')
    await writeFile(peerFile, JSON.stringify({ ...(await readJson(peerFile)), cluster_config: down }))
    await assertConfigError(async () => await load(path), `could not fetch the cluster config from ${down}`, 'ECONNREFUSED',
      `the last good copy in ${join(path, LAST_GOOD_FILE)} is of ${server.url}`)
  })

  it('falls back to the last good copy when the server serves invalid JSON, an invalid config or an error', async () => {
    const { path } = await follower()
    const cases: Array<[() => void, RegExp]> = [
      [() => { server.serveRaw(200, '{"name": "mirrors",') }, /\(invalid JSON: .+\)/],
      [() => { server.serveJson({ name: 'mirrors', trusted_peers: ['not-a-peer'] }) }, /\(invalid cluster config: .*trusted_peers\[0\]: expected a libp2p peer ID, got "not-a-peer"\)/],
      [() => { server.serveJson({ name: 'mirrors', trusted_peer: [A] }) }, /trusted_peer: unknown key/],
      [() => { server.serveRaw(503, 'maintenance') }, /\(HTTP 503 Service Unavailable\)/],
      [() => { server.serveRaw(200, Buffer.alloc(1024 * 1024 + 1, 32)) }, /\(larger than 1 MiB\)/]
    ]
    for (const [serve, reason] of cases) {
      serve()
      const { config, lines } = await load(path)
      assert.equal(config.clusterSource.origin, 'last-good', String(reason))
      assert.deepEqual(config.cluster.trusted_peers, [A])
      assert.equal(lines.length, 1)
      assert.match(lines[0], reason)
      assert.match(lines[0], /; using the last good copy from \d{4}-\d\d-\d\dT/)
    }
    // what broke was never saved over the good copy
    assert.deepEqual((await readJson(join(path, LAST_GOOD_FILE))).config, PUBLISHED)
  })

  it('gives up on a server that does not answer within the deadline', async () => {
    const { path } = await follower()
    server.handle(() => {}) // never answers
    const lines: string[] = []
    const started = Date.now()
    const config = await loadConfig(path, { env: {}, report: line => { lines.push(line) }, timeoutMs: 300 })
    assert.ok(Date.now() - started < 5000)
    assert.equal(config.clusterSource.origin, 'last-good')
    assert.match(lines[0], /\(no answer within 300 ms\)/)
  })

  it('follows redirects', async () => {
    const dir = await tempDir()
    server.handle((req, res) => {
      if (req.url === '/other') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: 'moved' }))
      else res.writeHead(302, { location: '/other' }).end()
    })
    const { cluster } = await initPeer(dir, { env: {}, cluster: server.url })
    assert.equal(cluster.name, 'moved')
  })

  it('fails with an error naming the URL and the reason when there is no last good copy', async () => {
    const { path } = await follower()
    const down = await closedUrl()
    await writeFile(join(path, 'peer.json'), JSON.stringify({ ...(await readJson(join(path, 'peer.json'))), cluster_config: down }))
    const { rm } = await import('node:fs/promises')
    await rm(join(path, LAST_GOOD_FILE))
    await assertConfigError(async () => await load(path),
      `${join(path, 'peer.json')}: cluster_config: could not fetch the cluster config from ${down} (`, 'ECONNREFUSED', 'there is no last good copy of it')
  })

  it('applies env overrides to the fetched config, and blames the variable, not the server', async () => {
    const { path } = await follower()
    const { config } = await load(path, { CAIRN_CLUSTER_REPLICATION_FACTOR_MIN: '2', CAIRN_CLUSTER_REPLICATION_FACTOR_MAX: '3' })
    assert.equal(config.cluster.replication_factor_max, 3)
    assert.equal(config.clusterSource.origin, 'fetched')
    await assertConfigError(async () => await load(path, { CAIRN_CLUSTER_REPLICATION_FACTOR_MIN: 'x' }), 'CAIRN_CLUSTER_REPLICATION_FACTOR_MIN')
  })

  it('leaves nothing behind when init cannot fetch it', async () => {
    const root = await tempDir()
    server.serveRaw(404, 'no')
    await assertConfigError(async () => await initPeer(join(root, 'p'), { env: {}, cluster: server.url }),
      `could not fetch the cluster config from ${server.url} (HTTP 404 Not Found) and there is no last good copy of it`)
    assert.deepEqual(await readdir(root), [])
  })
})

describe('readClusterSource', () => {
  it('reads a file source (absolute, or relative to the peer folder) without a last good copy', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, 'c.json'), JSON.stringify({ name: 'from-file' }))
    const read = await readClusterSource('c.json', dir, { env: {} })
    assert.deepEqual({ origin: read.origin, source: read.source, name: read.config.name, fetchedAt: read.fetchedAt },
      { origin: 'file', source: join(dir, 'c.json'), name: 'from-file', fetchedAt: undefined })
    assert.equal((await readClusterSource(join(dir, 'c.json'), '/', { env: {} })).config.name, 'from-file')
    assert.deepEqual(await readdir(dir), ['c.json'])
    await assertConfigError(async () => await readClusterSource(relative(dir, join(dir, 'missing.json')), dir, { env: {}, referrer: 'here' }),
      `here: no cluster config at ${join(dir, 'missing.json')}`)
  })

  it('fetches a URL with the fetch it is given', async () => {
    const dir = await tempDir()
    const seen: string[] = []
    const fakeFetch: typeof fetch = async (input) => {
      seen.push(String(input))
      return new Response(JSON.stringify({ name: 'injected' }), { status: 200 })
    }
    const read = await readClusterSource('https://cluster.example/c.json', dir, { env: {}, fetch: fakeFetch })
    assert.deepEqual(seen, ['https://cluster.example/c.json'])
    assert.equal(read.origin, 'fetched')
    assert.equal(read.config.name, 'injected')
    assert.equal((await readJson(join(dir, LAST_GOOD_FILE))).source, 'https://cluster.example/c.json')
  })
})
