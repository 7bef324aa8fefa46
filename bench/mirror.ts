// `npm run bench -- mirror`: `cairn mirror sync` of a package-repository-like tree (10,000 files of mixed sizes)
// to one peer process, then a re-sync after changing 1% of the files, in the same run. The goal: the re-sync
// costs at most 0.1x the first sync, because only what changed is read, hashed, uploaded and fetched.
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createClient } from '../src/client/index.js'
import { syncMirror, type MirrorSyncResult } from '../src/mirror/index.js'
import {
  BenchUsageError, MiB, positiveInt, preparePeers, startPeerProcesses, startPeersInProcess, stopAll, tempDir,
  type Benchmark, type BenchReport, type ChildPeer
} from './lib.js'
import { seededRandom } from '../test/util.js'

interface Options { files: number, changedPct: number, keep: boolean, inProcess: boolean }

function parse (argv: string[]): Options {
  const o: Options = { files: 10_000, changedPct: 1, keep: false, inProcess: false }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]
    if (flag === '--files') o.files = positiveInt('files', argv[++i], o.files)
    else if (flag === '--changed-pct') o.changedPct = positiveInt('changed-pct', argv[++i], o.changedPct)
    else if (flag === '--keep') o.keep = true
    else if (flag === '--in-process') o.inProcess = true
    else throw new BenchUsageError(`unknown flag ${flag}`)
  }
  return o
}

/** Package sizes: 70% 1-16 KiB, 25% 16-128 KiB, 5% 128 KiB - 1 MiB (~53 KiB on average). */
export function packageSize (r: () => number): number {
  const x = r()
  const [lo, hi] = x < 0.7 ? [1024, 16384] : x < 0.95 ? [16384, 131072] : [131072, 1048576]
  return Math.floor(lo + r() * (hi - lo))
}

export function content (r: () => number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size)
  for (let i = 0; i + 4 <= size; i += 4) buf.writeUInt32LE((r() * 4294967296) >>> 0, i)
  for (let i = size - (size % 4); i < size; i++) buf[i] = (r() * 256) | 0
  return buf
}

/** pool/main/<letter>/<source>/<source>_<version>_<arch>.deb plus dists/ indexes, as a Debian mirror lays it out. */
export async function generateTree (dir: string, files: number, r: () => number): Promise<{ paths: string[], bytes: number }> {
  const paths: string[] = []
  const letters = 'abcdefghijklmnopqrstuvwxyz'
  let bytes = 0
  for (let i = 0; paths.length < files - 4; i++) {
    const letter = letters[i % 26]
    const source = `${letter}${(i * 7919 % 100000).toString(36)}-utils`
    const sub = join('pool', 'main', i % 13 === 0 ? `lib${letter}` : letter, source)
    await mkdir(join(dir, sub), { recursive: true })
    for (let v = 0; v < 1 + (i % 5) && paths.length < files - 4; v++) {
      paths.push(join(sub, `${source}_${1 + v}.${i % 10}-${v}_${v % 2 === 0 ? 'amd64' : 'all'}.deb`))
    }
  }
  await mkdir(join(dir, 'dists', 'stable', 'main', 'binary-amd64'), { recursive: true })
  paths.push('dists/stable/Release', 'dists/stable/InRelease', 'dists/stable/main/binary-amd64/Packages', 'dists/stable/main/binary-amd64/Packages.gz')
  for (const p of paths) {
    const size = packageSize(r)
    bytes += size
    await writeFile(join(dir, p), content(r, size))
  }
  return { paths, bytes }
}

export const mirror: Benchmark = {
  description: 'mirror sync of a 10,000-file package tree to one peer, then a re-sync after changing 1% of the files',
  usage: [
    '  --files <n>         files in the tree (default 10000)',
    '  --changed-pct <n>   percent of the files changed before the re-sync (default 1)',
    '  --keep              keep the temp dir (tree, peer, cache) for inspection',
    '  --in-process        run the peer in this process (for node --cpu-prof of both sides)'
  ].join('\n'),

  async run (argv, { log, signal }): Promise<BenchReport> {
    const o = parse(argv)
    const root = await tempDir('cairn-bench-mirror-')
    let peers: Array<{ stop: () => Promise<void> }> = []
    try {
      const tree = join(root.path, 'tree')
      // deterministic: the same tree on every run
      const r = seededRandom(42)
      log(`generating ${o.files} files in ${tree}`)
      const { paths, bytes } = await generateTree(tree, o.files, r)
      log(`tree: ${paths.length} files, ${(bytes / MiB).toFixed(1)} MiB`)

      await mkdir(join(root.path, 'peers'))
      const prepared = await preparePeers({ peers: 1, root: join(root.path, 'peers') })
      let rest: { host: string, port: number }
      if (o.inProcess) {
        const running = await startPeersInProcess(prepared)
        peers = running
        rest = running[0].rest
      } else {
        const children: ChildPeer[] = await startPeerProcesses(prepared, { signal })
        peers = children
        rest = children[0].rest
      }
      const client = createClient({ api: `http://${rest.host}:${rest.port}` })
      const cacheFile = join(root.path, 'cache.json')
      const sync = async (label: string): Promise<{ result: MirrorSyncResult, seconds: number }> => {
        const started = performance.now()
        const result = await syncMirror(client, { dir: tree, name: 'debian', keep: 2, cacheFile, pollMs: 100, signal })
        const seconds = (performance.now() - started) / 1000
        log(`${label}: ${seconds.toFixed(2)} s, read ${result.files_read} files, uploaded ${result.blocks_uploaded} blocks ` +
          `(${(result.bytes_uploaded / MiB).toFixed(1)} MiB), phases ${JSON.stringify(result.phases_ms)}`)
        return { result, seconds }
      }

      const first = await sync('first sync')
      const changed = Math.max(1, Math.round(paths.length * o.changedPct / 100))
      // every (n/changed)-th file gets new content of a new size (a new package version)
      const step = paths.length / changed
      let changedBytes = 0
      for (let k = 0; k < changed; k++) {
        const size = packageSize(r)
        changedBytes += size
        await writeFile(join(tree, paths[Math.floor(k * step)]), content(r, size))
      }
      log(`changed ${changed} files (${(changedBytes / MiB).toFixed(1)} MiB)`)
      const second = await sync('re-sync')
      const ratio = second.seconds / first.seconds
      // the client's share: walk, hash, upload and the pin request, before the peer's pin of the new root
      const clientMs = (p: MirrorSyncResult['phases_ms']): number => p.scan + p.build_upload + p.pin
      const clientRatio = clientMs(second.result.phases_ms) / clientMs(first.result.phases_ms)
      const phases = (p: MirrorSyncResult['phases_ms']): string =>
        `scan ${p.scan} ms, hash+upload ${p.build_upload} ms, pin ${p.pin} ms, wait pinned ${p.wait} ms, unpin ${p.cleanup} ms`
      return {
        title: `mirror: ${paths.length} files (${(bytes / MiB).toFixed(0)} MiB), re-sync after changing ${changed} (${o.changedPct}%), one peer process`,
        params: { files: paths.length, tree_bytes: bytes, changed_files: changed, changed_bytes: changedBytes },
        metrics: [
          { key: 'first_sync_seconds', label: 'first sync (read, hash, upload, pin)', value: first.seconds, unit: 's', digits: 2 },
          { key: 'resync_seconds', label: `re-sync after changing ${o.changedPct}% of the files`, value: second.seconds, unit: 's', digits: 2 },
          { key: 'ratio', label: 're-sync / first sync', value: ratio, unit: 'x', digits: 3, baseline: `${first.seconds.toFixed(2)} s first sync` },
          {
            key: 'client_ratio',
            label: 're-sync / first sync, until the pin is accepted (walk, hash, upload)',
            value: clientRatio,
            unit: 'x',
            digits: 3,
            baseline: `${(clientMs(first.result.phases_ms) / 1000).toFixed(2)} s first sync`
          },
          { key: 'resync_wait_seconds', label: 're-sync: peer pinning the new root (waited)', value: second.result.phases_ms.wait / 1000, unit: 's', digits: 2 },
          { key: 'first_files_read', label: 'files read, first sync', value: first.result.files_read, unit: 'files', digits: 0 },
          { key: 'resync_files_read', label: 'files read, re-sync', value: second.result.files_read, unit: 'files', digits: 0 },
          { key: 'first_uploaded_mib', label: 'uploaded, first sync', value: first.result.bytes_uploaded / MiB, unit: 'MiB', digits: 1 },
          { key: 'resync_uploaded_mib', label: 'uploaded, re-sync', value: second.result.bytes_uploaded / MiB, unit: 'MiB', digits: 2 },
          { key: 'resync_blocks', label: 'blocks uploaded, re-sync', value: second.result.blocks_uploaded, unit: 'blocks', digits: 0 }
        ],
        goals: [{ text: `re-sync <= 0.1x the first sync (${ratio.toFixed(3)}x)`, met: ratio <= 0.1 }],
        notes: [
          `first sync: ${phases(first.result.phases_ms)}`,
          `re-sync:    ${phases(second.result.phases_ms)}`,
          `re-sync kept ${second.result.dirs_kept} unchanged directories whole; the peer records the new root by reference: unchanged subtrees cost one ref on their top block, not a record per block`
        ]
      }
    } finally {
      await stopAll(peers)
      if (!o.keep) await root.cleanup()
      else log(`kept ${root.path}`)
    }
  }
}
