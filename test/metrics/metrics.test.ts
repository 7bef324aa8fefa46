import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import { register } from 'prom-client'
import { createMetricsServer, PeerRegistry } from '../../src/metrics/index.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { waitFor } from '../util.js'
import { parsePrometheus, sampleSum, sampleValue, type ParsedFamily } from './prom-parse.js'
import type { AddEntry, ReprovideAPI, ReprovideStatus } from '../../src/components.js'

describe('metrics registry', () => {
  it('renders valid exposition text, escaping HELP and label values', async () => {
    const r = new PeerRegistry()
    r.counter({ name: 'x_events_total', help: 'back\\slash and\nnewline', labelNames: ['path'], collect: () => [{ labels: { path: 'a"quote\\back\nline' }, value: 3 }] })
    r.gauge({ name: 'x_temp', help: 'collected', collect: () => [{ value: -1.5 }] })
    r.gauge({ name: 'x_gone', help: 'collector fails', collect: () => { throw new Error('boom') } })
    r.gauge({ name: 'x_absent', help: 'source absent on this peer', collect: () => undefined })
    r.gauge({ name: 'x_wrong', help: 'wrong labels', labelNames: ['path'], collect: () => [{ labels: { wrong: 'x' }, value: 1 }] })
    const h = r.histogram({ name: 'x_seconds', help: 'h', labelNames: ['op'], buckets: [0.1, 1] })
    h.observe({ op: 'a' }, 0.05)
    h.observe({ op: 'a' }, 0.5)
    h.observe({ op: 'a' }, 7)
    const failed: Array<[string, string]> = []
    const text = await r.render((name, err) => { failed.push([name, (err as Error).message]) })
    const families = parsePrometheus(text)
    assert.deepEqual(failed.map(([name]) => name).sort(), ['x_gone', 'x_wrong'])
    assert.match(failed.find(([name]) => name === 'x_wrong')?.[1] ?? '', /expected labels \[path\]/)
    assert.equal(families.has('x_gone'), false)
    assert.equal(families.has('x_absent'), false)
    assert.equal(families.get('x_events_total')?.help, 'back\\slash and\nnewline')
    assert.equal(sampleValue(families, 'x_events_total', { path: 'a"quote\\back\nline' }), 3)
    assert.equal(sampleValue(families, 'x_temp'), -1.5)
    assert.equal(sampleValue(families, 'x_seconds', { le: '0.1' }, 'x_seconds_bucket'), 1)
    assert.equal(sampleValue(families, 'x_seconds', { le: '1' }, 'x_seconds_bucket'), 2)
    assert.equal(sampleValue(families, 'x_seconds', { le: '+Inf' }, 'x_seconds_bucket'), 3)
    assert.equal(sampleValue(families, 'x_seconds', {}, 'x_seconds_sum'), 7.55)
    // the text as it was before prom-client: le after the other labels, no blank line between families
    assert.match(text, /^x_seconds_bucket\{op="a",le="0\.1"\} 1$/m)
    assert.match(text, /^x_seconds_bucket\{op="a",le="\+Inf"\} 3$/m)
    assert.doesNotMatch(text, /\n\n/)
    assert.throws(() => r.counter({ name: 'x_bad', help: 'h', collect: () => 0 }), /must end in _total/)
  })

  it('keeps one prom-client registry per peer, none in the process-wide default', async () => {
    const a = new PeerRegistry()
    const b = new PeerRegistry()
    a.gauge({ name: 'x_same', help: 'h', collect: () => 1 })
    b.gauge({ name: 'x_same', help: 'h', collect: () => 2 })
    assert.equal(sampleValue(parsePrometheus(await a.render()), 'x_same'), 1)
    assert.equal(sampleValue(parsePrometheus(await b.render()), 'x_same'), 2)
    assert.equal(register.getSingleMetric('x_same'), undefined)
    assert.equal(await register.metrics(), '\n')
  })

  it('the strict parser rejects what Prometheus would', () => {
    const bad = [
      'x 1\n', // no family
      '# TYPE x gauge\nx{a="1} 1\n', // unterminated
      '# TYPE x gauge\nx one\n',
      '# TYPE x counter\nx -1\n',
      '# TYPE x gauge\n# TYPE y gauge\nx 1\n', // split family
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n' // not cumulative
    ]
    for (const text of bad) assert.throws(() => parsePrometheus(text), text)
  })
})

describe('/metrics on a 2-peer cluster', () => {
  let cluster: TestCluster
  before(async () => { cluster = await createTestCluster(2) })
  after(async () => { await cluster?.close() })

  const scrape = async (i: number): Promise<Map<string, ParsedFamily>> => {
    const { port } = cluster.peer(i).metricsAddress()
    const res = await fetch(`http://127.0.0.1:${port}/metrics`)
    assert.equal(res.status, 200)
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
    return parsePrometheus(await res.text())
  }

  it('is valid Prometheus text with every documented family', async () => {
    const families = await scrape(0)
    for (const name of [
      'cairn_info', 'cairn_tracker_pins', 'cairn_tracker_queue_length', 'cairn_pinset_pins', 'cairn_pinset_envelopes',
      'cairn_pinset_envelopes_rejected_total', 'cairn_pinset_envelopes_applied_total', 'cairn_pinset_envelopes_duplicate_total',
      'cairn_pinset_checkpoints_total', 'cairn_pinset_sync_bytes_total', 'cairn_ipfs_repo_bytes', 'cairn_bitswap_bytes_total',
      'cairn_bitswap_blocks_total', 'cairn_libp2p_connections', 'cairn_api_request_duration_seconds',
      'process_resident_memory_bytes', 'process_cpu_seconds_total', 'process_start_time_seconds',
      'cairn_repo_gc_runs_total', 'cairn_repo_gc_failures_total', 'cairn_repo_gc_blocks_deleted_total',
      'cairn_repo_gc_last_run_timestamp_seconds', 'cairn_repo_gc_last_run_duration_seconds'
    ]) assert.ok(families.has(name), `family ${name}`)
    assert.equal(families.get('cairn_api_request_duration_seconds')?.type, 'histogram')
    assert.equal(sampleValue(families, 'cairn_info', { peer_id: cluster.peer(0).id }), 1)
    assert.ok(sampleValue(families, 'process_resident_memory_bytes')! > 10e6)
    assert.ok(Math.abs(sampleValue(families, 'process_start_time_seconds')! - Date.now() / 1000) < 3600)
    assert.equal(sampleValue(families, 'cairn_pinset_envelopes_rejected_total', { reason: 'signature' }), 0)
    await waitFor(async () => sampleSum(await scrape(0), 'cairn_libp2p_connections') >= 1, { message: 'a connection counted' })
  })

  it('moves when pins change: pinned gauge, pinset size, bitswap bytes, REST latency', async () => {
    const before0 = await scrape(0)
    const before1 = await scrape(1)
    const pinnedBefore = sampleValue(before0, 'cairn_tracker_pins', { status: 'pinned' }) ?? 0
    const sizeBefore = sampleValue(before0, 'cairn_pinset_pins') ?? 0
    const restPostsBefore = sampleSum(before0, 'cairn_api_request_duration_seconds', { api: 'rest', method: 'POST', route: '/pins/:cid', status: '200' }, 'cairn_api_request_duration_seconds_count')
    const inBefore = sampleValue(before0, 'cairn_bitswap_bytes_total', { direction: 'in' }) ?? 0
    const outBefore = sampleValue(before1, 'cairn_bitswap_bytes_total', { direction: 'out' }) ?? 0

    // content only peer 1 holds: peer 0 fetches it over bitswap when the pins (replication everywhere) arrive
    const files = Array.from({ length: 3 }, () => randomBytes(300_000))
    const cids: string[] = []
    for (const [i, bytes] of files.entries()) {
      const entries: AddEntry[] = [{ path: `f${i}.bin`, content: (async function * () { yield bytes })() }]
      for await (const out of cluster.peer(1).ipfs.addEntries((async function * () { yield * entries })(), { cid_version: 1 })) {
        if (out.cid !== '') cids.push(out.cid)
      }
    }
    assert.equal(cids.length, 3)
    for (const cid of cids) {
      const res = await fetch(`${cluster.url(0)}/pins/${cid}`, { method: 'POST' })
      assert.equal(res.status, 200, await res.text())
    }

    const after0 = await waitFor(async () => {
      const f = await scrape(0)
      return (sampleValue(f, 'cairn_tracker_pins', { status: 'pinned' }) ?? 0) >= pinnedBefore + 3 ? f : undefined
    }, { timeoutMs: 30_000, message: 'peer 0 reports the 3 pins as pinned' })
    assert.equal(sampleValue(after0, 'cairn_pinset_pins'), sizeBefore + 3)
    assert.equal(sampleValue(after0, 'cairn_tracker_queue_length'), 0)
    const restPosts = sampleSum(after0, 'cairn_api_request_duration_seconds', { api: 'rest', method: 'POST', route: '/pins/:cid', status: '200' }, 'cairn_api_request_duration_seconds_count')
    assert.equal(restPosts, restPostsBefore + 3)
    const total = files.reduce((n, f) => n + f.byteLength, 0)
    assert.ok(sampleValue(after0, 'cairn_bitswap_bytes_total', { direction: 'in' })! - inBefore >= total, 'peer 0 received the file bytes over bitswap')
    const after1 = await waitFor(async () => {
      const f = await scrape(1)
      return (sampleValue(f, 'cairn_pinset_pins') ?? 0) >= sizeBefore + 3 ? f : undefined
    }, { message: 'peer 1 sees the 3 pins' })
    assert.ok(sampleValue(after1, 'cairn_bitswap_bytes_total', { direction: 'out' })! - outBefore >= total, 'peer 1 sent the file bytes over bitswap')
    assert.ok((sampleValue(after1, 'cairn_pinset_envelopes_applied_total') ?? 0) >= 1, 'peer 1 applied peer 0\'s envelope')

    // a repo GC on peer 1 after unpinning one file: the counters move
    const gcBefore = await scrape(1)
    await fetch(`${cluster.url(0)}/pins/${cids[0]}`, { method: 'DELETE' })
    await waitFor(async () => !(await cluster.peer(1).ipfs.isPinned(CID.parse(cids[0]))), { timeoutMs: 30_000, message: 'peer 1 unpins the first file' })
    const gc = await (await fetch(`${cluster.url(1)}/ipfs/gc?local=true`, { method: 'POST' })).json() as { peer_map: Record<string, { keys: unknown[] }> }
    const deleted = gc.peer_map[cluster.peer(1).id].keys.length
    assert.ok(deleted >= 2, `the file's blocks deleted: ${deleted}`)
    const gcAfter = await scrape(1)
    assert.equal(sampleValue(gcAfter, 'cairn_repo_gc_runs_total'), (sampleValue(gcBefore, 'cairn_repo_gc_runs_total') ?? 0) + 1)
    assert.equal(sampleValue(gcAfter, 'cairn_repo_gc_blocks_deleted_total'), (sampleValue(gcBefore, 'cairn_repo_gc_blocks_deleted_total') ?? 0) + deleted)
    assert.ok(Math.abs(sampleValue(gcAfter, 'cairn_repo_gc_last_run_timestamp_seconds')! - Date.now() / 1000) < 60)

    // a 404 on an unknown REST route is counted under "unmatched", not under its raw path
    await (await fetch(`${cluster.url(0)}/no/such/route`)).text()
    const later = await scrape(0)
    assert.ok(sampleSum(later, 'cairn_api_request_duration_seconds', { route: 'unmatched', status: '404' }, 'cairn_api_request_duration_seconds_count') >= 1)
    assert.equal(later.get('cairn_api_request_duration_seconds')?.samples.some(s => s.labels.route?.includes('/no/such')), false)
  })

  it('shows reprovide progress once the peer has a reprovider, and leaves it out before', async () => {
    const peer = cluster.peer(0)
    const status: ReprovideStatus = {
      strategy: 'pinned', interval_ms: 22 * 3600_000, validity_ms: 48 * 3600_000, running: true, cycle_done: 40, cycle_total: 100,
      last_cycle_started: '', last_cycle_finished: '2024-01-01T00:00:00.000Z', last_cycle_duration_ms: 1500, last_cycle_cids: 90,
      next_cycle_at: '', cids_announced_total: 130, fast_provides_total: 3, failures_total: 1, cycles_overrun_total: 0, cycles_total: 1
    }
    let reprovider: ReprovideAPI | undefined
    let throws = true
    const metrics = createMetricsServer({ listen: '127.0.0.1:0' }, {
      pinset: peer.pinset,
      tracker: peer.tracker,
      reprovider: () => {
        if (throws) throw new Error('reprovider is available after start()')
        return reprovider
      }
    })
    await metrics.start()
    try {
      const get = async (): Promise<Map<string, ParsedFamily>> => parsePrometheus(await (await fetch(`http://127.0.0.1:${metrics.address().port}/metrics`)).text())
      assert.equal((await get()).has('cairn_reprovide_running'), false)
      throws = false
      assert.equal((await get()).has('cairn_reprovide_running'), false)
      reprovider = { status: () => status, reprovideNow: async () => status }
      const f = await get()
      assert.equal(sampleValue(f, 'cairn_reprovide_running'), 1)
      assert.equal(sampleValue(f, 'cairn_reprovide_cycle_done'), 40)
      assert.equal(sampleValue(f, 'cairn_reprovide_cycle_cids'), 100)
      assert.equal(sampleValue(f, 'cairn_reprovide_last_cycle_duration_seconds'), 1.5)
      assert.equal(sampleValue(f, 'cairn_reprovide_last_cycle_finished_timestamp_seconds'), 1704067200)
      assert.equal(sampleValue(f, 'cairn_reprovide_cids_announced_total'), 130)
      assert.equal(sampleValue(f, 'cairn_reprovide_failures_total'), 1)
      assert.equal(f.get('cairn_reprovide_failures_total')?.type, 'counter')
      assert.equal(f.has('cairn_bitswap_bytes_total'), false, 'no Helia given: no bitswap series')
    } finally {
      await metrics.stop()
    }
  })

  it('answers 404 off /metrics and 405 for other methods', async () => {
    const { port } = cluster.peer(0).metricsAddress()
    assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 404)
    assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status, 405)
  })
})
