// How a spread pin cuts a UnixFS tree into a skeleton and file units (docs/DESIGN.md §5 "Spread pins").
//
// The skeleton is every dag-pb node reached through directories: directories, HAMT shards, symlinks and the root
// node of each file. It is small (a file's root holds one link per 256 KiB chunk) and every peer allocated to
// the pin keeps all of it, so any of them lists directories and resolves paths from its own store. A *unit* is a
// file's whole DAG under its root (a raw-leaf file is one block), and belongs to the partition named by its CID's
// digest: a file keeps its partition in every version that holds it unchanged, so a new version moves only what
// changed, and an outside IPFS node finds each file whole on the peers of one partition.
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import * as raw from 'multiformats/codecs/raw'
import { InvalidParameterError } from '../errors.js'
import { blockId } from '../ipfs/local-dag.js'
import type { AbortOptions } from '../components.js'
import type { CID } from 'multiformats/cid'

/** Partitions a spread pin is cut into (the default; a pin keeps the count it was made with). */
export const DEFAULT_PARTITIONS = 64

/** The partition of a unit: its digest's first four bytes, modulo the count (the digest is a hash already). */
export function partitionOf (cid: CID, partitions: number): number {
  const d = cid.multihash.digest
  let v = 0
  for (let i = 0; i < Math.min(4, d.length); i++) v = (v * 256) + d[i]
  return v % partitions
}

export interface SkeletonBlock {
  cid: CID
  links: CID[]
}

export interface Unit {
  /** The file's root (a raw block for a one-block file). */
  cid: CID
  partition: number
  /** The file's DAG size as its directory entry says (Tsize), or its block size. */
  bytes: number
}

export interface Layout {
  skeleton: SkeletonBlock[]
  units: Unit[]
  /** Bytes of the units in each partition. */
  partitionBytes: number[]
  /** Bytes of the skeleton blocks. */
  skeletonBytes: number
}

/** Reads one block (from the local store, or fetched). */
export type BlockReader = (cid: CID, options?: AbortOptions) => Promise<Uint8Array>

export interface LayoutOptions extends AbortOptions {
  /** Skeleton blocks read at once. Default 16. */
  concurrency?: number
  /**
   * The skeleton's blocks (keys by layoutKey), from the pin's layout index: a dag-pb child of a directory not
   * among them is a one-block file, partitioned without being read. Without it every dag-pb child is read to
   * tell a directory from a file (what the peer building the pin does, once).
   */
  skeleton?: ReadonlySet<string>
  /**
   * What a previous version's layout says (keys by layoutKey): a child among its units is a file, not read; any
   * other child is read as without `skeleton`. A new version of a mirror then reads only what changed.
   */
  hints?: { units: ReadonlySet<string> }
}

/** The key of a block in a layout index set: blockId, the store's key (its multihash). */
export function layoutKey (cid: CID): string {
  return blockId(cid)
}

/**
 * Walks the skeleton of the tree under `root` and lists its units. InvalidParameterError when the root is not a
 * UnixFS directory (a file alone, a raw block or another codec cannot be spread).
 */
export async function readLayout (root: CID, partitions: number, read: BlockReader, options: LayoutOptions = {}): Promise<Layout> {
  if (root.code !== dagPb.code) throw new InvalidParameterError(`a spread pin needs a UnixFS directory: ${root} is not dag-pb`)
  const skeleton: SkeletonBlock[] = []
  const units: Unit[] = []
  const unitSeen = new Set<string>()
  const seen = new Set<string>()
  const partitionBytes = new Array<number>(partitions).fill(0)
  let skeletonBytes = 0
  const addUnit = (cid: CID, bytes: number): void => {
    const id = blockId(cid)
    if (unitSeen.has(id)) return
    unitSeen.add(id)
    const partition = partitionOf(cid, partitions)
    units.push({ cid, partition, bytes })
    partitionBytes[partition] += bytes
  }
  let first = true
  let queue: Array<{ cid: CID, size: number }> = [{ cid: root, size: 0 }]
  const concurrency = options.concurrency ?? 16
  while (queue.length > 0) {
    const next: typeof queue = []
    for (let i = 0; i < queue.length; i += concurrency) {
      const slice = queue.slice(i, i + concurrency)
      const read_ = await Promise.all(slice.map(async j => await read(j.cid, options)))
      slice.forEach(({ cid, size }, k) => {
        const bytes = read_[k]
        const node = dagPb.decode(bytes)
        let type: string
        try {
          type = node.Data != null ? UnixFS.unmarshal(node.Data).type : 'raw'
        } catch {
          type = 'raw'
        }
        if (first) {
          first = false
          if (type !== 'directory' && type !== 'hamt-sharded-directory') {
            throw new InvalidParameterError(`a spread pin needs a UnixFS directory: ${root} is a ${type === 'raw' ? 'dag-pb node without UnixFS data' : type}`)
          }
        }
        const links = node.Links.map(l => l.Hash)
        skeleton.push({ cid, links })
        skeletonBytes += bytes.byteLength
        if (type === 'directory' || type === 'hamt-sharded-directory') {
          for (const link of node.Links) {
            const child = link.Hash
            if (child.code === raw.code) {
              addUnit(child, link.Tsize ?? 0)
              continue
            }
            const id = blockId(child)
            if (seen.has(id)) continue
            seen.add(id)
            const known = options.skeleton != null ? !options.skeleton.has(id) : options.hints?.units.has(id) === true
            if (child.code === dagPb.code && known) addUnit(child, link.Tsize ?? 0)
            else if (child.code === dagPb.code) next.push({ cid: child, size: link.Tsize ?? 0 })
            // other codecs below a directory are no UnixFS: kept whole with the skeleton's peers is not
            // possible without reading them; they go to a partition like a file
            else addUnit(child, link.Tsize ?? 0)
          }
        } else if (type === 'file' || type === 'raw') {
          // the file's root is skeleton; the file whole is the unit
          skeleton.pop()
          skeletonBytes -= bytes.byteLength
          if (links.length === 0) {
            // a one-block file: nothing below its root, so it is the unit itself, not skeleton
            addUnit(cid, bytes.byteLength)
          } else {
            skeleton.push({ cid, links })
            skeletonBytes += bytes.byteLength
            addUnit(cid, Math.max(size, bytes.byteLength))
          }
        }
        // symlinks (and metadata nodes) are skeleton, with nothing below
      })
    }
    queue = next
  }
  return { skeleton, units, partitionBytes, skeletonBytes }
}
