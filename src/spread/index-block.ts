// A spread pin's layout index: the CIDs of its skeleton (directories, HAMT shards, symlinks, the roots of files
// of more than one block), written by the peer that builds the pin and named in the pin's spread_map. A peer
// pinning its share reads the index and then only the skeleton and its own files: without it, telling a
// directory from a one-block file (a small file stored with its mtime is a dag-pb node) meant reading every
// small file of the version on every peer. dag-cbor: `{ v: 1, chunks: [CID] }`, each chunk `{ s: [CID] }` of at
// most CHUNK entries (~1 MB), so that no block passes bitswap's limit.
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { InvalidContentError } from '../errors.js'
import { layoutKey } from './layout.js'
import type { AbortOptions } from '../components.js'
import type { BlockReader } from './layout.js'

const CHUNK = 24_000

export interface IndexBlock { cid: CID, bytes: Uint8Array }

async function block (value: unknown): Promise<IndexBlock> {
  const bytes = dagCbor.encode(value)
  return { cid: CID.createV1(dagCbor.code, await sha256.digest(bytes)), bytes }
}

/** The index blocks for a skeleton; the last one is the top (its CID goes in the pin). */
export async function writeLayoutIndex (skeleton: CID[]): Promise<IndexBlock[]> {
  const chunks: IndexBlock[] = []
  for (let i = 0; i < skeleton.length || i === 0; i += CHUNK) chunks.push(await block({ s: skeleton.slice(i, i + CHUNK) }))
  return [...chunks, await block({ v: 1, chunks: chunks.map(c => c.cid) })]
}

/** Reads a layout index: the skeleton's keys (layoutKey), and the index's own blocks (claimed with the share). */
export async function readLayoutIndex (top: CID, read: BlockReader, options: AbortOptions = {}): Promise<{ skeleton: Set<string>, blocks: CID[] }> {
  const decode = (bytes: Uint8Array, what: string): Record<string, unknown> => {
    try {
      const v = dagCbor.decode(bytes)
      if (v != null && typeof v === 'object') return v as Record<string, unknown>
    } catch {}
    throw new InvalidContentError(`the spread layout index ${top.toString()} is not valid: ${what} is not a dag-cbor map`)
  }
  const head = decode(await read(top, options), 'its top block')
  if (head.v !== 1 || !Array.isArray(head.chunks)) throw new InvalidContentError(`the spread layout index ${top.toString()} is not version 1`)
  const skeleton = new Set<string>()
  const blocks = [top]
  for (const c of head.chunks) {
    const cid = CID.asCID(c)
    if (cid == null) throw new InvalidContentError(`the spread layout index ${top.toString()} links to something that is not a CID`)
    blocks.push(cid)
    const chunk = decode(await read(cid, options), `chunk ${cid.toString()}`)
    if (!Array.isArray(chunk.s)) throw new InvalidContentError(`the spread layout index chunk ${cid.toString()} has no list`)
    for (const entry of chunk.s) {
      const s = CID.asCID(entry)
      if (s != null) skeleton.add(layoutKey(s))
    }
  }
  return { skeleton, blocks }
}
