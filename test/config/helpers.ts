import assert from 'node:assert/strict'
import { after } from 'node:test'
import { tempDir as kitTempDir } from '../util.js'

/** A fresh temp dir, removed when the test file ends. */
export async function tempDir (): Promise<string> {
  const dir = await kitTempDir('cairn-config-')
  after(dir.cleanup)
  return dir.path
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
