// One benchmark peer in its own process (so that RSS and CPU are per peer): runs the daemon on the peer folder
// given as argv[2], tells the parent over IPC when it is ready, answers stats requests, and stops cleanly on
// SIGTERM/SIGINT or when the parent goes away. Started by startPeerProcesses in ./lib.ts. For pinset-level
// benchmarks it also writes pins straight into the pinset (no REST), makes checkpoints and digests the pinset.
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { startDaemon } from '../src/daemon.js'
import type { CairnPeer } from '../src/peer.js'
import type { PeerProgress, PeerReady, PeerStats } from './lib.js'
import { benchPins, pinsetDigest } from './pinset-data.js'
import { importRandomCar, importRandomFile, pinTimed, serveRawStream, sendRawStream } from './bitswap.js'
import { stopOnSignals } from './child-stop.js'

const path = process.argv[2]
if (path === undefined || process.send === undefined) {
  process.stderr.write('usage: started by bench/lib.ts startPeerProcesses with the peer folder as argument, over IPC\n')
  process.exit(2)
}
const send = process.send.bind(process)

let peer: CairnPeer | undefined

stopOnSignals('the peer', async () => { await peer?.stop() })
let session: Session | undefined

/** A V8 CPU profile of a chosen window (e.g. only the measured run), written as a .cpuprofile file. */
async function profile (msg: { action?: string, file?: string }): Promise<void> {
  if (msg.action === 'start') {
    session = new Session()
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: 200 })
    await session.post('Profiler.start')
  } else if (msg.action === 'stop' && session !== undefined && msg.file !== undefined) {
    const { profile } = await session.post('Profiler.stop')
    session.disconnect()
    session = undefined
    await writeFile(msg.file, JSON.stringify(profile))
  }
}

/** Where the peer is, read straight from its components: cheap enough to ask every few ms, unlike the REST status. */
async function progress (countPinned: boolean): Promise<PeerProgress> {
  if (peer === undefined) throw new Error('the peer is not running')
  const out: PeerProgress = { pinset: peer.pinset.size(), trackerQueue: peer.tracker.queueLength() }
  if (countPinned) {
    out.pinned = 0
    for await (const _ of peer.ipfs.pinLs()) out.pinned++
  }
  return out
}

interface LoadPins { count?: number, batch?: number, allocation?: string }

/**
 * Writes `count` bench pins with pinset.put, `batch` pins per call awaited one after the other, so one signed
 * envelope each. Reports progress about every 5%; returns where the time went.
 */
async function loadPins (msg: LoadPins, progress: (done: number) => void): Promise<Record<string, number>> {
  if (peer === undefined) throw new Error('the peer is not running')
  const { count, batch, allocation } = msg
  if (count == null || batch == null || allocation == null) throw new Error('load-pins needs count, batch and allocation')
  const before = peer.pinset.stats().envelopes
  let makeMs = 0
  let putMs = 0
  let nextReport = count / 20
  for (let done = 0; done < count;) {
    let t = performance.now()
    const pins = await benchPins(done, Math.min(batch, count - done), allocation)
    makeMs += performance.now() - t
    t = performance.now()
    await peer.pinset.put(pins)
    putMs += performance.now() - t
    done += pins.length
    if (done >= nextReport || done === count) { progress(done); nextReport += count / 20 }
  }
  return { make_ms: makeMs, put_ms: putMs, envelopes: peer.pinset.stats().envelopes - before }
}

async function checkpoint (): Promise<Record<string, unknown>> {
  if (peer === undefined) throw new Error('the peer is not running')
  const t = performance.now()
  const info = await peer.pinset.checkpoint()
  if (info === undefined) throw new Error('the pinset made no checkpoint (is this peer trusted?)')
  return { ms: performance.now() - t, bytes: info.bytes, version_vector: info.version_vector }
}

const answer = (type: string, seq: number | undefined, work: () => Promise<Record<string, unknown>>): void => {
  work().then(result => { send({ ...result, type, seq }) }, (err: Error) => { send({ type, seq, error: err.stack ?? err.message }) })
}

process.on('message', (msg: { type?: string, seq?: number, action?: string, file?: string, pinned?: boolean } & LoadPins) => {
  if (msg?.type === 'stats') {
    const mem = process.memoryUsage()
    const cpu = process.cpuUsage()
    const stats: PeerStats = { rss: mem.rss, heapUsed: mem.heapUsed, cpuUserUs: cpu.user, cpuSystemUs: cpu.system }
    const traffic = peer?.ipfs.bitswapStats()
    if (traffic !== undefined) stats.bitswap = { ...traffic }
    send({ type: 'stats', seq: msg.seq, stats })
  } else if (msg?.type === 'progress') {
    progress(msg.pinned === true).then(result => { send({ type: 'progress', seq: msg.seq, progress: result }) }, (err: Error) => {
      send({ type: 'progress', seq: msg.seq, error: err.message })
    })
  } else if (msg?.type === 'load-pins') {
    answer('load-pins', msg.seq, async () => await loadPins(msg, done => { send({ type: 'load-pins:progress', seq: msg.seq, done }) }))
  } else if (msg?.type === 'checkpoint') {
    answer('checkpoint', msg.seq, checkpoint)
  } else if (msg?.type === 'pinset-digest') {
    answer('pinset-digest', msg.seq, async () => {
      if (peer === undefined) throw new Error('the peer is not running')
      return { ...pinsetDigest(peer.pinset.list()) }
    })
  } else if (msg?.type === 'pinset-stats') {
    answer('pinset-stats', msg.seq, async () => {
      if (peer === undefined) throw new Error('the peer is not running')
      return { stats: peer.pinset.stats() }
    })
  } else if (msg?.type === 'import-random' || msg?.type === 'import-random-car' || msg?.type === 'pin-timed' || msg?.type === 'raw-stream-serve' || msg?.type === 'raw-stream-send') {
    // bench/bitswap.ts: content on one peer, a timed pin (bitswap fetch) or one raw stream on the other
    const type = msg.type
    answer(type, msg.seq, async () => {
      if (peer === undefined) throw new Error('the peer is not running')
      const m = msg as unknown as Record<string, unknown>
      if (type === 'import-random') return await importRandomFile(peer.ipfs, Number(m.bytes), Number(m.seed))
      if (type === 'import-random-car') return await importRandomCar(peer.ipfs, Number(m.bytes), Number(m.seed))
      if (type === 'pin-timed') return await pinTimed(peer.ipfs, String(m.cid))
      if (type === 'raw-stream-serve') return await serveRawStream(peer.ipfs.libp2p)
      return await sendRawStream(peer.ipfs.libp2p, String(m.peer), Number(m.bytes))
    })
  } else if (msg?.type === 'cpu-profile') {
    profile(msg).then(() => { send({ type: 'cpu-profile', seq: msg.seq }) }, (err: Error) => {
      send({ type: 'cpu-profile', seq: msg.seq, error: err.message })
    })
  }
})

try {
  peer = await startDaemon({ path, init: false, report: line => { process.stdout.write(`${line}\n`) } })
  const ready: PeerReady = { type: 'ready', id: peer.id, rest: peer.restAddress(), swarm: peer.swarmAddresses() }
  send(ready)
} catch (err) {
  process.stderr.write(`the peer did not start: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
}
