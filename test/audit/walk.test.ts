// One audit of one pin, against a peer simulated by the blocks it holds: what passes, what fails and why.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import { walkPin, type AskFn } from '../../src/audit/walk.js'
import type { AuditAnswer } from '../../src/audit/protocol.js'

const verifier = {
  getHasher: (code: number) => { if (code === sha256.code) return sha256; throw new Error(`no hasher ${code}`) },
  getCodec: (code: number) => { if (code === dagPb.code) return dagPb; if (code === raw.code) return raw; throw new Error(`no codec ${code}`) }
}

/** root -> 4 middle nodes -> 4 raw leaves each. */
async function tree (): Promise<{ root: CID, blocks: Map<string, Uint8Array>, leaves: CID[] }> {
  const blocks = new Map<string, Uint8Array>()
  const leaves: CID[] = []
  const put = async (bytes: Uint8Array, code: number): Promise<CID> => {
    const cid = CID.createV1(code, await sha256.digest(bytes))
    blocks.set(cid.toString(), bytes)
    return cid
  }
  const middles: CID[] = []
  for (let m = 0; m < 4; m++) {
    const links = []
    for (let l = 0; l < 4; l++) {
      const leaf = await put(new TextEncoder().encode(`leaf ${m}.${l}`), raw.code)
      leaves.push(leaf)
      links.push({ Hash: leaf, Tsize: 8 })
    }
    middles.push(await put(dagPb.encode({ Links: links }), dagPb.code))
  }
  const root = await put(dagPb.encode({ Links: middles.map(Hash => ({ Hash, Tsize: 100 })) }), dagPb.code)
  return { root, blocks, leaves }
}

function peerHolding (blocks: Map<string, Uint8Array>, asked: CID[][]): AskFn {
  return async cids => {
    asked.push(cids)
    return cids.map((c): AuditAnswer => {
      const b = blocks.get(c.toString())
      return b == null ? { status: 'absent' } : { status: 'held', bytes: b }
    })
  }
}

describe('walking a pin on the audited peer', () => {
  it('passes a peer holding everything: root, 2 random children, 2 random grandchildren', async () => {
    const { root, blocks } = await tree()
    const asked: CID[][] = []
    const r = await walkPin({ cid: root.toString(), max_depth: -1 }, peerHolding(blocks, asked), verifier, { depth: 3, width: 2 })
    assert.deepEqual(r, { result: 'pass', blocks: 5 })
    assert.deepEqual(asked.map(level => level.length), [1, 2, 2])
    assert.ok(new Set(asked[1].map(String)).size === 2, 'two distinct children')
  })

  it('fails a peer missing any block it is asked for', async () => {
    const { root, blocks, leaves } = await tree()
    for (const leaf of leaves) blocks.delete(leaf.toString())
    const r = await walkPin({ cid: root.toString(), max_depth: -1 }, peerHolding(blocks, []), verifier, { depth: 3, width: 2 })
    assert.equal(r.result, 'fail')
    assert.match((r as { reason: string }).reason, /^block \S+ \(depth 2\) of \S+ is not held$/)
  })

  it('fails bytes that do not hash to the CID, and a block refused as too large', async () => {
    const { root, blocks } = await tree()
    const forged: AskFn = async cids => cids.map(() => ({ status: 'held', bytes: new Uint8Array(8) }))
    assert.match((await walkPin({ cid: root.toString(), max_depth: -1 }, forged, verifier, { depth: 3, width: 2 }) as { reason: string }).reason, /the bytes sent do not match the CID/)
    const big: AskFn = async cids => cids.map(c => c.equals(root) ? { status: 'held', bytes: blocks.get(c.toString())! } : { status: 'too_large' })
    assert.match((await walkPin({ cid: root.toString(), max_depth: -1 }, big, verifier, { depth: 3, width: 2 }) as { reason: string }).reason, /larger than 2 MiB/)
  })

  it('stays within a pin\'s depth (direct: the root only) and skips what it cannot check', async () => {
    const { root, blocks } = await tree()
    const asked: CID[][] = []
    assert.deepEqual(await walkPin({ cid: root.toString(), max_depth: 0 }, peerHolding(blocks, asked), verifier, { depth: 3, width: 2 }), { result: 'pass', blocks: 1 })
    assert.equal(asked.length, 1)
    const inline = CID.createV1(raw.code, identity.digest(Uint8Array.of(1)))
    assert.equal((await walkPin({ cid: inline.toString(), max_depth: -1 }, peerHolding(blocks, []), verifier, { depth: 3, width: 2 })).result, 'skip')
  })
})
