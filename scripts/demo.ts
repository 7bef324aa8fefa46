// `npm run demo`: the local three-peer demo cluster of peers/ (DESIGN §7), each peer a separate `cairn daemon`
// process. Peer folders are copied to a run dir outside the repo, because a peer's folder is also its data dir
// and the level stores must not land in the repo; the run dirs are kept, so the pinset survives a restart.
//
//   npm run demo                 start (or restart) the demo cluster; Ctrl-C stops it. A peer that stops on
//                                its own (`kill <pid>`, a crash) is reported; the others keep running
//   npm run demo -- --reset      wipe the run dirs first (a fresh, empty pinset)
//   CAIRN_DEMO_DIR=<dir>         where the run dirs live (default <tmpdir>/cairn-demo-<user>)
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/** The repo root: this file runs as dist/scripts/demo.js. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CLUSTER_CONFIG = join(ROOT, 'cluster.config.json')
const CAIRN = join(ROOT, 'bin', 'cairn.js')
const PEERS = ['trusted-1', 'trusted-2', 'trusted-3']
const READY_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 15_000

interface DemoPeer {
  name: string
  dir: string
  rest: string
  child?: ChildProcess
  exited?: Promise<void>
}

function runRoot (): string {
  const env = process.env.CAIRN_DEMO_DIR
  if (env !== undefined && env !== '') return resolve(env)
  let user = 'user'
  try { user = userInfo().username } catch {}
  return join(tmpdir(), `cairn-demo-${user}`)
}

async function exists (file: string): Promise<boolean> {
  try {
    await stat(file)
    return true
  } catch {
    return false
  }
}

/** Copies peers/<name> into the run dir on first use; later runs reuse it (and its stores). */
async function prepare (name: string, root: string): Promise<DemoPeer> {
  const src = join(ROOT, 'peers', name)
  const dir = join(root, name)
  const peer = JSON.parse(await readFile(join(src, 'peer.json'), 'utf8')) as { rest?: { listen?: string } }
  if (!(await exists(join(dir, 'peer.json')))) {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const identity = join(dir, 'identity.json')
    await writeFile(identity, await readFile(join(src, 'identity.json')), { mode: 0o600 })
    // a git checkout leaves the source 0644, and mode only applies when the file is created
    await chmod(identity, 0o600)
    // peer.json last: its presence marks the copy as complete
    await writeFile(join(dir, 'peer.json'), `${JSON.stringify({ ...peer, cluster_config: CLUSTER_CONFIG }, null, 2)}\n`)
  }
  return { name, dir, rest: peer.rest?.listen ?? '127.0.0.1:9094' }
}

/** Copies a child's output line by line, each line prefixed with the peer's name. */
function prefixLines (stream: NodeJS.ReadableStream, name: string, out: NodeJS.WritableStream): void {
  const label = `[${name}] `
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', line => { out.write(`${label}${line}\n`) })
}

async function fetchId (rest: string, signal: AbortSignal): Promise<{ id: string } | undefined> {
  try {
    const res = await fetch(`http://${rest}/id`, { signal: AbortSignal.any([signal, AbortSignal.timeout(2000)]) })
    return res.ok ? await res.json() as { id: string } : undefined
  } catch {
    return undefined
  }
}

async function main (): Promise<number> {
  const args = process.argv.slice(2)
  const unknown = args.filter(a => a !== '--reset')
  if (unknown.length > 0) {
    console.error(`demo: unknown argument ${unknown.join(' ')} (usage: npm run demo [-- --reset])`)
    return 2
  }
  const root = runRoot()
  if (args.includes('--reset')) {
    await rm(root, { recursive: true, force: true })
    console.log(`demo: wiped ${root}`)
  }
  const peers = await Promise.all(PEERS.map(async name => await prepare(name, root)))

  // Shutdown is driven from here: a signal, or a child that dies on its own.
  const stopping = new AbortController()
  let exitCode = 0
  const stop = (code: number): void => {
    if (stopping.signal.aborted) return
    exitCode = code
    stopping.abort()
  }
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stopping.signal.aborted) {
      console.log(`demo: ${sig} again, killing the peers`)
      for (const p of peers) p.child?.kill('SIGKILL')
      return
    }
    console.log(`demo: ${sig}, stopping the peers`)
    stop(0)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('SIGHUP', onSignal)

  for (const p of peers) {
    const child = spawn(process.execPath, [CAIRN, 'daemon', '--path', p.dir], {
      cwd: ROOT,
      // config rejects unknown CAIRN_ variables (CAIRN_DEMO_DIR is ours, not the daemon's)
      env: { ...process.env, CAIRN_PATH: undefined, CAIRN_API: undefined, CAIRN_DEMO_DIR: undefined },
      stdio: ['ignore', 'pipe', 'pipe'],
      // own process group: Ctrl-C reaches only this script, which then sends each peer one SIGTERM
      detached: true
    })
    p.child = child
    prefixLines(child.stdout, p.name, process.stdout)
    prefixLines(child.stderr, p.name, process.stderr)
    const exit = once(child, 'exit').catch((err: Error) => {
      console.error(`demo: cannot start ${p.name}: ${err.message}`)
      return [null, null]
    })
    p.exited = exit.then(([code, signal]) => {
      p.child = undefined
      const how = signal ?? `code ${String(code)}`
      if (stopping.signal.aborted) {
        if (code !== 0) console.error(`demo: ${p.name} exited with ${how}`)
        return
      }
      // one peer going (killed, crashed, SIGTERMed to try a lost peer) leaves the others running
      if (code !== 0) exitCode = 1
      const running = peers.filter(q => q.child != null).map(q => q.name)
      if (running.length > 0) {
        console.error(`demo: ${p.name} stopped (${how}); ${running.join(', ')} ${running.length === 1 ? 'keeps' : 'keep'} running (Ctrl-C stops ${running.length === 1 ? 'it' : 'them'})`)
      } else {
        console.error(`demo: ${p.name} stopped (${how}); no peer is left running`)
        stop(exitCode)
      }
    })
  }

  const ready = Promise.all(peers.map(async p => {
    const deadline = Date.now() + READY_TIMEOUT_MS
    // a peer that exits while starting has said so (above); the others still come up
    while (!stopping.signal.aborted && p.child != null) {
      const id = await fetchId(p.rest, stopping.signal)
      if (id !== undefined) return id.id
      if (Date.now() > deadline) {
        console.error(`demo: ${p.name} did not answer GET http://${p.rest}/id within ${READY_TIMEOUT_MS / 1000} s`)
        stop(1)
        break
      }
      await new Promise(resolve => setTimeout(resolve, 250))
    }
    return undefined
  }))
  const ids = await ready
  const up = peers.flatMap((p, i) => ids[i] != null && p.child != null ? [{ ...p, id: ids[i], pid: p.child.pid }] : [])
  if (!stopping.signal.aborted && up.length > 0) {
    const header = ['peer', 'id', 'REST API', 'pid']
    const rows = up.map(p => [p.name, p.id, `http://${p.rest}`, String(p.pid ?? '?')])
    const widths = header.map((_, c) => Math.max(...[header, ...rows].map(r => r[c].length)))
    const line = (r: string[]): string => r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd()
    const down = peers.filter(p => !up.some(u => u.name === p.name)).map(p => p.name)
    console.log([
      '',
      `cairn demo cluster is up (data in ${root})${down.length > 0 ? `, without ${down.join(', ')}` : ''}`,
      line(header),
      ...rows.map(line),
      '',
      'try, from the repo root:',
      `  echo hello > /tmp/hello.txt && node bin/cairn.js --api ${up[0].rest} add /tmp/hello.txt`,
      `  node bin/cairn.js --api ${up[up.length > 1 ? 1 : 0].rest} status`,
      `  kill ${String(up[up.length - 1].pid ?? '<pid>')}    # stop one peer: the others keep running, and show it as lost`,
      'Ctrl-C stops the cluster; its pinset is kept for the next run (--reset wipes it).',
      ''
    ].join('\n'))
  }

  if (!stopping.signal.aborted) await once(stopping.signal, 'abort')
  for (const p of peers) p.child?.kill('SIGTERM')
  const timer = setTimeout(() => {
    for (const p of peers) {
      if (p.child != null) {
        console.error(`demo: ${p.name} did not stop within ${STOP_TIMEOUT_MS / 1000} s, killing it`)
        p.child.kill('SIGKILL')
      }
    }
  }, STOP_TIMEOUT_MS)
  await Promise.all(peers.map(async p => { await p.exited }))
  clearTimeout(timer)
  console.log('demo: all peers stopped')
  return exitCode
}

process.exitCode = await main()
