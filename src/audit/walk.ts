// One audit of one pin on one peer: from the root down a few levels, a few random children per level, every
// block asked of that peer only and checked against its CID. CIDs certify their bytes, so the auditor needs no
// copy of the content: it hashes what it gets and reads the links of what it verified.
import { randomInt } from 'node:crypto'
import { createUnsafe } from 'multiformats/block'
import { CID } from 'multiformats/cid'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import * as raw from 'multiformats/codecs/raw'
import { blockId } from '../ipfs/local-dag.js'
import { partitionOf } from '../spread/layout.js'
import { hashesTo, parseCid } from '../utils/cid.js'
import { MAX_AUDIT_CIDS, type AuditAnswer } from './protocol.js'
import type { AbortOptions, PinShare } from '../components.js'
import type { BlockCodec, MultihashHasher } from 'multiformats'

const IDENTITY = 0x00

export interface WalkInit {
  /** Levels below the root (capped by a pin's own depth). */
  depth: number
  /** Children asked per level, chosen at random among the children of the level above. */
  width: number
}

export interface Verifier {
  getHasher(code: number): MultihashHasher | Promise<MultihashHasher>
  getCodec(code: number): BlockCodec<any, any> | Promise<BlockCodec<any, any>>
}

export type AskFn = (cids: CID[], options: AbortOptions) => Promise<AuditAnswer[]>

export type WalkResult =
  | { result: 'pass', blocks: number }
  | { result: 'fail', reason: string }
  /** Nothing could be checked (an identity root, a hash function this peer does not know). */
  | { result: 'skip', reason: string }

/**
 * Audits one pin; AuditUnansweredError and aborts propagate (the caller decides whether that is a failure). With
 * `share` (a spread pin), only what that share holds is asked: the skeleton, and the files of its partitions.
 */
export async function walkPin (pin: { cid: string, max_depth: number }, ask: AskFn, verifier: Verifier, init: WalkInit, options: AbortOptions = {}, share?: PinShare): Promise<WalkResult> {
  const root = parseCid(pin.cid)
  if (root.multihash.code === IDENTITY) return { result: 'skip', reason: `${pin.cid} is an identity CID: nothing is stored` }
  const depth = pin.max_depth < 0 ? init.depth : Math.min(pin.max_depth, init.depth)
  const width = Math.max(1, Math.min(init.width, MAX_AUDIT_CIDS))
  const mine = share != null ? new Set(share.mine) : undefined
  const held = (cid: CID): boolean => share == null || mine?.has(partitionOf(cid, share.partitions)) === true
  /** Blocks inside a file of the share: everything below them is held too. */
  const inUnit = new Set<string>()
  const maybeElsewhere = new Set<string>()
  let level = [root]
  let verified = 0
  for (let d = 0; level.length > 0; d++) {
    const answers = await ask(level, options)
    const children: CID[] = []
    for (const [i, cid] of level.entries()) {
      const answer = answers[i]
      // a dag-pb child of a directory outside the share may be a one-block file of another partition
      if (answer.status === 'absent' && maybeElsewhere.has(blockId(cid))) continue
      if (answer.status === 'absent') return { result: 'fail', reason: `block ${cid} (depth ${d}) of ${pin.cid} is not held` }
      if (answer.status === 'too_large') return { result: 'fail', reason: `block ${cid} (depth ${d}) of ${pin.cid} was refused as larger than 2 MiB, which bitswap does not carry` }
      let hasher: MultihashHasher
      try {
        hasher = await verifier.getHasher(cid.multihash.code)
      } catch (err) {
        if (verified === 0) return { result: 'skip', reason: `cannot verify ${cid}: ${(err as Error).message}` }
        continue
      }
      if (!await hashesTo(hasher, cid, answer.bytes)) return { result: 'fail', reason: `block ${cid} (depth ${d}) of ${pin.cid}: the bytes sent do not match the CID` }
      verified++
      if (d >= depth) continue
      try {
        const block = createUnsafe({ cid, bytes: answer.bytes, codec: await verifier.getCodec(cid.code) })
        const links = [...block.links()].map(([, child]) => child).filter(child => child.multihash.code !== IDENTITY)
        if (share == null || inUnit.has(blockId(cid))) {
          for (const child of links) { children.push(child); if (share != null) inUnit.add(blockId(child)) }
        } else if (isFileNode(cid, answer.bytes)) {
          // a file's root: what is below it is held only by the peers of its partition
          if (held(cid)) for (const child of links) { children.push(child); inUnit.add(blockId(child)) }
        } else {
          // a directory: its raw children are one-block files, held by their partition's peers; the rest is skeleton
          for (const child of links) {
            if (child.code !== raw.code) {
              children.push(child)
              if (!held(child)) maybeElsewhere.add(blockId(child))
            } else if (held(child)) { children.push(child); inUnit.add(blockId(child)) }
          }
        }
      } catch {
        // a codec this peer cannot read: the block is verified, what is below it is not asked
      }
    }
    level = pick(dedupe(children), width)
  }
  return { result: 'pass', blocks: verified }
}

/** Whether a dag-pb block is a UnixFS file node. */
function isFileNode (cid: CID, bytes: Uint8Array): boolean {
  if (cid.code !== dagPb.code) return false
  try {
    const data = dagPb.decode(bytes).Data
    return data != null && UnixFS.unmarshal(data).type === 'file'
  } catch {
    return false
  }
}

function dedupe (cids: CID[]): CID[] {
  const seen = new Set<string>()
  return cids.filter(c => {
    const k = blockId(c)
    if (seen.has(k)) return false
    seen.add(k)
    return true
  })
}

/** Up to n distinct items at random. */
function pick<T> (items: T[], n: number): T[] {
  const pool = [...items]
  const out: T[] = []
  while (out.length < n && pool.length > 0) out.push(pool.splice(randomInt(pool.length), 1)[0])
  return out
}
