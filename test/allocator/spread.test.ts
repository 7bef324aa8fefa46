// Issue 20: who holds which partition of a spread pin (src/allocator/spread.ts), and the layout index.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { allocateSpread } from '../../src/allocator/spread.js'
import { createAllocator } from '../../src/allocator/index.js'
import { quietLogger } from '../util.js'
import type { Metric } from '../../src/components.js'
import { decodePin, encodePin } from '../../src/pinset/codec.js'
import { readLayoutIndex, writeLayoutIndex } from '../../src/spread/index-block.js'
import { layoutKey, partitionOf } from '../../src/spread/layout.js'
import { ZERO_TIME, type Pin } from '../../src/types/wire.js'

const MB = 1024 * 1024
/** 64 partitions of 1-3 MB, fixed. */
const SIZES = Array.from({ length: 64 }, (_, i) => MB + ((i * 7919) % (2 * MB)))
const TOTAL = SIZES.reduce((a, b) => a + b, 0)
const peers = (n: number, room: number): Map<string, number> => new Map(Array.from({ length: n }, (_, i) => [`peer-${i}`, room]))
const loadOf = (shares: Record<string, number[]>): Map<string, number> => new Map(Object.entries(shares).map(([p, parts]) => [p, parts.reduce((a, x) => a + SIZES[x], 0)]))
const copiesOf = (shares: Record<string, number[]>): number[] => {
  const c = new Array<number>(SIZES.length).fill(0)
  for (const parts of Object.values(shares)) for (const p of parts) c[p]++
  return c
}
const moved = (a: Record<string, number[]>, b: Record<string, number[]>): number =>
  Object.entries(b).reduce((sum, [peer, parts]) => sum + parts.filter(p => a[peer]?.includes(p) !== true).reduce((s, p) => s + SIZES[p], 0), 0)

describe('spread allocation', () => {
  it('puts every partition on `copies` distinct peers, each peer within one partition of an even share', () => {
    const { shares } = allocateSpread({ cid: 'c', partitionBytes: SIZES, skeletonBytes: 1000, min: 2, max: 2, free: peers(6, TOTAL) })
    assert.deepEqual(new Set(copiesOf(shares)), new Set([2]))
    const loads = [...loadOf(shares).values()]
    const mean = TOTAL * 2 / 6
    for (const l of loads) assert.ok(Math.abs(l - mean) <= 3 * MB, `load ${l} against a mean of ${mean}`)
  })

  it('refuses when the peers offer too little room, naming how much is missing', () => {
    assert.throws(() => allocateSpread({ cid: 'c', partitionBytes: SIZES, skeletonBytes: 0, min: 2, max: 2, free: peers(4, TOTAL / 4) }), (err: Error) => {
      assert.equal(err.name, 'NotEnoughSpaceError')
      assert.match(err.message, /needs .* MiB .* offer .* MiB: .* MiB missing/)
      return true
    })
    assert.throws(() => allocateSpread({ cid: 'c', partitionBytes: SIZES, skeletonBytes: 0, min: 3, max: 3, free: peers(2, TOTAL) }), /replication_factor_min is 3/)
  })

  it('counts a version uploaded to a peer as its room: six peers offering 40% each hold two copies', () => {
    // peer-0 holds the whole upload: its freespace metric says nothing is left
    const free = new Map(peers(6, 0.4 * TOTAL)).set('peer-0', 0)
    assert.throws(() => allocateSpread({ cid: 'c', partitionBytes: SIZES, skeletonBytes: 0, min: 2, max: 2, free }), /cannot spread c/)
    // its room with the upload collected: its 40% (as src/cluster/cluster.ts's uploadRoom works it out)
    const { shares } = allocateSpread({ cid: 'c', partitionBytes: SIZES, skeletonBytes: 0, min: 2, max: 2, free, credit: new Map([['peer-0', 0.4 * TOTAL]]) })
    assert.deepEqual(new Set(copiesOf(shares)), new Set([2]))
    const loads = loadOf(shares)
    for (const [peer, load] of loads) assert.ok(load <= 0.4 * TOTAL, `${peer} holds ${load}, past its ${0.4 * TOTAL}`)
    assert.ok((loads.get('peer-0') ?? 0) > 0.25 * TOTAL, 'the peer the version was uploaded to takes a share')
  })

  it('takes the peer a version was uploaded to as a candidate with its credit even when its freespace metric lapsed', () => {
    const metric = (peer: string, weight: number): Metric => ({ name: 'freespace', peer, value: String(weight), weight, expire: 0, valid: true, partitionable: false, received_at: 0 })
    const allocator = createAllocator({}, {
      monitor: { latest: name => name === 'freespace' ? [1, 2, 3, 4, 5].map(i => metric(`peer-${i}`, 0.4 * TOTAL)) : [] },
      logger: quietLogger()
    })
    const req = { cid: 'c', min: 2, max: 2, partitionBytes: SIZES, skeletonBytes: 0, candidates: [0, 1, 2, 3, 4, 5].map(i => `peer-${i}`) }
    assert.throws(() => allocator.allocateSpread(req), /cannot spread c/)
    const shares = allocator.allocateSpread({ ...req, credit: new Map([['peer-0', 0.4 * TOTAL]]) })
    assert.ok((shares['peer-0'] ?? []).length > 0, 'peer-0 takes a share')
    assert.deepEqual(new Set(copiesOf(shares)), new Set([2]))
  })

  it('moves partitions off a peer that lowered its offer below what it holds, and only those', () => {
    const free = peers(6, TOTAL)
    const first = allocateSpread({ cid: 'c', partitionBytes: SIZES, skeletonBytes: 0, min: 2, max: 2, free })
    const held = loadOf(first.shares)
    // peer-2 now offers half of what it holds: its freespace metric is 0
    const now = new Map([...free.keys()].map(p => [p, TOTAL - (held.get(p) ?? 0)])).set('peer-2', 0)
    const offer = new Map([...free.keys()].map(p => [p, TOTAL])).set('peer-2', (held.get('peer-2') ?? 0) / 2)
    const after = allocateSpread({ cid: 'c', partitionBytes: SIZES, skeletonBytes: 0, min: 2, max: 2, free: now, current: first.shares, offer })
    assert.deepEqual(new Set(copiesOf(after.shares)), new Set([2]))
    const kept = loadOf(after.shares).get('peer-2') ?? 0
    assert.ok(kept <= (held.get('peer-2') ?? 0) / 2, `peer-2 keeps ${kept}, past its new offer`)
    assert.ok(kept >= (held.get('peer-2') ?? 0) / 2 - 3 * MB, `peer-2 keeps ${kept}: more moved than its offer asks`)
    assert.ok(moved(first.shares, after.shares) <= (held.get('peer-2') ?? 0) / 2 + 3 * MB, 'only what is past its offer moves')
  })

  it('keeps the current map for a new version; a lost peer moves only its partitions; a joining peer takes about its share on a rebalance', () => {
    const free = peers(6, TOTAL)
    const first = allocateSpread({ cid: 'c', partitionBytes: SIZES, skeletonBytes: 0, min: 2, max: 2, free })
    const again = allocateSpread({ cid: 'c', partitionBytes: SIZES, skeletonBytes: 0, min: 2, max: 2, free, current: first.shares })
    assert.deepEqual(again.shares, first.shares)

    // peer-5 lost: its partitions, and nothing else, move
    const lost = new Map(free)
    lost.delete('peer-5')
    const after = allocateSpread({ cid: 'c', partitionBytes: SIZES, skeletonBytes: 0, min: 2, max: 2, free: lost, current: first.shares })
    assert.deepEqual(new Set(copiesOf(after.shares)), new Set([2]))
    const lostBytes = first.shares['peer-5'].reduce((a, p) => a + SIZES[p], 0)
    assert.equal(moved(first.shares, after.shares), lostBytes)

    // a seventh peer joins (the six offer what they do not hold yet): a rebalance gives it about a seventh
    const held = loadOf(first.shares)
    const joined = new Map([...free.keys()].map(p => [p, TOTAL - (held.get(p) ?? 0)])).set('peer-6', TOTAL)
    const rebalanced = allocateSpread({ cid: 'c', partitionBytes: SIZES, skeletonBytes: 0, min: 2, max: 2, free: joined, current: first.shares, even: true })
    const gained = loadOf(rebalanced.shares).get('peer-6') ?? 0
    const fair = TOTAL * 2 / 7
    assert.ok(Math.abs(gained - fair) <= 3 * MB, `the new peer holds ${gained}, a seventh is ${fair}`)
    assert.ok(moved(first.shares, rebalanced.shares) <= fair + 3 * MB, `moved ${moved(first.shares, rebalanced.shares)} to even out ${fair}`)
    // the periodic rebalance (evenFrom 0.25) does the same for a joining peer, and nothing for a wobble
    const periodic = allocateSpread({ cid: 'c', partitionBytes: SIZES, skeletonBytes: 0, min: 2, max: 2, free: joined, current: first.shares, even: true, evenFrom: 0.25 })
    assert.deepEqual(periodic.shares, rebalanced.shares)
    const wobble = new Map([...free.keys()].map((p, i) => [p, TOTAL - (held.get(p) ?? 0) - (i % 2) * 4 * MB]))
    const still = allocateSpread({ cid: 'c', partitionBytes: SIZES, skeletonBytes: 0, min: 2, max: 2, free: wobble, current: first.shares, even: true, evenFrom: 0.25 })
    assert.deepEqual(still.shares, first.shares)
    // without the threshold, the same wobble moves partitions
    const moving = allocateSpread({ cid: 'c', partitionBytes: SIZES, skeletonBytes: 0, min: 2, max: 2, free: wobble, current: first.shares, even: true })
    assert.notDeepEqual(moving.shares, first.shares)
  })
})

describe('spread layout', () => {
  it('keeps a file in the same partition whatever the version: the partition is its CID\'s', async () => {
    const cid = CID.createV1(raw.code, await sha256.digest(new Uint8Array([1, 2, 3])))
    assert.equal(partitionOf(cid, 64), partitionOf(CID.parse(cid.toString()), 64))
    const counts = new Array<number>(8).fill(0)
    for (let i = 0; i < 800; i++) counts[partitionOf(CID.createV1(raw.code, await sha256.digest(new Uint8Array([i & 255, i >> 8]))), 8)]++
    assert.ok(counts.every(n => n > 60 && n < 140), `800 files over 8 partitions: ${counts.join(',')}`)
  })

  it('writes the skeleton in index chunks and reads it back', async () => {
    const skeleton = await Promise.all(Array.from({ length: 50_000 }, async (_, i) => CID.createV1(0x70, await sha256.digest(new Uint8Array([i & 255, (i >> 8) & 255, i >> 16])))))
    const blocks = await writeLayoutIndex(skeleton)
    assert.equal(blocks.length, 4, 'three chunks and the top')
    for (const b of blocks) assert.ok(b.bytes.byteLength < 1024 * 1024, `a block of ${b.bytes.byteLength} bytes`)
    const byCid = new Map(blocks.map(b => [b.cid.toString(), b.bytes]))
    const read = await readLayoutIndex(blocks[blocks.length - 1].cid, async c => byCid.get(c.toString()) ?? new Uint8Array())
    assert.equal(read.skeleton.size, 50_000)
    assert.ok(read.skeleton.has(layoutKey(skeleton[12345])))
    assert.equal(read.blocks.length, 4)
    await assert.rejects(readLayoutIndex(skeleton[0], async () => new Uint8Array([0xff])), /not a dag-cbor map/)
  })

  it('the pinset codec keeps a spread pin\'s map', () => {
    const pin: Pin = {
      cid: 'bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi', type: 'pin', name: 'deb@1', mode: 'recursive',
      replication_factor_min: 2, replication_factor_max: 2, allocations: ['a', 'b'], shard_size: 0, max_depth: -1, reference: null,
      expire_at: ZERO_TIME, metadata: {}, origins: [], pin_update: null, user_allocations: null, timestamp: new Date(0).toISOString(),
      spread: true, spread_map: { partition_bytes: [10, 20], skeleton_bytes: 5, shares: { a: [0, 1], b: [0, 1] }, layout: 'bafyreia' }
    }
    assert.deepEqual(decodePin(encodePin(pin, pin.cid), pin.cid), pin)
    const whole: Pin = { ...pin }
    delete whole.spread
    delete whole.spread_map
    assert.equal('spread' in decodePin(encodePin(whole, pin.cid), pin.cid), false, 'a whole pin has no spread field')
  })
})
