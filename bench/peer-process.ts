// One benchmark peer in its own process (so that RSS and CPU are per peer): runs the daemon on the peer folder
// given as argv[2], tells the parent over IPC when it is ready, answers stats requests, and stops cleanly on
// SIGTERM/SIGINT or when the parent goes away. Started by startPeerProcesses in ./lib.ts.
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { startDaemon } from '../src/daemon.js'
import type { CairnPeer } from '../src/peer.js'
import type { PeerProgress, PeerReady, PeerStats } from './lib.js'

const path = process.argv[2]
if (path === undefined || process.send === undefined) {
  process.stderr.write('usage: started by bench/lib.ts startPeerProcesses with the peer folder as argument, over IPC\n')
  process.exit(2)
}
const send = process.send.bind(process)

let peer: CairnPeer | undefined
let stopping = false

async function stop (why: string): Promise<void> {
  if (stopping) return
  stopping = true
  process.stdout.write(`stopping (${why})\n`)
  // a stop that hangs must not keep the benchmark waiting: the parent SIGKILLs after its own timeout too
  setTimeout(() => { process.stderr.write('stop took over 15 s, exiting anyway\n'); process.exit(1) }, 15_000).unref()
  try {
    await peer?.stop()
  } catch (err) {
    process.stderr.write(`stopping the peer failed: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  }
  // process.exit (not a signal death) so that --cpu-prof still writes its profile
  process.exit(0)
}

process.once('SIGTERM', () => { void stop('SIGTERM') })
process.once('SIGINT', () => { void stop('SIGINT') })
process.once('disconnect', () => { void stop('the benchmark went away') })
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

process.on('message', (msg: { type?: string, seq?: number, action?: string, file?: string, pinned?: boolean }) => {
  if (msg?.type === 'stats') {
    const mem = process.memoryUsage()
    const cpu = process.cpuUsage()
    const stats: PeerStats = { rss: mem.rss, heapUsed: mem.heapUsed, cpuUserUs: cpu.user, cpuSystemUs: cpu.system }
    send({ type: 'stats', seq: msg.seq, stats })
  } else if (msg?.type === 'progress') {
    progress(msg.pinned === true).then(result => { send({ type: 'progress', seq: msg.seq, progress: result }) }, (err: Error) => {
      send({ type: 'progress', seq: msg.seq, error: err.message })
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
