// `npm run bench -- spread` (issue 20): a generated package tree spread over six in-process peers, each offering
// (storage_max) 40% of it, replication 2, against the same tree pinned whole on one peer in the same run. Figures:
// the time to spread it (mirror sync until every allocated peer pinned its share) against the time to pin it
// whole; the bytes the cluster holds over the tree (goal 2.0-2.3x); the bitswap bytes moved by a re-sync with
// `changed-pct` of the files changed, against the changed bytes x replication; and the time to heal after a peer
// is stopped (until every partition has two pinned copies on live peers), with the metrics TTL it includes.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createClient, type Client } from '../src/client/index.js'
import { syncMirror, type MirrorSyncResult } from '../src/mirror/index.js'
import { content, generateTree, packageSize } from './mirror.js'
import { seededRandom } from '../test/util.js'
import {
  BenchUsageError, MiB, positiveInt, preparePeers, sleep, startPeersInProcess, stopAll, tempDir, waitForClusterPeers,
  type Benchmark, type BenchReport
} from './lib.js'
import type { CairnPeer } from '../src/peer.js'

interface Options { files: number, peers: number, replication: number, changedPct: number, offerPct: number, ttlMs: number, keep: boolean }

function parse (argv: string[]): Options {
  const o: Options = { files: 4000, peers: 6, replication: 2, changedPct: 5, offerPct: 40, ttlMs: 5000, keep: false }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    if (flag === '--files') o.files = positiveInt('files', argv[++i], o.files)
    else if (flag === '--peers') o.peers = positiveInt('peers', argv[++i], o.peers)
    else if (flag === '--replication') o.replication = positiveInt('replication', argv[++i], o.replication)
    else if (flag === '--changed-pct') o.changedPct = positiveInt('changed-pct', argv[++i], o.changedPct)
    else if (flag === '--offer-pct') o.offerPct = positiveInt('offer-pct', argv[++i], o.offerPct)
    else if (flag === '--ttl-ms') o.ttlMs = positiveInt('ttl-ms', argv[++i], o.ttlMs)
    else if (flag === '--keep') o.keep = true
    else throw new BenchUsageError(`unknown flag ${flag}`)
  }
  if (o.replication > o.peers - 1) throw new BenchUsageError(`--replication ${o.replication} needs at least ${o.replication + 1} peers (one is stopped to measure healing)`)
  return o
}

const received = (peers: CairnPeer[]): number => peers.reduce((a, p) => a + (p.ipfs.bitswapStats()?.bytesIn ?? 0), 0)

async function sync (client: Client, tree: string, cacheFile: string, spread: boolean, replication: number, signal: AbortSignal): Promise<{ result: MirrorSyncResult, seconds: number }> {
  const started = performance.now()
  const result = await syncMirror(client, {
    dir: tree, name: 'debian', keep: 1, cacheFile, pollMs: 100, signal, pinTimeoutMs: 30 * 60_000,
    ...(spread ? { spread: true, replication_factor_min: replication, replication_factor_max: replication } : {})
  })
  return { result, seconds: (performance.now() - started) / 1000 }
}

export const spread: Benchmark = {
  description: 'a package tree spread over 6 peers offering 40% of it each (replication 2) against pinning it whole on one peer; re-sync bytes moved; heal time',
  usage: [
    '  --files <n>         files in the tree (default 4000, ~210 MiB)',
    '  --peers <n>         peers the tree is spread over (default 6)',
    '  --replication <n>   copies of each partition (default 2)',
    '  --offer-pct <n>     storage_max of each peer, in percent of the tree (default 40)',
    '  --changed-pct <n>   percent of the files changed before the re-sync (default 5)',
    '  --ttl-ms <n>        metrics TTL: a stopped peer is lost after it (default 5000)',
    '  --keep              keep the temp dir for inspection'
  ].join('\n'),

  async run (argv, { log, signal }): Promise<BenchReport> {
    const o = parse(argv)
    const root = await tempDir('cairn-bench-spread-')
    let running: Array<{ peer: CairnPeer, stop: () => Promise<void> }> = []
    try {
      const tree = join(root.path, 'tree')
      const r = seededRandom(20)
      log(`generating ${o.files} files in ${tree}`)
      const { paths, bytes } = await generateTree(tree, o.files, r)
      log(`tree: ${paths.length} files, ${(bytes / MiB).toFixed(1)} MiB`)

      // baseline: the same tree pinned whole on one peer
      await mkdir(join(root.path, 'one'))
      const one = await startPeersInProcess(await preparePeers({ peers: 1, root: join(root.path, 'one') }), { noPinHoldMs: 500 })
      running = one
      const whole = await sync(createClient({ api: `http://${one[0].rest.host}:${one[0].rest.port}` }), tree, join(root.path, 'cache-one.json'), false, 1, signal)
      log(`whole on one peer: ${whole.seconds.toFixed(2)} s`)
      await stopAll(one)
      running = []

      // the cluster
      await mkdir(join(root.path, 'cluster'))
      const offer = Math.floor(bytes * o.offerPct / 100)
      const prepared = await preparePeers({ peers: o.peers, root: join(root.path, 'cluster') })
      const cluster = await startPeersInProcess(prepared, {
        noPinHoldMs: 500,
        adjust: c => { c.peer.monitor.storage_max = offer; c.peer.monitor.metric_ttl_ms = o.ttlMs; c.peer.gc.interval_ms = 0; c.peer.disk.reserve_bytes = 0 }
      })
      running = cluster
      await waitForClusterPeers(cluster.map((c, i) => ({ name: `peer-${i}`, rest: c.rest })), o.peers, { signal })
      // every peer's freespace metric in
      await sleep(o.ttlMs, signal)
      const peers = cluster.map(c => c.peer)
      const client = createClient({ api: `http://${cluster[0].rest.host}:${cluster[0].rest.port}` })
      const cacheFile = join(root.path, 'cache.json')
      const first = await sync(client, tree, cacheFile, true, o.replication, signal)
      log(`spread: ${first.seconds.toFixed(2)} s`)
      // what each peer holds for pins, after a GC drops what the upload left on the peer it went to
      let held = 0
      let most = 0
      for (const p of peers) {
        await p.ipfs.gc()
        const stat = await p.ipfs.repoStat()
        held += stat.pinned_bytes
        most = Math.max(most, stat.pinned_bytes)
      }
      log(`held ${(held / MiB).toFixed(1)} MiB in all, ${(most / MiB).toFixed(1)} MiB on the fullest peer (offer ${(offer / MiB).toFixed(1)} MiB)`)

      // re-sync with changed files
      const changed = Math.max(1, Math.round(paths.length * o.changedPct / 100))
      const step = paths.length / changed
      let changedBytes = 0
      for (let k = 0; k < changed; k++) {
        const size = packageSize(r)
        changedBytes += size
        await writeFile(join(tree, paths[Math.floor(k * step)]), content(r, size))
      }
      const before = received(peers)
      const second = await sync(client, tree, cacheFile, true, o.replication, signal)
      const moved = received(peers) - before
      log(`re-sync: ${second.seconds.toFixed(2)} s, moved ${(moved / MiB).toFixed(1)} MiB for ${(changedBytes / MiB).toFixed(1)} MiB changed`)

      // heal: the last peer stops; every partition back on `replication` live peers
      const t0 = performance.now()
      await cluster[o.peers - 1].stop()
      running = cluster.slice(0, -1)
      let healed = false
      while (!healed) {
        signal.throwIfAborted()
        await sleep(200, signal)
        const status = await client.mirrorStatus('debian', { signal }).catch(() => undefined)
        healed = status != null && status.copies[String(o.replication)] === status.parts && status.peers.every(p => p.peer !== prepared[o.peers - 1].id)
      }
      const heal = (performance.now() - t0) / 1000
      log(`healed in ${heal.toFixed(2)} s`)

      const ratio = held / bytes
      const movedRatio = moved / (changedBytes * o.replication)
      return {
        title: `spread: ${paths.length} files (${(bytes / MiB).toFixed(0)} MiB) over ${o.peers} in-process peers offering ${o.offerPct}% each, replication ${o.replication}`,
        params: { files: paths.length, tree_bytes: bytes, peers: o.peers, replication: o.replication, offer_bytes: offer, changed_files: changed, changed_bytes: changedBytes, ttl_ms: o.ttlMs },
        metrics: [
          { key: 'spread_seconds', label: 'mirror sync --spread until every share is pinned', value: first.seconds, unit: 's', digits: 2 },
          { key: 'whole_seconds', label: 'mirror sync, pinned whole on one peer', value: whole.seconds, unit: 's', digits: 2 },
          { key: 'spread_ratio', label: 'spread / whole on one peer', value: first.seconds / whole.seconds, unit: 'x', digits: 2, baseline: `${whole.seconds.toFixed(2)} s whole on one peer` },
          { key: 'held_ratio', label: 'bytes held by the cluster / tree bytes', value: ratio, unit: 'x', digits: 3, baseline: `${(bytes / MiB).toFixed(1)} MiB tree` },
          { key: 'fullest_peer_ratio', label: 'fullest peer / its storage_max', value: most / offer, unit: 'x', digits: 3 },
          { key: 'resync_moved_ratio', label: `re-sync (${o.changedPct}% changed): bitswap bytes / (changed bytes x ${o.replication})`, value: movedRatio, unit: 'x', digits: 2, baseline: `${((changedBytes * o.replication) / MiB).toFixed(1)} MiB` },
          { key: 'resync_seconds', label: 're-sync until every share is pinned', value: second.seconds, unit: 's', digits: 2 },
          { key: 'heal_seconds', label: `a peer stopped: until every partition has ${o.replication} copies again (TTL ${o.ttlMs / 1000} s included)`, value: heal, unit: 's', digits: 2 }
        ],
        goals: [
          { text: `the cluster holds 2.0-2.3x the tree (${ratio.toFixed(3)}x)`, met: ratio >= 2.0 && ratio <= 2.3 },
          { text: `no peer past its storage_max (${(most / offer).toFixed(3)}x)`, met: most <= offer },
          { text: `a re-sync moves about replication x the changed bytes (${movedRatio.toFixed(2)}x, goal <= 1.5x)`, met: movedRatio <= 1.5 }
        ]
      }
    } finally {
      await stopAll(running)
      if (!o.keep) await root.cleanup()
      else log(`kept ${root.path}`)
    }
  }
}
