// Issue 17 item 2: streamed lists must not stall the peer. 20 concurrent GET /allocations of a 300k-pin pinset
// on one peer of three (the figures; its pins were ~430 bytes of JSON, these ~520): /health keeps
// answering within 1 s, the other peers keep receiving its metrics (no ping alert), and none of the pins
// allocated to it moves away. The streams run for LOAD_MS, five metric TTLs, all at once; those not done by
// then are dropped by their clients (which must free their slots), and one more list is read whole.
// Everything runs in this one process, the clients too: harsher than a daemon serving remote clients.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { request, type IncomingMessage } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import { createClient } from '../../src/client/index.js'
import { ZERO_TIME, type Pin } from '../../src/types/wire.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { sleep, waitFor } from '../util.js'

const GB = 1024 ** 3
const BULK = 300_000
const WATCHED = 20
const STREAMS = 20
/** Metrics live 4 s (sent every 2 s): a stall of a few seconds is enough to lose the peer. */
const TTL_MS = 4000
const LOAD_MS = 5 * TTL_MS
const HEALTH_DEADLINE_MS = 1000

/** Bulk pins allocated to two peers outside the cluster: every member sees them `remote`, no tracker fetches. */
async function bulkPins (count: number): Promise<Pin[]> {
  const ghosts = await Promise.all([0, 1].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
  const timestamp = new Date().toISOString()
  const pins: Pin[] = []
  for (let i = 0; i < count; i++) {
    const digest = createDigest(sha256.code, createHash('sha256').update(`cairn list test pin ${i}`).digest())
    pins.push({
      cid: CID.createV1(raw.code, digest).toString(), type: 'pin', name: `mirror/pkg-${i}/pkg-${i}-1.0.${i % 97}.tgz`,
      mode: 'recursive', replication_factor_min: 2, replication_factor_max: 2, allocations: ghosts, shard_size: 0,
      max_depth: -1, reference: null, expire_at: ZERO_TIME, metadata: {}, origins: [], pin_update: null,
      user_allocations: null, timestamp
    })
  }
  return pins
}

interface Stream {
  status: number
  bytes: number
  lines: number
  firstByteAt: number
  /** When the answer ended (Infinity while it runs), and its X-Stream-Error trailer. */
  endedAt: number
  trailer?: string
}

/** GET /allocations, counting lines as they come (the body is not kept: 20 x 156 MB). Resolves at its end or abort. */
async function streamAllocations (port: number, s: Stream, signal?: AbortSignal): Promise<void> {
  await new Promise<void>(resolve => {
    const req = request({ host: '127.0.0.1', port, path: '/allocations', agent: false, signal }, (res: IncomingMessage) => {
      s.status = res.statusCode ?? 0
      res.on('data', (chunk: Buffer) => {
        if (s.bytes === 0) s.firstByteAt = performance.now()
        s.bytes += chunk.length
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) s.lines++
      })
      res.on('end', () => {
        s.endedAt = performance.now()
        s.trailer = String(res.trailers['x-stream-error'] ?? '')
        resolve()
      })
      res.on('error', () => { resolve() })
    })
    req.on('error', () => { resolve() })
    req.end()
  })
}

const newStream = (): Stream => ({ status: 0, bytes: 0, lines: 0, firstByteAt: Infinity, endedAt: Infinity })

/** ms until GET /health answered 204, or Infinity past the deadline or on any other answer. */
async function healthLatency (port: number): Promise<number> {
  const start = performance.now()
  return await new Promise(resolve => {
    const req = request({ host: '127.0.0.1', port, path: '/health', agent: false, signal: AbortSignal.timeout(HEALTH_DEADLINE_MS) }, res => {
      res.resume()
      res.on('end', () => { resolve(res.statusCode === 204 ? performance.now() - start : Infinity) })
      res.on('error', () => { resolve(Infinity) })
    })
    req.on('error', () => { resolve(Infinity) })
    req.end()
  })
}

describe('big lists on a loaded peer', { timeout: 240_000 }, () => {
  let tc: TestCluster
  before(async () => {
    // peer 0 offers the most space: every replication-2 pin gets a copy there. The heavy-request cap is raised
    // to the number of streams so that all of them really run at once.
    tc = await createTestCluster(3, {
      monitor: i => ({ metric_ttl_ms: TTL_MS, storage_max: (i === 0 ? 3 : 1) * GB }),
      rest: { max_heavy_requests: STREAMS }
    })
    await waitFor(() => [0, 1, 2].every(i => tc.peer(i).monitor.latest('freespace').length === 3),
      { timeoutMs: 30_000, message: 'every peer sees the 3 peers\' metrics' })
  })
  after(async () => { await tc?.close() })

  it(`${STREAMS} concurrent GET /allocations of ${BULK + WATCHED} pins: /health within 1 s, the peer stays alive, no pin moves`, async t => {
    const ids = [0, 1, 2].map(i => tc.peer(i).id)
    const port = Number(new URL(tc.url(0)).port)
    const client = createClient({ api: tc.url(0) })
    // the watched pins' blocks are in every blockstore: pinning them needs no fetch from a busy peer
    const watched: string[] = []
    for (let n = 0; n < WATCHED; n++) {
      const bytes = new TextEncoder().encode(`watched pin ${n}`)
      const cid = CID.createV1(raw.code, await sha256.digest(bytes))
      for (const i of [0, 1, 2]) await tc.peer(i).ipfs.helia.blockstore.put(cid, bytes)
      const pin = await client.pin(cid.toString(), { replication_factor_min: 2, replication_factor_max: 2 })
      assert.ok(pin.allocations.includes(ids[0]), `${cid} is allocated to the loaded peer (precondition)`)
      watched.push(cid.toString())
    }
    await waitFor(async () => {
      for (const cid of watched) {
        for (const p of tc.peer(0).pinset.get(cid)!.allocations) {
          if (!(await tc.peer(ids.indexOf(p)).ipfs.isPinned(CID.parse(cid)))) return false
        }
      }
      return true
    }, { timeoutMs: 30_000, message: 'the watched pins are pinned on their allocations' })
    const setupStart = performance.now()
    const pins = await bulkPins(BULK)
    for (let i = 0; i < pins.length; i += 10_000) await tc.peer(0).pinset.put(pins.slice(i, i + 10_000))
    await waitFor(() => [0, 1, 2].every(i => tc.peer(i).pinset.size() === BULK + WATCHED),
      { timeoutMs: 120_000, intervalMs: 500, message: `every pinset holds the ${BULK + WATCHED} pins` })
    // writing 300k pins holds the event loop in long turns (pinset transactions): start from a settled cluster
    const settled = Date.now() * 1e6
    await waitFor(() => [0, 1, 2].every(i => tc.peer(i).monitor.latest('ping').filter(m => m.received_at > settled).length === 3),
      { timeoutMs: TTL_MS * 3, message: 'every peer has fresh pings from the 3 peers' })
    const allocated = new Map(watched.map(cid => [cid, tc.peer(0).pinset.get(cid)!.allocations.join(',')]))
    const loadedSince = new Date().toISOString()
    const setupS = (performance.now() - setupStart) / 1000

    // the load: STREAMS lists for LOAD_MS, /health probed all along; the first failed probe ends it early
    const stop = new AbortController()
    setMaxListeners(STREAMS + 1, stop.signal)
    const streams = Array.from({ length: STREAMS }, newStream)
    const start = performance.now()
    const reading = Promise.all(streams.map(async s => { await streamAllocations(port, s, stop.signal) }))
    const window = setTimeout(() => { stop.abort() }, LOAD_MS)
    const latencies: number[] = []
    const lost: string[] = []
    while (!stop.signal.aborted && streams.some(s => s.endedAt === Infinity)) {
      const ms = await healthLatency(port)
      latencies.push(ms)
      for (const i of [1, 2]) {
        if (!tc.peer(i).monitor.latest('ping').some(m => m.peer === ids[0])) lost.push(`peer ${i} at ${new Date().toISOString()}`)
      }
      if (ms === Infinity || lost.length > 0) break
      // pacing of the health probes while the lists stream
      await sleep(100)
    }
    const seconds = (performance.now() - start) / 1000
    clearTimeout(window)
    stop.abort()
    await reading
    const bytes = streams.reduce((n, s) => n + s.bytes, 0)
    t.diagnostic(`setup ${setupS.toFixed(1)} s; ${STREAMS} streams for ${seconds.toFixed(1)} s: ${(bytes / 1e6).toFixed(0)} MB ` +
      `(${(bytes / 1e6 / seconds).toFixed(0)} MB/s), ${streams.filter(s => s.trailer === '').length} read whole; ` +
      `/health p50 ${quantile(latencies, 0.5).toFixed(0)} ms, max ${Math.max(...latencies).toFixed(0)} ms over ${latencies.length} probes`)

    assert.ok(latencies.every(ms => ms < HEALTH_DEADLINE_MS), `every GET /health answered within 1 s (slowest: ${Math.max(...latencies).toFixed(0)} ms)`)
    assert.deepEqual(lost, [], 'the other peers had a live ping of the loaded peer all along')
    assert.ok(seconds >= LOAD_MS / 1000 || streams.every(s => s.endedAt < Infinity), 'the load ran its whole window')
    for (const s of streams) {
      assert.equal(s.status, 200)
      assert.ok(s.bytes > 1e6, `every stream was being served (${s.bytes} bytes)`)
      if (s.endedAt < Infinity) assert.deepEqual([s.lines, s.trailer], [BULK + WATCHED, ''], 'a stream read whole has every pin')
    }
    assert.ok(Math.max(...streams.map(s => s.firstByteAt)) < Math.min(...streams.map(s => s.endedAt)), 'the streams ran at once')

    // the dropped streams gave their slots back (else this is a 429), and a whole list still comes out right
    const whole = await waitFor(async () => {
      const s = newStream()
      await streamAllocations(port, s)
      return s.status === 429 ? undefined : s
    }, { timeoutMs: 10_000, message: 'a new GET /allocations is served once the others are gone' })
    assert.deepEqual([whole.status, whole.lines, whole.trailer], [200, BULK + WATCHED, ''])

    // a fresh ping from the loaded peer after the load: an alert from a gap would have been raised by now
    const ended = Date.now() * 1e6
    await waitFor(() => [1, 2].every(i => tc.peer(i).monitor.latest('ping').some(m => m.peer === ids[0] && m.received_at > ended)),
      { timeoutMs: TTL_MS * 2, message: 'the other peers receive the loaded peer\'s next ping' })
    for (const i of [1, 2]) {
      const alerts = tc.peer(i).monitor.alerts().filter(a => a.peer === ids[0] && a.triggered_at >= loadedSince)
      assert.deepEqual(alerts, [], `peer ${i} raised no alert about the loaded peer`)
    }
    for (const i of [0, 1, 2]) {
      for (const cid of watched) assert.equal(tc.peer(i).pinset.get(cid)!.allocations.join(','), allocated.get(cid), `${cid} kept its allocations on peer ${i}`)
    }
  })
})

function quantile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN
}
