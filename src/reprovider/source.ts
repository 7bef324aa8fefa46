// What a cycle announces, by strategy (DESIGN §6). Only what this peer holds: pins are recorded only once every
// block is local, and every block held for a pin has a pin record, so `pinned` is a scan of the records' keys
// (IpfsNode.pinnedBlocks), not a walk of every DAG.
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import * as raw from 'multiformats/codecs/raw'
import { entryOf, sortUnique, toHex, type KeyEntry } from './keys.js'
import type { ReprovideStrategy } from './index.js'
import type { AbortOptions } from '../components.js'
import type { GetBlockOptions } from '../ipfs/index.js'
import type { CID } from 'multiformats/cid'

export interface SourceComponents {
  /** Local pin roots. */
  pinLs: (options?: AbortOptions) => AsyncIterable<CID>
  /** The multihash of every block held for a local pin. */
  pinnedBlocks: (options?: AbortOptions) => AsyncIterable<Uint8Array>
  /** A block of this node; with `offline`, never fetched (IpfsNode.getBlock). */
  getBlock: (cid: CID, options: GetBlockOptions) => Promise<Uint8Array>
}

/** The phases of a cycle, each sorted by DHT key: pin roots first, then the rest (none for `roots`). */
export async function listPhases (strategy: ReprovideStrategy, components: SourceComponents, options: AbortOptions = {}): Promise<KeyEntry[][]> {
  const roots: KeyEntry[] = []
  const rootCids: CID[] = []
  for await (const cid of components.pinLs(options)) {
    rootCids.push(cid)
    roots.push(entryOf(cid.multihash.bytes))
  }
  sortUnique(roots)
  if (strategy === 'roots') return [roots, []]
  const seen = new Set(roots.map(e => toHex(e.key)))
  const rest: KeyEntry[] = []
  const add = (mh: Uint8Array): void => {
    const entry = entryOf(mh)
    if (!seen.has(toHex(entry.key))) rest.push(entry)
  }
  if (strategy === 'pinned') {
    for await (const mh of components.pinnedBlocks(options)) add(mh)
  } else {
    for (const root of rootCids) {
      for await (const mh of entities(root, components.getBlock, options)) add(mh)
    }
  }
  return [roots, sortUnique(rest)]
}

/**
 * Files and directories (and HAMT shards) under a root, from the local blocks: a directory's children are
 * visited, a file's chunks are not. A root that is neither (dag-cbor, ...) is announced alone.
 */
async function * entities (root: CID, getBlock: SourceComponents['getBlock'], options: AbortOptions): AsyncGenerator<Uint8Array> {
  const stack: CID[] = [root]
  const visited = new Set<string>()
  while (stack.length > 0) {
    options.signal?.throwIfAborted()
    const cid = stack.pop() as CID
    const id = cid.toString()
    if (visited.has(id)) continue
    visited.add(id)
    yield cid.multihash.bytes
    if (cid.code !== dagPb.code) continue
    let node: dagPb.PBNode
    try {
      node = dagPb.decode(await getBlock(cid, { offline: true, signal: options.signal }))
    } catch {
      continue
    }
    let type: string
    try {
      type = node.Data != null ? UnixFS.unmarshal(node.Data).type : 'file'
    } catch {
      continue
    }
    if (type !== 'directory' && type !== 'hamt-sharded-directory') continue
    for (const link of node.Links) {
      // a raw child of a directory is a whole (small) file
      if (link.Hash.code === raw.code || link.Hash.code === dagPb.code) stack.push(link.Hash)
    }
  }
}
