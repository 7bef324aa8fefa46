// `reprovide`: one peer holding N CIDs (raw blocks under a two-level dag-pb tree, pinned), a loopback DHT of 20
// plain libp2p nodes, and an outside node that knows one of them. Measures the batched reprovider's cycle
// (CIDs/s, total), per-CID `dht.provide` on a sample in the same run (CIDs/s, ratio), and "pin accepted ->
// findable by the outside node" over M pins (p50/p95). Everything runs in this process on 127.0.0.1, so the 20
// DHT nodes' own work (storing every record) shares the CPU with the peer.
// Goals (issue 5): >= 20x the per-CID rate, 100,000 CIDs in < 60 s, p95 pin-to-findable < 1 s.
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { createDhtNetwork, createFinder } from '../test/reprovider/dht-network.js'
import {
  BenchUsageError, closedLoop, formatNumber, httpRequest, positiveInt, preparePeers, quantile, startPeersInProcess,
  stopAll, tempDir, type Benchmark, type BenchContext, type BenchReport
} from './lib.js'
import type { ReprovideStatusDetail } from '../src/reprovider/index.js'

const USAGE = `  --cids N          CIDs held by the peer (default 100000)
  --sample S        CIDs announced one by one with dht.provide, for the per-CID rate (default 200)
  --pins M          pins timed from "accepted" to "findable" (default 200)
  --nodes D         DHT nodes (default 20)`

const PROTOCOL = '/cairn-bench/kad/1.0.0'
const FANOUT = 1000
const PIN_WAIT_MS = 30_000

function parseOptions (argv: string[]): { cids: number, sample: number, pins: number, nodes: number } {
  let values
  try {
    ({ values } = parseArgs({ args: argv, options: { cids: { type: 'string' }, sample: { type: 'string' }, pins: { type: 'string' }, nodes: { type: 'string' } }, strict: true }))
  } catch (err) {
    throw new BenchUsageError((err as Error).message)
  }
  return {
    cids: positiveInt('cids', values.cids, 100_000),
    sample: positiveInt('sample', values.sample, 200),
    pins: positiveInt('pins', values.pins, 200),
    nodes: positiveInt('nodes', values.nodes, 20)
  }
}

async function rawBlock (text: string): Promise<{ cid: CID, bytes: Uint8Array }> {
  const bytes = new TextEncoder().encode(text)
  return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
}

export const reprovide: Benchmark = {
  description: 'one peer with 100,000 CIDs, a loopback DHT of 20 nodes: batched reprovide vs per-CID provide; pin -> findable latency',
  usage: USAGE,
  async run (argv: string[], ctx: BenchContext): Promise<BenchReport> {
    const o = parseOptions(argv)
    const dir = await tempDir('cairn-bench-reprovide-')
    ctx.log(`starting a DHT of ${o.nodes} nodes`)
    const net = await createDhtNetwork(o.nodes, { protocol: PROTOCOL })
    const finder = await createFinder(PROTOCOL, net.addr(o.nodes - 1))
    const peers: Array<{ stop: () => Promise<void> }> = []
    try {
      const prepared = await preparePeers({
        peers: 1,
        root: dir.path,
        cluster: {
          name: 'cairn-bench-reprovide',
          dht: { profile: 'lan', protocol: PROTOCOL, bootstrap: [net.addr(0), net.addr(1)], client_mode: true },
          // no scheduled cycle during the run: the benchmark starts them
          reprovide: { interval_ms: 24 * 3600_000, validity_ms: 48 * 3600_000, fast_provide: true }
        }
      })
      const [running] = await startPeersInProcess(prepared)
      peers.push(running)
      const { peer } = running
      const helia = peer.ipfs.helia

      // N raw leaves under dag-pb parents of FANOUT links each, under one root: N + N/FANOUT + 1 blocks
      ctx.log(`writing ${formatNumber(o.cids)} blocks`)
      const nonce = `${process.pid}-${Date.now()}`
      const parents: CID[] = []
      for (let start = 0; start < o.cids; start += FANOUT) {
        const leaves = await Promise.all(Array.from({ length: Math.min(FANOUT, o.cids - start) }, async (_, i) => await rawBlock(`cairn reprovide ${nonce} ${start + i}`)))
        for (const b of leaves) await helia.blockstore.put(b.cid, b.bytes)
        const node = dagPb.prepare({ Links: leaves.map(l => ({ Hash: l.cid, Tsize: l.bytes.byteLength })) })
        const bytes = dagPb.encode(node)
        const cid = CID.createV1(dagPb.code, await sha256.digest(bytes))
        await helia.blockstore.put(cid, bytes)
        parents.push(cid)
        ctx.signal.throwIfAborted()
      }
      const rootBytes = dagPb.encode(dagPb.prepare({ Links: parents.map(p => ({ Hash: p })) }))
      const root = CID.createV1(dagPb.code, await sha256.digest(rootBytes))
      await helia.blockstore.put(root, rootBytes)
      ctx.log('pinning them')
      await peer.ipfs.pin(root)

      // 1. the batched reprovider: one full cycle
      ctx.log('batched reprovide cycle')
      const t0 = performance.now()
      const status = await peer.reprovider.reprovideNow({ signal: ctx.signal }) as ReprovideStatusDetail
      const batchedS = (performance.now() - t0) / 1000
      const batchedCids = status.last_cycle_cids
      const batchedRate = batchedCids / batchedS
      ctx.log(`batched: ${formatNumber(batchedCids)} CIDs in ${batchedS.toFixed(1)} s = ${batchedRate.toFixed(1)} CIDs/s, ${status.lookups_total} lookups, ${status.failures_total} failures`)

      // 2. per-CID provide on a sample (kad-dht's own reprovider does this, 10 at a time)
      ctx.log(`per-CID dht.provide of ${o.sample} CIDs`)
      const dht = peer.ipfs.libp2p.services.dht
      const sample = parents.slice(0, o.sample)
      while (sample.length < o.sample) sample.push((await rawBlock(`cairn reprovide sample ${nonce} ${sample.length}`)).cid)
      const t1 = performance.now()
      await closedLoop(sample.length, 10, async i => {
        for await (const _ of dht.provide(sample[i], { signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(60_000)]) })) { void _ }
      })
      const perCidS = (performance.now() - t1) / 1000
      const perCidRate = sample.length / perCidS
      ctx.log(`per-CID: ${sample.length} CIDs in ${perCidS.toFixed(1)} s = ${perCidRate.toFixed(2)} CIDs/s`)
      // kad-dht would reprovide them itself from now on
      for (const cid of sample) await dht.cancelReprovide(cid)

      // 3. pin accepted -> findable by the outside node
      ctx.log(`${o.pins} pins: accepted -> findable`)
      const latencies: number[] = []
      let notFound = 0
      let pinErrors = 0
      const rest = running.rest
      await closedLoop(o.pins, 8, async i => {
        const b = await rawBlock(`cairn reprovide pin ${nonce} ${i}`)
        await helia.blockstore.put(b.cid, b.bytes)
        try {
          const res = await httpRequest(rest, 'POST', `/pins/${b.cid.toString()}`)
          if (res.status !== 200) throw new Error(`POST /pins answered ${res.status}: ${res.body.toString()}`)
        } catch (err) {
          pinErrors++
          ctx.log(`pin ${i}: ${(err as Error).message}`)
          return
        }
        const accepted = performance.now()
        // A lookup that misses takes a while to give up, so one lookup after another would measure the lookups'
        // own length: start a new one every 250 ms (at most 4 at once) and take the first that finds the peer.
        let foundAt: number | undefined
        const inflight = new Set<Promise<void>>()
        while (foundAt == null) {
          ctx.signal.throwIfAborted()
          // counted with the time waited, so that it shows in p95
          if (performance.now() - accepted > PIN_WAIT_MS) { notFound++; break }
          if (inflight.size < 4) {
            const lookup: Promise<void> = finder.providers(b.cid, 3000).then(list => {
              if (list.includes(peer.id)) foundAt ??= performance.now()
            }, () => {}).finally(() => { inflight.delete(lookup) })
            inflight.add(lookup)
          }
          await Promise.race([...inflight, new Promise(resolve => setTimeout(resolve, 250))])
        }
        await Promise.all(inflight)
        latencies.push((foundAt ?? performance.now()) - accepted)
      })
      const sorted = latencies.sort((a, b) => a - b)
      const p50 = quantile(sorted, 0.5)
      const p95 = quantile(sorted, 0.95)
      const ratio = batchedRate / perCidRate
      const after = peer.reprovider.status() as ReprovideStatusDetail
      return {
        title: `reprovide: ${formatNumber(batchedCids)} CIDs, DHT of ${o.nodes} nodes (in process), per-CID sample ${o.sample}, ${o.pins} pins`,
        params: o,
        metrics: [
          { key: 'batched_cids_per_s', label: 'batched reprovide', value: batchedRate, unit: 'CIDs/s' },
          { key: 'batched_total_s', label: 'batched cycle, total', value: batchedS, unit: 's' },
          { key: 'records_sent', label: 'ADD_PROVIDER records acknowledged', value: status.records_sent_total, unit: '' },
          { key: 'lookups', label: 'region lookups', value: status.lookups_total, unit: '' },
          { key: 'per_cid_per_s', label: 'per-CID dht.provide (10 at a time)', value: perCidRate, unit: 'CIDs/s' },
          { key: 'ratio', label: 'batched / per-CID', value: ratio, unit: 'x', baseline: `${formatNumber(perCidRate)} CIDs/s per-CID` },
          { key: 'pin_findable_p50_ms', label: 'pin accepted -> findable, p50', value: p50, unit: 'ms' },
          { key: 'pin_findable_p95_ms', label: 'pin accepted -> findable, p95', value: p95, unit: 'ms' }
        ],
        goals: [
          { text: '>= 20x the per-CID rate', met: ratio >= 20 },
          { text: `${formatNumber(o.cids)} CIDs in < 60 s`, met: batchedS < 60 },
          { text: 'p95 pin -> findable < 1 s', met: p95 < 1000 }
        ],
        notes: [
          `pins the API did not accept (left out): ${pinErrors}`,
          `pins not findable within ${PIN_WAIT_MS / 1000} s (counted at that time): ${notFound}`,
          `reprovider after the run: ${after.fast_provides_total} fast provides, ${after.failures_total} failures, ${after.retries_total} retries, ${after.retry_pending} waiting for a retry`,
          `peer folder: ${join(dir.path, 'peer-0')} (removed)`]
      }
    } finally {
      await stopAll(peers)
      await finder.stop()
      await net.stop()
      await dir.cleanup()
    }
  }
}
