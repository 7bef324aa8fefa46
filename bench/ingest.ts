// `ingest`: a 3-peer cluster, N pins posted over REST to peer 0 with C requests in flight, the content already
// in every peer's blockstore so that pinning is quick. Measures the rate the API accepts pins at, against the
// rate it answers a no-op request (GET /health) with the same client and concurrency; then how long after the
// last answer every pinset holds every pin, and every peer has them all pinned (then checked over REST: all
// allocated and `pinned`); RSS and CPU per peer. Then, after every figure above, the list phase: --list-pins
// more pins (no content behind them) loaded into the pinset, and --list-streams concurrent GET /allocations of
// the whole pinset on peer-0 while GET /health is probed there: the /health latency under that load, the list's
// MB/s, and whether any other peer lost peer-0 meanwhile.
// Goals (issue): >= 5,000 pins/s accepted, converged <= 2 s after the last answer; /health p99 < 1 s while the
// lists stream, and no peer loses peer-0.
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { request } from 'node:http'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  PEER_FLAGS, parseFlags, peerFlags, type PeerFlagValues, closedLoop, countLines, cpuSeconds, formatNumber, httpRequest, keepAliveAgent, MiB, nonNegativeInt,
  positiveInt, preparePeers, quantile, sampleRss, sleep, startPeerProcesses, stopAll, tempDir, waitFor, waitForClusterPeers,
  type Benchmark, type BenchContext, type BenchReport, type ChildPeer, type Goal, type HttpTarget, type Metric
} from './lib.js'

const USAGE = `  --pins N          pins to post (default 5000)
  --concurrency C   requests in flight, one keep-alive connection each (default 64)
  --peers P         cluster size (default 3)
  --timeout S       seconds to wait for convergence before failing (default 120)
  --poll-ms MS      pause between convergence probes of one peer (default 50)
  --list-pins N     pins loaded into the pinset for the list phase, beside the posted ones (default 300000)
  --list-streams S  concurrent GET /allocations in the list phase; 0 skips it (default 20)
  --cpu-prof        write a V8 CPU profile of each peer over post + converge (path printed under the table)
  --keep            keep the peers' folders (path printed under the table)
  --verbose         show the peers' log lines on stderr`

const SEED_BATCH = 1000
const GOAL_RATE = 5000
const GOAL_CONVERGE_S = 2
/** The flags the README's figures were measured with: only such a run is compared with them. */
const RECORDED_PARAMS = { pins: 5000, peers: 3, concurrency: 64 }

/** The README's ingest figures, which a run with the default flags must not fall far behind. */
export interface RecordedIngest {
  /** Seconds after the last answer until every pin is `pinned` on every peer. */
  pinnedS: number
  /** CPU of all peers per pin, ms. */
  cpuPerPinMs: number
}

/** Reads the figures from the README's `ingest` row of the benchmark table; undefined when it has none. */
export function parseRecordedIngest (readme: string): RecordedIngest | undefined {
  const row = readme.split('\n').find(line => line.startsWith('| `ingest`'))
  const pinned = row?.match(/all `pinned` everywhere after ([\d.]+) s/)
  const cpu = row?.match(/([\d.]+) ms CPU per pin/)
  if (pinned == null || cpu == null) return undefined
  return { pinnedS: Number(pinned[1]), cpuPerPinMs: Number(cpu[1]) }
}

/**
 * A run slower than the recorded figures by more than this machine's noise (twice the figure, and a second more
 * for the convergence) is a regression: the kind that went unnoticed from 1.3 s to 12-15 s over a few commits.
 */
export function ingestRegressions (recorded: RecordedIngest, run: RecordedIngest): string[] {
  const out: string[] = []
  if (run.pinnedS > Math.max(2 * recorded.pinnedS, recorded.pinnedS + 1)) {
    out.push(`every pin pinned everywhere ${run.pinnedS.toFixed(2)} s after the last answer; the README records ${recorded.pinnedS} s`)
  }
  if (run.cpuPerPinMs > 2 * recorded.cpuPerPinMs) {
    out.push(`${run.cpuPerPinMs.toFixed(2)} ms of CPU per pin; the README records ${recorded.cpuPerPinMs} ms`)
  }
  return out
}

interface Options extends PeerFlagValues {
  pins: number
  listPins: number
  listStreams: number
  concurrency: number
  peers: number
  timeoutMs: number
  pollMs: number
}

function parseOptions (argv: string[]): Options {
  const values = parseFlags(argv, {
    pins: { type: 'string' },
    'list-pins': { type: 'string' },
    'list-streams': { type: 'string' },
    concurrency: { type: 'string' },
    peers: { type: 'string' },
    timeout: { type: 'string' },
    'poll-ms': { type: 'string' },
    ...PEER_FLAGS
  })
  return {
    pins: positiveInt('pins', values.pins, 5000),
    listPins: nonNegativeInt('list-pins', values['list-pins'], 300_000),
    listStreams: nonNegativeInt('list-streams', values['list-streams'], 20),
    concurrency: positiveInt('concurrency', values.concurrency, 64),
    peers: positiveInt('peers', values.peers, 3),
    timeoutMs: positiveInt('timeout', values.timeout, 120) * 1000,
    pollMs: positiveInt('poll-ms', values['poll-ms'], 50),
    ...peerFlags(values)
  }
}

interface Block { cid: string, bytes: Uint8Array }

/** Small distinct raw blocks: as files added with cid-version=1 raw-leaves=true, each is its own CID. */
async function makeBlocks (n: number): Promise<Block[]> {
  const nonce = `${process.pid}-${Date.now()}`
  return await Promise.all(Array.from({ length: n }, async (_, i) => {
    const bytes = new TextEncoder().encode(`cairn bench ingest ${nonce} block ${i}\n`)
    return { cid: CID.createV1(raw.code, await sha256.digest(bytes)).toString(), bytes }
  }))
}

function multipart (blocks: Block[], offset: number): { body: Buffer, boundary: string } {
  const boundary = `cairn-bench-${Math.random().toString(16).slice(2)}`
  const parts: Buffer[] = []
  blocks.forEach((b, i) => {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="block-${offset + i}"\r\n` +
      'Content-Type: application/octet-stream\r\n\r\n'), Buffer.from(b.bytes), Buffer.from('\r\n'))
  })
  parts.push(Buffer.from(`--${boundary}--\r\n`))
  return { body: Buffer.concat(parts), boundary }
}

/** POST /add of every block to one peer, unpinned, checking that each comes back under the CID expected. */
async function seed (peer: ChildPeer, blocks: Block[], signal: AbortSignal): Promise<void> {
  const expected = new Set(blocks.map(b => b.cid))
  for (let offset = 0; offset < blocks.length; offset += SEED_BATCH) {
    const { body, boundary } = multipart(blocks.slice(offset, offset + SEED_BATCH), offset)
    const res = await httpRequest(peer.rest, 'POST', '/add?cid-version=1&raw-leaves=true&no-pin=true&stream-channels=true', {
      body, headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` }, signal, timeoutMs: 120_000
    })
    if (res.status !== 200) throw new Error(`seeding ${peer.name}: POST /add answered ${res.status}: ${res.body.toString().slice(0, 300)}`)
    for (const line of res.body.toString().split('\n')) {
      if (line === '') continue
      const out = JSON.parse(line) as { cid?: string, name?: string }
      if (out.cid == null || !expected.delete(out.cid)) {
        throw new Error(`seeding ${peer.name}: POST /add returned ${line}, not one of the raw-block CIDs expected`)
      }
    }
    if (res.headers['x-stream-error'] != null && res.headers['x-stream-error'] !== '') {
      throw new Error(`seeding ${peer.name}: POST /add failed: ${String(res.headers['x-stream-error'])}`)
    }
  }
  if (expected.size > 0) throw new Error(`seeding ${peer.name}: ${expected.size} blocks were not added`)
}

interface Convergence {
  /** ms after the last pin answer when the peer's pinset held every pin, and when all were pinned. */
  allocatedMs: number
  pinnedMs: number
  /** How late each figure may be: from when the last probe that saw it unmet was sent. */
  allocatedSlackMs: number
  pinnedSlackMs: number
}

/**
 * Probes one peer (IPC, one probe at a time) until its pinset holds `target` pins, then until its IPFS has
 * `target` pins recorded. A figure is when the probe that saw it met was answered; it happened after the
 * previous probe was sent. The pin count walks Helia's pin records, so that probe waits at least twice as
 * long as the last one took: the measuring must not starve the tracker it measures.
 */
async function converge (peer: ChildPeer, target: number, since: number, opts: {
  pollMs: number, deadline: number, signal: AbortSignal, progress: Map<string, string>
}): Promise<Convergence> {
  let unmetSince = since
  const probe = async (what: string, pinned: boolean): Promise<{ ms: number, slackMs: number }> => {
    for (;;) {
      opts.signal.throwIfAborted()
      const sent = performance.now()
      const p = await peer.progress({ pinned })
      const at = performance.now()
      const n = pinned ? p.pinned ?? 0 : p.pinset
      opts.progress.set(peer.name, `${what} ${n}/${target} (tracker queue ${p.trackerQueue})`)
      if (n >= target) return { ms: at - since, slackMs: at - unmetSince }
      unmetSince = sent
      if (Date.now() > opts.deadline) {
        throw new Error(`${peer.name}: only ${n} of ${target} pins ${what} when the convergence timeout expired (tracker queue ${p.trackerQueue})`)
      }
      await sleep(Math.max(opts.pollMs, 2 * (at - sent)), opts.signal)
    }
  }
  const allocated = await probe('in its pinset', false)
  const pinned = await probe('pinned', true)
  return { allocatedMs: allocated.ms, pinnedMs: pinned.ms, allocatedSlackMs: allocated.slackMs, pinnedSlackMs: pinned.slackMs }
}

/** What the REST API says, once converged: every pin allocated and `pinned` on this peer. Returns the seconds GET /pins took. */
async function verify (peer: ChildPeer, target: number, signal: AbortSignal): Promise<number> {
  const count = async (path: string): Promise<{ n: number, seconds: number }> => {
    const t = performance.now()
    const res = await httpRequest(peer.rest, 'GET', path, { signal, timeoutMs: 120_000 })
    if (res.status !== 200) throw new Error(`${peer.name}: GET ${path} answered ${res.status}: ${res.body.toString().slice(0, 300)}`)
    const trailer = res.headers['x-stream-error']
    if (typeof trailer === 'string' && trailer !== '') throw new Error(`${peer.name}: GET ${path} failed half-way: ${trailer}`)
    return { n: countLines(res.body), seconds: (performance.now() - t) / 1000 }
  }
  const allocations = await count('/allocations')
  const pinned = await count('/pins?local=true&filter=pinned')
  if (allocations.n !== target || pinned.n !== target) {
    throw new Error(`${peer.name}: converged by its components, but its REST API lists ${allocations.n} allocations and ${pinned.n} pinned (expected ${target} each)`)
  }
  return pinned.seconds
}

interface ListPhase {
  pins: number
  streams: number
  /** Wall time from the first request to the last answer's end. */
  seconds: number
  /** Bytes of one whole answer. */
  answerBytes: number
  totalBytes: number
  /** Per-stream seconds, sorted. */
  streamSeconds: number[]
  /** GET /health latencies on peer-0 while the lists streamed, ms, sorted; a failed probe is Infinity. */
  healthMs: number[]
  /** Ping alerts about peer-0 the other peers raised during the phase. */
  alerts: number
}

/** One GET /allocations read to its end, counting bytes and lines, not keeping them. */
async function streamList (target: HttpTarget, signal: AbortSignal): Promise<{ bytes: number, lines: number, seconds: number }> {
  const t = performance.now()
  return await new Promise((resolve, reject) => {
    const req = request({ host: target.host, port: target.port, path: '/allocations', agent: false, signal }, res => {
      if (res.statusCode !== 200) {
        res.resume()
        reject(new Error(`GET /allocations answered ${res.statusCode ?? 0} (${String(res.headers['retry-after'] ?? '')})`))
        return
      }
      let bytes = 0
      let lines = 0
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++
      })
      res.on('end', () => {
        const trailer = res.trailers['x-stream-error']
        if (trailer != null && trailer !== '') reject(new Error(`GET /allocations failed half-way: ${trailer}`))
        else resolve({ bytes, lines, seconds: (performance.now() - t) / 1000 })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/**
 * The list phase: `listPins` more pins written straight into peer-0's pinset (allocated to a peer outside the
 * cluster, so no tracker fetches anything), then `listStreams` GET /allocations at once on peer-0, each read to
 * its end, while GET /health is probed there one request at a time.
 */
async function listPhase (peers: ChildPeer[], posted: number, o: Options, ctx: BenchContext): Promise<ListPhase> {
  const { log, signal } = ctx
  const [a, ...others] = peers
  const total = posted + o.listPins
  if (o.listPins > 0) {
    const ghost = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const t = performance.now()
    await a.request('load-pins', { count: o.listPins, batch: 10_000, allocation: ghost }, `load ${o.listPins} pins`, {
      timeoutMs: Math.max(300_000, o.listPins * 2),
      signal,
      onProgress: msg => { log(`list phase: loading ${formatNumber(msg.done as number, 0)}/${formatNumber(o.listPins, 0)} pins, ${((performance.now() - t) / 1000).toFixed(1)} s`) }
    })
    await Promise.all(peers.map(async p => {
      await waitFor(async () => (await p.progress()).pinset === total,
        { timeoutMs: Math.max(120_000, o.listPins), signal, message: `${p.name} holds the ${total} pins`, intervalMs: 500 })
    }))
    log(`list phase: ${formatNumber(total, 0)} pins in every pinset after ${((performance.now() - t) / 1000).toFixed(1)} s`)
  }
  const since = new Date().toISOString()
  const stop = new AbortController()
  const probing = (async () => {
    const healthMs: number[] = []
    while (!stop.signal.aborted) {
      const t = performance.now()
      try {
        const res = await httpRequest(a.rest, 'GET', '/health', { signal: stop.signal, timeoutMs: 10_000 })
        healthMs.push(res.status === 204 ? performance.now() - t : Infinity)
      } catch {
        if (!stop.signal.aborted) healthMs.push(Infinity)
      }
      await sleep(50, stop.signal).catch(() => {})
    }
    return healthMs
  })()
  const t = performance.now()
  let results
  try {
    results = await Promise.all(Array.from({ length: o.listStreams }, async () => await streamList(a.rest, signal)))
  } finally {
    stop.abort()
  }
  const seconds = (performance.now() - t) / 1000
  const healthMs = (await probing).sort((x, y) => x - y)
  for (const r of results) {
    if (r.lines !== total) throw new Error(`a GET /allocations listed ${r.lines} pins, the pinset holds ${total}`)
  }
  let alerts = 0
  for (const p of others) {
    const res = await httpRequest(p.rest, 'GET', '/health/alerts', { signal })
    const list = JSON.parse(res.body.toString()) as Array<{ peer: string, name: string, triggered_at: string }>
    alerts += list.filter(x => x.peer === a.id && x.name === 'ping' && x.triggered_at >= since).length
  }
  return {
    pins: total,
    streams: o.listStreams,
    seconds,
    answerBytes: results[0].bytes,
    totalBytes: results.reduce((n, r) => n + r.bytes, 0),
    streamSeconds: results.map(r => r.seconds).sort((x, y) => x - y),
    healthMs,
    alerts
  }
}

function listMetrics (l: ListPhase): Metric[] {
  return [
    { key: 'list_pins', label: 'list phase: pins in the pinset', value: l.pins, unit: 'pins', digits: 0 },
    { key: 'list_answer_mb', label: 'list phase: one GET /allocations answer', value: l.answerBytes / 1e6, unit: 'MB', digits: 1 },
    { key: 'list_rate', label: `list phase: ${l.streams} concurrent GET /allocations on peer-0, together`, value: l.totalBytes / 1e6 / l.seconds, unit: 'MB/s' },
    { key: 'list_seconds', label: 'list phase: until the last answer ended', value: l.seconds, unit: 's' },
    { key: 'list_stream_seconds_p50', label: 'list phase: one answer, p50', value: quantile(l.streamSeconds, 0.5), unit: 's' },
    { key: 'list_health_p50', label: `list phase: GET /health on peer-0 p50 (${l.healthMs.length} probes)`, value: quantile(l.healthMs, 0.5), unit: 'ms' },
    { key: 'list_health_p99', label: 'list phase: GET /health on peer-0 p99', value: quantile(l.healthMs, 0.99), unit: 'ms' },
    { key: 'list_health_max', label: 'list phase: GET /health on peer-0 max', value: l.healthMs.at(-1) ?? NaN, unit: 'ms' },
    { key: 'list_alerts', label: 'list phase: ping alerts about peer-0 on the other peers', value: l.alerts, unit: '', digits: 0 }
  ]
}

function listGoals (l: ListPhase): Goal[] {
  const p99 = quantile(l.healthMs, 0.99)
  return [
    { text: `GET /health p99 < 1 s while ${l.streams} lists stream (${formatNumber(p99)} ms)`, met: p99 < 1000 },
    { text: `no peer loses peer-0 meanwhile (${l.alerts} ping alerts)`, met: l.alerts === 0 }
  ]
}

async function run (argv: string[], ctx: BenchContext): Promise<BenchReport> {
  const o = parseOptions(argv)
  const { log, signal } = ctx
  const root = await tempDir('cairn-bench-ingest-')
  const profDir = join(root.path, 'cpu-profiles')
  let peers: ChildPeer[] = []
  const agent = keepAliveAgent(o.concurrency)
  try {
    log(`creating ${o.peers} peers in ${root.path}`)
    const prepared = await preparePeers({ peers: o.peers, root: root.path })
    if (o.cpuProf) await mkdir(profDir)
    peers = await startPeerProcesses(prepared, {
      output: o.verbose ? (name, line) => { log(`${name}: ${line}`) } : undefined,
      // every list of the list phase is served at once (the default cap, 8, would refuse the rest)
      env: o.listStreams > 0 ? { CAIRN_REST_MAX_HEAVY_REQUESTS: String(Math.max(8, o.listStreams)) } : undefined,
      signal
    })
    const [a] = peers
    log(`peers running: ${peers.map(p => `${p.name} pid ${p.pid} REST ${p.rest.host}:${p.rest.port}`).join(', ')}`)
    await waitForClusterPeers(peers, o.peers, { timeoutMs: 60_000, signal })

    // block 0 is the warm-up pin; 1..N are the measured ones
    const blocks = await makeBlocks(o.pins + 1)
    const target = o.pins + 1
    const t = performance.now()
    await Promise.all(peers.map(async p => { await seed(p, blocks, signal) }))
    log(`seeded ${blocks.length} raw blocks into each peer in ${((performance.now() - t) / 1000).toFixed(1)} s`)

    // the warm-up pin proves the whole path (API, pinset gossip, trackers) works before anything is timed
    const warm = await httpRequest(a.rest, 'POST', `/pins/ipfs/${blocks[0].cid}`, { signal })
    if (warm.status !== 200) throw new Error(`warm-up pin: POST /pins/ipfs/{cid} answered ${warm.status}: ${warm.body.toString()}`)
    await Promise.all(peers.map(async p => {
      await waitFor(async () => {
        const res = await httpRequest(p.rest, 'GET', `/pins/${blocks[0].cid}?local=true`, { signal })
        if (res.status !== 200) return false
        const info = JSON.parse(res.body.toString()) as { peer_map: Record<string, { status: string }> }
        return Object.values(info.peer_map).some(s => s.status === 'pinned')
      }, { timeoutMs: 30_000, signal, message: `the warm-up pin did not reach ${p.name} as pinned`, intervalMs: 100 })
    }))
    log('warm-up pin is pinned on every peer')

    // baseline: the no-op request, same client, same concurrency, connections already open
    const health = async (): Promise<void> => {
      const res = await httpRequest(a.rest, 'GET', '/health', { agent, signal })
      if (res.status !== 204) throw new Error(`GET /health answered ${res.status}`)
    }
    await closedLoop(o.concurrency * 4, o.concurrency, health, signal)
    const baseline = await closedLoop(o.pins, o.concurrency, health, signal)
    const baseRate = o.pins / baseline.seconds
    log(`baseline: ${formatNumber(baseRate)} req/s GET /health`)

    const idleRss = await Promise.all(peers.map(async p => await p.rss()))
    if (o.cpuProf) await Promise.all(peers.map(async p => { await p.startCpuProfile() }))
    const before = await Promise.all(peers.map(async p => await p.stats()))
    const clientBefore = process.cpuUsage()
    const sampler = sampleRss(peers.map(p => async () => await p.rss()))

    // the measured run
    let refused = 0
    let firstRefusal = ''
    const pins = await closedLoop(o.pins, o.concurrency, async i => {
      const res = await httpRequest(a.rest, 'POST', `/pins/ipfs/${blocks[i + 1].cid}`, { agent, signal })
      if (res.status !== 200) {
        refused++
        if (firstRefusal === '') firstRefusal = `${res.status} ${res.body.toString().slice(0, 300)}`
      }
    }, signal)
    if (refused > 0) throw new Error(`${refused} of ${o.pins} pins were refused; the first: ${firstRefusal}`)
    const pinRate = o.pins / pins.seconds
    log(`posted ${o.pins} pins in ${pins.seconds.toFixed(2)} s (${formatNumber(pinRate)} pins/s); waiting for convergence`)

    const progress = new Map<string, string>()
    const ticker = setInterval(() => {
      log(`converging: ${peers.map(p => `${p.name} ${progress.get(p.name) ?? '...'}`).join(', ')}`)
    }, 2000)
    let conv: Convergence[]
    try {
      const deadline = Date.now() + o.timeoutMs
      conv = await Promise.all(peers.map(async p =>
        await converge(p, target, pins.lastAnswerAt, { pollMs: o.pollMs, deadline, signal, progress })))
    } finally {
      clearInterval(ticker)
    }
    const clientCpu = process.cpuUsage(clientBefore)
    const after = await Promise.all(peers.map(async p => await p.stats()))
    if (o.cpuProf) await Promise.all(peers.map(async p => { await p.stopCpuProfile(join(profDir, `${p.name}.cpuprofile`)) }))
    const peakRss = await sampler.stop()
    const finalRss = await Promise.all(peers.map(async p => await p.rss()))
    // after the figures above, so that the listings' cost is in none of them
    const listingS: number[] = []
    for (const p of peers) listingS.push(await verify(p, target, signal))
    let lists: ListPhase | undefined
    if (o.listStreams > 0) {
      log(`list phase: ${o.listStreams} concurrent GET /allocations on peer-0`)
      lists = await listPhase(peers, target, o, ctx)
    }

    const last = (key: 'allocatedMs' | 'pinnedMs'): Convergence => conv.reduce((x, y) => y[key] > x[key] ? y : x)
    const allocatedS = last('allocatedMs').allocatedMs / 1000
    const pinnedS = last('pinnedMs').pinnedMs / 1000
    const metrics: Metric[] = [
      { key: 'pins_accepted_rate', label: 'pins accepted by the API (peer-0)', value: pinRate, unit: 'pins/s' },
      { key: 'noop_rate', label: 'no-op request rate (GET /health, baseline)', value: baseRate, unit: 'req/s' },
      {
        key: 'accepted_vs_noop',
        label: 'pins accepted / no-op requests',
        value: pinRate / baseRate,
        unit: 'ratio',
        digits: 3,
        baseline: `${formatNumber(baseRate)} req/s GET /health`
      },
      { key: 'pin_post_seconds', label: `time to post ${o.pins} pins`, value: pins.seconds, unit: 's' },
      { key: 'pin_latency_p50', label: 'pin request latency p50', value: quantile(pins.latenciesMs, 0.5), unit: 'ms' },
      { key: 'pin_latency_p99', label: 'pin request latency p99', value: quantile(pins.latenciesMs, 0.99), unit: 'ms' },
      { key: 'noop_latency_p50', label: 'no-op request latency p50', value: quantile(baseline.latenciesMs, 0.5), unit: 'ms' },
      { key: 'pinsets_converged_after_last_answer', label: `every pinset (${o.peers}) holds every pin, after last answer`, value: allocatedS, unit: 's' },
      { key: 'pinned_everywhere_after_last_answer', label: 'every pin `pinned` on every peer, after last answer', value: pinnedS, unit: 's' },
      { key: 'status_listing_seconds', label: `GET /pins?local=true&filter=pinned (${target} pins), peer-0 at rest`, value: listingS[0], unit: 's' },
      ...peers.flatMap((p, i): Metric[] => [
        { key: `rss_idle_${p.name}`, label: `RSS ${p.name}, idle before the run`, value: (idleRss[i] ?? NaN) / MiB, unit: 'MiB', digits: 1 },
        { key: `rss_peak_${p.name}`, label: `RSS ${p.name}, peak during the run`, value: peakRss[i] / MiB, unit: 'MiB', digits: 1 },
        { key: `rss_after_${p.name}`, label: `RSS ${p.name}, after convergence`, value: (finalRss[i] ?? NaN) / MiB, unit: 'MiB', digits: 1 }
      ]),
      ...peers.map((p, i): Metric => ({
        key: `cpu_${p.name}`, label: `CPU time ${p.name}, post + converge`, value: cpuSeconds(before[i], after[i]), unit: 's'
      })),
      {
        key: 'cpu_per_pin',
        label: 'CPU time of all peers per pin, post + converge',
        value: before.reduce((sum, b, i) => sum + cpuSeconds(b, after[i]), 0) * 1000 / o.pins,
        unit: 'ms'
      },
      { key: 'cpu_client', label: 'CPU time load generator, post + converge', value: (clientCpu.user + clientCpu.system) / 1e6, unit: 's' },
      ...(lists !== undefined ? listMetrics(lists) : [])
    ]
    const notes = [
      'every pinset also holds 1 warm-up pin, posted and pinned everywhere before the timing starts',
      `convergence is probed in each peer process every ${o.pollMs} ms (pinset size, then Helia's pin records) and ` +
        'checked over REST afterwards (GET /allocations, GET /pins?local=true&filter=pinned); the figures are upper ' +
        `bounds, late by up to ${(last('allocatedMs').allocatedSlackMs / 1000).toFixed(2)} s and ${(last('pinnedMs').pinnedSlackMs / 1000).toFixed(2)} s`
    ]
    const cpuPerPin = metrics.find(m => m.key === 'cpu_per_pin')?.value ?? NaN
    const recorded = parseRecordedIngest(await readFile(new URL('../../README.md', import.meta.url), 'utf8').catch(() => ''))
    const comparable = o.pins === RECORDED_PARAMS.pins && o.peers === RECORDED_PARAMS.peers && o.concurrency === RECORDED_PARAMS.concurrency
    let regressions: string[] = []
    if (recorded == null) notes.push('the README has no ingest figures to compare with')
    else if (!comparable) notes.push(`not compared with the README's figures (measured with --pins ${RECORDED_PARAMS.pins} --peers ${RECORDED_PARAMS.peers} --concurrency ${RECORDED_PARAMS.concurrency})`)
    else regressions = ingestRegressions(recorded, { pinnedS, cpuPerPinMs: cpuPerPin })
    if (lists !== undefined) {
      notes.push(`list phase: after every figure above; ${formatNumber(lists.pins - target, 0)} more pins written straight into peer-0's pinset ` +
        '(allocated outside the cluster: no fetches), every answer read whole; rest.max_heavy_requests raised to the number of lists so that all run at once')
    }
    if (o.cpuProf) notes.push(`CPU profiles (peer-0 is the one pinned through): ${profDir}`)
    if (o.keep || o.cpuProf) notes.push(`peer folders kept in ${root.path}`)
    return {
      title: `ingest: ${o.peers} ${o.peers === 1 ? 'peer' : 'peers'}, ${formatNumber(o.pins, 0)} pins posted to peer-0 over REST, ${o.concurrency} in flight (keep-alive)`,
      params: { pins: o.pins, concurrency: o.concurrency, peers: o.peers, poll_ms: o.pollMs, list_pins: o.listPins, list_streams: o.listStreams },
      metrics,
      goals: [
        { text: `>= ${formatNumber(GOAL_RATE, 0)} pins/s accepted (${formatNumber(pinRate)})`, met: pinRate >= GOAL_RATE },
        {
          text: `all pinsets converged <= ${GOAL_CONVERGE_S} s after the last answer (${allocatedS.toFixed(2)} s)`,
          met: allocatedS <= GOAL_CONVERGE_S
        },
        ...(lists !== undefined ? listGoals(lists) : [])
      ],
      notes,
      regressions
    }
  } finally {
    agent.destroy()
    log('stopping the peers')
    await stopAll(peers)
    if (!o.keep && !o.cpuProf) await root.cleanup()
  }
}

export const ingest: Benchmark = {
  description: 'A cluster (default 3 peers) with the content already in every blockstore; N pins posted over REST ' +
    'to peer-0 with C in flight. Prints the accepted rate against GET /health, seconds until every pinset holds ' +
    'every pin and until every pin is `pinned` everywhere, and RSS and CPU per peer; then GET /health latency ' +
    'and the list MB/s while 20 GET /allocations of 300k pins stream from peer-0.',
  usage: USAGE,
  run
}
