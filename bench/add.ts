// `add` (issue 4): a generated package-repository-like tree (a Debian-style pool: many small files, some
// medium, a few MB-sized ones; incompressible pseudo-random content, deterministic from a seed) added to one
// peer through its REST API exactly as `cairn add -r` does it (src/client: by default the DAG is built in the
// client and its blocks sent as one CAR, then the root pinned), against `cp -a` of the same tree in the same run.
// Goal (issue): add <= 1.5x cp (Kubo 0.4.22 took 3.0x on the Arch repository).
//
// Fairness: the run is several rounds, each cp -a then the add into a fresh peer; the add's figures are medians
// and the baseline is the fastest cp -a (on this machine cp -a of the tree took 0.6 s to 10 s: see timeCp). In each
// round the tree is read whole just before cp, so both read from the page cache (this VM pages out what was not
// touched for a minute); `sync` runs (untimed) before each timed step so that no step pays for the previous
// one's writeback; the peer is stopped before the next round, so its compactions do not slow the next cp.
// Neither side fsyncs (level writes without sync).
// The peer runs in its own process; the client (walk, read, multipart) runs in this one, as the CLI would.
//
// The alternative a JS user would pick, in the same rounds: Helia 7 with @helia/unixfs importing the same tree
// (globSource, addAll) into blockstore-fs, with the importer options that give the same root CID (checked: the
// bench fails if it differs), in its own process (bench/helia-process.ts: an in-memory datastore, Helia not
// started, so no libp2p). Timed as the add: the tree read just before, an untimed `sync`, a fresh folder; its
// figure is the import until the root (helia.pins.add after it is timed apart). Its folders, one file per block,
// are kept until the end of the run, as cp -a's copies are (see timeCp).
import { spawn } from 'node:child_process'
import { createReadStream, createWriteStream } from 'node:fs'
import { createCipheriv, createHash } from 'node:crypto'
import { open, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { parseAddQuery } from '../src/api/rest/pin-options.js'
import { addAsBlocks, type BlockAddComponents } from '../src/client/add-blocks.js'
import { createClient } from '../src/client/index.js'
import type { AddedOutput } from '../src/components.js'
import {
  BenchUsageError, PEER_FLAGS, parseFlags, peerFlags, type PeerFlagValues, cpuSeconds, formatNumber, httpRequest, median, MiB, positiveInt, preparePeers, procRss, sampleRss, sleep, spread,
  startHeliaProcess, startPeerProcesses, stopAll, tempDir, waitFor, type Benchmark, type BenchContext, type BenchReport, type ChildPeer, type Metric, type PeerProcessOptions
} from './lib.js'

const USAGE = `  --files N         files in the generated tree (default 10000; sizes scale with it, ~35 KB a file on average)
  --seed S          seed of the tree's names, sizes and content (default 1)
  --tree-dir DIR    where generated trees are cached between runs (default: the OS temp dir)
  --regenerate      generate the tree again even if a cached one exists
  --no-pin          add with no-pin=true (import only), as \`cairn add --no-pin\`
  --upload WHAT     blocks (default, as \`cairn add\`): the client builds the DAG and sends its blocks as a CAR,
                    then pins the root; files: a multipart body the peer imports (\`cairn add --upload files\`,
                    as ipfs-cluster-ctl)
  --rounds N        rounds, each cp -a then the add into a fresh peer (default 5); the add's figures are
                    medians, the baseline is the fastest cp -a
  --settle S        wait until S seconds (default 180) have passed since the last run removed its copies of the
                    tree: on an ext4 without a journal, the inodes freed slow file creation for minutes after
  --no-helia        skip Helia + @helia/unixfs + blockstore-fs (the same tree imported in each round, after cairn)
  --no-car          skip the peer's part alone (the add's blocks, built as a CAR file before the rounds, sent
                    to another fresh peer in each round)
  --cpu-prof        write a V8 CPU profile of the peer over the first round's add (path printed under the table)
  --keep            keep the peer's folder (path printed under the table)
  --verbose         show the peer's log lines on stderr`

const GOAL_RATIO = 1.5
/** Bumped when the generator changes, so that an old cached tree is never taken for the new one. */
const TREE_VERSION = 1

interface Options extends PeerFlagValues {
  files: number
  seed: number
  treeDir: string
  regenerate: boolean
  pin: boolean
  upload: 'files' | 'blocks'
  rounds: number
  car: boolean
  helia: boolean
  settle: number
}

function parseOptions (argv: string[]): Options {
  const values = parseFlags(argv, {
    files: { type: 'string' },
    seed: { type: 'string' },
    'tree-dir': { type: 'string' },
    regenerate: { type: 'boolean' },
    'no-pin': { type: 'boolean' },
    upload: { type: 'string' },
    rounds: { type: 'string' },
    'no-car': { type: 'boolean' },
    'no-helia': { type: 'boolean' },
    settle: { type: 'string' },
    ...PEER_FLAGS
  })
  const upload = values.upload ?? 'blocks'
  if (upload !== 'files' && upload !== 'blocks') throw new BenchUsageError(`--upload must be files or blocks, not "${upload}"`)
  return {
    upload,
    files: positiveInt('files', values.files, 10_000),
    seed: positiveInt('seed', values.seed, 1),
    treeDir: values['tree-dir'] ?? os.tmpdir(),
    regenerate: values.regenerate ?? false,
    pin: values['no-pin'] !== true,
    rounds: positiveInt('rounds', values.rounds, 5),
    car: values['no-car'] !== true,
    helia: values['no-helia'] !== true,
    settle: values.settle === '0' ? 0 : positiveInt('settle', values.settle, 180),
    ...peerFlags(values)
  }
}

// ---------------------------------------------------------------------------------------------------------
// The tree

/** splitmix32: a small deterministic PRNG, floats in [0, 1). */
function prng (seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32
  }
}

const logUniform = (r: number, min: number, max: number): number => Math.round(min * Math.exp(r * Math.log(max / min)))

interface TreeFile { path: string, size: number }

const SYLLABLES = ['lib', 'py', 'gnu', 'x', 'core', 'net', 'ssl', 'z', 'font', 'perl', 'ruby', 'node', 'qt', 'gtk',
  'dev', 'utils', 'tools', 'data', 'doc', 'common', 'kde', 'ml', 'go', 'rust', 'sql', 'http', 'img', 'audio']
const ARCHES = ['amd64', 'arm64', 'all']

/**
 * The tree's layout, as a Debian pool: pool/main/<prefix>/<package>/ with a .dsc, a .debian.tar.xz, an
 * .orig.tar.xz and one .deb per architecture; plus dists/ indexes. Sizes are log-uniform within classes:
 * ~82% small (200 B - 48 KB), ~17.6% medium (48 - 160 KB), ~0.4% large (1 - 6 MB).
 */
function layout (files: number, seed: number): TreeFile[] {
  const rand = prng(seed)
  const out: TreeFile[] = []
  const size = (): number => {
    const r = rand()
    if (r < 0.004) return logUniform(rand(), 1 * MiB, 6 * MiB)
    if (r < 0.18) return logUniform(rand(), 48 * 1024, 160 * 1024)
    return logUniform(rand(), 200, 48 * 1024)
  }
  for (const arch of ARCHES) {
    for (const name of ['Packages.xz', 'Contents.gz', 'Release']) {
      out.push({ path: `dists/stable/main/binary-${arch}/${name}`, size: size() })
    }
  }
  for (let p = 0; out.length < files; p++) {
    const parts = 1 + Math.floor(rand() * 3)
    let name = ''
    for (let i = 0; i < parts; i++) name += (i > 0 && rand() < 0.4 ? '-' : '') + SYLLABLES[Math.floor(rand() * SYLLABLES.length)]
    name += `-${p.toString(36)}`
    const prefix = name.startsWith('lib') ? `lib${name[3] === '-' ? name[4] : name[3]}` : name[0]
    const version = `${1 + Math.floor(rand() * 9)}.${Math.floor(rand() * 20)}.${Math.floor(rand() * 10)}-${1 + Math.floor(rand() * 4)}`
    const dir = `pool/main/${prefix}/${name}`
    const names = [`${name}_${version}.dsc`, `${name}_${version}.debian.tar.xz`, `${name}_${version.split('-')[0]}.orig.tar.xz`]
    for (const arch of ARCHES) if (rand() < 0.5) names.push(`${name}_${version}_${arch}.deb`)
    for (const n of names) {
      if (out.length >= files) break
      out.push({ path: `${dir}/${n}`, size: size() })
    }
  }
  return out
}

interface Manifest { version: number, files: number, seed: number, bytes: number, dirs: number }

/** Incompressible bytes, a distinct stream per file: AES-128-CTR of zeros, keyed by the seed, IV = file index. */
function content (seed: number, index: number, size: number): Buffer {
  const key = createHash('sha256').update(`cairn bench add ${seed}`).digest().subarray(0, 16)
  const iv = Buffer.alloc(16)
  iv.writeUInt32BE(index, 12)
  const cipher = createCipheriv('aes-128-ctr', key, iv)
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()])
}

/** The tree under <cache>/repo, generated unless a complete one is cached (its manifest is written last). */
async function ensureTree (o: Options, log: (line: string) => void, signal: AbortSignal): Promise<{ dir: string, manifest: Manifest }> {
  const cache = join(o.treeDir, `cairn-bench-add-tree-v${TREE_VERSION}-${o.files}-${o.seed}`)
  const manifestFile = join(cache, 'manifest.json')
  const dir = join(cache, 'repo')
  if (!o.regenerate) {
    try {
      const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as Manifest
      if (manifest.version === TREE_VERSION && manifest.files === o.files && manifest.seed === o.seed) {
        log(`using the cached tree ${dir}`)
        return { dir, manifest }
      }
    } catch {}
  }
  await rm(cache, { recursive: true, force: true })
  const files = layout(o.files, o.seed)
  const dirs = new Set<string>()
  for (const f of files) {
    for (let i = f.path.indexOf('/'); i !== -1; i = f.path.indexOf('/', i + 1)) dirs.add(f.path.slice(0, i))
  }
  log(`generating ${formatNumber(files.length, 0)} files in ${formatNumber(dirs.size, 0)} directories under ${dir}`)
  const t = performance.now()
  for (const d of [...dirs].sort()) await mkdir(join(dir, d), { recursive: true })
  let next = 0
  let bytes = 0
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < files.length) {
      signal.throwIfAborted()
      const i = next++
      bytes += files[i].size
      await writeFile(join(dir, files[i].path), content(o.seed, i, files[i].size))
    }
  }))
  const manifest: Manifest = { version: TREE_VERSION, files: files.length, seed: o.seed, bytes, dirs: dirs.size + 1 }
  await writeFile(manifestFile, JSON.stringify(manifest, null, 2))
  log(`generated ${(bytes / MiB).toFixed(1)} MiB in ${((performance.now() - t) / 1000).toFixed(1)} s`)
  return { dir, manifest }
}

/** Reads every file once (so that every timed step reads from the page cache); returns the bytes read. */
async function warm (dir: string): Promise<number> {
  let total = 0
  const buf = Buffer.alloc(MiB)
  const visit = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) { await visit(p); continue }
      const fh = await open(p)
      try {
        for (let n = -1; n !== 0;) { n = (await fh.read(buf, 0, buf.length)).bytesRead; total += n }
      } finally {
        await fh.close()
      }
    }
  }
  await visit(dir)
  return total
}

async function run (cmd: string, args: string[], signal: AbortSignal): Promise<void> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], signal })
  let err = ''
  child.stderr.setEncoding('utf8').on('data', (s: string) => { err += s })
  const code = await new Promise<number | null>((resolve, reject) => { child.once('error', reject).once('close', resolve) })
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim()}`)
}

/**
 * Seconds `cp -a` takes to copy the tree to dest, after an untimed sync. The copy is left in place until the end
 * of the run: this machine's ext4 has no journal, and without one ext4 will not reuse an inode freed in the last
 * 60 s (300 s while its table block is dirty), scanning past each; copying right after removing the previous
 * copy's 12,000 inodes took 9-10 s of kernel time instead of ~1 s.
 */
async function timeCp (src: string, dest: string, signal: AbortSignal): Promise<number> {
  await run('sync', [], signal)
  const t = performance.now()
  await run('cp', ['-a', src, dest], signal)
  return (performance.now() - t) / 1000
}

/**
 * Waits until `seconds` have passed since the last run removed its copies (the time is in `marker`): removing
 * ~60,000 inodes slowed the next minutes' cp -a on this machine's journal-less ext4 (see timeCp).
 */
async function settle (marker: string, seconds: number, log: (line: string) => void, signal: AbortSignal): Promise<void> {
  let at: number
  try {
    at = Date.parse(await readFile(marker, 'utf8'))
  } catch {
    return
  }
  const wait = at + seconds * 1000 - Date.now()
  if (!(wait > 0)) return
  log(`the last run removed its copies ${Math.round((Date.now() - at) / 1000)} s ago: waiting ${Math.ceil(wait / 1000)} s so that cp -a is not slowed by it (--settle 0 to skip)`)
  await sleep(wait, signal)
}

/** Seconds until the peer reports the root `pinned` (GET /pins/{cid}?local=true, polled every 20 ms). */
async function waitPinned (peer: ChildPeer, cid: string, since: number, signal: AbortSignal): Promise<number> {
  await waitFor(async () => {
    const res = await httpRequest(peer.rest, 'GET', `/pins/${cid}?local=true`, { signal })
    if (res.status !== 200) return false
    const info = JSON.parse(res.body.toString()) as { peer_map: Record<string, { status: string, error?: string }> }
    const status = Object.values(info.peer_map)[0]
    if (status?.status === 'pin_error') throw new Error(`the root did not pin: ${status.error ?? 'pin_error'}`)
    return status?.status === 'pinned'
  }, { timeoutMs: 600_000, intervalMs: 20, signal, message: `${cid} is not pinned on ${peer.name}` })
  return (performance.now() - since) / 1000
}

/** What one round measured: cp -a, then the add into a fresh peer. */
interface Round {
  cp: number
  add: number
  pinned?: number
  root: string
  lines: number
  peerCpu: number
  clientCpu: number
  rssPeak: number
  peerDirBytes: number
  threads: string
  /** The same blocks as a CAR file into another fresh peer: seconds, and that peer's CPU seconds. */
  car?: { seconds: number, peerCpu: number }
  helia?: HeliaRound
}

/** The same tree imported by Helia + @helia/unixfs into blockstore-fs (bench/helia-process.ts). */
interface HeliaRound {
  /** Seconds of the import, until the root. */
  add: number
  /** Seconds of helia.pins.add of the root, after the import. */
  pin: number
  root: string
  /** CPU seconds of the Helia process over the import. */
  cpu: number
  rssPeak: number
  dirBytes: number
}

/**
 * One round: a fresh peer (its own folder), the tree read again (the machine may have dropped it from the page
 * cache since), `sync`, cp -a timed, `sync`, the add timed (and until pinned); then the peer is stopped and its
 * folder removed, so that nothing it still does (LevelDB compactions, writeback) lands in the next round's steps.
 */
async function addRound (o: Options, tree: string, dir: string, copy: string, profile: string | undefined, ctx: BenchContext): Promise<Round> {
  const { log, signal } = ctx
  const output = o.verbose ? (name: string, line: string) => { log(`${name}: ${line}`) } : undefined
  return await withFreshPeer(dir, { keep: o.keep || profile != null, output }, signal, async peer => {
    const t0 = performance.now()
    const warmed = await warm(tree)
    log(`read the tree (${(warmed / MiB).toFixed(1)} MiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s: page cache warm`)
    const cp = await timeCp(tree, copy, signal)
    log(`cp -a: ${cp.toFixed(2)} s`)

    const client = createClient({ api: `${peer.rest.host}:${peer.rest.port}` })
    await run('sync', [], signal)
    if (profile != null) await peer.startCpuProfile()
    const before = await peer.stats()
    const threadsBefore = [await threadCpu(peer.pid), await threadCpu(process.pid)]
    const sampler = sampleRss([async () => await peer.rss()])
    const clientCpu = process.cpuUsage()
    const t = performance.now()
    let lines = 0
    let rootLine: AddedOutput | undefined
    for await (const line of client.add([tree], { recursive: true, noPin: o.pin ? undefined : true, upload: o.upload, signal })) {
      lines++
      rootLine = line
    }
    const add = (performance.now() - t) / 1000
    const clientCpuS = (() => { const c = process.cpuUsage(clientCpu); return (c.user + c.system) / 1e6 })()
    if (rootLine == null || rootLine.name !== 'repo') throw new Error(`the add did not end with the root directory: ${JSON.stringify(rootLine)}`)
    log(`add: ${add.toFixed(2)} s, ${lines} lines, root ${rootLine.cid}`)
    const pinned = o.pin ? await waitPinned(peer, rootLine.cid, t, signal) : undefined
    if (pinned !== undefined) log(`root pinned ${pinned.toFixed(2)} s after the add started`)
    const after = await peer.stats()
    const threadsAfter = [await threadCpu(peer.pid), await threadCpu(process.pid)]
    const rssPeak = (await sampler.stop())[0]
    if (profile != null) await peer.stopCpuProfile(profile)
    const threads = threadsAfter[0].size > 0
      ? `peer ${cpuDelta(threadsBefore[0], threadsAfter[0])}; client ${cpuDelta(threadsBefore[1], threadsAfter[1])}`
      : ''
    return {
      cp,
      add,
      pinned,
      root: rootLine.cid,
      lines,
      peerCpu: cpuSeconds(before, after),
      clientCpu: clientCpuS,
      rssPeak,
      peerDirBytes: await duBytes(peer.dir),
      threads
    }
  })
}

/**
 * Runs `fn` with a fresh peer whose folder is under `dir`; then stops it, removes `dir` (unless `keep`) and runs
 * `sync`, so that nothing the peer still does (LevelDB compactions, writeback) lands in the next step.
 */
async function withFreshPeer<T> (dir: string, options: { keep: boolean, output?: PeerProcessOptions['output'] }, signal: AbortSignal, fn: (peer: ChildPeer) => Promise<T>): Promise<T> {
  await mkdir(dir)
  let peers: ChildPeer[] = []
  try {
    peers = await startPeerProcesses(await preparePeers({ peers: 1, root: dir }), { output: options.output, signal })
    return await fn(peers[0])
  } finally {
    await stopAll(peers)
    if (!options.keep) await rm(dir, { recursive: true, force: true })
    await run('sync', [], signal)
  }
}

/**
 * Helia's round: the tree read again, a fresh Helia process on a fresh folder (kept until the end of the run, see
 * timeCp), `sync`, the import timed, then helia.pins.add of the root timed; the process stopped, `sync`.
 */
async function heliaRound (o: Options, tree: string, dir: string, ctx: BenchContext): Promise<HeliaRound> {
  const { log, signal } = ctx
  await warm(tree)
  const helia = await startHeliaProcess('helia', { dir, network: false }, { output: o.verbose ? (name, line) => { log(`${name}: ${line}`) } : undefined, signal })
  try {
    await run('sync', [], signal)
    const before = await helia.stats()
    const sampler = sampleRss([async () => await procRss(helia.pid)])
    const added = await helia.request<{ cid: string, ms: number, entries: number }>('add-tree', { tree }, 'import the tree', { timeoutMs: 1_800_000, signal })
    const cpu = cpuSeconds(before, await helia.stats())
    const rssPeak = (await sampler.stop())[0]
    const pinned = await helia.request<{ ms: number, blocks: number }>('pin', { cid: added.cid }, 'pin the root', { timeoutMs: 1_800_000, signal })
    log(`Helia + blockstore-fs: import ${(added.ms / 1000).toFixed(2)} s (${added.entries} entries, root ${added.cid}), then pins.add ${(pinned.ms / 1000).toFixed(2)} s (${pinned.blocks} blocks)`)
    return { add: added.ms / 1000, pin: pinned.ms / 1000, root: added.cid, cpu, rssPeak, dirBytes: await duBytes(dir) }
  } finally {
    await helia.stop()
    await run('sync', [], signal)
  }
}

/**
 * The tree's blocks as the client sends them (one CAR: the DAG built here with the peer's importer, every block
 * once), written to a file before anything is timed.
 */
async function buildCar (tree: string, file: string, signal: AbortSignal): Promise<void> {
  const { params } = parseAddQuery(new URLSearchParams({ 'no-pin': 'true' }))
  const components: BlockAddComponents = {
    addCar: car => (async function * () { await pipeline(Readable.from(car), createWriteStream(file), { signal }) })(),
    pin: async () => { throw new Error('no pin on this path') }
  }
  for await (const _ of addAsBlocks([tree], { recursive: true }, params, { recursive: true, noPin: true, signal }, components)) { /* lines */ }
}

/**
 * The peer's side of the add alone: the CAR file (read once just before, so from the page cache) posted to a
 * fresh peer with no-pin, as the client's upload is; the peer parses it, checks every block's hash and writes
 * it to level. What the client does (walk, read, chunk, hash, encode) is not in this figure.
 */
async function carRound (o: Options, carFile: string, dir: string, ctx: BenchContext): Promise<{ seconds: number, peerCpu: number }> {
  const { log, signal } = ctx
  return await withFreshPeer(dir, { keep: o.keep }, signal, async peer => {
    await readFile(carFile)
    await run('sync', [], signal)
    const client = createClient({ api: `${peer.rest.host}:${peer.rest.port}` })
    const before = await peer.stats()
    const t = performance.now()
    for await (const _ of client.addCar(createReadStream(carFile, { highWaterMark: MiB }), { noPin: true, signal })) { /* the root line */ }
    const seconds = (performance.now() - t) / 1000
    const after = await peer.stats()
    log(`CAR into a fresh peer: ${seconds.toFixed(2)} s`)
    return { seconds, peerCpu: cpuSeconds(before, after) }
  })
}

async function benchAdd (argv: string[], ctx: BenchContext): Promise<BenchReport> {
  const o = parseOptions(argv)
  const { log, signal } = ctx
  const { dir: tree, manifest } = await ensureTree(o, log, signal)
  const root = await tempDir('cairn-bench-add-')
  const profile = o.cpuProf ? join(root.path, 'peer-0.cpuprofile') : undefined
  const copies = join(root.path, 'copies') // cp -a's copies, all removed at the end (see timeCp)
  const removedAt = join(o.treeDir, 'cairn-bench-add-copies-removed-at')
  await settle(removedAt, o.settle, log, signal)
  await mkdir(copies)
  try {
    const carFile = join(root.path, 'tree.car')
    if (o.car) {
      const t = performance.now()
      await buildCar(tree, carFile, signal)
      log(`the tree's blocks written as a CAR (${((await stat(carFile)).size / MiB).toFixed(1)} MiB) in ${((performance.now() - t) / 1000).toFixed(1)} s`)
    }
    const rounds: Round[] = []
    for (let r = 1; r <= o.rounds; r++) {
      log(`round ${r} of ${o.rounds}`)
      // the CPU profile covers the first round only
      const round = await addRound(o, tree, join(root.path, `round-${r}`), join(copies, `round-${r}`), r === 1 ? profile : undefined, ctx)
      if (o.car) round.car = await carRound(o, carFile, join(root.path, `round-${r}-car`), ctx)
      if (o.helia) {
        round.helia = await heliaRound(o, tree, join(copies, `helia-${r}`), ctx)
        if (round.helia.root !== round.root) {
          throw new Error(`Helia + @helia/unixfs gave the root ${round.helia.root}, cairn ${round.root}: the importer options differ, the comparison would be meaningless`)
        }
      }
      rounds.push(round)
    }
    await rm(carFile, { force: true })
    const roots = new Set(rounds.map(r => r.root))
    if (roots.size !== 1) throw new Error(`the rounds gave different roots: ${[...roots].join(', ')}`)
    const rootCid = rounds[0].root

    const med = (f: (r: Round) => number): number => median(rounds.map(f))
    // the baseline is the fastest cp -a: whatever else the machine does only adds to it (on this machine, files
    // removed in the last minutes made some cp -a runs 3-10x slower; see timeCp), while cairn's figures are
    // medians, so any luck goes against cairn
    const cpS = Math.min(...rounds.map(r => r.cp))
    const addS = med(r => r.add)
    const ratio = addS / cpS
    const pinnedS = o.pin ? med(r => r.pinned ?? NaN) : undefined
    const carS = o.car ? med(r => r.car?.seconds ?? NaN) : undefined
    const heliaS = o.helia ? med(r => r.helia?.add ?? NaN) : undefined
    const of = o.rounds > 1 ? ` (median of ${o.rounds} rounds)` : ''
    const range = (f: (r: Round) => number): string => spread(rounds.map(f), 2)

    const mb = manifest.bytes / 1e6
    const metrics: Metric[] = [
      { key: 'add_seconds', label: `add over REST (cairn add -r: POST /add, until the last line)${of}`, value: addS, unit: 's' },
      { key: 'cp_seconds', label: `cp -a of the same tree${o.rounds > 1 ? ` (fastest of ${o.rounds} rounds)` : ''}`, value: cpS, unit: 's', digits: 2 },
      { key: 'add_vs_cp', label: 'add / cp -a', value: ratio, unit: 'ratio', digits: 2, baseline: `cp -a ${cpS.toFixed(2)} s` },
      ...(pinnedS !== undefined
        ? [
            { key: 'pinned_seconds', label: `add until the root is \`pinned\` on the peer${of}`, value: pinnedS, unit: 's' },
            { key: 'pinned_vs_cp', label: 'add + pinned / cp -a', value: pinnedS / cpS, unit: 'ratio', digits: 2, baseline: `cp -a ${cpS.toFixed(2)} s` }
          ]
        : []),
      ...(carS !== undefined
        ? [
            { key: 'car_seconds', label: `the peer's part alone: the same blocks as a CAR file into a fresh peer${of}`, value: carS, unit: 's' },
            { key: 'car_vs_cp', label: 'CAR into the peer / cp -a', value: carS / cpS, unit: 'ratio', digits: 2, baseline: `cp -a ${cpS.toFixed(2)} s` },
            { key: 'car_peer_cpu', label: `CPU time of the peer over the CAR${of}`, value: med(r => r.car?.peerCpu ?? NaN), unit: 's' }
          ]
        : []),
      ...(heliaS !== undefined
        ? [
            { key: 'helia_add_seconds', label: `Helia 7 + @helia/unixfs into blockstore-fs, same tree and root CID: import until the root${of}`, value: heliaS, unit: 's' },
            { key: 'helia_vs_cp', label: 'Helia + blockstore-fs / cp -a', value: heliaS / cpS, unit: 'ratio', digits: 2, baseline: `cp -a ${cpS.toFixed(2)} s` },
            { key: 'add_vs_helia', label: 'cairn add / Helia + blockstore-fs', value: addS / heliaS, unit: 'ratio', digits: 2, baseline: `Helia ${heliaS.toFixed(2)} s` },
            { key: 'helia_pinned_seconds', label: `Helia: import, then helia.pins.add of the root${of}`, value: med(r => (r.helia?.add ?? NaN) + (r.helia?.pin ?? NaN)), unit: 's' },
            { key: 'helia_cpu', label: `CPU time of the Helia process over the import${of}`, value: med(r => r.helia?.cpu ?? NaN), unit: 's' },
            { key: 'helia_rss_peak', label: 'RSS of the Helia process, peak over the import (highest round)', value: Math.max(...rounds.map(r => r.helia?.rssPeak ?? NaN)) / MiB, unit: 'MiB', digits: 1 },
            { key: 'helia_dir_bytes', label: 'Helia\'s blockstore-fs folder after the import (file bytes)', value: (rounds[0].helia?.dirBytes ?? NaN) / 1e6, unit: 'MB' }
          ]
        : []),
      { key: 'add_throughput', label: 'add throughput (file bytes)', value: mb / addS, unit: 'MB/s' },
      { key: 'cp_throughput', label: 'cp -a throughput', value: mb / cpS, unit: 'MB/s' },
      { key: 'add_files_rate', label: 'add rate (files)', value: manifest.files / addS, unit: 'files/s' },
      { key: 'peer_cpu', label: `CPU time of the peer over the add${of}`, value: med(r => r.peerCpu), unit: 's' },
      { key: 'client_cpu', label: `CPU time of the client (walk, read, multipart)${of}`, value: med(r => r.clientCpu), unit: 's' },
      { key: 'rss_peak', label: 'RSS of the peer, peak over the add (highest round)', value: Math.max(...rounds.map(r => r.rssPeak)) / MiB, unit: 'MiB', digits: 1 },
      { key: 'peer_dir_bytes', label: 'peer folder on disk after the add (blocks, pins, pinset)', value: rounds[0].peerDirBytes / 1e6, unit: 'MB' }
    ]
    const notes = [
      `tree: ${formatNumber(manifest.files, 0)} files in ${formatNumber(manifest.dirs, 0)} directories, ${(manifest.bytes / 1e6).toFixed(1)} MB, seed ${o.seed}; root ${rootCid} (the same tree gives the same CID)`,
      'each round: a fresh peer; the tree read once (page cache warm); `sync`; cp -a (into a new folder, all removed at the end); `sync`; the add; the peer stopped and its folder removed' +
        (o.car ? '; then another fresh peer, sent the CAR file (built before the rounds) as the client sends its blocks' : '') +
        (o.helia ? '; then the tree read again, `sync`, and Helia (its own process, a fresh blockstore-fs folder) importing it' : ''),
      ...rounds.map((r, i) => `round ${i + 1}: cp -a ${r.cp.toFixed(2)} s, add ${r.add.toFixed(2)} s` +
        (r.pinned !== undefined ? `, pinned ${r.pinned.toFixed(2)} s` : '') + (r.car != null ? `, CAR ${r.car.seconds.toFixed(2)} s` : '') +
        (r.helia != null ? `, Helia ${r.helia.add.toFixed(2)} s (+ pins.add ${r.helia.pin.toFixed(2)} s)` : '') +
        (r.threads !== '' ? `; add's CPU by thread: ${r.threads}` : '')),
      ...(o.rounds > 1 ? [`range over the rounds: cp -a ${range(r => r.cp)} s, add ${range(r => r.add)} s${o.helia ? `, Helia ${range(r => r.helia?.add ?? NaN)} s` : ''}`] : []),
      ...(o.helia
        ? ['Helia: createHelia({ blockstore: new FsBlockstore(dir), datastore: new MemoryDatastore() }), not started (no libp2p); unixfs(helia).addAll(globSource(tree, \'**/*\'), ' +
            '{ profile: \'unixfs-v0-2015\', cidVersion: 0, rawLeaves: false, 256 KiB chunks, balanced 174, wrapWithDirectory: true }; blockstore-fs writes each block to a temp file and renames it, no fsync']
        : []),
      ...(rounds.some(r => r.cp > 2 * cpS) ? ['some cp -a runs took over twice the fastest: on ext4 without a journal, files removed in the last minutes slow file creation (see --settle)'] : []),
      `the client runs in the benchmark process, the peer in its own (${os.cpus().length} cores shared by both, and by anything else running)`
    ]
    if (profile != null) notes.push(`CPU profile of the peer over the first round's add: ${profile}`)
    if (o.keep || profile != null) notes.push(`peer folders kept in ${root.path}`)
    return {
      title: `add: ${formatNumber(manifest.files, 0)} files, ${(manifest.bytes / 1e6).toFixed(0)} MB, added to one peer over REST (${o.upload === 'blocks' ? 'DAG built by the client, blocks as a CAR, root pinned' : 'multipart POST /add'}${o.pin ? '' : ', no-pin'}) vs cp -a, ${o.rounds} round${o.rounds === 1 ? '' : 's'}`,
      params: { files: manifest.files, bytes: manifest.bytes, seed: o.seed, pin: o.pin, upload: o.upload, rounds: o.rounds, root_cid: rootCid },
      metrics,
      goals: [{ text: `add <= ${GOAL_RATIO}x cp -a (${ratio.toFixed(2)}x${heliaS !== undefined ? `; Helia + blockstore-fs ${(heliaS / cpS).toFixed(2)}x` : ''})`, met: ratio <= GOAL_RATIO }],
      notes
    }
  } finally {
    await rm(copies, { recursive: true, force: true })
    await run('sync', [], AbortSignal.timeout(60_000)).catch(() => {})
    await writeFile(removedAt, new Date().toISOString()).catch(() => {})
    if (!o.keep && profile == null) await root.cleanup()
  }
}

/** CPU seconds (user + system) of a process's main thread and of its other threads, from /proc (empty without /proc). */
async function threadCpu (pid: number): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  let tids: string[]
  try {
    tids = await readdir(`/proc/${pid}/task`)
  } catch {
    return out
  }
  const tick = 100 // USER_HZ on Linux
  for (const tid of tids) {
    try {
      const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      // the thread's name is in parentheses and may hold spaces; the fields after it are space-separated
      const close = stat.lastIndexOf(')')
      const fields = stat.slice(close + 2).split(' ')
      const seconds = (Number(fields[11]) + Number(fields[12])) / tick
      // Node 20 names no thread: the pool (level, fs, crypto) and V8's workers (GC) are all 'node'
      const kind = tid === String(pid) ? 'main thread' : 'other threads'
      out.set(kind, (out.get(kind) ?? 0) + seconds)
    } catch {} // the thread ended meanwhile
  }
  return out
}

function cpuDelta (before: Map<string, number>, after: Map<string, number>): string {
  return [...after].map(([k, v]) => `${k} ${(v - (before.get(k) ?? 0)).toFixed(1)} s`).join(', ')
}

/** Bytes of the files under a folder (du -sb without du). */
async function duBytes (dir: string): Promise<number> {
  let total = 0
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await stat(join(e.parentPath, e.name))).size
  }
  return total
}

export const add: Benchmark = {
  description: 'A generated Debian-pool-like tree (10,000 files, ~335 MB) added to one peer over REST as `cairn add -r` ' +
    'does, against `cp -a` of the same tree in the same run. Prints both times and the ratio; also until the root is pinned.',
  usage: USAGE,
  run: benchAdd
}
