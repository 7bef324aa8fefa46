// Pin records: the keys Helia reads, recursive pins counted by reference (a new version of a DAG costs records
// for what changed), counts kept right when pins share blocks.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import * as cborg from 'cborg'
import { MemoryDatastore } from 'datastore-core'
import { Key } from 'interface-datastore'
import { base36 } from 'multiformats/bases/base36'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { PinRecords, type PinBlock } from '../../src/ipfs/pin-records.js'
import { pinRecordKey } from '../../src/ipfs/helia-internals.js'
import { datastoreMultihashName } from '../../src/utils/keys.js'

async function rawCid (text: string): Promise<CID> {
  return CID.createV1(raw.code, await sha256.digest(new TextEncoder().encode(text)))
}

/** A dag-pb-coded CID standing for a node with links (the records never read the block itself). */
async function nodeCid (text: string): Promise<CID> {
  return CID.createV1(0x70, await sha256.digest(new TextEncoder().encode(text)))
}

/** A small DAG: node name -> children; leaves are raw CIDs. */
class Dag {
  readonly cids = new Map<string, CID>()
  constructor (private readonly links: Record<string, string[]>) {}
  static async make (links: Record<string, string[]>): Promise<Dag> {
    const dag = new Dag(links)
    const names = new Set([...Object.keys(links), ...Object.values(links).flat()])
    for (const name of names) dag.cids.set(name, links[name] != null ? await nodeCid(name) : await rawCid(name))
    return dag
  }

  cid (name: string): CID { return this.cids.get(name) as CID }
  /** Every distinct block under `name`, with links; `stopAt` names are listed but not gone below. */
  blocks (name: string, stopAt: string[] = []): PinBlock[] {
    const out: PinBlock[] = []
    const seen = new Set<string>()
    const visit = (n: string): void => {
      if (seen.has(n)) return
      seen.add(n)
      const children = this.links[n]
      out.push({ cid: this.cid(n), links: stopAt.includes(n) ? undefined : children?.map(c => this.cid(c)) })
      if (!stopAt.includes(n)) for (const c of children ?? []) visit(c)
    }
    visit(name)
    return out
  }

  /** Names of the blocks that have a record in `ds`. */
  async recorded (ds: MemoryDatastore): Promise<string[]> {
    const out: string[] = []
    for (const [name, cid] of this.cids) if (await ds.has(blockKey(cid))) out.push(name)
    return out.sort()
  }
}

interface Rec { pinCount: number, pinnedBy: Uint8Array[], deep?: boolean, refs?: number, links?: Uint8Array[] }
const recordOf = async (ds: MemoryDatastore, cid: CID): Promise<Rec> => cborg.decode(await ds.get(blockKey(cid))) as Rec

const blockKey = (cid: CID): Key => new Key(`/pinned-block/${base36.encode(cid.multihash.bytes)}`)

describe('pin records', () => {
  it('counts blocks shared by two recursive pins, and drops a record only when nothing holds it', async () => {
    const ds = new MemoryDatastore()
    const records = new PinRecords(ds)
    const dag = await Dag.make({ a: ['shared', 'onlyA'], b: ['shared'], shared: ['leaf'] })
    // concurrently: the shared block must end with both refs
    await Promise.all([records.add(dag.cid('a'), Infinity, dag.blocks('a')), records.add(dag.cid('b'), Infinity, dag.blocks('b'))])
    const shared = await recordOf(ds, dag.cid('shared'))
    assert.equal(shared.refs, 2, 'linked from a and from b')
    assert.equal(shared.deep, true)
    assert.equal(shared.pinCount, 0, 'a recursive pin claims its root only')
    assert.equal((await recordOf(ds, dag.cid('leaf'))).refs, 1, 'one deep parent, however many pins above it')
    assert.equal((await recordOf(ds, dag.cid('a'))).pinCount, 1)
    assert.deepEqual(cborg.decode(await ds.get(pinRecordKey(dag.cid('a')))), { depth: Infinity, metadata: {}, deep: true })
    // adding again changes nothing
    assert.equal(await records.add(dag.cid('a'), Infinity, dag.blocks('a')), 1)
    assert.equal((await recordOf(ds, dag.cid('shared'))).refs, 2)
    assert.equal((await recordOf(ds, dag.cid('a'))).pinCount, 1)

    await records.remove(dag.cid('a'), async () => assert.fail('a pin counted by reference lists no blocks'))
    assert.equal(await ds.has(pinRecordKey(dag.cid('a'))), false)
    assert.deepEqual(await dag.recorded(ds), ['b', 'leaf', 'shared'], 'a block nothing holds has no record')
    assert.equal((await recordOf(ds, dag.cid('shared'))).refs, 1)
    await records.remove(dag.cid('b'), async () => [])
    assert.deepEqual(await dag.recorded(ds), [])
    await records.remove(dag.cid('b'), async () => []) // not pinned: a no-op
  })

  it('records a new version of a DAG in proportion to what changed, and releases only what the old one held alone', async () => {
    const ds = new MemoryDatastore()
    const records = new PinRecords(ds)
    const dag = await Dag.make({
      v1: ['kept', 'old'],
      v2: ['kept', 'new'],
      kept: ['k1', 'k2', 'k3'],
      old: ['l1', 'gone'],
      new: ['l1', 'l2']
    })
    assert.equal(await records.add(dag.cid('v1'), Infinity, dag.blocks('v1')), 8)
    // listed as a scan that stops at deep blocks lists it: 'kept' and 'l1' are not gone below
    const listed = dag.blocks('v2', ['kept', 'l1'])
    assert.deepEqual(listed.map(b => [...dag.cids].find(([, c]) => c.equals(b.cid))?.[0]), ['v2', 'kept', 'new', 'l1', 'l2'])
    const written = await records.add(dag.cid('v2'), Infinity, listed)
    assert.equal(written, 5, 'v2, new and l2 marked, one ref more on kept and l1: k1..k3 untouched')
    assert.equal((await recordOf(ds, dag.cid('k1'))).refs, 1)
    assert.equal((await recordOf(ds, dag.cid('kept'))).refs, 2)

    await records.remove(dag.cid('v1'), async () => [])
    assert.deepEqual(await dag.recorded(ds), ['k1', 'k2', 'k3', 'kept', 'l1', 'l2', 'new', 'v2'])
    assert.equal((await recordOf(ds, dag.cid('l1'))).refs, 1, 'old released its ref, new keeps one')
    await records.remove(dag.cid('v2'), async () => [])
    assert.deepEqual(await dag.recorded(ds), [])
  })

  it('depth-limited pins claim each block within their depth, next to recursive pins', async () => {
    const ds = new MemoryDatastore()
    const records = new PinRecords(ds)
    const dag = await Dag.make({ root: ['dir', 'x'], dir: ['y', 'z'] })
    await records.add(dag.cid('dir'), 0, dag.blocks('dir').slice(0, 1))
    assert.deepEqual(await dag.recorded(ds), ['dir'], 'a direct pin holds its root only')
    assert.deepEqual(cborg.decode(await ds.get(pinRecordKey(dag.cid('dir')))), { depth: 0, metadata: {} })
    await records.add(dag.cid('root'), Infinity, dag.blocks('root'))
    const dir = await recordOf(ds, dag.cid('dir'))
    assert.deepEqual([dir.pinCount, dir.refs, dir.deep], [1, 1, true])
    await records.remove(dag.cid('dir'), async depth => { assert.equal(depth, 0); return [dag.cid('dir')] })
    assert.deepEqual(await dag.recorded(ds), ['dir', 'root', 'x', 'y', 'z'], 'still held by the recursive pin')
    // the other way round: a depth-1 pin inside a recursively pinned DAG, then the recursive pin goes
    await records.add(dag.cid('dir'), 1, dag.blocks('dir'))
    await records.remove(dag.cid('root'), async () => assert.fail('a pin counted by reference lists no blocks'))
    assert.deepEqual(await dag.recorded(ds), ['dir', 'y', 'z'], 'the depth-1 pin keeps its blocks')
    await records.remove(dag.cid('dir'), async () => dag.blocks('dir').map(b => b.cid))
    assert.deepEqual(await dag.recorded(ds), [])
  })

  it('releases pins recorded by an older cairn (a claim on every block) through their block lists', async () => {
    const ds = new MemoryDatastore()
    const records = new PinRecords(ds)
    const dag = await Dag.make({ old: ['shared', 'mine'], fresh: ['shared'], shared: ['leaf'] })
    // what cairn 0.1 wrote: a claim on every block, no `deep` anywhere
    const batch = ds.batch()
    for (const b of dag.blocks('old')) batch.put(blockKey(b.cid), cborg.encode({ pinCount: 1, pinnedBy: [dag.cid('old').bytes] }))
    batch.put(pinRecordKey(dag.cid('old')), cborg.encode({ depth: Infinity, metadata: {} }))
    await batch.commit()
    // a new pin over the shared subtree marks it deep (its record had no `deep`)
    await records.add(dag.cid('fresh'), Infinity, dag.blocks('fresh'))
    assert.deepEqual([(await recordOf(ds, dag.cid('shared'))).pinCount, (await recordOf(ds, dag.cid('shared'))).refs], [1, 1])
    await records.remove(dag.cid('old'), async () => dag.blocks('old').map(b => b.cid))
    assert.deepEqual(await dag.recorded(ds), ['fresh', 'leaf', 'shared'])
    await records.remove(dag.cid('fresh'), async () => [])
    assert.deepEqual(await dag.recorded(ds), [])
  })

  it('a pin cut short between two slices leaves nothing a later pin of it would miss', async () => {
    const ds = new MemoryDatastore()
    const links: Record<string, string[]> = { root: [] }
    for (let d = 0; d < 50; d++) {
      links.root.push(`d${d}`)
      links[`d${d}`] = Array.from({ length: 50 }, (_, l) => `d${d}-leaf${l}`)
    }
    const dag = await Dag.make(links)
    // the second slice of 2,048 records fails, as a crash would cut it
    let commits = 0
    const failing = Object.create(ds) as MemoryDatastore
    failing.batch = () => {
      const batch = ds.batch()
      const commit = batch.commit.bind(batch)
      batch.commit = async () => { if (++commits === 2) throw new Error('disk gone'); await commit() }
      return batch
    }
    await assert.rejects(new PinRecords(failing).add(dag.cid('root'), Infinity, dag.blocks('root')), /disk gone/)
    assert.equal(await ds.has(pinRecordKey(dag.cid('root'))), false, 'the pin is not recorded')
    // the tracker pins it again
    await new PinRecords(ds).add(dag.cid('root'), Infinity, dag.blocks('root'))
    assert.equal((await dag.recorded(ds)).length, 2551, 'every block recorded')
  })

  it('writes block keys in the base36 Helia reads (multiformats), leading zero bytes included', () => {
    const inputs = [new Uint8Array(0), Uint8Array.of(0), Uint8Array.of(0, 0, 1), Uint8Array.of(255), Uint8Array.of(0, 35, 36)]
    for (let i = 0; i < 200; i++) {
      const b = randomBytes(1 + (i % 40))
      if (i % 3 === 0) b[0] = 0
      if (i % 9 === 0) b[1 % b.length] = 0
      inputs.push(b)
    }
    for (const b of inputs) assert.equal(datastoreMultihashName(b), base36.encode(b), `bytes ${Buffer.from(b).toString('hex')}`)
  })

  it('keeps the links of a block in its record, re-reads records written since a pin was listed, and lists it again after a removal', async () => {
    const ds = new MemoryDatastore()
    const records = new PinRecords(ds)
    const dag = await Dag.make({ a: ['parent'], b: ['parent'], c: ['parent'], parent: ['leaf'] })
    const generation = records.generation
    const [before] = await records.lookup([dag.cid('parent')])
    assert.equal(before, undefined)
    await records.add(dag.cid('a'), Infinity, dag.blocks('a'))
    const rec = await recordOf(ds, dag.cid('parent'))
    assert.deepEqual(rec.links?.map(l => CID.decode(l).toString()), [dag.cid('leaf').toString()])
    // b was listed before a was recorded, with the (now stale) "no record": its records are read again; no pin
    // was removed meanwhile, so the listing itself still holds
    let rescans = 0
    const stale = dag.blocks('b').map(b => ({ ...b, record: null }))
    await records.add(dag.cid('b'), Infinity, stale, { generation, rescan: async () => { rescans++; return dag.blocks('b') } })
    assert.equal(rescans, 0)
    assert.equal((await recordOf(ds, dag.cid('parent'))).refs, 2, 'a stale record would have reset the count to 1')
    assert.equal((await recordOf(ds, dag.cid('leaf'))).refs, 1, 'parent was deep already: not counted twice')

    // c is listed while parent is deep (stopping there), then a and b are unpinned: parent is released, and c's
    // listing must be made again, or leaf would stay unrecorded below a deep parent
    const listed = records.generation
    const stopped = dag.blocks('c', ['parent'])
    await records.remove(dag.cid('a'), async () => [])
    assert.equal((await recordOf(ds, dag.cid('parent'))).links?.length, 1, 'links kept on unpin')
    await records.remove(dag.cid('b'), async () => [])
    assert.deepEqual(await dag.recorded(ds), [], 'parent and leaf released')
    await records.add(dag.cid('c'), Infinity, stopped, { generation: listed, rescan: async () => { rescans++; return dag.blocks('c') } })
    assert.equal(rescans, 1)
    assert.deepEqual(await dag.recorded(ds), ['c', 'leaf', 'parent'])
    assert.equal((await recordOf(ds, dag.cid('leaf'))).refs, 1)
  })

  it('records the adds that queue meanwhile together, in one batch, with counts right across them', async () => {
    const ds = new MemoryDatastore()
    let commits = 0
    const counting = Object.create(ds) as MemoryDatastore
    counting.batch = () => {
      const batch = ds.batch()
      const commit = batch.commit.bind(batch)
      batch.commit = async () => { commits++; await commit() }
      return batch
    }
    counting.put = async () => assert.fail('every record goes in a batch')
    const records = new PinRecords(counting)
    // 50 pins of one leaf each, and 10 sharing one subtree
    const links: Record<string, string[]> = { shared: ['s1', 's2'] }
    for (let i = 0; i < 50; i++) links[`p${i}`] = [`leaf${i}`]
    for (let i = 0; i < 10; i++) links[`q${i}`] = [`own${i}`, 'shared']
    links.lonely = ['lonelyleaf']
    links.fresh = ['freshleaf']
    const dag = await Dag.make(links)
    const names = [...Array.from({ length: 50 }, (_, i) => `p${i}`), ...Array.from({ length: 10 }, (_, i) => `q${i}`)]
    const generation = records.generation
    const written = await Promise.all(names.map(async n => await records.add(dag.cid(n), Infinity, dag.blocks(n).map(b => ({ ...b, record: null })), { generation })))
    assert.equal(commits, 1, `${commits} batches for 60 pins`)
    for (const n of names) assert.equal(await ds.has(pinRecordKey(dag.cid(n))), true, `${n} recorded`)
    assert.equal((await recordOf(ds, dag.cid('shared'))).refs, 10, 'one ref per pin over the shared subtree')
    assert.equal((await recordOf(ds, dag.cid('s1'))).refs, 1, 'the subtree marked deep once')
    // p: the pin and its leaf; the first q: 5 blocks; the 9 others: the pin, its own leaf, a ref on shared
    assert.deepEqual(written, [...Array(50).fill(2), 5, ...Array(9).fill(3)])
    // in one group, a pin whose listing misses a block fails alone
    const bad = records.add(dag.cid('lonely'), Infinity, [{ cid: dag.cid('lonely'), links: [dag.cid('lonelyleaf')] }])
    const good = records.add(dag.cid('fresh'), Infinity, dag.blocks('fresh'))
    await assert.rejects(bad, /block .* below it was not listed/)
    assert.equal(await good, 2)
    assert.equal(commits, 2)
    assert.equal(await ds.has(pinRecordKey(dag.cid('lonely'))), false)
    assert.equal(await ds.has(pinRecordKey(dag.cid('fresh'))), true)
  })
})
