// Sharded add (DESIGN §5, IPFS Cluster's adder/sharding): the blocks of an imported DAG are grouped, in DAG
// order, into shards of at most shard_size bytes. Each shard is a dag-cbor node linking its blocks directly
// ({"0": cid, "1": cid, ...}), pinned with depth 1 as a `shard-pin` on its own allocations; a `clusterdag-pin`
// node links the shards (pinned direct everywhere); the content root becomes a `meta-pin` (status `sharded`)
// that no peer pins itself. Any peer can still read the whole content: bitswap fetches what it lacks.
import * as dagCbor from '@ipld/dag-cbor'
import { createUnsafe } from 'multiformats/block'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { InvalidParameterError } from '../errors.js'
import { concatChunks } from '../utils/bytes.js'
import type { AbortOptions } from '../components.js'
import type { Helia } from '@helia/interface'

/** The smallest shard-size accepted: smaller shards only make more pins. */
export const MIN_SHARD_SIZE = 64 * 1024
/** Links per shard node, so that a shard node stays well under bitswap's 1 MiB block limit (IPFS Cluster: 5,000-ish). */
export const MAX_SHARD_LINKS = 4096

export interface Shard {
  /** The shard node's CID (dag-cbor). */
  cid: CID
  /** Bytes of the blocks it links (not counting the shard node). */
  bytes: number
  blocks: CID[]
}

export interface ShardedDag {
  root: CID
  shards: Shard[]
  /** The clusterdag node linking every shard. */
  clusterDag: CID
  /** Bytes of the whole DAG. */
  bytes: number
}

export function checkShardSize (size: number): void {
  if (!Number.isSafeInteger(size) || size < MIN_SHARD_SIZE) {
    throw new InvalidParameterError(`shard-size must be at least ${MIN_SHARD_SIZE} bytes, got ${size}`)
  }
}

/** A dag-cbor node {"0": cid, "1": cid, ...}, written to the blockstore. */
async function linkNode (helia: Pick<Helia, 'blockstore'>, links: CID[], options: AbortOptions): Promise<CID> {
  const node: Record<string, CID> = {}
  links.forEach((cid, i) => { node[String(i)] = cid })
  const bytes = dagCbor.encode(node)
  const cid = CID.createV1(dagCbor.code, await sha256.digest(bytes))
  await helia.blockstore.put(cid, bytes, options)
  return cid
}

/**
 * Walks the DAG under `root` in the local store (depth first, each block once) and cuts it into shards of at
 * most `shardSize` bytes (a block bigger than that gets a shard of its own). Writes the shard and clusterdag
 * nodes to the local blockstore.
 */
export async function shardDag (helia: Pick<Helia, 'blockstore' | 'getCodec'>, root: CID, shardSize: number, options: AbortOptions = {}): Promise<ShardedDag> {
  const shards: Shard[] = []
  let current: Shard = { cid: root, bytes: 0, blocks: [] }
  let total = 0
  const close = async (): Promise<void> => {
    if (current.blocks.length === 0) return
    current.cid = await linkNode(helia, current.blocks, options)
    shards.push(current)
    current = { cid: root, bytes: 0, blocks: [] }
  }
  const seen = new Set<string>()
  const stack: CID[] = [root]
  while (stack.length > 0) {
    options.signal?.throwIfAborted()
    const cid = stack.pop()!
    const key = cid.multihash.bytes.toString()
    if (seen.has(key)) continue
    seen.add(key)
    const bytes = await concatChunks(helia.blockstore.get(cid, options))
    if (current.blocks.length > 0 && (current.bytes + bytes.byteLength > shardSize || current.blocks.length >= MAX_SHARD_LINKS)) await close()
    current.blocks.push(cid)
    current.bytes += bytes.byteLength
    total += bytes.byteLength
    if (cid.code === 0x55 || cid.multihash.code === 0x00) continue // raw leaf, identity: no links
    const block = createUnsafe({ cid, bytes, codec: await helia.getCodec(cid.code) })
    const children: CID[] = []
    for (const [, link] of block.links()) children.push(link)
    // reversed onto the stack: the first link is walked first, so shards follow the file's byte order
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i])
  }
  await close()
  const clusterDag = await linkNode(helia, shards.map(s => s.cid), options)
  return { root, shards, clusterDag, bytes: total }
}

/** The shard CIDs a clusterdag node links, read from the local store. */
export async function readClusterDag (helia: Pick<Helia, 'blockstore'>, clusterDag: CID, options: AbortOptions = {}): Promise<CID[]> {
  const node = dagCbor.decode<Record<string, CID>>(await concatChunks(helia.blockstore.get(clusterDag, options)))
  return Object.keys(node).sort((a, b) => Number(a) - Number(b)).map(k => CID.asCID(node[k])).filter((c): c is CID => c != null)
}
