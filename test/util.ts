// Shared test helpers: temp dirs, polling with a deadline (never a bare sleep), quiet loggers.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger, type CairnLogger } from '../src/logger.js'

export async function tempDir (prefix = 'cairn-test-'): Promise<{ path: string, cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return { path, cleanup: async () => { await rm(path, { recursive: true, force: true }) } }
}

/** Polls check() until it returns a truthy value, or fails after timeoutMs with the message and the last value. */
export async function waitFor<T> (check: () => T | Promise<T>, options: { timeoutMs?: number, intervalMs?: number, message?: string } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000)
  let last: T | undefined
  let lastErr: unknown
  for (;;) {
    try {
      last = await check()
      if (last != null && last !== false) return last as NonNullable<T>
    } catch (err) {
      lastErr = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out: ${options.message ?? 'condition not met'} (last value: ${JSON.stringify(last)}${lastErr != null ? `, last error: ${(lastErr as Error).message}` : ''})`)
    }
    await new Promise(resolve => setTimeout(resolve, options.intervalMs ?? 50))
  }
}

export function quietLogger (peer?: string): CairnLogger {
  return createLogger({ level: (process.env.CAIRN_TEST_LOG_LEVEL as 'debug' | undefined) ?? 'silent', peer })
}
