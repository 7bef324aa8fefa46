// A bare follower in its own process, for bench/follower-sync.ts: a libp2p host and a pinset (no IPFS, tracker
// or REST), built from a peer folder the way test/pinset does, so that `acceptCheckpoints` can be set (createPeer
// does not take it). It starts at once, bootstraps from its cluster config, and tells the parent over IPC when
// its pinset holds the expected number of pins and the catch-up stream that brought them has finished, with
// a digest of its pinset to compare. It stops on SIGTERM/SIGINT or when the parent goes away.
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { performance } from 'node:perf_hooks'
import { MemoryDatastore } from 'datastore-core'
import { createLibp2p, type Libp2p } from 'libp2p'
import { loadConfig } from '../src/config/index.js'
import { libp2pOptions, type CairnServices } from '../src/libp2p/index.js'
import { createLogger } from '../src/logger.js'
import { createPinset, pinsetSyncProtocol } from '../src/pinset/index.js'
import { clusterSecret } from '../src/secret.js'
import type { Pinset, PinsetStats } from '../src/components.js'
import { pinsetDigest, type PinsetDigest } from './pinset-data.js'
import { stopOnSignals } from './child-stop.js'

/** argv[3], JSON. */
export interface FollowerParams {
  /** Pins the trusted peer holds: the follower is synced when its pinset has this many. */
  expected: number
  acceptCheckpoints: boolean
  /** Write a V8 CPU profile from start until the catch-up finished, here. */
  cpuProfile?: string
  /** Give up waiting for the catch-up to finish after this long past the synced mark (default 120 s). */
  settleTimeoutMs?: number
  logLevel?: 'silent' | 'warn' | 'info' | 'debug'
}

/** Milliseconds since this process's performance.timeOrigin, by event. */
export type FollowerMarks = Partial<Record<'main' | 'libp2p_started' | 'pinset_started' | 'connected' |
'stream_opened' | 'first_sync_byte' | 'stream_remote_closed' | 'checkpoint_loaded' | 'first_pin' | 'synced' |
'catch_up_finished', number>>

export interface FollowerMemory { rss: number, heapUsed: number, heapTotal: number, external: number, arrayBuffers: number }

/**
 * Sent once the catch-up that brought every pin has finished (or settleTimeoutMs after the pinset was complete,
 * with finished false), right after a bare { type: 'finished' }. The digest is computed then, off the timed path; `changesAfterSynced` = 0 proves the
 * pinset did not change since the synced mark, so the digest is of the pinset as it was at that mark.
 */
export interface FollowerDone {
  type: 'done'
  finished: boolean
  /** This process's performance.timeOrigin (epoch ms): marks + timeOrigin are comparable across processes. */
  timeOrigin: number
  marks: FollowerMarks
  changesAfterSynced: number
  digest: PinsetDigest
  /** Every catch-up stream opened, and every catch-up that failed: more than one means bytes sent twice. */
  streams: CatchUpStream[]
  catchUpErrors: string[]
  stats: PinsetStats
  /** process.memoryUsage() at the synced mark and at the end. */
  memoryAtSynced: FollowerMemory
  memory: FollowerMemory
  /** Heap used after a full GC at the end (with --expose-gc): what holding the pinset costs at rest. */
  retainedHeap?: number
}

const [path, json] = process.argv.slice(2)
if (path === undefined || json === undefined || process.send === undefined) {
  process.stderr.write('usage: forked by bench/follower-sync.ts with the peer folder and JSON parameters, over IPC\n')
  process.exit(2)
}
const send = process.send.bind(process)
const marks: FollowerMarks = { main: performance.now() }
const params = JSON.parse(json) as FollowerParams
let libp2p: Libp2p<CairnServices> | undefined
let pinset: Pinset | undefined

stopOnSignals('the follower', async () => {
  await pinset?.stop()
  await libp2p?.stop()
})

const memory = (): FollowerMemory => {
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers }
}

/**
 * Counters read without pinset.stats() or size(): Y.Map's size walks every entry, so polling them every 20 ms
 * would cost the follower more than the sync it measures (private fields: a benchmark may look, nothing else does).
 */
const peek = (p: Pinset): { syncing: number, bytesIn: number, checkpoints: number } => {
  // src/pinset/index.ts: the counters and the catch-up client are fields of the pinset, the running catch-ups a
  // map of the client. A missing field fails the run here instead of leaving it waiting for ever.
  const x = p as unknown as { counters?: { syncBytesIn: number, checkpointsLoaded: number }, client?: { syncing?: Map<string, unknown> } }
  if (x.counters === undefined || x.client?.syncing === undefined) throw new Error('bench/follower-process.ts peeks at pinset fields that are gone: update peek()')
  return { syncing: x.client.syncing.size, bytesIn: x.counters.syncBytesIn, checkpoints: x.counters.checkpointsLoaded }
}

/** One catch-up stream the pinset opened (ms since timeOrigin). */
export interface CatchUpStream { opened: number, remoteClosed?: number, closed?: number, error?: string }
const streams: CatchUpStream[] = []
const catchUpErrors: string[] = []

/** Pins added minus removed, from the change events: exact for a fresh follower, and O(1) unlike pinset.size(). */
let counted = 0

process.on('message', (msg: { type?: string, seq?: number }) => {
  if (msg?.type === 'progress') {
    send({ type: 'progress', seq: msg.seq, size: counted, bytesIn: pinset === undefined ? 0 : peek(pinset).bytesIn })
  }
})

let session: Session | undefined
if (params.cpuProfile !== undefined) {
  session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 500 })
  await session.post('Profiler.start')
}

try {
  const config = await loadConfig(path, { env: {} })
  const logger = createLogger({ level: params.logLevel ?? 'warn', peer: config.peer.peername })
  const dht = config.cluster.dht
  const host = await createLibp2p(libp2pOptions({
    privateKey: config.identity.privateKey,
    listen: config.peer.swarm.listen,
    announce: config.peer.swarm.announce,
    bootstrap: config.cluster.bootstrap,
    dht: { protocol: dht.protocol, clientMode: dht.client_mode, keepPrivateAddresses: dht.keep_private_addresses },
    datastore: new MemoryDatastore(),
    logger
  }))
  libp2p = host
  marks.libp2p_started = performance.now()
  host.addEventListener('peer:connect', () => { marks.connected ??= performance.now() })
  if (host.getConnections().length > 0) marks.connected ??= performance.now()
  const protocol = pinsetSyncProtocol(config.cluster.name)
  // when the catch-up stream opens and when the serving peer has sent everything (its FIN arrived); no
  // 'message' listener: that could take data from the pinset's own reader
  const dialProtocol = host.dialProtocol.bind(host)
  host.dialProtocol = (async (...args: Parameters<typeof dialProtocol>) => {
    const stream = await dialProtocol(...args)
    if (args[1] === protocol || (Array.isArray(args[1]) && args[1].includes(protocol))) {
      const record: CatchUpStream = { opened: performance.now() }
      streams.push(record)
      marks.stream_opened ??= record.opened
      stream.addEventListener('remoteCloseWrite', () => {
        record.remoteClosed = performance.now()
        marks.stream_remote_closed ??= record.remoteClosed
      }, { once: true })
      stream.addEventListener('close', evt => {
        record.closed = performance.now()
        if (evt.error != null) record.error = `${evt.local === true ? 'aborted here' : 'reset by the serving peer'}: ${evt.error.message}`
      }, { once: true })
    }
    return stream
  }) as typeof host.dialProtocol
  const trusted = new Set(config.cluster.trusted_peers)
  const self = config.identity.peerId.toString()
  pinset = createPinset({
    cluster: config.cluster.name,
    dataDir: config.path,
    isTrusted: id => id === self || trusted.has(id),
    isWriter: () => false,
    secret: clusterSecret(config.cluster.secret),
    acceptCheckpoints: params.acceptCheckpoints
  }, { libp2p: host, privateKey: config.identity.privateKey, logger })
  const p = pinset
  // the catch-ups the pinset starts itself (on identify, on its resync timer), with how they ended
  const syncWith = p.syncWith.bind(p)
  p.syncWith = async (peerId, options) => {
    const started = performance.now()
    try {
      return await syncWith(peerId, options)
    } catch (err) {
      catchUpErrors.push(`${((performance.now() - started) / 1000).toFixed(1)} s into a catch-up from ${peerId}: ${(err as Error).message}`)
      throw err
    }
  }
  let sawCatchUp = false
  let changesAfterSynced = 0
  let memoryAtSynced: FollowerMemory | undefined
  const poll = (): void => {
    const now = performance.now()
    const x = peek(p)
    if (x.bytesIn > 0) marks.first_sync_byte ??= now
    if (x.checkpoints > 0) marks.checkpoint_loaded ??= now
    if (x.syncing > 0) sawCatchUp = true
  }
  p.onChange(change => {
    const now = performance.now()
    poll()
    counted += change.added.length - change.removed.length
    marks.first_pin ??= now
    if (marks.synced !== undefined) { changesAfterSynced++; return }
    // the count can overshoot on updates of a key: size() (which walks the map) confirms
    if (counted >= params.expected && p.size() === params.expected) {
      marks.synced = now
      memoryAtSynced = memory()
    }
  })
  await p.start()
  marks.pinset_started = performance.now()
  const settleTimeoutMs = params.settleTimeoutMs ?? 120_000
  const timer = setInterval(() => {
    poll()
    if (marks.synced === undefined) return
    const now = performance.now()
    const finished = sawCatchUp && peek(p).syncing === 0
    if (!finished && now - marks.synced <= settleTimeoutMs) return
    clearInterval(timer)
    if (finished) marks.catch_up_finished = now
    // at once, so that the parent stops measuring RSS before the profile and the digest below
    send({ type: 'finished' })
    void (async () => {
      if (session !== undefined && params.cpuProfile !== undefined) {
        const { profile } = await session.post('Profiler.stop')
        session.disconnect()
        await writeFile(params.cpuProfile, JSON.stringify(profile))
      }
      const digest = pinsetDigest(p.list())
      const gc = (globalThis as { gc?: () => void }).gc
      gc?.()
      const out: FollowerDone = {
        type: 'done',
        finished,
        timeOrigin: performance.timeOrigin,
        marks: { ...marks },
        changesAfterSynced,
        digest,
        streams,
        catchUpErrors,
        stats: p.stats(),
        memoryAtSynced: memoryAtSynced ?? memory(),
        memory: memory(),
        retainedHeap: gc === undefined ? undefined : process.memoryUsage().heapUsed
      }
      send(out)
    })().catch(err => { send({ type: 'done', error: (err as Error).stack ?? String(err) }) })
  }, 20)
} catch (err) {
  process.stderr.write(`the follower did not start: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
}
