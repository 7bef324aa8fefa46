// The built `cairn` command as the end-to-end tests run it: `node bin/cairn.js`, with a clean environment.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { childEnv, runProgram, type Run } from '../util.js'
import type { ChildProcess } from 'node:child_process'

/** The repo root: this file runs as dist/test/e2e/cairn.js. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
export const CAIRN = join(ROOT, 'bin', 'cairn.js')

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

export const ndjson = <T>(text: string): T[] => text.split('\n').filter(l => l.trim() !== '').map(l => JSON.parse(l) as T)

/**
 * Spawns `cairn daemon --path <d.dir>` with `env` (on top of childEnv and the log level), keeping its exit and
 * the tail of its output in `d`.
 */
export function spawnDaemon (d: Daemon, env: NodeJS.ProcessEnv): void {
  d.output = ''
  const child = spawn(process.execPath, [CAIRN, 'daemon', '--path', d.dir], {
    cwd: ROOT,
    env: childEnv({ CAIRN_LOG_LEVEL: process.env.CAIRN_TEST_LOG_LEVEL ?? 'warn', ...env }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  d.child = child
  d.exit = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
  const keep = (chunk: Buffer): void => { d.output = (d.output + chunk.toString()).slice(-20_000) }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
}
