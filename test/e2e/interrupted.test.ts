// A command never ends without a word (issue 16, item 9): `cairn mirror sync` against a daemon process that is
// stopped with SIGINT in the middle of the upload ends with `error: ...` and exit code 1, run after run (it used
// to exit with code 13 and print nothing, 3 runs in 7); and should a command ever be left waiting on something
// that can no longer happen, the CLI says so and exits 1 rather than leaving the shell with code 13.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { pathToFileURL } from 'node:url'
import { sleep, tempDir, waitFor } from '../util.js'
import { cairnOk, freePorts, ROOT, spawnNode } from './processes.js'
import { UNFINISHED_MESSAGE } from '../../src/cli/exit-guard.js'

/** Exit within this long, or the command is taken as hanging. */
const EXIT_DEADLINE_MS = 30_000

async function exitWithin<T> (exit: Promise<T>, what: string): Promise<T> {
  const timer = new Promise<never>((_resolve, reject) => setTimeout(() => { reject(new Error(`${what} did not exit within ${EXIT_DEADLINE_MS} ms`)) }, EXIT_DEADLINE_MS).unref())
  return await Promise.race([exit, timer])
}

describe('a command whose daemon stops under it', { timeout: 240_000 }, () => {
  let tmp: { path: string, cleanup: () => Promise<void> }
  let tree: string

  before(async () => {
    tmp = await tempDir('cairn-interrupted-')
    tree = join(tmp.path, 'tree')
    await mkdir(tree)
    // ~1-2 s of upload to one peer on this machine: long enough to be cut in the middle
    for (let i = 0; i < 24; i++) await writeFile(join(tree, `f${i}.bin`), randomBytes(4 * 1024 * 1024))
  })

  after(async () => { await tmp?.cleanup() })

  it('mirror sync ends with "error: ..." and exit 1 when the daemon gets SIGINT mid-upload, run after run', async () => {
    // when, after the sync has listed the tree, the daemon is stopped: early in the upload, in the middle, later
    const moments = [0, 150, 400, 800]
    let interrupted = 0
    for (const [run, delayMs] of moments.entries()) {
      const dir = join(tmp.path, `peer-${run}`)
      const [rest, swarm] = await freePorts(2)
      await cairnOk('init', '--path', dir, '--rest-listen', `127.0.0.1:${rest}`, '--swarm-listen', `/ip4/127.0.0.1/tcp/${swarm}`)
      const daemon = spawnNode(['daemon', '--path', dir], {
        CAIRN_LOG_LEVEL: 'warn', CAIRN_PINSVC_ENABLED: 'false', CAIRN_GATEWAY_ENABLED: 'false', CAIRN_METRICS_ENABLED: 'false'
      })
      try {
        await waitFor(async () => (await fetch(`http://127.0.0.1:${rest}/health`).catch(() => undefined))?.status === 204,
          { timeoutMs: 30_000, intervalMs: 100, message: `daemon ${run} answers /health` })
        const sync = spawnNode(['--api', `127.0.0.1:${rest}`, 'mirror', 'sync', tree, '--name', 'big', '--cache', join(dir, 'mirror-cache.json')])
        await waitFor(() => / files, .* in /.test(sync.stderr()) || sync.child.exitCode != null, { timeoutMs: 30_000, message: 'the sync lists the tree' })
        // when to interrupt is what varies from run to run
        await sleep(delayMs)
        daemon.child.kill('SIGINT')
        const { code } = await exitWithin(sync.exit, `mirror sync (run ${run})`)
        const lines = sync.stderr().trim().split('\n')
        const detail = `run ${run} (SIGINT ${delayMs} ms in): exit ${String(code)}, stderr:\n${sync.stderr()}`
        assert.ok(code === 0 || code === 1, detail)
        if (code === 1) {
          interrupted++
          assert.match(lines[lines.length - 1], /^error: \S/, detail)
        }
        assert.equal((await exitWithin(daemon.exit, `daemon ${run}`)).code, 0, daemon.output())
      } finally {
        if (daemon.child.exitCode == null && daemon.child.signalCode == null) daemon.child.kill('SIGKILL')
        await daemon.exit
      }
    }
    assert.ok(interrupted >= 2, `only ${interrupted} of ${moments.length} syncs were cut off: the test did not interrupt uploads`)
  })

  it('a command left waiting on nothing ends with "error: ..." and exit 1, not code 13 and silence', async () => {
    // the CLI entry's own guard, in a process of its own, around a command that can never finish
    const script = join(tmp.path, 'never.mjs')
    const guard = pathToFileURL(join(ROOT, 'dist', 'src', 'cli', 'exit-guard.js')).href
    await writeFile(script, `import { untilSettled } from '${guard}'\n` +
      'process.exitCode = await untilSettled(new Promise(() => {}), s => { process.stderr.write(s) })\n')
    for (let run = 0; run < 3; run++) {
      const child = spawnNode([], {}, script)
      const { code } = await exitWithin(child.exit, 'the guarded script')
      assert.equal(code, 1)
      assert.equal(child.stderr(), UNFINISHED_MESSAGE)
    }
  })
})
