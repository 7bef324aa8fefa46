// Shared benchmark helpers: the Benchmark contract the runner dispatches to, the one-table report, the machine
// line, temp dirs and free ports, a keep-alive HTTP load generator, RSS/CPU sampling, and N-peer clusters on
// 127.0.0.1 (child processes, so that RSS and CPU are per peer; or in-process when one total is enough).
import { fork } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import http, { type Agent, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http'
import os from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { initPeer, loadConfig, parseClusterConfig, type ClusterConfigInput, type LoadedConfig } from '../src/config/index.js'
import { createLogger } from '../src/logger.js'
import { createPeer, type CairnPeer } from '../src/peer.js'
import { freePorts, sleep, tempDir, waitFor } from '../test/util.js'
import type { HeliaProcessInit, HeliaReady } from './helia-process.js'

// ---------------------------------------------------------------------------------------------------------
// The contract between bench/run.ts and each bench/<name>.ts

/** Bad command line: the runner prints the message and the usage, and exits 2. */
export class BenchUsageError extends Error {
  static override name = 'BenchUsageError'
  override name = 'BenchUsageError'
}

export interface BenchContext {
  /** Progress lines for humans; go to stderr so that --json output stays clean. */
  log: (line: string) => void
  /** Aborted on SIGINT/SIGTERM: stop, clean up, return or throw. */
  signal: AbortSignal
}

/** One row of the table: `key` names it in --json output. */
export interface Metric {
  key: string
  label: string
  value: number
  unit: string
  /** Digits after the point (default: 0 from 100 up, 1 from 10, else 2). */
  digits?: number
  /** For ratios: what the figure is measured against, e.g. "12,345 req/s GET /health". */
  baseline?: string
}

export interface Goal {
  text: string
  met: boolean
}

export interface BenchReport {
  /** One line saying what ran, e.g. "ingest: 3 peers, 5,000 pins, 64 in flight". */
  title: string
  params: Record<string, unknown>
  metrics: Metric[]
  goals?: Goal[]
  /** Extra lines printed under the table (where profiles were written, ...). */
  notes?: string[]
  /** Figures worse than the recorded ones by more than noise: printed loudly, and the run exits 1. */
  regressions?: string[]
}

export interface Benchmark {
  description: string
  /** Flag help, one flag a line. */
  usage: string
  run(argv: string[], ctx: BenchContext): Promise<BenchReport>
}

// ---------------------------------------------------------------------------------------------------------
// Output

export interface MachineInfo {
  cores: number
  cpu_model: string
  total_ram_bytes: number
  node: string
  platform: string
}

export function machineInfo (): MachineInfo {
  const cpus = os.cpus()
  return {
    cores: cpus.length,
    cpu_model: cpus[0]?.model.trim().replace(/\s+/g, ' ') ?? 'unknown',
    total_ram_bytes: os.totalmem(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`
  }
}

export function formatMachine (m: MachineInfo): string {
  return `machine: ${m.cores} cores, ${m.cpu_model}, ${(m.total_ram_bytes / 2 ** 30).toFixed(1)} GiB RAM, Node ${m.node}, ${m.platform}`
}

export function formatNumber (value: number, digits?: number): string {
  if (!Number.isFinite(value)) return String(value)
  const d = digits ?? (Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2)
  return value.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d })
}

/** The one table: metric, value (right-aligned), unit, baseline; then goals, notes and the machine line. */
export function formatReport (report: BenchReport, machine: MachineInfo = machineInfo()): string {
  const header = ['metric', 'value', 'unit', 'baseline']
  const rows = report.metrics.map(m => [m.label, formatNumber(m.value, m.digits), m.unit, m.baseline ?? ''])
  const width = header.map((h, i) => Math.max(h.length, ...rows.map(r => r[i].length)))
  const line = (cells: string[]): string => cells
    .map((c, i) => i === 1 ? c.padStart(width[i]) : c.padEnd(width[i]))
    .join('  ')
    .trimEnd()
  const out = [report.title, '', line(header), line(width.map(w => '-'.repeat(w))), ...rows.map(line), '']
  for (const goal of report.goals ?? []) out.push(`goal ${goal.met ? 'met    ' : 'NOT met'}  ${goal.text}`)
  for (const note of report.notes ?? []) out.push(note)
  for (const r of report.regressions ?? []) out.push(`REGRESSION  ${r}`)
  out.push(formatMachine(machine))
  return out.join('\n') + '\n'
}

export function reportJson (name: string, report: BenchReport, machine: MachineInfo = machineInfo()): unknown {
  return {
    benchmark: name,
    title: report.title,
    params: report.params,
    metrics: Object.fromEntries(report.metrics.map(m => [m.key, {
      label: m.label, value: m.value, unit: m.unit, ...(m.baseline != null ? { baseline: m.baseline } : {})
    }])),
    goals: report.goals ?? [],
    notes: report.notes ?? [],
    regressions: report.regressions ?? [],
    machine
  }
}

// ---------------------------------------------------------------------------------------------------------
// Flags

/** The flags of every benchmark that runs peer processes. */
export const PEER_FLAGS = { 'cpu-prof': { type: 'boolean' }, keep: { type: 'boolean' }, verbose: { type: 'boolean' } } as const

/** The command line against the flags given: strict, no positionals, a bad one a BenchUsageError. */
export function parseFlags<T extends NonNullable<ParseArgsConfig['options']>> (argv: string[], options: T): ReturnType<typeof parseArgs<{ args: string[], options: T, strict: true, allowPositionals: false }>>['values'] {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values
  } catch (err) {
    throw new BenchUsageError((err as Error).message)
  }
}

/** What PEER_FLAGS say. */
export interface PeerFlagValues { cpuProf: boolean, keep: boolean, verbose: boolean }

export function peerFlags (values: { 'cpu-prof'?: boolean, keep?: boolean, verbose?: boolean }): PeerFlagValues {
  return { cpuProf: values['cpu-prof'] ?? false, keep: values.keep ?? false, verbose: values.verbose ?? false }
}

/** A positive integer flag value; BenchUsageError names the flag. */
export function positiveInt (flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n <= 0) throw new BenchUsageError(`--${flag} must be a positive integer, got "${value}"`)
  return n
}

/** A flag value that may be 0 (to turn a phase off); BenchUsageError names the flag. */
export function nonNegativeInt (flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 0) throw new BenchUsageError(`--${flag} must be an integer >= 0, got "${value}"`)
  return n
}

// ---------------------------------------------------------------------------------------------------------
// Temp dirs, ports, waiting: the test kit's

export { freePorts, sleep, tempDir, waitFor }

// ---------------------------------------------------------------------------------------------------------
// HTTP

export interface HttpTarget { host: string, port: number }

export interface HttpResponse {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

/** A keep-alive agent allowing `sockets` connections per host (the client concurrency). */
export function keepAliveAgent (sockets: number): Agent {
  return new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets })
}

/** One request, body read whole. Rejects on network errors and on timeout (default 30 s), not on statuses. */
export async function httpRequest (target: HttpTarget, method: string, path: string, options: {
  agent?: Agent
  body?: Buffer | string
  headers?: OutgoingHttpHeaders
  signal?: AbortSignal
  timeoutMs?: number
} = {}): Promise<HttpResponse> {
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 30_000)
  const signal = options.signal != null ? AbortSignal.any([options.signal, timeout]) : timeout
  const body = options.body ?? ''
  return await new Promise<HttpResponse>((resolve, reject) => {
    const req = http.request({
      host: target.host,
      port: target.port,
      method,
      path,
      agent: options.agent,
      signal,
      // an explicit length: a bodyless POST would otherwise go out chunked
      headers: { 'Content-Length': Buffer.byteLength(body), ...options.headers }
    }, res => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }) })
      res.on('error', reject)
    })
    req.on('error', err => {
      reject(signal.aborted && timeout.aborted ? new Error(`${method} ${path}: no answer within ${(options.timeoutMs ?? 30_000) / 1000} s`) : err)
    })
    req.end(body)
  })
}

/** Lines of an NDJSON body, without parsing them. */
export function countLines (body: Buffer): number {
  let n = 0
  for (let i = body.indexOf(10); i !== -1; i = body.indexOf(10, i + 1)) n++
  return n
}

export interface LoadResult {
  requests: number
  /** From the first request sent to the last answer received. */
  seconds: number
  /** performance.now() of the first send and of the last answer. */
  startedAt: number
  lastAnswerAt: number
  /** Per-request latencies, ms, sorted ascending. */
  latenciesMs: Float64Array
}

/**
 * A closed loop: `concurrency` workers each send the next request as soon as their previous one is answered,
 * until `total` have been answered. `task(i)` sends request i and throws if its answer is wrong.
 */
export async function closedLoop (total: number, concurrency: number, task: (i: number) => Promise<void>,
  signal?: AbortSignal): Promise<LoadResult> {
  const latencies = new Float64Array(total)
  let next = 0
  const startedAt = performance.now()
  let lastAnswerAt = startedAt
  let failed = false
  const worker = async (): Promise<void> => {
    while (next < total && !failed) {
      signal?.throwIfAborted()
      const i = next++
      const t = performance.now()
      try {
        await task(i)
      } catch (err) {
        failed = true // the other workers stop after their current request
        throw err
      }
      lastAnswerAt = performance.now()
      latencies[i] = lastAnswerAt - t
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker))
  latencies.sort()
  return { requests: total, seconds: (lastAnswerAt - startedAt) / 1000, startedAt, lastAnswerAt, latenciesMs: latencies }
}

/** The q-quantile (0..1) of sorted values. */
export function quantile (sorted: Float64Array | number[], q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
}

/** "min-max" of values, each with `digits` decimals (how the benchmarks print a spread over rounds). */
export function spread (values: number[], digits: number): string {
  return `${Math.min(...values).toFixed(digits)}-${Math.max(...values).toFixed(digits)}`
}

/** The median of values (the mean of the two middle ones for an even count); NaN for none. */
export function median (values: number[]): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

// ---------------------------------------------------------------------------------------------------------
// Memory and CPU

/** VmRSS of a process from /proc (Linux), in bytes; undefined where /proc is not there. */
export async function procRss (pid: number): Promise<number | undefined> {
  let text: string
  try {
    text = await readFile(`/proc/${pid}/status`, 'utf8')
  } catch {
    return undefined
  }
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text)
  return m == null ? undefined : Number(m[1]) * 1024
}

export interface RssSampler {
  /** Stops sampling; resolves with the highest RSS seen per source, in bytes (NaN if never read). */
  stop(): Promise<number[]>
}

/** Reads each source every intervalMs and keeps the maximum; a source may read undefined (skipped). */
export function sampleRss (sources: Array<() => Promise<number | undefined>>, intervalMs = 100): RssSampler {
  const peaks = sources.map(() => NaN)
  const read = async (): Promise<void> => {
    await Promise.all(sources.map(async (source, i) => {
      const rss = await source().catch(() => undefined)
      if (rss !== undefined && !(rss <= peaks[i])) peaks[i] = rss
    }))
  }
  let running = read()
  const timer = setInterval(() => { running = running.then(read) }, intervalMs)
  return {
    async stop () {
      clearInterval(timer)
      await running
      await read()
      return peaks
    }
  }
}

export const MiB = 2 ** 20

// ---------------------------------------------------------------------------------------------------------
// Clusters of peers on 127.0.0.1

export interface ClusterSetup {
  peers: number
  /** Root folder: peers go in <root>/peer-<i>, the shared cluster config in <root>/cluster.json. */
  root: string
  /** Cluster config settings beside the generated trusted_peers and bootstrap (default: name cairn-bench, dht lan). */
  cluster?: Partial<ClusterConfigInput>
  /** Peers [0, trusted) are trusted (default: all); the others are followers. */
  trusted?: number
}

export interface PreparedPeer {
  name: string
  id: string
  dir: string
  swarm: string
}

/**
 * Creates the peer folders and one shared cluster config trusting the first `trusted` peers, every peer
 * bootstrapping to all the others. Ports: swarm on free ports picked now, REST (and the pinning API, gateway and
 * metrics listeners) on port 0 (resolved at start).
 */
/**
 * One peer folder joining the cluster of `clusterFile`: swarm on 127.0.0.1:`swarmPort`, REST and the other
 * listeners on any free port (several peers share the host). Returns the peer id.
 */
export async function initBenchPeer (dir: string, name: string, clusterFile: string, swarmPort: number): Promise<string> {
  const config = await initPeer(dir, {
    peername: name,
    cluster: clusterFile,
    rest_listen: '127.0.0.1:0',
    pinsvc_listen: '127.0.0.1:0',
    gateway_listen: '127.0.0.1:0',
    metrics_listen: '127.0.0.1:0',
    swarm_listen: [`/ip4/127.0.0.1/tcp/${swarmPort}`],
    env: {}
  })
  return config.identity.peerId.toString()
}

export async function preparePeers (setup: ClusterSetup): Promise<PreparedPeer[]> {
  const clusterFile = join(setup.root, 'cluster.json')
  const settings = { name: 'cairn-bench', ...setup.cluster, dht: { profile: 'lan' as const, ...setup.cluster?.dht } }
  // the peers' ids are only known once they exist, so they start from a config that trusts nobody
  await writeFile(clusterFile, JSON.stringify(settings, null, 2))
  const ports = await freePorts(setup.peers)
  const peers: PreparedPeer[] = []
  for (let i = 0; i < setup.peers; i++) {
    const name = `peer-${i}`
    const dir = join(setup.root, name)
    const id = await initBenchPeer(dir, name, clusterFile, ports[i])
    peers.push({ name, id, dir, swarm: `/ip4/127.0.0.1/tcp/${ports[i]}/p2p/${id}` })
  }
  const shared = {
    ...settings,
    trusted_peers: peers.slice(0, setup.trusted ?? setup.peers).map(p => p.id),
    bootstrap: peers.map(p => p.swarm)
  }
  parseClusterConfig(shared, clusterFile) // fail here, naming the key, rather than in every peer
  await writeFile(clusterFile, JSON.stringify(shared, null, 2))
  return peers
}

export interface PeerStats {
  /** process.memoryUsage().rss, bytes. */
  rss: number
  heapUsed: number
  /** process.cpuUsage() so far, microseconds. */
  cpuUserUs: number
  cpuSystemUs: number
  /** Block traffic over bitswap so far (IpfsNode.bitswapStats), when the peer's bitswap is recognised. */
  bitswap?: { blocksIn: number, bytesIn: number, blocksOut: number, bytesOut: number }
}

/** CPU seconds (user + system) a peer used between two of its stats. */
export const cpuSeconds = (before: PeerStats, after: PeerStats): number =>
  (after.cpuUserUs + after.cpuSystemUs - before.cpuUserUs - before.cpuSystemUs) / 1e6

export interface PeerProgress {
  /** Pins in the peer's pinset. */
  pinset: number
  /** Operations waiting in its tracker queue (not counting those in flight). */
  trackerQueue: number
  /** Roots pinned in its IPFS (Helia's pin records), when asked for. */
  pinned?: number
}

export interface ChildPeer extends PreparedPeer {
  pid: number
  rest: HttpTarget
  /** Resident set size: /proc VmRSS, else what the peer reports. */
  rss(): Promise<number | undefined>
  /** Asks the peer process for its memory and CPU figures. */
  stats(options?: { timeoutMs?: number }): Promise<PeerStats>
  /**
   * Reads the pinset size and tracker queue from the peer's components over IPC (and with `pinned`, counts
   * Helia's pin records): a clock for convergence that does not load the peer like a REST status listing.
   */
  progress(options?: { pinned?: boolean, timeoutMs?: number }): Promise<PeerProgress>
  /** Starts a V8 CPU profile in the peer process (sampling every 200 µs). */
  startCpuProfile(): Promise<void>
  /** Stops it and writes it to `file` (.cpuprofile: open in Chrome DevTools or speedscope). */
  stopCpuProfile(file: string): Promise<void>
  /** Any other IPC request bench/peer-process.ts answers (see BenchChild.request). */
  request: BenchChild['request']
  /** Stops the peer (SIGTERM, then SIGKILL after timeoutMs); resolves when the process has exited. */
  stop(options?: { timeoutMs?: number }): Promise<void>
}

export interface PeerProcessOptions {
  /** Extra node flags for the peer processes, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/p']. */
  nodeArgs?: string[]
  /** Extra environment (CAIRN_* overrides such as CAIRN_LOG_LEVEL). */
  env?: NodeJS.ProcessEnv
  /** Where the peers' stdout/stderr lines go (default: kept, shown only when a peer fails). */
  output?: (peer: string, line: string) => void
  startTimeoutMs?: number
  signal?: AbortSignal
}

/** The message bench/peer-process.ts sends once its peer runs. */
export interface PeerReady { type: 'ready', id: string, rest: HttpTarget, swarm: string[] }

const PEER_PROCESS = fileURLToPath(new URL('./peer-process.js', import.meta.url))
const POLYFILL = new URL('../src/polyfill.js', import.meta.url).href

/** Starts each prepared peer in its own node process (bench/peer-process.ts); all or none. */
export async function startPeerProcesses (prepared: PreparedPeer[], options: PeerProcessOptions = {}): Promise<ChildPeer[]> {
  return await startAllOrNone(prepared, async p => await startPeerProcess(p, options))
}

/** Starts one child per item at once; when one fails, stops those that started and throws its error. */
export async function startAllOrNone<I, C extends { stop: () => Promise<void> }> (items: I[], start: (item: I) => Promise<C>): Promise<C[]> {
  const started = await Promise.allSettled(items.map(start))
  const ok = started.flatMap(r => r.status === 'fulfilled' ? [r.value] : [])
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed != null) {
    await stopAll(ok)
    throw failed.reason
  }
  return ok
}

export async function stopAll (peers: Array<{ stop: () => Promise<void> }>): Promise<void> {
  await Promise.allSettled(peers.map(async p => { await p.stop() }))
}

async function startPeerProcess (peer: PreparedPeer, options: PeerProcessOptions): Promise<ChildPeer> {
  const child = forkChild(PEER_PROCESS, [peer.dir], {
    name: peer.name, label: `${peer.name} (${peer.dir})`, nodeArgs: options.nodeArgs, env: options.env, output: options.output
  })
  const timeoutMs = options.startTimeoutMs ?? 60_000
  let ready: PeerReady
  try {
    ready = await child.next<PeerReady>('ready', 'be ready', timeoutMs, options.signal)
  } catch (err) {
    await child.kill()
    throw err
  }
  const handle: ChildPeer = {
    ...peer,
    pid: child.pid,
    rest: ready.rest,
    async rss () {
      return await procRss(handle.pid) ?? (await handle.stats()).rss
    },
    async stats ({ timeoutMs = 10_000 } = {}) {
      return (await child.request<{ stats: PeerStats }>('stats', {}, 'report its stats', { timeoutMs })).stats
    },
    async progress ({ pinned = false, timeoutMs = 30_000 } = {}) {
      return (await child.request<{ progress: PeerProgress }>('progress', { pinned }, 'report its progress', { timeoutMs })).progress
    },
    async startCpuProfile () {
      await child.request('cpu-profile', { action: 'start' }, 'start a CPU profile', { timeoutMs: 10_000 })
    },
    async stopCpuProfile (file) {
      await child.request('cpu-profile', { action: 'stop', file }, 'write its CPU profile', { timeoutMs: 60_000 })
    },
    request: child.request,
    async stop (stopOptions) { await child.stop(stopOptions) }
  }
  return handle
}

/** A stock Helia node in its own process (bench/helia-process.ts), for the benchmarks' Helia lines. */
export interface HeliaChild {
  readonly name: string
  readonly pid: number
  /** Its peer id and listen addresses (network mode only). */
  readonly id?: string
  readonly addrs: string[]
  stats(options?: { timeoutMs?: number }): Promise<PeerStats>
  request: BenchChild['request']
  stop(options?: { timeoutMs?: number }): Promise<void>
}

const HELIA_PROCESS = fileURLToPath(new URL('./helia-process.js', import.meta.url))

/** Starts a Helia node on folder `dir` in its own process (see bench/helia-process.ts for what `network` means). */
export async function startHeliaProcess (name: string, init: HeliaProcessInit, options: { output?: ChildOptions['output'], signal?: AbortSignal } = {}): Promise<HeliaChild> {
  const child = forkChild(HELIA_PROCESS, [JSON.stringify(init)], { name, label: `${name} (Helia, ${init.dir})`, output: options.output })
  let ready: HeliaReady
  try {
    ready = await child.next<HeliaReady>('ready', 'be ready', 60_000, options.signal)
  } catch (err) {
    await child.kill()
    throw err
  }
  return {
    name,
    pid: child.pid,
    id: ready.id,
    addrs: ready.addrs,
    async stats ({ timeoutMs = 10_000 } = {}) {
      return (await child.request<{ stats: PeerStats }>('stats', {}, 'report its stats', { timeoutMs })).stats
    },
    request: child.request,
    async stop (stopOptions) { await child.stop(stopOptions) }
  }
}

export interface ChildOptions {
  /** Names the child in output lines. */
  name: string
  /** Names it in errors (default: name). */
  label?: string
  /** Extra node flags, e.g. ['--max-old-space-size=4096']. */
  nodeArgs?: string[]
  /** Extra environment. */
  env?: NodeJS.ProcessEnv
  /** Where its stdout/stderr lines go (default: kept, quoted only in errors). */
  output?: (name: string, line: string) => void
}

/** A message from a child, as the IPC channel delivers it. */
export interface ChildMessage { type?: string, seq?: number, error?: string, [key: string]: unknown }

export interface RequestOptions {
  timeoutMs: number
  onProgress?: (msg: ChildMessage) => void
  /** Stops waiting (the child is not told). */
  signal?: AbortSignal
}

/** A node child process of the benchmark, talked to over IPC. */
export interface BenchChild {
  readonly name: string
  readonly pid: number
  /**
   * One request, answered by a message of the same type and seq (an `error` field rejects); messages of type
   * `<type>:progress` with that seq go to onProgress meanwhile.
   */
  request<T>(type: string, payload: Record<string, unknown>, what: string, options: RequestOptions): Promise<T>
  /** The next unrequested message of this type (also one that came before the call); an `error` field rejects. */
  next<T>(type: string, what: string, timeoutMs: number, signal?: AbortSignal): Promise<T>
  /** VmRSS from /proc, bytes. */
  rss(): Promise<number | undefined>
  /** An error naming the child, with its last output lines. */
  error(what: string): Error
  /** SIGTERM, then SIGKILL after timeoutMs (default 20 s); resolves when it has exited. */
  stop(options?: { timeoutMs?: number }): Promise<void>
  /** SIGKILL; resolves when it has exited. */
  kill(): Promise<void>
}

/** Forks a bench child script with the polyfill loaded, its output kept for error messages. */
export function forkChild (script: string, args: string[], options: ChildOptions): BenchChild {
  const label = options.label ?? options.name
  const child = fork(script, args, {
    execArgv: ['--import', POLYFILL, ...(options.nodeArgs ?? [])],
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc']
  })
  const tail: string[] = []
  const keep = (line: string): void => {
    options.output?.(options.name, line)
    tail.push(line)
    if (tail.length > 30) tail.shift()
  }
  for (const stream of [child.stdout, child.stderr]) {
    let partial = ''
    stream?.setEncoding('utf8')
    stream?.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) keep(line)
    })
  }
  let exitedWith: number | string | undefined
  const exited = new Promise<number | string>(resolve => {
    child.once('exit', (code, sig) => { exitedWith = code ?? sig ?? 'unknown'; resolve(exitedWith) })
  })
  const error = (what: string): Error =>
    new Error(`${label} ${what}${tail.length > 0 ? `; its last output:\n  ${tail.join('\n  ')}` : ''}`)

  // messages nobody asked for yet, by type, for next()
  const unclaimed = new Map<string, ChildMessage[]>()
  const waiting = new Map<string, Array<(msg: ChildMessage) => void>>()
  child.on('message', (msg: ChildMessage) => {
    if (msg?.type == null || msg.seq != null) return
    const waiter = waiting.get(msg.type)?.shift()
    if (waiter != null) waiter(msg)
    else unclaimed.set(msg.type, [...(unclaimed.get(msg.type) ?? []), msg])
  })

  let seq = 0
  let stopping: Promise<void> | undefined
  const handle: BenchChild = {
    name: options.name,
    pid: child.pid ?? 0,
    error,
    async request<T>(type: string, payload: Record<string, unknown>, what: string,
      { timeoutMs, onProgress, signal }: RequestOptions): Promise<T> {
      signal?.throwIfAborted()
      const id = ++seq
      return await new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => { done(); reject(error(`did not ${what} within ${timeoutMs / 1000} s`)) }, timeoutMs)
        const onAbort = (): void => { done(); reject(signal?.reason) }
        signal?.addEventListener('abort', onAbort, { once: true })
        const onMessage = (msg: ChildMessage): void => {
          if (msg?.seq !== id) return
          if (msg.type === `${type}:progress`) { onProgress?.(msg); return }
          if (msg.type !== type) return
          done()
          if (msg.error != null) reject(error(`could not ${what}: ${msg.error}`))
          else resolve(msg as T)
        }
        const onExit = (): void => { done(); reject(error(`exited (${exitedWith ?? 'unknown'}) before it could ${what}`)) }
        const done = (): void => {
          clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          child.off('message', onMessage)
          child.off('exit', onExit)
        }
        child.on('message', onMessage)
        child.once('exit', onExit)
        child.send({ ...payload, type, seq: id }, err => { if (err != null) { done(); reject(error(`cannot be asked to ${what}: ${err.message}`)) } })
      })
    },
    async next<T>(type: string, what: string, timeoutMs: number, signal?: AbortSignal): Promise<T> {
      const early = unclaimed.get(type)?.shift()
      let waiter: ((msg: ChildMessage) => void) | undefined
      const message = early != null
        ? Promise.resolve(early)
        : new Promise<ChildMessage>(resolve => {
          waiter = resolve
          waiting.set(type, [...(waiting.get(type) ?? []), resolve])
        })
      const controller = new AbortController()
      const bounded = signal != null ? AbortSignal.any([signal, controller.signal]) : controller.signal
      try {
        const msg = await Promise.race([
          message,
          exited.then(code => { throw error(`exited (${code}) before it could ${what}`) }),
          sleep(timeoutMs, bounded).then(() => { throw error(`did not ${what} within ${timeoutMs / 1000} s`) })
        ])
        if (msg.error != null) throw error(`could not ${what}: ${msg.error}`)
        return msg as T
      } finally {
        controller.abort()
        const list = waiting.get(type)
        if (waiter != null && list != null) waiting.set(type, list.filter(w => w !== waiter))
      }
    },
    async rss () { return await procRss(handle.pid) },
    async stop ({ timeoutMs = 20_000 } = {}) {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return
        child.kill('SIGTERM')
        const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
        await exited
        clearTimeout(timer)
      })()
      await stopping
    },
    async kill () {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    }
  }
  return handle
}

/** In-process peers: one total RSS only, but no process boundary (for pinset- or tracker-level benchmarks). */
export async function startPeersInProcess (prepared: PreparedPeer[], options: {
  logLevel?: 'silent' | 'warn' | 'info'
  /** How long an add without a pin keeps repo GC off (default 30 s). */
  noPinHoldMs?: number
  /** Changes to each peer's loaded config before it starts. */
  adjust?: (config: LoadedConfig) => void
} = {}):
  Promise<Array<{ peer: CairnPeer, rest: HttpTarget, stop: () => Promise<void> }>> {
  const out: Array<{ peer: CairnPeer, rest: HttpTarget, stop: () => Promise<void> }> = []
  try {
    for (const p of prepared) {
      const config = await loadConfig(p.dir, { env: {} })
      options.adjust?.(config)
      const peer = createPeer({ config, logger: createLogger({ level: options.logLevel ?? 'warn', peer: p.name }), noPinHoldMs: options.noPinHoldMs })
      await peer.start()
      out.push({ peer, rest: peer.restAddress(), stop: async () => { await peer.stop() } })
    }
  } catch (err) {
    await stopAll(out)
    throw err
  }
  return out
}

/** Waits until every peer's GET /id lists all `expected` cluster peers (connected and identified). */
export async function waitForClusterPeers (peers: Array<{ name: string, rest: HttpTarget }>, expected: number,
  options: { timeoutMs?: number, signal?: AbortSignal } = {}): Promise<void> {
  await Promise.all(peers.map(async peer => {
    await waitFor(async () => {
      const res = await httpRequest(peer.rest, 'GET', '/id', { signal: options.signal })
      if (res.status !== 200) throw new Error(`GET /id answered ${res.status}: ${res.body.toString()}`)
      return (JSON.parse(res.body.toString()) as { cluster_peers: string[] }).cluster_peers.length >= expected
    }, {
      timeoutMs: options.timeoutMs ?? 30_000,
      signal: options.signal,
      message: `${peer.name} does not see all ${expected} cluster peers`,
      intervalMs: 100
    })
  }))
}
