// A pin the REST API acknowledged survives the peer process being killed (SIGKILL, no clean stop) right after the
// acknowledgement: round after round, pins are posted concurrently, the daemon is killed the moment the k-th
// answer arrives (with more requests in flight), restarted, and every pin acknowledged so far must be in
// GET /allocations. (Every other restart in the tests is a clean stop.)
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fakeCid } from '../pinset/fixtures.js'
import { tempDir, waitFor } from '../util.js'
import { cairnOk, freePorts, ndjson, spawnNode, type Spawned } from './processes.js'

const PINS_PER_ROUND = 40
const IN_FLIGHT = 12
/** Per round: after which acknowledgement the daemon is killed (all of them, the first, and places between). */
const KILL_AFTER = [PINS_PER_ROUND, 1, 20, 39, 7, 30]

/** POST /pins/{cid}; resolves with the status (0 when the connection broke) as soon as the answer's head arrives. */
async function postPin (port: number, cid: string, onAnswer: (status: number) => void): Promise<number> {
  return await new Promise(resolve => {
    const req = request({ host: '127.0.0.1', port, path: `/pins/${cid}`, method: 'POST' }, res => {
      onAnswer(res.statusCode ?? 0)
      resolve(res.statusCode ?? 0)
      res.resume()
      res.on('error', () => {})
    })
    req.on('error', () => { resolve(0) })
    req.end()
  })
}

describe('a peer killed right after it acknowledged pins', { timeout: 120_000 }, () => {
  let tmp: { path: string, cleanup: () => Promise<void> }
  let daemon: Spawned | undefined
  before(async () => { tmp = await tempDir('cairn-crash-') })
  after(async () => {
    if (daemon != null && daemon.child.exitCode == null && daemon.child.signalCode == null) daemon.child.kill('SIGKILL')
    await daemon?.exit
    await tmp?.cleanup()
  })

  it('has every acknowledged pin after a restart, round after round', async () => {
    const dir = join(tmp.path, 'peer')
    const [rest, swarm] = await freePorts(2)
    await cairnOk('init', '--path', dir, '--rest-listen', `127.0.0.1:${rest}`, '--swarm-listen', `/ip4/127.0.0.1/tcp/${swarm}`)
    const env = { CAIRN_LOG_LEVEL: process.env.CAIRN_TEST_LOG_LEVEL ?? 'warn', CAIRN_PINSVC_ENABLED: 'false', CAIRN_GATEWAY_ENABLED: 'false', CAIRN_METRICS_ENABLED: 'false' }
    /** cid -> the round and the place among that round's acknowledgements. */
    const acked = new Map<string, string>()
    let next = 0

    const start = async (): Promise<void> => {
      daemon = spawnNode(['daemon', '--path', dir], env)
      const d = daemon
      await waitFor(async () => {
        if (d.child.exitCode != null) throw new Error(`the daemon exited ${d.child.exitCode}: ${d.output()}`)
        return (await fetch(`http://127.0.0.1:${rest}/health`).catch(() => undefined))?.status === 204
      }, { timeoutMs: 30_000, intervalMs: 50, message: 'the daemon answers /health' })
    }

    const checkAll = async (after: string): Promise<void> => {
      const res = await fetch(`http://127.0.0.1:${rest}/allocations`)
      assert.equal(res.status, 200)
      const present = new Set(ndjson<{ cid: string }>(await res.text()).map(p => p.cid))
      const lost = [...acked].filter(([cid]) => !present.has(cid)).map(([cid, when]) => `${cid} (${when})`)
      assert.deepEqual(lost, [], `${after}: ${lost.length} of ${acked.size} acknowledged pins are gone from GET /allocations`)
    }

    for (const [round, killAfter] of KILL_AFTER.entries()) {
      await start()
      if (round > 0) await checkAll(`restart after round ${round - 1}`)
      const d = daemon!
      const cids = await Promise.all(Array.from({ length: PINS_PER_ROUND }, async () => await fakeCid(`crash-${next++}`)))
      let answered = 0
      let killed = false
      // the kill happens in the callback that sees the k-th acknowledgement, before anything else runs
      // (an answer read after the kill was still sent before it: it counts as acknowledged too)
      const onAnswer = (cid: string) => (status: number): void => {
        if (status !== 200) return
        answered++
        acked.set(cid, `round ${round}, acknowledgement ${answered}`)
        if (answered === killAfter) { killed = true; d.child.kill('SIGKILL') }
      }
      const queue = [...cids]
      await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
        // eslint-disable-next-line no-unmodified-loop-condition -- `killed` is set by onAnswer
        for (let cid = queue.shift(); cid != null && !killed; cid = queue.shift()) await postPin(rest, cid, onAnswer(cid))
      }))
      assert.ok(killed, `round ${round}: only ${answered} of ${PINS_PER_ROUND} pins were acknowledged: ${d.output()}`)
      assert.equal((await d.exit).signal, 'SIGKILL')
    }
    await start()
    await checkAll(`restart after round ${KILL_AFTER.length - 1}`)
    daemon!.child.kill('SIGINT')
    assert.equal((await daemon!.exit).code, 0, daemon!.output())
  })
})
