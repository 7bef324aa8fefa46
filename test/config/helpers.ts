import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after } from 'node:test'

/** A fresh temp dir, removed when the test file ends. */
export async function tempDir (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-config-'))
  after(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

/** Asserts that `fn` fails with a ConfigError whose message contains every fragment. */
export async function assertConfigError (fn: () => unknown, ...fragments: string[]): Promise<void> {
  await assert.rejects(async () => { await fn() }, (err: Error) => {
    assert.equal(err.name, 'ConfigError', `expected a ConfigError, got ${err.name}: ${err.message}`)
    for (const fragment of fragments) {
      assert.ok(err.message.includes(fragment), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(fragment)}`)
    }
    return true
  })
}
