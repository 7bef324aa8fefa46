// What the node asks of its local blockstore (the store under Helia's networked one), whatever the layout:
// sized-blockstore.ts (blocks in level, the earlier layout) and value-log/ (block bytes in segment files) both
// implement it, and fetch.ts, quota.ts and ipfs.ts type against it only.
import type { AbortOptions } from '../components.js'
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'

export interface LocalBlockstore extends Blockstore {
  open: () => Promise<void>
  close: () => Promise<void>
  /** Bytes held: block payloads, the store's own overhead not counted. */
  size: () => number
  /** Whether each block is held, in one lookup. */
  hasBlocks: (cids: CID[], options?: AbortOptions) => Promise<boolean[]>
  /** The bytes of each block (undefined when missing). */
  getBlocks: (cids: CID[], options?: AbortOptions) => Promise<Array<Uint8Array | undefined>>
  /** Every block held when called, as raw-codec CIDs, in slices of up to `size`; no block is read. */
  cidSlices: (size: number, options?: AbortOptions) => AsyncGenerator<CID[]>
  /** Told of each block written, once it is readable (bitswap's sender answers wants parked for it). */
  onStored?: (cid: CID) => void
}
