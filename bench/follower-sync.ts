// `follower-sync` (issue 3): a trusted peer holding N pins; a fresh follower joins. Seconds until its pinset
// equals the trusted peer's, catch-up bytes, RSS of both processes; against the baseline of the same join
// replaying every envelope (the follower refuses the checkpoint).
// Goal (issue): 1,000,000 pins synced in <= 60 s with RSS <= 1 GB per peer.
//
// The trusted peer is a whole daemon (bench/peer-process.ts) whose pins are written straight into its pinset
// (no REST), 1,000 per envelope, allocated to a peer outside the cluster so that no tracker fetches anything.
// Each follower is bench/follower-process.ts: libp2p + pinset only, since createPeer has no acceptCheckpoints
// knob; both followers are built the same way so that the comparison is fair.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { getHeapStatistics } from 'node:v8'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PinsetStats } from '../src/components.js'
import type { FollowerDone, FollowerMarks, FollowerParams } from './follower-process.js'
import {
  PEER_FLAGS, parseFlags, peerFlags, type PeerFlagValues, forkChild, formatNumber, freePorts, initBenchPeer, MiB, positiveInt, preparePeers, sampleRss, startPeerProcesses,
  stopAll, tempDir, waitFor, type BenchChild, type Benchmark, type BenchContext, type BenchReport, type ChildPeer,
  type Metric
} from './lib.js'
import type { PinsetDigest } from './pinset-data.js'

const USAGE = `  --pins N          pins the trusted peer holds (default 100000)
  --batch B         pins per envelope when loading them (default 1000)
  --skip-baseline   do not run the baseline join (replaying every envelope, no checkpoint)
  --heap-mb M       --max-old-space-size for every peer process (default: node's, printed under the table)
  --node-arg=FLAG   an extra node flag for every peer process, e.g. --node-arg=--max-semi-space-size=64 (repeatable)
  --timeout S       seconds a join may take before failing (default 600)
  --cpu-prof        write V8 CPU profiles of the followers and of the trusted peer over each join
  --keep            keep the peers' folders (path printed under the table)
  --verbose         show the peers' log lines on stderr`

const GOAL_PINS = 1_000_000
const GOAL_SECONDS = 60
const GOAL_RSS = 2 ** 30
const FOLLOWER_PROCESS = fileURLToPath(new URL('./follower-process.js', import.meta.url))

interface Options extends PeerFlagValues {
  pins: number
  batch: number
  skipBaseline: boolean
  heapMb?: number
  nodeArgs: string[]
  timeoutMs: number
}

function parseOptions (argv: string[]): Options {
  const values = parseFlags(argv, {
    pins: { type: 'string' },
    batch: { type: 'string' },
    'skip-baseline': { type: 'boolean' },
    'heap-mb': { type: 'string' },
    'node-arg': { type: 'string', multiple: true },
    timeout: { type: 'string' },
    ...PEER_FLAGS
  })
  return {
    pins: positiveInt('pins', values.pins, 100_000),
    batch: positiveInt('batch', values.batch, 1000),
    skipBaseline: values['skip-baseline'] ?? false,
    heapMb: values['heap-mb'] === undefined ? undefined : positiveInt('heap-mb', values['heap-mb'], 0),
    nodeArgs: values['node-arg'] ?? [],
    timeoutMs: positiveInt('timeout', values.timeout, 600) * 1000,
    ...peerFlags(values)
  }
}

interface Join {
  label: string
  /** From forking the follower to its pinset holding every pin (digest-checked). */
  syncedS: number
  /** ... to the catch-up stream that brought them finishing (checkpoint or envelopes written to level too). */
  settledS: number
  settled: boolean
  /** The follower's marks, as seconds since the fork. */
  at: Partial<Record<keyof FollowerMarks, number>>
  digest: PinsetDigest
  stats: PinsetStats
  trustedBytesOut: number
  peakRssFollower: number
  peakRssTrusted: number
  rssFollowerAfter: number
  heapUsedAtSync: number
  heapTotalAtSync: number
  externalAtSync: number
  retainedHeap: number
  streams: number
  /** What went wrong with catch-ups that did not complete (seconds since the fork). */
  incidents: string[]
}

interface Trusted { peer: ChildPeer }

/** One fresh follower joins; resolves once its catch-up finished and it has been stopped. */
async function joinFollower (label: string, dir: string, trusted: Trusted, o: Options, ctx: BenchContext, extra: {
  acceptCheckpoints: boolean, nodeArgs: string[], profDir?: string
}): Promise<Join> {
  const { log, signal } = ctx
  const params: FollowerParams = {
    expected: o.pins,
    acceptCheckpoints: extra.acceptCheckpoints,
    cpuProfile: extra.profDir === undefined ? undefined : join(extra.profDir, `${label}.cpuprofile`),
    settleTimeoutMs: o.timeoutMs,
    logLevel: o.verbose ? 'info' : 'warn'
  }
  const outBefore = await trustedStats(trusted.peer)
  if (extra.profDir !== undefined) await trusted.peer.startCpuProfile()
  let follower: BenchChild | undefined
  const sampler = sampleRss([async () => await trusted.peer.rss(), async () => await follower?.rss()])
  const forkedAt = performance.timeOrigin + performance.now()
  follower = forkChild(FOLLOWER_PROCESS, [dir, JSON.stringify(params)], {
    name: label, nodeArgs: ['--expose-gc', ...extra.nodeArgs], output: o.verbose ? (name, line) => { log(`${name}: ${line}`) } : undefined
  })
  const f = follower
  // one progress request at a time: a follower busy applying answers late, and must not get a pile of them
  let asking = false
  let lastProgress = 'no progress report yet'
  const ticker = setInterval(() => {
    if (asking) return
    asking = true
    f.request<{ size: number, bytesIn: number }>('progress', {}, 'report its progress', { timeoutMs: 600_000, signal }).then(p => {
      lastProgress = `${formatNumber(p.size, 0)}/${formatNumber(o.pins, 0)} pins, ${formatNumber(p.bytesIn / MiB, 1)} MiB in, ` +
        `${((performance.timeOrigin + performance.now() - forkedAt) / 1000).toFixed(1)} s after its start`
      log(`${label}: ${lastProgress}`)
    }, () => {}).finally(() => { asking = false })
  }, 5000)
  try {
    try {
      await f.next('finished', `hold all ${o.pins} pins and finish its catch-up`, o.timeoutMs, signal)
    } catch (err) {
      if (signal.aborted) throw err
      throw new Error(`${(err as Error).message}\n(its last progress report: ${lastProgress})`)
    }
    const [peakTrusted, peakFollower] = await sampler.stop()
    const done = await f.next<FollowerDone>('done', 'digest its pinset', 600_000, signal)
    const rssAfter = await f.rss() ?? done.memory.rss
    if (extra.profDir !== undefined) await trusted.peer.stopCpuProfile(join(extra.profDir, `trusted-during-${label}.cpuprofile`))
    const at: Join['at'] = {}
    for (const [k, ms] of Object.entries(done.marks) as Array<[keyof FollowerMarks, number]>) at[k] = (done.timeOrigin + ms - forkedAt) / 1000
    const sinceFork = (ms: number | undefined): string => ms === undefined ? '?' : ((done.timeOrigin + ms - forkedAt) / 1000).toFixed(1)
    if (at.synced === undefined) throw f.error('reported done without a synced mark')
    // compared with the trusted peer's digest after the joins (computing it decodes every pin, and its garbage
    // would count in the trusted peer's RSS during the joins)
    if (done.changesAfterSynced > 0 || done.digest.size !== o.pins) {
      throw f.error(`holds ${done.digest.size} pins (${done.changesAfterSynced} changes after it first held ${o.pins})`)
    }
    const outAfter = await trustedStats(trusted.peer)
    log(`${label}: pinset equal after ${at.synced.toFixed(2)} s, catch-up finished after ${(at.catch_up_finished ?? NaN).toFixed(2)} s`)
    return {
      label,
      syncedS: at.synced,
      settledS: at.catch_up_finished ?? at.synced + o.timeoutMs / 1000,
      settled: done.finished,
      at,
      digest: done.digest,
      stats: done.stats,
      trustedBytesOut: outAfter.sync_bytes_out - outBefore.sync_bytes_out,
      peakRssFollower: peakFollower,
      peakRssTrusted: peakTrusted,
      rssFollowerAfter: rssAfter,
      heapUsedAtSync: done.memoryAtSynced.heapUsed,
      heapTotalAtSync: done.memoryAtSynced.heapTotal,
      externalAtSync: done.memoryAtSynced.external,
      retainedHeap: done.retainedHeap ?? NaN,
      streams: done.streams.length,
      incidents: [
        ...done.streams.flatMap(x => x.error === undefined ? [] : [`a catch-up stream opened at ${sinceFork(x.opened)} s closed at ${sinceFork(x.closed)} s, ${x.error}`]),
        ...done.catchUpErrors
      ]
    }
  } finally {
    clearInterval(ticker)
    await sampler.stop()
    await f.stop()
  }
}

async function trustedStats (peer: ChildPeer): Promise<PinsetStats> {
  return (await peer.request<{ stats: PinsetStats }>('pinset-stats', {}, 'report its pinset stats', { timeoutMs: 60_000 })).stats
}

/** A follower's folder: its own identity, the shared cluster config (trusting and bootstrapping to the trusted peer only). */
async function prepareFollower (root: string, name: string, clusterFile: string): Promise<string> {
  const dir = join(root, name)
  const [port] = await freePorts(1)
  await initBenchPeer(dir, name, clusterFile, port)
  return dir
}

interface DaemonJoin {
  label: string
  /** From starting the daemon process to its pinset holding every pin (then digest-checked). */
  syncedS: number
  peakRssFollower: number
  peakRssTrusted: number
  digest: PinsetDigest
}

/**
 * A whole cairn daemon (what `cairn follow run` starts: IPFS, tracker, REST, pinning API, gateway, metrics) joins
 * as a follower; synced when its pinset holds every pin, polled every 100 ms.
 */
async function joinDaemon (label: string, dir: string, trusted: Trusted, o: Options, ctx: BenchContext, nodeArgs: string[]): Promise<DaemonJoin> {
  const { log, signal } = ctx
  let follower: ChildPeer | undefined
  const sampler = sampleRss([async () => await trusted.peer.rss(), async () => await follower?.rss()])
  const started = performance.now()
  try {
    ;[follower] = await startPeerProcesses([{ name: label, id: '', dir, swarm: '' }], {
      nodeArgs, output: o.verbose ? (name, line) => { log(`${name}: ${line}`) } : undefined, signal
    })
    const f = follower
    await waitFor(async () => (await f.progress({ timeoutMs: 600_000 })).pinset >= o.pins,
      { timeoutMs: o.timeoutMs, signal, intervalMs: 100, message: `${label} did not hold all ${o.pins} pins` })
    const syncedS = (performance.now() - started) / 1000
    const [peakRssTrusted, peakRssFollower] = await sampler.stop()
    const digest = await f.request<PinsetDigest>('pinset-digest', {}, 'digest its pinset', { timeoutMs: 600_000, signal })
    log(`${label}: all pins after ${syncedS.toFixed(2)} s, peak RSS ${formatNumber(peakRssFollower / MiB, 0)} MiB`)
    return { label, syncedS, peakRssFollower, peakRssTrusted, digest }
  } finally {
    await sampler.stop()
    if (follower !== undefined) await stopAll([follower])
  }
}

function joinMetrics (j: Join, key: string): Metric[] {
  const a = j.at
  const span = (from: number | undefined, to: number | undefined): number => from === undefined || to === undefined ? NaN : to - from
  const what = j.stats.checkpoints_loaded > 0 ? 'the checkpoint' : `${formatNumber(j.stats.envelopes_applied, 0)} envelopes`
  return [
    { key: `${key}_synced_seconds`, label: `${j.label}: pinset equal to the trusted peer's, from process start`, value: j.syncedS, unit: 's' },
    { key: `${key}_settled_seconds`, label: `${j.label}: catch-up finished (persisted), from process start`, value: j.settledS, unit: 's' },
    { key: `${key}_startup_seconds`, label: `${j.label}:   node start + imports + libp2p + pinset started`, value: a.pinset_started ?? NaN, unit: 's' },
    { key: `${key}_stream_seconds`, label: `${j.label}:   -> catch-up stream open`, value: span(a.pinset_started, a.stream_opened), unit: 's' },
    { key: `${key}_transfer_seconds`, label: `${j.label}:   -> serving peer sent all (${what})`, value: span(a.stream_opened, a.stream_remote_closed), unit: 's' },
    { key: `${key}_apply_seconds`, label: `${j.label}:   -> every pin in the pinset`, value: span(a.stream_remote_closed, a.synced), unit: 's' },
    { key: `${key}_persist_seconds`, label: `${j.label}:   -> catch-up finished`, value: j.settledS - j.syncedS, unit: 's' },
    { key: `${key}_sync_bytes_in`, label: `${j.label}: catch-up bytes received (sync_bytes_in)`, value: j.stats.sync_bytes_in / MiB, unit: 'MiB', digits: 1 },
    { key: `${key}_trusted_bytes_out`, label: `${j.label}: catch-up bytes sent by the trusted peer`, value: j.trustedBytesOut / MiB, unit: 'MiB', digits: 1 },
    { key: `${key}_catch_up_streams`, label: `${j.label}: catch-up streams opened`, value: j.streams, unit: '', digits: 0 },
    { key: `${key}_envelopes_applied`, label: `${j.label}: envelopes_applied`, value: j.stats.envelopes_applied, unit: '', digits: 0 },
    { key: `${key}_checkpoints_loaded`, label: `${j.label}: checkpoints_loaded`, value: j.stats.checkpoints_loaded, unit: '', digits: 0 },
    { key: `${key}_rss_peak_follower`, label: `${j.label}: RSS follower, peak during the join`, value: j.peakRssFollower / MiB, unit: 'MiB', digits: 1 },
    { key: `${key}_rss_after_follower`, label: `${j.label}: RSS follower, after the join`, value: j.rssFollowerAfter / MiB, unit: 'MiB', digits: 1 },
    { key: `${key}_heap_used_follower`, label: `${j.label}: heap used by the follower when synced`, value: j.heapUsedAtSync / MiB, unit: 'MiB', digits: 1 },
    { key: `${key}_heap_total_follower`, label: `${j.label}: heap reserved by the follower when synced (V8 heapTotal)`, value: j.heapTotalAtSync / MiB, unit: 'MiB', digits: 1 },
    { key: `${key}_external_follower`, label: `${j.label}: off-heap buffers of the follower when synced (external)`, value: j.externalAtSync / MiB, unit: 'MiB', digits: 1 },
    { key: `${key}_heap_retained_follower`, label: `${j.label}: heap retained by the follower after the join (full GC)`, value: j.retainedHeap / MiB, unit: 'MiB', digits: 1 },
    { key: `${key}_rss_peak_trusted`, label: `${j.label}: RSS trusted peer, peak during the join`, value: j.peakRssTrusted / MiB, unit: 'MiB', digits: 1 }
  ]
}

async function run (argv: string[], ctx: BenchContext): Promise<BenchReport> {
  const o = parseOptions(argv)
  const { log, signal } = ctx
  const root = await tempDir('cairn-bench-follower-sync-')
  const profDir = join(root.path, 'cpu-profiles')
  const nodeArgs = [...(o.heapMb === undefined ? [] : [`--max-old-space-size=${o.heapMb}`]), ...o.nodeArgs]
  let trustedPeer: ChildPeer | undefined
  try {
    log(`creating the trusted peer and 2 follower folders in ${root.path}`)
    const [prepared] = await preparePeers({ peers: 1, root: root.path, trusted: 1 })
    const clusterFile = join(root.path, 'cluster.json')
    const followerDir = await prepareFollower(root.path, 'follower-checkpoint', clusterFile)
    const baselineDir = o.skipBaseline ? undefined : await prepareFollower(root.path, 'follower-replay', clusterFile)
    const daemonDir = await prepareFollower(root.path, 'follower-daemon', clusterFile)
    if (o.cpuProf) await mkdir(profDir)
    ;[trustedPeer] = await startPeerProcesses([prepared], {
      nodeArgs, output: o.verbose ? (name, line) => { log(`${name}: ${line}`) } : undefined, signal
    })
    const peer = trustedPeer
    log(`trusted peer running: pid ${peer.pid}`)

    // a valid peer id that no cluster member has: every pin is `remote` everywhere, nothing is fetched
    const ghost = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const loadSampler = sampleRss([async () => await peer.rss()])
    let t = performance.now()
    const loaded = await peer.request<{ make_ms: number, put_ms: number, envelopes: number }>('load-pins',
      { count: o.pins, batch: o.batch, allocation: ghost }, `load ${o.pins} pins`, {
        timeoutMs: Math.max(300_000, o.pins * 2),
        signal,
        onProgress: msg => { log(`loading: ${formatNumber(msg.done as number, 0)}/${formatNumber(o.pins, 0)} pins, ${((performance.now() - t) / 1000).toFixed(1)} s`) }
      })
    const loadS = (performance.now() - t) / 1000
    log(`loaded ${formatNumber(o.pins, 0)} pins in ${loaded.envelopes} envelopes in ${loadS.toFixed(1)} s; waiting for its tracker to go idle`)
    t = performance.now()
    await waitFor(async () => {
      const p = await peer.progress()
      return p.pinset === o.pins && p.trackerQueue === 0
    }, { timeoutMs: Math.max(120_000, o.pins), signal, message: 'the trusted peer\'s tracker did not go idle', intervalMs: 200 })
    const trackerS = (performance.now() - t) / 1000
    const cp = await peer.request<{ ms: number, bytes: number }>('checkpoint', {}, 'make a checkpoint', { timeoutMs: 600_000, signal })
    log(`checkpoint: ${formatNumber(cp.bytes / MiB, 1)} MiB in ${(cp.ms / 1000).toFixed(2)} s`)
    const [peakLoadRss] = await loadSampler.stop()
    const trustedIdleRss = await peer.rss() ?? NaN
    const trusted: Trusted = { peer }

    const joins: Join[] = []
    const profile = o.cpuProf ? profDir : undefined
    log('follower-checkpoint joins (checkpoints accepted)')
    joins.push(await joinFollower('follower-checkpoint', followerDir, trusted, o, ctx, { acceptCheckpoints: true, nodeArgs, profDir: profile }))
    if (baselineDir !== undefined) {
      log('follower-replay joins (baseline: refuses checkpoints, replays every envelope)')
      joins.push(await joinFollower('follower-replay', baselineDir, trusted, o, ctx, { acceptCheckpoints: false, nodeArgs, profDir: profile }))
    }
    log('follower-daemon joins (a whole cairn daemon, as `cairn follow run` starts)')
    const daemon = await joinDaemon('follower-daemon', daemonDir, trusted, o, ctx, nodeArgs)
    const digest = await peer.request<PinsetDigest>('pinset-digest', {}, 'digest its pinset', { timeoutMs: 600_000, signal })
    for (const j of [...joins, daemon]) {
      if (j.digest.size !== digest.size || j.digest.digest !== digest.digest) {
        throw new Error(`${j.label} holds ${j.digest.size} pins with digest ${j.digest.digest}, the trusted peer ${digest.size} with digest ${digest.digest}: the pinsets differ`)
      }
    }
    const [cpJoin, replay] = joins
    const metrics: Metric[] = [
      { key: 'pins', label: 'pins held by the trusted peer', value: o.pins, unit: 'pins', digits: 0 },
      { key: 'envelopes', label: 'envelopes they were written in', value: loaded.envelopes, unit: '', digits: 0 },
      { key: 'load_seconds', label: 'trusted peer: pinset.put of every pin (one batch at a time)', value: loadS, unit: 's' },
      { key: 'load_rate', label: 'trusted peer: load rate', value: o.pins / loadS, unit: 'pins/s' },
      { key: 'load_put_share', label: 'trusted peer: share of it in pinset.put (rest: making CIDs)', value: loaded.put_ms / (loaded.put_ms + loaded.make_ms), unit: 'ratio', digits: 2 },
      { key: 'tracker_idle_seconds', label: 'trusted peer: then until its tracker queue was empty', value: trackerS, unit: 's' },
      { key: 'checkpoint_seconds', label: 'trusted peer: pinset.checkpoint()', value: cp.ms / 1000, unit: 's' },
      { key: 'checkpoint_bytes', label: 'trusted peer: checkpoint state size', value: cp.bytes / MiB, unit: 'MiB', digits: 1 },
      { key: 'rss_peak_trusted_load', label: 'RSS trusted peer, peak during load + checkpoint', value: peakLoadRss / MiB, unit: 'MiB', digits: 1 },
      { key: 'rss_idle_trusted', label: 'RSS trusted peer, idle before the joins', value: trustedIdleRss / MiB, unit: 'MiB', digits: 1 },
      { key: 'digest_ms_trusted', label: 'digest of the trusted pinset', value: digest.ms, unit: 'ms' },
      ...joinMetrics(cpJoin, 'checkpoint'),
      ...(replay !== undefined ? joinMetrics(replay, 'replay') : []),
      { key: 'daemon_synced_seconds', label: 'follower-daemon (whole daemon): every pin in its pinset, from process start', value: daemon.syncedS, unit: 's' },
      { key: 'daemon_rss_peak_follower', label: 'follower-daemon: RSS follower, peak during the join', value: daemon.peakRssFollower / MiB, unit: 'MiB', digits: 1 },
      { key: 'daemon_rss_peak_trusted', label: 'follower-daemon: RSS trusted peer, peak during the join', value: daemon.peakRssTrusted / MiB, unit: 'MiB', digits: 1 }
    ]
    if (replay !== undefined) {
      metrics.push({
        key: 'replay_vs_checkpoint',
        label: 'baseline seconds / checkpoint seconds (pinset equal)',
        value: replay.syncedS / cpJoin.syncedS,
        unit: 'ratio',
        digits: 2,
        baseline: `${replay.syncedS.toFixed(2)} s replaying ${formatNumber(replay.stats.envelopes_applied, 0)} envelopes`
      })
    }
    const peakPeer = Math.max(cpJoin.peakRssFollower, cpJoin.peakRssTrusted, daemon.peakRssFollower, daemon.peakRssTrusted)
    const slowest = Math.max(cpJoin.syncedS, daemon.syncedS)
    const scale = o.pins === GOAL_PINS ? '' : ` (the goal is stated for ${formatNumber(GOAL_PINS, 0)} pins; this run has ${formatNumber(o.pins, 0)})`
    const notes = [
      `heap limit of every peer process: ${o.heapMb !== undefined ? `${o.heapMb} MiB (--max-old-space-size)` : `node's default, ${formatNumber(getHeapStatistics().heap_size_limit / MiB, 0)} MiB`}` +
        (o.nodeArgs.length > 0 ? `; extra node flags: ${o.nodeArgs.join(' ')}` : ''),
      'the trusted peer is a whole daemon; follower-checkpoint and follower-replay are libp2p + pinset only (no IPFS, ' +
        'tracker, REST: createPeer has no acceptCheckpoints knob, and their catch-up streams are timed from inside), ' +
        'follower-daemon is a whole daemon (checkpoints accepted, as by default); each starts fresh, bootstrapping to the ' +
        'trusted peer only (dht profile lan, 127.0.0.1)',
      'seconds are from forking the follower process (node start and imports included) to its pinset holding all pins ' +
        'with a digest equal to the trusted peer\'s: an order-independent sum of SHA-1 over each pin\'s cid, name, ' +
        'allocations, replication and timestamp, over pinset.list() in each process (the follower\'s after its catch-up, ' +
        'checking that its pinset did not change after it first held every pin)',
      'RSS: /proc/<pid>/status VmRSS sampled every 100 ms from the fork until the catch-up finished'
    ]
    if (cpJoin.stats.checkpoints_loaded === 0) {
      notes.push(`follower-checkpoint got no checkpoint: ${formatNumber(loaded.envelopes, 0)} envelopes missing is within the serving peer's ` +
        'checkpointThreshold (default 256 envelopes), so it was sent envelopes')
    }
    for (const j of joins) for (const incident of j.incidents) notes.push(`${j.label}: ${incident}`)
    if (!joins.every(j => j.settled)) notes.push('a catch-up did not finish within --timeout after the pinset was complete: its "finished" figure is that timeout')
    if (o.cpuProf) notes.push(`CPU profiles: ${profDir}`)
    if (o.keep || o.cpuProf) notes.push(`peer folders kept in ${root.path}`)
    return {
      title: `follower-sync: a fresh follower joins a trusted peer holding ${formatNumber(o.pins, 0)} pins ` +
        `(${formatNumber(loaded.envelopes, 0)} envelopes of ${formatNumber(o.batch, 0)})${replay !== undefined ? ', checkpoint vs replay' : ''}`,
      params: { pins: o.pins, batch: o.batch, skip_baseline: o.skipBaseline, heap_mb: o.heapMb ?? null, node_args: o.nodeArgs },
      metrics,
      goals: [
        { text: `pinset synced <= ${GOAL_SECONDS} s (slowest of follower-checkpoint and follower-daemon: ${slowest.toFixed(2)} s)${scale}`, met: slowest <= GOAL_SECONDS },
        { text: `RSS <= 1 GiB per peer during the checkpoint joins (peak ${formatNumber(peakPeer / MiB, 0)} MiB)${scale}`, met: peakPeer <= GOAL_RSS }
      ],
      notes
    }
  } finally {
    log('stopping the peers')
    if (trustedPeer !== undefined) await stopAll([trustedPeer])
    if (!o.keep && !o.cpuProf) await root.cleanup()
  }
}

export const followerSync: Benchmark = {
  description: 'A trusted peer holding N pins (default 100,000); a fresh follower joins. Prints seconds until its ' +
    'pinset equals the trusted peer\'s, catch-up bytes and RSS of both peers, against the baseline of the same join ' +
    'replaying every envelope without a checkpoint.',
  usage: USAGE,
  run
}
