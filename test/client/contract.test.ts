// The contract between the client (what the CLI calls) and the REST API: each call the CLI makes runs against the
// real API of a real two-peer cluster, and against the two fakes other tests stand on (the FakeCluster behind the
// real REST app, and the fake API's sample bodies); every field the real answer has, the fakes' answers must
// have, with the same JSON type, and no other. A drift here means a test of the CLI or of the API passes on an
// answer no peer gives.
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { listen, type Listener } from '../../src/api/common.js'
import { createRestApp } from '../../src/api/rest/index.js'
import { createClient, type Client } from '../../src/client/index.js'
import { FakeCluster } from '../api/fake-cluster.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { tempDir, waitFor } from '../util.js'
import { samplePin, sampleStatus } from './fake-api.js'

/** Keys that are peer ids or CIDs (peer_map, id_to_peername, ...) are data, not fields: they read as one key. */
const DATA_KEY = /^(12D3KooW|Qm|baf)/

/**
 * Where `fake` differs from `real` in fields and JSON types. null stands for a string or an array (a CID or a list
 * that is null or not by the case: reference, pin_update, user_allocations), not for an object (metadata is {} on
 * every pin a peer holds); an empty array's element stands for any.
 */
function drift (real: unknown, fake: unknown, path = '$'): string[] {
  const type = (v: unknown): string => v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v
  if ((real === null && type(fake) !== 'object') || (fake === null && type(real) !== 'object')) return []
  if (type(real) !== type(fake)) return [`${path}: ${type(real)} in the real answer, ${type(fake)} in the fake's`]
  if (Array.isArray(real)) {
    const fakeArr = fake as unknown[]
    if (real.length === 0 || fakeArr.length === 0) return []
    return drift(real[0], fakeArr[0], `${path}[0]`)
  }
  if (typeof real !== 'object') return []
  const fields = (o: object): Map<string, unknown> => new Map(Object.entries(o).map(([k, v]) => [DATA_KEY.test(k) ? '<id>' : k, v]))
  const r = fields(real as object)
  const f = fields(fake as object)
  const out: string[] = []
  for (const [k, v] of r) {
    if (!f.has(k)) out.push(`${path}.${k}: missing from the fake's answer`)
    else out.push(...drift(v, f.get(k), `${path}.${k}`))
  }
  for (const k of f.keys()) if (!r.has(k)) out.push(`${path}.${k}: only in the fake's answer`)
  return out
}

const collect = async <T>(source: AsyncIterable<T>): Promise<T[]> => { const out: T[] = []; for await (const x of source) out.push(x); return out }

describe('client against the real REST API, and the fakes against both', { timeout: 120_000 }, () => {
  let tc: TestCluster
  let fakeServer: Listener
  let real: Client
  let fake: Client
  let tmp: { path: string, cleanup: () => Promise<void> }
  /** The real answers by call, filled by the first test. */
  const answers = new Map<string, unknown>()
  const fakeAnswers = new Map<string, unknown>()

  before(async () => {
    tmp = await tempDir('cairn-contract-')
    tc = await createTestCluster(2, { name: 'contract' })
    real = createClient({ api: tc.url(0) })
    fakeServer = await listen(createRestApp({}, { cluster: new FakeCluster() }), '127.0.0.1', 0)
    fake = createClient({ api: `127.0.0.1:${fakeServer.address.port}` })
  })
  after(async () => {
    await fakeServer?.close()
    await tc?.close()
    await tmp?.cleanup()
  })

  /** The CLI's calls, in the order a user could make them; the same on any API. */
  async function calls (client: Client, into: Map<string, unknown>, files: string[]): Promise<void> {
    const [site, update] = files
    const call = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      try {
        const answer = await fn()
        into.set(name, answer)
        return answer
      } catch (err) {
        throw new Error(`${name} against ${client === real ? 'the real API' : 'the FakeCluster'}: ${(err as Error).message}`)
      }
    }
    await call('id', async () => await client.id())
    await call('version', async () => await client.version())
    await call('peers', async () => await collect(client.peersStream()))
    const added = await call('add', async () => await collect(client.add([site], { name: 'site' })))
    const root = added[added.length - 1].cid
    if (client === real) {
      await waitFor(async () => Object.values((await client.status(root)).peer_map).every(p => p.status === 'pinned'), { timeoutMs: 30_000, message: 'the added site pinned on both peers' })
    }
    const next = (await call('add no-pin', async () => await collect(client.add([update], { noPin: true }))))[0].cid
    await call('pin', async () => await client.pin(next, { name: 'next', metadata: { k: 'v' } }))
    await call('status', async () => await client.status(root))
    await call('status local', async () => await client.status(root, { local: true }))
    await call('statusAll', async () => await collect(client.statusAll()))
    await call('allocation', async () => await client.allocation(root))
    await call('allocations', async () => await collect(client.allocations()))
    await call('recover', async () => await client.recover(root))
    await call('recoverAll', async () => await collect(client.recoverAll()))
    await call('pinUpdate', async () => await client.pinUpdate(root, next, { name: 'updated' }))
    await call('unpin', async () => await client.unpin(next))
    await call('repoGC', async () => await client.repoGC())
    await call('metrics', async () => await client.metrics())
    await call('latestMetrics', async () => await client.latestMetrics('ping'))
    await call('alerts', async () => await client.alerts())
    await call('graph', async () => await client.graph())
  }

  it('the CLI\'s calls succeed against the real API, and the FakeCluster behind the real app answers in the same shapes', async () => {
    const site = join(tmp.path, 'site.txt')
    const update = join(tmp.path, 'update.txt')
    await writeFile(site, 'the site\n')
    await writeFile(update, 'the next version\n')
    await calls(real, answers, [site, update])
    await calls(fake, fakeAnswers, [site, update])
    const drifts: string[] = []
    for (const [call, answer] of answers) drifts.push(...drift(answer, fakeAnswers.get(call), call))
    assert.deepEqual(drifts, [], 'the FakeCluster (test/api/fake-cluster.ts) answers otherwise than a real peer')
  })

  it('the fake API\'s sample pin and status have the real fields', () => {
    const pin = answers.get('allocation') as { cid: string }
    const status = answers.get('status') as { cid: string }
    assert.ok(pin != null && status != null, 'the real answers are there (the first test ran)')
    const drifts = [
      ...drift(pin, samplePin(pin.cid), 'samplePin'),
      ...drift(status, sampleStatus(status.cid, { '12D3KooWpeer': { peername: 'one', status: 'pinned' } }), 'sampleStatus')
    ]
    assert.deepEqual(drifts, [], 'the fake API (test/client/fake-api.ts) answers otherwise than a real peer')
  })
})
