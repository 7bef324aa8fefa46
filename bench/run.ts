// `npm run bench -- <name> [--flags] [--json]`: runs one benchmark from the table below and prints its one
// table (or, with --json, one JSON object). Without a name it lists the benchmarks. Benchmarks never run in
// `npm test`. To add one: write bench/<name>.ts exporting a `Benchmark` (see ./lib.ts) and register it here.
import { BenchUsageError, formatReport, machineInfo, reportJson, type Benchmark } from './lib.js'

interface Entry {
  description: string
  load: () => Promise<Benchmark>
}

const BENCHMARKS: Readonly<Record<string, Entry>> = {
  ingest: {
    description: '3-peer cluster, N pins posted over REST to one peer: accepted rate, convergence, RSS per peer',
    load: async () => (await import('./ingest.js')).ingest
  },
  'follower-sync': {
    description: 'trusted peer with N pins, a fresh follower joins: seconds to an equal pinset, bytes, RSS; checkpoint vs replay',
    load: async () => (await import('./follower-sync.js')).followerSync
  },
  add: { description: 'a Debian-pool-like tree (10,000 files) added to one peer over REST, against cp -a', load: async () => (await import('./add.js')).add },
  reprovide: {
    description: 'one peer with 100,000 CIDs, a loopback DHT of 20 nodes: batched reprovide vs per-CID provide, pin -> findable latency',
    load: async () => (await import('./reprovide.js')).reprovide
  },
  bitswap: { description: '256 MB moved between two peers over bitswap, against one raw libp2p stream', load: async () => (await import('./bitswap.js')).bitswap },
  blockstore: { description: '2 GB of 256 KiB blocks written to cairn\'s blockstore and to blockstore-level\'s layout', load: async () => (await import('./blockstore.js')).blockstore },
  gc: { description: 'repo GC of N blocks, half pinned: cairn\'s GC against Helia\'s helia.gc(), same blocks, same run', load: async () => (await import('./gc.js')).gc },
  mirror: { description: 'mirror sync of a 10,000-file package tree to one peer, then a re-sync after changing 1% of its files', load: async () => (await import('./mirror.js')).mirror },
  spread: {
    description: 'a package tree spread over 6 peers offering 40% of it each (replication 2) against pinning it whole on one peer; re-sync bytes moved; heal time',
    load: async () => (await import('./spread.js')).spread
  }
}

const USAGE = 'usage: npm run bench -- <name> [--flags] [--json]   (npm run bench -- <name> --help for its flags)'

function list (): string {
  const width = Math.max(...Object.keys(BENCHMARKS).map(n => n.length))
  const lines = Object.entries(BENCHMARKS).map(([name, e]) => `  ${name.padEnd(width)}  ${e.description}`)
  return `${USAGE}\n\nbenchmarks:\n${lines.join('\n')}\n`
}

async function exit (code: number, out = '', err = ''): Promise<never> {
  // wait for the writes: process.exit would cut a piped stdout short
  if (out !== '') await new Promise<void>(resolve => process.stdout.write(out, () => { resolve() }))
  if (err !== '') await new Promise<void>(resolve => process.stderr.write(err, () => { resolve() }))
  // exit explicitly: a handle left open by a failed benchmark must not keep the runner alive
  process.exit(code)
}

async function main (argv: string[]): Promise<never> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h') return await exit(0, list())
  const entry = Object.hasOwn(BENCHMARKS, name) ? BENCHMARKS[name] : undefined
  if (entry === undefined) {
    return await exit(2, '', `unknown benchmark "${name}"; available: ${Object.keys(BENCHMARKS).join(', ')}\n${USAGE}\n`)
  }
  const benchmark = await entry.load()
  if (rest.includes('--help') || rest.includes('-h')) {
    return await exit(0, `npm run bench -- ${name} [flags]\n${benchmark.description}\n\n${benchmark.usage}\n  --json  print one JSON object instead of the table\n`)
  }
  const json = rest.includes('--json')
  const flags = rest.filter(a => a !== '--json')

  const controller = new AbortController()
  let interrupted = false
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) void exit(130, '', `${sig} again: exiting without cleaning up\n`)
    interrupted = true
    process.stderr.write(`${sig}: stopping the benchmark and its peers (again to exit at once)\n`)
    controller.abort(new Error(`interrupted by ${sig}`))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  const log = (line: string): void => { process.stderr.write(`[${name}] ${line}\n`) }
  try {
    const report = await benchmark.run(flags, { log, signal: controller.signal })
    const machine = machineInfo()
    const out = json ? `${JSON.stringify(reportJson(name, report, machine), null, 2)}\n` : formatReport(report, machine)
    const regressions = report.regressions ?? []
    if (regressions.length > 0) {
      return await exit(1, out, regressions.map(r => `${name}: REGRESSION: ${r}\n`).join(''))
    }
    return await exit(0, out)
  } catch (err) {
    if ((err as Error).name === 'BenchUsageError' || err instanceof BenchUsageError) {
      return await exit(2, '', `${name}: ${(err as Error).message}\n\n${benchmark.usage}\n`)
    }
    if (interrupted) return await exit(130, '', `${name}: interrupted\n`)
    return await exit(1, '', `${name} failed: ${(err as Error).stack ?? String(err)}\n`)
  }
}

await main(process.argv.slice(2))
