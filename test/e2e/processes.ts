// Running the built `cairn` (bin/cairn.js) as separate processes, as a user does: one-shot commands, and long
// running ones (daemons) whose output is kept for failure messages. Needs the build (dist/) in place.
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { childEnv, runProgram, type Run } from '../util.js'

export { freePorts } from '../util.js'

/** The repo root: this file runs as dist/test/e2e/processes.js. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
export const CAIRN = join(ROOT, 'bin', 'cairn.js')

export type { Run }

export { childEnv }

/** Runs `node bin/cairn.js <args>`; resolves with its exit code and output (never rejects on a non-zero exit). */
export async function cairn (...args: string[]): Promise<Run> {
  return await runProgram(process.execPath, [CAIRN, ...args], { cwd: ROOT, env: childEnv(), timeoutMs: 30_000 })
}

/** `cairn` that must succeed; the failure message carries its stderr. */
export async function cairnOk (...args: string[]): Promise<string> {
  const run = await cairn(...args)
  assert.equal(run.code, 0, `cairn ${args.join(' ')} exited ${run.code}: ${run.stderr}`)
  return run.stdout
}

export interface Spawned {
  child: ChildProcess
  exit: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** stdout and stderr as they came, interleaved (the last 20,000 characters). */
  output: () => string
  stderr: () => string
}

/** Starts `node <script> <args>` (default bin/cairn.js) with childEnv(env), keeping its output. */
export function spawnNode (args: string[], env: NodeJS.ProcessEnv = {}, script = CAIRN): Spawned {
  const child = spawn(process.execPath, [script, ...args], { cwd: ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-20_000) })
  child.stderr.on('data', (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000)
    stderr += chunk.toString()
  })
  const exit = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
  return { child, exit, output: () => output, stderr: () => stderr }
}

export const ndjson = <T>(text: string): T[] => text.split('\n').filter(l => l.trim() !== '').map(l => JSON.parse(l) as T)

/** A `cairn daemon` process and what the test knows of it. */
export interface Daemon {
  name: string
  dir: string
  rest: string
  id: string
  child?: ChildProcess
  exit?: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  output: string
}

/**
 * Spawns `cairn daemon --path <d.dir>` with `env` (on top of childEnv and the log level), keeping its exit and
 * the tail of its output in `d`.
 */
export function spawnDaemon (d: Daemon, env: NodeJS.ProcessEnv): void {
  const spawned = spawnNode(['daemon', '--path', d.dir], { CAIRN_LOG_LEVEL: process.env.CAIRN_TEST_LOG_LEVEL ?? 'warn', ...env })
  d.output = ''
  d.child = spawned.child
  d.exit = spawned.exit
  const keep = (chunk: Buffer): void => { d.output = (d.output + chunk.toString()).slice(-20_000) }
  spawned.child.stdout?.on('data', keep)
  spawned.child.stderr?.on('data', keep)
}
