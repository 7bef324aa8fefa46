// kill -9 during heavy writes to the block store (issue 19, "Must show"): a peer process is SIGKILLed at a random
// moment while it adds files (`cairn add`), fetches pins' blocks from another peer over bitswap, runs a repo GC,
// and compacts segments (small segments, mostly garbage, then a GC), 5 trials of each, interleaved. After every
// restart: every acknowledged pin is in GET /allocations and pinned on the peer, every block of every pinned DAG is
// read from its store alone (the gateway with Cache-Control: only-if-cached) and hashes to its CID, every file
// reads back with the bytes added, and repo verify finds no problem. Delays and content come from one seed,
// printed as a diagnostic: CAIRN_TEST_KILL9_SEED=<seed> replays them.
import assert from 'node:assert/strict'
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CarReader } from '@ipld/car'
import { exporter } from 'ipfs-unixfs-exporter'
import { sha256 } from 'multiformats/hashes/sha2'
import { createClient, type Client } from '../../src/client/index.js'
import { hashesTo } from '../../src/utils/cid.js'
import { seededRandom, sha256Hex, sleep, tempDir, waitFor } from '../util.js'
import { cairn, cairnOk, freePorts, spawnDaemon, type Daemon as BaseDaemon } from './processes.js'
import type { AddedOutput } from '../../src/types/wire.js'
import type { CID } from 'multiformats/cid'

const KiB = 1024
const MiB = 1024 * KiB
/** The victim's segment size: its few MB of blocks span many segments, so that compaction has work. */
const SEGMENT_BYTES = MiB
const ROUNDS = 5
const KINDS = ['add', 'fetch', 'gc', 'compaction'] as const
type Kind = typeof KINDS[number]
/** The kill comes this long at most (uniformly drawn) after the heavy writes were seen to start. */
const KILL_WITHIN_MS: Record<Kind, number> = { add: 400, fetch: 350, gc: 500, compaction: 80 }
/** Bound on a restarted peer finishing the pins it had in flight. */
const PINNED_WITHIN_MS = 30_000

interface Daemon extends BaseDaemon { gateway: string }

/** A pin the cluster acknowledged: the trial that made it, and what its files hold. */
interface Acked { label: string, round: number, kind: Kind, files: Map<string, string> }

interface Tree { path: string, files: Map<string, string>, bytes: number }

/** `files` files of seeded random bytes (sizes log-uniform in [min, max]) in `dir`, a third of them in a sub folder. */
async function makeTree (dir: string, rand: () => number, files: number, min: number, max: number): Promise<Tree> {
  await mkdir(join(dir, 'sub'), { recursive: true })
  const out = new Map<string, string>()
  let total = 0
  for (let i = 0; i < files; i++) {
    const size = Math.round(min * Math.exp(rand() * Math.log(max / min)))
    const words = new Uint32Array(Math.ceil(size / 4))
    for (let j = 0; j < words.length; j++) words[j] = rand() * 2 ** 32
    const bytes = new Uint8Array(words.buffer, 0, size)
    const name = `${i % 3 === 0 ? 'sub/' : ''}f${String(i).padStart(3, '0')}.bin`
    await writeFile(join(dir, name), bytes)
    out.set(name, sha256Hex(bytes))
    total += size
  }
  return { path: dir, files: out, bytes: total }
}

/** Bytes of the segment files of a peer's value log, by name. */
async function segments (d: Daemon): Promise<Map<string, number>> {
  const dir = join(d.dir, 'blocks-vlog')
  const names = (await readdir(dir).catch(() => [])).filter(n => n.endsWith('.seg'))
  const sizes = await Promise.all(names.map(async n => await stat(join(dir, n)).then(s => s.size, () => -1)))
  return new Map(names.map((n, i) => [n, sizes[i]]))
}

const total = (s: Map<string, number>): number => [...s.values()].reduce((a, b) => a + b, 0)
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`
const bytesOf = (trees: Tree[]): number => trees.reduce((n, t) => n + t.bytes, 0)
const same = (a: Map<string, number>, b: Map<string, number>): boolean => a.size === b.size && [...a].every(([n, s]) => b.get(n) === s)

async function rootOf (lines: AsyncIterable<AddedOutput>): Promise<string> {
  let last: AddedOutput | undefined
  for await (const line of lines) last = line
  assert.ok(last != null, 'the add gave no output')
  return last.cid
}

describe('kill -9 during heavy writes to the block store', { timeout: 300_000 }, () => {
  let tmp: { path: string, cleanup: () => Promise<void> }
  let victim: Daemon
  let source: Daemon
  let api: Client
  let sourceApi: Client

  const start = async (d: Daemon, env: NodeJS.ProcessEnv): Promise<void> => {
    spawnDaemon(d, { CAIRN_PINSVC_ENABLED: 'false', CAIRN_METRICS_ENABLED: 'false', CAIRN_DISK_RESERVE_BYTES: '0', ...env })
    const child = d.child!
    await waitFor(async () => {
      if (child.exitCode != null) throw new Error(`${d.name} exited with code ${child.exitCode}:\n${d.output}`)
      return (await fetch(`http://${d.rest}/health`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined))?.status === 204
    }, { timeoutMs: 30_000, intervalMs: 50, message: `${d.name} answers /health` }).catch(err => {
      throw new Error(`${(err as Error).message}\n--- ${d.name}\n${d.output}`)
    })
  }
  const startVictim = async (): Promise<void> => {
    await start(victim, { CAIRN_GATEWAY_LISTEN: victim.gateway, CAIRN_DISK_SEGMENT_BYTES: String(SEGMENT_BYTES) })
  }

  before(async () => {
    tmp = await tempDir('cairn-kill9-')
    const clusterConfig = join(tmp.path, 'cluster.config.json')
    await writeFile(clusterConfig, JSON.stringify({ name: 'cairn-kill9' }))
    const ports = await freePorts(6)
    const daemons: Daemon[] = []
    for (const [k, name] of ['victim', 'source'].entries()) {
      const d: Daemon = { name, dir: join(tmp.path, name), rest: `127.0.0.1:${ports[3 * k]}`, gateway: `127.0.0.1:${ports[3 * k + 2]}`, id: '', output: '' }
      const out = await cairnOk('init', '--json', '--path', d.dir, '--peername', name, '--cluster-config', clusterConfig,
        '--rest-listen', d.rest, '--swarm-listen', `/ip4/127.0.0.1/tcp/${ports[3 * k + 1]}`)
      d.id = (JSON.parse(out) as { id: string }).id
      daemons.push(d)
    }
    const bootstrap = daemons.map((d, k) => `/ip4/127.0.0.1/tcp/${ports[3 * k + 1]}/p2p/${d.id}`)
    const dht = { profile: 'lan', protocol: '/cairn-kill9/kad/1.0.0', bootstrap }
    await writeFile(clusterConfig, JSON.stringify({ name: 'cairn-kill9', trusted_peers: daemons.map(d => d.id), bootstrap, dht }))
    ;[victim, source] = daemons
    await Promise.all([startVictim(), start(source, { CAIRN_GATEWAY_ENABLED: 'false' })])
    api = createClient({ api: victim.rest })
    sourceApi = createClient({ api: source.rest })
  })

  after(async () => {
    for (const d of [victim, source]) {
      if (d?.child != null && d.child.exitCode == null && d.child.signalCode == null) d.child.kill('SIGKILL')
    }
    await Promise.all([victim?.exit, source?.exit])
    await tmp?.cleanup()
  })

  it('keeps every acknowledged pin whole across 20 kills: adds, bitswap fetches, GC, compaction', async t => {
    const seed = Number(process.env.CAIRN_TEST_KILL9_SEED ?? Math.floor(Math.random() * 2 ** 31))
    t.diagnostic(`seed ${seed} (CAIRN_TEST_KILL9_SEED=${seed} replays the delays and the content)`)
    const rand = seededRandom(seed)
    const acked = new Map<string, Acked>()
    /** Pins to the victim only: a block it lost is not fetched back from the other peer, but found missing. */
    const here = { replication_factor_min: 1, replication_factor_max: 1, user_allocations: [victim.id] }
    const logs = (): string => [victim, source].map(d => `--- ${d.name}\n${d.output.split('\n').slice(-30).join('\n')}`).join('\n')
    const timings: string[] = []

    /** Resolves once the victim's segment files differ from `before` (writes started), within 20 s. */
    const writesStart = async (before: Map<string, number>, what: string): Promise<void> => {
      await waitFor(async () => !same(await segments(victim), before), { timeoutMs: 20_000, intervalMs: 5, message: `${what} writes to the victim's segments` })
    }
    /** SIGKILL after a seeded random delay; returns the delay. */
    const killSoon = async (kind: Kind): Promise<number> => {
      const delay = Math.round(rand() * KILL_WITHIN_MS[kind])
      await sleep(delay)
      victim.child!.kill('SIGKILL')
      assert.equal((await victim.exit!).signal, 'SIGKILL', `the victim ended before the kill:\n${logs()}`)
      return delay
    }
    /** Waits for the victim to have dropped these pins (their unpin done locally), so that their blocks are garbage. */
    const unpinned = async (cids: string[]): Promise<void> => {
      for (const cid of cids) {
        await waitFor(async () => ['unpinned', 'remote'].includes((await api.status(cid, { local: true })).peer_map[victim.id]?.status ?? ''),
          { timeoutMs: 20_000, message: `${cid} unpinned on the victim` })
      }
    }

    /** Everything that must hold after a restart. */
    const check = async (label: string): Promise<void> => {
      const inPinset = new Set<string>()
      for await (const pin of api.allocations()) inPinset.add(pin.cid)
      const lost = [...acked].filter(([cid]) => !inPinset.has(cid)).map(([cid, a]) => `${cid} (${a.label})`)
      assert.deepEqual(lost, [], `${label}: acknowledged pins missing from GET /allocations`)

      let notPinned: string[] = []
      await waitFor(async () => {
        const status = new Map<string, string>()
        for await (const g of api.statusAll({ local: true })) status.set(g.cid, g.peer_map[victim.id]?.status ?? 'none')
        notPinned = [...acked.keys()].filter(cid => status.get(cid) !== 'pinned').map(cid => `${cid} (${acked.get(cid)?.label}): ${status.get(cid) ?? 'absent'}`)
        return notPinned.length === 0
      }, { timeoutMs: PINNED_WITHIN_MS, intervalMs: 200, message: `${label}: every acknowledged pin pinned on the victim`, describe: () => notPinned.join('; ') })
        .catch(err => { throw new Error(`${(err as Error).message}\n${logs()}`) })

      // every block of every pin, from the victim's store alone, hashing to its CID; every file as added
      let blocks = 0
      for (const [root, a] of acked) {
        const res = await fetch(`http://${victim.gateway}/ipfs/${root}?format=car`, { headers: { 'Cache-Control': 'only-if-cached' } })
        assert.equal(res.status, 200, `${label}: the CAR of ${root} (${a.label}) from the victim's store: ${await res.clone().text()}`)
        const reader = await CarReader.fromBytes(new Uint8Array(await res.arrayBuffer()))
        const held = new Map<string, Uint8Array>()
        for await (const { cid, bytes } of reader.blocks()) {
          assert.ok(await hashesTo(sha256, cid, bytes), `${label}: block ${cid} of ${root} (${a.label}) does not hash to its CID`)
          held.set(cid.toV1().toString(), bytes)
        }
        blocks += held.size
        const fromCar = {
          async * get (cid: CID) {
            const b = held.get(cid.toV1().toString())
            if (b == null) throw new Error(`${cid} is missing from the CAR of ${root}`)
            yield b
          }
        }
        for (const [path, sha] of a.files) {
          const entry = await exporter(`${root}/${path}`, fromCar)
          assert.ok(entry.type === 'file' || entry.type === 'raw', `${label}: ${path} of ${root} is a ${entry.type}`)
          const chunks: Uint8Array[] = []
          for await (const c of entry.content()) chunks.push(c as Uint8Array)
          assert.equal(sha256Hex(Buffer.concat(chunks)), sha, `${label}: ${path} of ${root} (${a.label}) reads back other bytes`)
        }
      }
      const verify = await api.repoVerify()
      assert.deepEqual(verify.problems, [], `${label}: repo verify found problems (${verify.blocks_checked} blocks checked)`)
      t.diagnostic(`${label}: ${acked.size} acknowledged pins, ${blocks} blocks walked, repo verify clean (${verify.blocks_checked} blocks)`)
    }

    const trials: Record<Kind, (label: string, round: number, dir: string) => Promise<string>> = {
      // two `cairn add`s of many files at once; acknowledged = the command printed its root and exited 0
      add: async (label, round, dir) => {
        const trees = [await makeTree(join(dir, 'a'), rand, 60, 1 * KiB, 100 * KiB), await makeTree(join(dir, 'b'), rand, 60, 1 * KiB, 100 * KiB)]
        const before = await segments(victim)
        let done = 0
        const adds = trees.map(async tree => await cairn('--api', victim.rest, 'add', '-r', '--json', '--cid-version', '1',
          '--replication', '1', '--allocations', victim.id, tree.path).finally(() => { done++ }))
        await writesStart(before, label)
        const delay = await killSoon('add')
        const inFlight = 2 - done
        const landed = total(await segments(victim)) - total(before)
        const runs = await Promise.all(adds)
        runs.forEach((run, i) => {
          if (run.code !== 0) return
          acked.set((JSON.parse(run.stdout.trim().split('\n').at(-1)!) as AddedOutput).cid, { label, round, kind: 'add', files: trees[i].files })
        })
        return `kill ${delay} ms after the writes started with ${inFlight} adds in flight (${mib(landed)} of ${mib(bytesOf(trees))} written), ${runs.filter(r => r.code === 0).length} of 2 acknowledged`
      },
      // pins of content only the source holds: the victim fetches every block over bitswap
      fetch: async (label, round, dir) => {
        const trees: Tree[] = []
        for (let i = 0; i < 5; i++) trees.push(await makeTree(join(dir, String(i)), rand, 40, 1 * KiB, 50 * KiB))
        const roots = await Promise.all(trees.map(async tree => await rootOf(sourceApi.add([tree.path], { recursive: true, cidVersion: 1, noPin: true }))))
        const before = await segments(victim)
        let answered = 0
        // a request cut by the kill is not acknowledged
        const posts = Promise.allSettled(roots.map(async (root, i) => {
          await api.pin(root, here)
          answered++
          acked.set(root, { label, round, kind: 'fetch', files: trees[i].files })
        }))
        await writesStart(before, label)
        const delay = await killSoon('fetch')
        const landed = total(await segments(victim)) - total(before)
        await posts
        return `kill ${delay} ms after the fetched blocks started landing (${mib(landed)} of ${mib(bytesOf(trees))}), ${answered} of 5 pins acknowledged`
      },
      // this round's pins, all but the first add and fetch, unpinned; then a repo GC, killed as it deletes
      gc: async (_label, round) => {
        const mine = [...acked].filter(([, a]) => a.round === round)
        const keep = new Set([mine.find(([, a]) => a.kind === 'add')?.[0], mine.find(([, a]) => a.kind === 'fetch')?.[0]])
        const drop = mine.map(([cid]) => cid).filter(cid => !keep.has(cid))
        for (const cid of drop) {
          await api.unpin(cid)
          acked.delete(cid)
        }
        await unpinned(drop)
        const gc = api.repoGC({ local: true }).then(r => `${r.peer_map[victim.id]?.keys.length ?? 0} blocks deleted before the kill`, () => 'cut by the kill')
        const delay = await killSoon('gc')
        return `${drop.length} pins unpinned, kill ${delay} ms into the GC: ${await gc}`
      },
      // small pins one after another (each segment holds a few), two of three unpinned: a GC leaves the segments
      // a third live, and compaction rewrites them; killed once compaction is seen writing
      compaction: async (label, round, dir) => {
        const roots: Array<{ cid: string, tree: Tree }> = []
        for (let i = 0; i < 9; i++) {
          const tree = await makeTree(join(dir, String(i)), rand, 12, 4 * KiB, 60 * KiB)
          roots.push({ cid: await rootOf(api.add([tree.path], { ...here, recursive: true, cidVersion: 1 })), tree })
        }
        for (const { cid, tree } of roots) acked.set(cid, { label, round, kind: 'compaction', files: tree.files })
        const drop = roots.filter((_, i) => i % 3 !== 0).map(r => r.cid)
        for (const cid of drop) {
          await api.unpin(cid)
          acked.delete(cid)
        }
        await unpinned(drop)
        // no compaction left from before may be taken for this one
        let last = await segments(victim)
        await waitFor(async () => { const now = await segments(victim); const still = same(now, last); last = now; return still }, { timeoutMs: 20_000, intervalMs: 300, message: 'the victim\'s segments hold still' })
        const gc = api.repoGC({ local: true }).catch(() => undefined)
        await writesStart(last, `${label}: compaction`)
        const delay = await killSoon('compaction')
        await gc
        const now = await segments(victim)
        return `kill ${delay} ms after compaction started writing; segments ${last.size} (${mib(total(last))}) before the GC, ${now.size} (${mib(total(now))}) at the kill`
      }
    }

    const started = Date.now()
    let trial = 0
    for (let round = 0; round < ROUNDS; round++) {
      for (const kind of KINDS) {
        const label = `round ${round} ${kind} (trial ${++trial})`
        const t0 = Date.now()
        const dir = join(tmp.path, 'trees', String(trial))
        const what = await trials[kind](label, round, dir)
        const t1 = Date.now()
        await startVictim()
        const t2 = Date.now()
        await check(`after ${label}`)
        const s = (ms: number): string => (ms / 1000).toFixed(1)
        timings.push(`${s(t1 - t0)}+${s(t2 - t1)}+${s(Date.now() - t2)}`)
        t.diagnostic(`${label}: ${what}; ${timings.at(-1)} s (work+restart+check)`)
      }
    }
    // the command a user runs, on the peer killed 20 times
    const verify = JSON.parse(await cairnOk('--api', victim.rest, 'repo', 'verify', '--json')) as { problems: unknown[], blocks_checked: number }
    assert.deepEqual(verify.problems, [])
    t.diagnostic(`20 trials in ${((Date.now() - started) / 1000).toFixed(1)} s (work+restart+check): ${timings.join(' ')}`)
  })
})
