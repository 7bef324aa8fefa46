import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { runCli } from '../../src/cli/program.js'
import { createClient } from '../../src/client/index.js'
import { parseExport } from '../../src/state/index.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { tempDir } from '../util.js'
import type { Pin } from '../../src/components.js'

interface Run { code: number, out: string, err: string }

async function cairn (...args: string[]): Promise<Run> {
  let out = ''
  let err = ''
  const code = await runCli(args, { out: s => { out += s }, err: s => { err += s }, env: {} })
  return { code, out, err }
}

const randomCid = async (version: 0 | 1): Promise<string> => {
  const digest = await sha256.digest(randomBytes(32))
  return (version === 0 ? CID.createV0(digest) : CID.createV1(raw.code, digest)).toString()
}

const lines = (text: string): Pin[] => text.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Pin)
const byCid = (pins: Pin[]): Map<string, Pin> => new Map(pins.map(p => [p.cid, p]))

/** What an import must carry over (allocations are chosen again; pin_update is a fetch hint). */
const options = (p: Pin): unknown => ({
  cid: p.cid, type: p.type, name: p.name, mode: p.mode, max_depth: p.max_depth,
  rf: [p.replication_factor_min, p.replication_factor_max], shard_size: p.shard_size,
  expire_at: p.expire_at === '0001-01-01T00:00:00Z' ? p.expire_at : new Date(p.expire_at).toISOString(),
  metadata: p.metadata ?? {}, origins: [...p.origins].sort()
})

describe('state export lines', () => {
  it('reads IPFS Cluster\'s JSON (nulls, missing fields, unknown fields) and names bad lines', () => {
    const ok = '{"cid":"QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG","allocations":null,"metadata":null,"origins":null,"user_allocations":null,"max_depth":0,"pin_update":null,"future_field":1}'
    const parsed = parseExport(`${ok}\n\n{"cid":"bafkqaaa","replication_factor_min":2,"replication_factor_max":3}\n`)
    assert.deepEqual(parsed.problems, [])
    assert.equal(parsed.pins.length, 2)
    assert.equal(parsed.pins[0].pin.mode, 'direct', 'mode follows max_depth when absent')
    assert.deepEqual(parsed.pins[0].pin.metadata, {})
    assert.equal(parsed.pins[1].line, 3)

    const bad = parseExport([
      ok,
      '{"cid":"nope"}',
      'not json',
      '[1]',
      '{"cid":"bafkqaaa","mode":"sideways","replication_factor_min":-5}',
      ok
    ].join('\n'))
    assert.equal(bad.pins.length, 1)
    const text = bad.problems.map(p => `${p.line}: ${p.message}`).join('\n')
    assert.match(text, /^2: cid: not a CID: "nope"$/m)
    assert.match(text, /^3: not JSON: /m)
    assert.match(text, /^4: expected a JSON object/m)
    assert.match(text, /^5: mode: /m)
    assert.match(text, /^5: replication_factor_min: /m)
    assert.match(text, /^6: cid QmYw\S+ is already on line 1$/m)
  })
})

describe('cairn state export/import between two clusters', () => {
  let a: TestCluster
  let b: TestCluster | undefined
  let dir: { path: string, cleanup: () => Promise<void> }
  const exported: Pin[] = []
  let fileA = ''

  before(async () => {
    dir = await tempDir('cairn-state-')
    a = await createTestCluster(1, { name: 'state-a' })
  })
  after(async () => {
    await a?.close()
    await b?.close()
    await dir?.cleanup()
  })

  it('exports the pinset of a running peer (through its API) and of a stopped one (from its stores)', async () => {
    const client = createClient({ api: a.url(0) })
    const peerA = a.peer(0)
    const origin = `${peerA.swarmAddresses()[0]}`
    const cids = await Promise.all([randomCid(1), randomCid(1), randomCid(1), randomCid(1), randomCid(0)])
    await client.pin(cids[0], { name: 'plain' })
    await client.pin(cids[1], { name: 'direct', mode: 'direct', metadata: { k: 'v', 'odd key': 'line\nbreak "quoted"' } })
    await client.pin(cids[2], { name: 'expiring', replication_factor_min: 1, replication_factor_max: 1, expire_in: '24h', origins: [origin] })
    await client.pin(cids[3], { name: 'placed', replication_factor_min: 1, replication_factor_max: 1, user_allocations: [peerA.id] })
    await client.pin(cids[4], { name: 'v0 ünïcode' })

    // the daemon holds the stores: export asks its REST API (found from peer.json)
    fileA = join(dir.path, 'a.ndjson')
    const live = await cairn('state', 'export', '--path', a.configs[0].path, '--file', fileA, '--json')
    assert.equal(live.code, 0, live.err)
    assert.deepEqual({ ...JSON.parse(live.out), from: undefined }, { pins: 5, file: fileA, source: 'api', from: undefined })
    exported.push(...lines(await readFile(fileA, 'utf8')))
    assert.deepEqual(exported.map(p => p.cid).sort(), [...cids].sort())
    const placed = exported.find(p => p.name === 'placed')!
    assert.deepEqual(placed.user_allocations, [peerA.id])
    assert.equal(exported.find(p => p.name === 'v0 ünïcode')?.cid.startsWith('Qm'), true, 'a CIDv0 keeps its form')

    // stopped: read offline from the level stores, to stdout
    await a.stop(0)
    const offline = await cairn('state', 'export', '--path', a.configs[0].path)
    assert.equal(offline.code, 0, offline.err)
    assert.match(offline.err, /exported 5 pins from the stores of the stopped peer/)
    assert.deepEqual(byCid(lines(offline.out)), byCid(exported))
  })

  it('refuses a malformed file naming its lines, and writes nothing', async () => {
    b = await createTestCluster(1, { name: 'state-b' })
    const text = await readFile(fileA, 'utf8')
    const rows = text.trimEnd().split('\n')
    rows.splice(2, 0, '{"cid":"bafy-not-a-cid","name":"x"}')
    rows.push('{"cid": ')
    const bad = join(dir.path, 'bad.ndjson')
    await writeFile(bad, rows.join('\n') + '\n')
    const run = await cairn('--api', b.url(0), 'state', 'import', bad)
    assert.equal(run.code, 1)
    assert.match(run.err, /2 lines are not a valid Pin; nothing was imported/)
    assert.match(run.err, /bad\.ndjson:3: cid: not a CID: "bafy-not-a-cid"/)
    assert.match(run.err, /bad\.ndjson:7: not JSON: /)
    const client = createClient({ api: b.url(0) })
    let n = 0
    for await (const _ of client.allocations()) n++
    assert.equal(n, 0)
  })

  it('imports into a fresh cluster with the same options, and a second import changes nothing', async () => {
    const url = b!.url(0)
    const run = await cairn('--api', url, '--json', 'state', 'import', fileA)
    assert.equal(run.code, 0, run.err)
    const summary = JSON.parse(run.out)
    assert.deepEqual({ ...summary, api: undefined }, {
      total: 5, imported: 5, unchanged: 0, skipped_sharded: 0, skipped_expired: 0, allocations_dropped: 1, failed: [], api: undefined
    })

    const client = createClient({ api: url })
    const got: Pin[] = []
    for await (const p of client.allocations()) got.push(p)
    assert.deepEqual(new Map([...byCid(got)].map(([k, p]) => [k, options(p)])), new Map([...byCid(exported)].map(([k, p]) => [k, options(p)])))
    // peer A is no peer of cluster B: its user allocation is left out, and B allocates the pin itself
    assert.equal(got.find(p => p.name === 'placed')?.user_allocations, null)

    const again = await cairn('--api', url, '--json', 'state', 'import', fileA)
    assert.equal(again.code, 0, again.err)
    assert.equal(JSON.parse(again.out).imported, 0)
    assert.equal(JSON.parse(again.out).unchanged, 5)
    const after: Pin[] = []
    for await (const p of client.allocations()) after.push(p)
    assert.deepEqual(byCid(after), byCid(got), 'nothing rewritten (same timestamps)')

    // and the text form says so
    const text = await cairn('--api', url, 'state', 'import', fileA)
    assert.match(text.out, /imported 0 of 5 pins from .*: 5 already there with the same options/)
  })
})
