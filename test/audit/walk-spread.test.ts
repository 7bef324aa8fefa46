// Issue 20: an audit of a spread pin asks the audited peer only for what its share holds (the skeleton and the
// files of its partitions), and fails a peer that lost a file of its own share.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { walkPin, type AskFn } from '../../src/audit/walk.js'
import { partitionOf } from '../../src/spread/layout.js'
import type { AuditAnswer } from '../../src/audit/protocol.js'

const verifier = {
  getHasher: (code: number) => { if (code === sha256.code) return sha256; throw new Error(`no hasher ${code}`) },
  getCodec: (code: number) => { if (code === dagPb.code) return dagPb; if (code === raw.code) return raw; throw new Error(`no codec ${code}`) }
}
const PARTITIONS = 4

/** A directory of 8 one-block files: 4 raw, 4 dag-pb files with their bytes inline (as a file with an mtime is). */
async function mirror (): Promise<{ root: CID, blocks: Map<string, Uint8Array>, files: CID[] }> {
  const blocks = new Map<string, Uint8Array>()
  const put = async (bytes: Uint8Array, code: number): Promise<CID> => {
    const cid = CID.createV1(code, await sha256.digest(bytes))
    blocks.set(cid.toString(), bytes)
    return cid
  }
  const files: CID[] = []
  for (let i = 0; i < 8; i++) {
    const data = new TextEncoder().encode(`package ${i}`)
    files.push(i < 4 ? await put(data, raw.code) : await put(dagPb.encode({ Data: new UnixFS({ type: 'file', data, mtime: { secs: 1n } }).marshal(), Links: [] }), dagPb.code))
  }
  const root = await put(dagPb.encode({ Data: new UnixFS({ type: 'directory' }).marshal(), Links: files.map((Hash, i) => ({ Hash, Name: `f${i}`, Tsize: 20 })) }), dagPb.code)
  return { root, blocks, files }
}

function peer (blocks: Map<string, Uint8Array>, holds: (cid: CID) => boolean, asked: string[]): AskFn {
  return async cids => cids.map((c): AuditAnswer => {
    asked.push(c.toString())
    const b = blocks.get(c.toString())
    return b == null || !holds(c) ? { status: 'absent' } : { status: 'held', bytes: b }
  })
}

describe('auditing a spread pin', () => {
  it('asks for no raw file outside the share, passes a peer holding its share, and fails one that lost a file of it', async () => {
    const { root, blocks, files } = await mirror()
    const mine = [0, 1]
    const inShare = (c: CID): boolean => mine.includes(partitionOf(c, PARTITIONS))
    const share = { partitions: PARTITIONS, mine }
    const walk = { depth: 2, width: 8 }
    const pin = { cid: root.toString(), max_depth: -1 }
    // the peer holds the skeleton (the root) and the files of its partitions only
    const asked: string[] = []
    const holds = (c: CID): boolean => c.equals(root) || inShare(c)
    const r = await walkPin(pin, peer(blocks, holds, asked), verifier, walk, {}, share)
    assert.equal(r.result, 'pass', JSON.stringify(r))
    const elsewhere = files.filter(f => f.code === raw.code && !inShare(f))
    assert.ok(elsewhere.length > 0, 'some raw files are in other partitions')
    for (const f of elsewhere) assert.ok(!asked.includes(f.toString()), `a raw file of another partition was asked for: ${f}`)
    // without the share, the same peer fails: it does not hold the whole pin
    assert.equal((await walkPin(pin, peer(blocks, holds, []), verifier, walk)).result, 'fail')
    // a file of its own share lost
    const lost = files.find(f => inShare(f) && f.code === raw.code) ?? files.find(f => inShare(f))
    assert.ok(lost != null, 'the share holds a file')
    const r2 = await walkPin(pin, peer(blocks, c => holds(c) && !c.equals(lost), []), verifier, walk, {}, share)
    assert.equal(r2.result, 'fail')
    assert.match((r2 as { reason: string }).reason, new RegExp(`${lost.toString()} .* is not held`))
  })
})
