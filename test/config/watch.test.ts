// watchClusterConfig: maintainers change trusted_peers in the published config, running peers pick it up;
// broken content never replaces a working config.
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { LAST_GOOD_FILE, parseClusterConfig, watchClusterConfig, type ClusterConfig } from '../../src/config/index.js'
import { sleep, waitFor } from '../util.js'
import { tempDir } from './helpers.js'
import { startConfigServer, type ConfigServer } from './serve.js'

const A = '12D3KooWHFrmLWTTDD4NodngtRMEVYgxrsDMp4F9wUtShFzp7sBq'
const B = '12D3KooWMVXK7SWCBbcubAzDuPoNXN97xeNK2PQCoWTQVD5FDMQy'
const PUBLISHED = { name: 'mirrors', trusted_peers: [A] }

describe('watchClusterConfig', () => {
  let server: ConfigServer
  before(async () => { server = await startConfigServer(PUBLISHED) })
  after(async () => { await server.close() })

  it('calls onChange once per real change of a URL source and ignores invalid content', async () => {
    const dir = await tempDir()
    server.serveJson(PUBLISHED)
    const changes: ClusterConfig[] = []
    const lines: string[] = []
    const watch = watchClusterConfig({
      source: server.url,
      peerDir: dir,
      intervalMs: 3_600_000, // only the explicit checks below
      current: parseClusterConfig(PUBLISHED, 'x', {}),
      env: {},
      onChange: config => { changes.push(config) },
      report: line => { lines.push(line) }
    })
    try {
      assert.equal(await watch.check(), false, 'unchanged content')
      // the same config written differently is no change
      server.serveRaw(200, JSON.stringify({ trusted_peers: [A], name: 'mirrors', replication_factor_min: -1 }))
      assert.equal(await watch.check(), false)
      assert.equal(changes.length, 0)

      server.serveJson({ ...PUBLISHED, trusted_peers: [A, B] })
      assert.equal(await watch.check(), true)
      assert.equal(await watch.check(), false, 'served again, not changed again')
      assert.equal(changes.length, 1)
      assert.deepEqual(changes[0].trusted_peers, [A, B])
      assert.deepEqual(JSON.parse(await readFile(join(dir, LAST_GOOD_FILE), 'utf8')).config.trusted_peers, [A, B])

      // broken content: reported once, ignored; the old config stays (and so does the last good copy)
      server.serveRaw(200, '{"trusted_peers": [')
      assert.equal(await watch.check(), false)
      assert.equal(await watch.check(), false)
      server.serveJson({ name: 'mirrors', trusted_peers: ['nope'] })
      assert.equal(await watch.check(), false)
      assert.equal(changes.length, 1)
      assert.deepEqual(JSON.parse(await readFile(join(dir, LAST_GOOD_FILE), 'utf8')).config.trusted_peers, [A, B])
      assert.equal(lines.length, 2, lines.join('\n'))
      assert.match(lines[0], new RegExp(`^could not fetch the cluster config from ${server.url} \\(invalid JSON: .*\\); keeping the current config$`))
      assert.match(lines[1], /trusted_peers\[0\]: expected a libp2p peer ID, got "nope"/)

      // fixed, and a maintainer removed A: one more change, compared with the last valid config
      server.serveJson({ ...PUBLISHED, trusted_peers: [B] })
      assert.equal(await watch.check(), true)
      assert.deepEqual(changes.map(c => c.trusted_peers), [[A, B], [B]])
      assert.match(lines[2], /is readable and valid again/)
    } finally {
      await watch.stop()
    }
  })

  it('re-reads on its own every intervalMs, and stops', async () => {
    const dir = await tempDir()
    const file = join(dir, 'cluster.config.json')
    await writeFile(file, JSON.stringify(PUBLISHED))
    const changes: ClusterConfig[] = []
    // no current config: the first read (at once) sets it without calling onChange
    const watch = watchClusterConfig({ source: 'cluster.config.json', peerDir: dir, intervalMs: 20, env: {}, onChange: c => { changes.push(c) } })
    try {
      // proves a NOT: five re-reads of an unchanged file call no onChange
      await sleep(100)
      assert.equal(changes.length, 0)
      await writeFile(file, JSON.stringify({ ...PUBLISHED, trusted_peers: [A, B] }))
      await waitFor(() => changes.length === 1, { message: 'the edit is seen' })
      await writeFile(file, JSON.stringify({ ...PUBLISHED, name: 'renamed', trusted_peers: [A, B] }))
      await waitFor(() => changes.length === 2, { message: 'the second edit is seen' })
      assert.deepEqual(changes.map(c => [c.name, c.trusted_peers]), [['mirrors', [A, B]], ['renamed', [A, B]]])
    } finally {
      await watch.stop()
    }
    await writeFile(file, JSON.stringify(PUBLISHED))
    // proves a NOT: five intervals after stop(), the edit is not read
    await sleep(100)
    assert.equal(changes.length, 2, 'no reads after stop()')
  })

  it('keeps the config while the server is down and reports it once', async () => {
    const dir = await tempDir()
    const own = await startConfigServer(PUBLISHED)
    const lines: string[] = []
    let calls = 0
    const watch = watchClusterConfig({
      source: own.url, peerDir: dir, intervalMs: 3_600_000, env: {}, current: parseClusterConfig(PUBLISHED, 'x', {}),
      onChange: () => { calls++ }, report: line => { lines.push(line) }, timeoutMs: 1000
    })
    try {
      await own.close()
      assert.equal(await watch.check(), false)
      assert.equal(await watch.check(), false)
      assert.equal(calls, 0)
      assert.equal(lines.length, 1)
      assert.match(lines[0], /ECONNREFUSED.*keeping the current config/)
    } finally {
      await watch.stop()
    }
  })
})
