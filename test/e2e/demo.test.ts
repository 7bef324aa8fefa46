// `npm run demo` as an operator runs it (issue 16, item 8): three peer processes; one of them stopped with
// SIGTERM is reported by name while the other two keep answering; Ctrl-C (SIGINT) then stops those cleanly.
// The demo listens on its fixed ports (peers/*.json: 9094, 9194, 9294, ...), so they must be free.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { sleep, tempDir, waitFor } from '../util.js'
import { ROOT, spawnNode, type Spawned } from './processes.js'

interface Row { name: string, id: string, rest: string, pid: number }

const answers = async (rest: string): Promise<boolean> =>
  (await fetch(`http://${rest}/health`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined))?.status === 204

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('npm run demo', { timeout: 180_000 }, () => {
  let tmp: { path: string, cleanup: () => Promise<void> }
  let demo: Spawned
  let rows: Row[] = []

  before(async () => {
    tmp = await tempDir('cairn-demo-run-')
    demo = spawnNode([], { CAIRN_DEMO_DIR: tmp.path, CAIRN_LOG_LEVEL: 'warn' }, join(ROOT, 'dist', 'scripts', 'demo.js'))
    await waitFor(() => demo.output().includes('cairn demo cluster is up') || demo.child.exitCode != null,
      { timeoutMs: 90_000, intervalMs: 200, message: 'the demo says the cluster is up' })
    assert.equal(demo.child.exitCode, null, `the demo exited (are its ports free?):\n${demo.output()}`)
    rows = demo.output().split('\n').flatMap(line => {
      const m = /^(trusted-\d)\s+(\S+)\s+http:\/\/(\S+)\s+(\d+)$/.exec(line)
      return m != null ? [{ name: m[1], id: m[2], rest: m[3], pid: Number(m[4]) }] : []
    })
  })

  after(async () => {
    if (demo != null && demo.child.exitCode == null && demo.child.signalCode == null) demo.child.kill('SIGINT')
    await demo?.exit
    // the peers run in process groups of their own: never leave one behind
    for (const r of rows) if (alive(r.pid)) process.kill(r.pid, 'SIGKILL')
    await tmp?.cleanup()
  })

  it('keeps the other peers running when one is stopped, says which one, and stops the rest on SIGINT', async () => {
    assert.deepEqual(rows.map(r => r.name), ['trusted-1', 'trusted-2', 'trusted-3'], demo.output())
    const [first, second, third] = rows
    for (const r of rows) assert.ok(await answers(r.rest), `${r.name} answers /health`)

    process.kill(second.pid, 'SIGTERM')
    await waitFor(() => /demo: trusted-2 stopped \(code 0\); trusted-1, trusted-3 keep running/.test(demo.output()),
      { timeoutMs: 30_000, intervalMs: 100, message: `the demo reports trusted-2 stopped:\n${demo.output()}` })
    assert.equal(alive(second.pid), false)
    assert.equal(await answers(second.rest), false)
    // the two others keep answering for a while, and the demo goes on running
    const until = Date.now() + 3000
    while (Date.now() < until) {
      for (const r of [first, third]) assert.ok(await answers(r.rest), `${r.name} stopped answering after trusted-2 stopped:\n${demo.output()}`)
      assert.equal(demo.child.exitCode, null, `the demo exited:\n${demo.output()}`)
      // pacing: the loop proves a NOT (the others do not stop) over 3 s
      await sleep(500)
    }

    demo.child.kill('SIGINT')
    const { code } = await demo.exit
    assert.equal(code, 0, demo.output())
    assert.match(demo.output(), /demo: SIGINT, stopping the peers/)
    assert.match(demo.output(), /demo: all peers stopped/)
    assert.doesNotMatch(demo.output(), /exited with/, 'a peer did not stop cleanly')
    for (const r of [first, third]) {
      assert.equal(alive(r.pid), false, `${r.name} still runs`)
      assert.equal(await answers(r.rest), false)
    }
  })
})
