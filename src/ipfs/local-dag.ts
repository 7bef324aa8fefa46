// The part of a DAG this peer already holds, found with a few bulk reads instead of one read per block. Pinning
// a new version of a mirror re-uses almost all of the previous version's blocks: walking them block by block
// (one level read each, raw leaves included) took ~1.7 s for a 15,000-block tree, and so did walking it again to
// write the pin records. This goes level by level: one getMany of the blocks' pin records (a recorded block is
// held, and its record lists its links), then, for blocks without a record, one getMany of those with links and
// one hasMany of the rest (raw leaves are never read: they have no links).
import { createUnsafe } from 'multiformats/block'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import type { PinBlock, PinnedBlock } from './pin-records.js'
import type { BlockCodec } from 'multiformats/codecs/interface'

export interface LocalDagInit {
  /** The pin record of each block (undefined: none). */
  records(cids: CID[]): Promise<Array<PinnedBlock | undefined>>
  /** Bytes of each block, undefined when it is not held here. */
  getMany(cids: CID[]): Promise<Array<Uint8Array | undefined>>
  /** Whether each block is held here. */
  hasMany(cids: CID[]): Promise<boolean[]>
  getCodec(code: number): BlockCodec<any, any> | Promise<BlockCodec<any, any>>
  /** The links of a block stored lately (so held), when still known: it is not read again. */
  recentLinks?(cid: CID): CID[] | undefined
}

export interface LocalDag {
  /** Every distinct block of the DAG held here (by multihash), parents before their children, with records. */
  blocks: PinBlock[]
  /** Linked blocks not held here, with their depth: everything below them is unknown. */
  missing: Array<{ cid: CID, depth: number }>
}

/** Blocks looked up per bulk read. */
const CHUNK = 2048

/** A map key for a block: records are kept per multihash, so two CIDs of one multihash are one block. */
export function blockId (cid: CID): string {
  return Buffer.from(cid.multihash.bytes.buffer, cid.multihash.bytes.byteOffset, cid.multihash.bytes.byteLength).toString('latin1')
}

interface Job { cid: CID, depth: number }

export interface ScanOptions {
  signal?: AbortSignal
  /** By blockId; may be shared with a later walk, so that a block is listed once. */
  seen?: Set<string>
  /**
   * List a block whose record is deep (everything below it held and recorded, see pin-records.ts) without going
   * below it: what a recursive pin needs, and what keeps pinning a new version of a mirror proportional to what
   * changed.
   */
  stopAtDeep?: boolean
}

/** Walks the DAG under `root` down to `maxDepth` (Infinity: all of it) through the local store only. */
export async function scanLocalDag (root: CID, maxDepth: number, init: LocalDagInit, options: ScanOptions = {}): Promise<LocalDag> {
  return await scanLocalDagFrom([{ cid: root, depth: 0 }], maxDepth, init, options)
}

/** The same from several blocks of one DAG, each at its depth in it (held blocks found below fetched ones). */
export async function scanLocalDagFrom (starts: Array<{ cid: CID, depth: number }>, maxDepth: number, init: LocalDagInit, options: ScanOptions = {}): Promise<LocalDag> {
  const seen = options.seen ?? new Set<string>()
  const blocks: PinBlock[] = []
  const missing: LocalDag['missing'] = []
  let queue: Job[] = []
  const enqueue = (cid: CID, depth: number): void => {
    const id = blockId(cid)
    if (seen.has(id)) return
    seen.add(id)
    queue.push({ cid, depth })
  }
  for (const start of starts) enqueue(start.cid, start.depth)
  while (queue.length > 0) {
    options.signal?.throwIfAborted()
    const level = queue
    queue = []
    for (let start = 0; start < level.length; start += CHUNK) {
      const chunk = level.slice(start, start + CHUNK)
      const records = await init.records(chunk.map(j => j.cid))
      // without a record: a block whose links are not followed is only checked for, the others are read
      const probe: Array<{ job: Job, i: number }> = []
      const read: Array<{ job: Job, i: number }> = []
      const links: Array<CID[] | undefined> = new Array(chunk.length)
      chunk.forEach((job, i) => {
        const record = records[i]
        const follow = job.cid.code !== raw.code && job.depth < maxDepth && !(options.stopAtDeep === true && record?.deep === true)
        if (record == null) {
          const known = follow ? init.recentLinks?.(job.cid) : undefined
          if (known != null) links[i] = known
          else (follow ? read : probe).push({ job, i })
        } else if (!follow) links[i] = job.cid.code === raw.code ? [] : undefined
        else if (record.links != null && record.codec === job.cid.code) links[i] = record.links.map(l => CID.decode(l))
        else read.push({ job, i }) // a record without links (Helia's own, or an older cairn's)
      })
      const [held, bytes] = await Promise.all([
        probe.length > 0 ? init.hasMany(probe.map(p => p.job.cid)) : [],
        read.length > 0 ? init.getMany(read.map(p => p.job.cid)) : []
      ])
      const absent = new Set<number>()
      probe.forEach((p, k) => { if (!held[k]) absent.add(p.i) })
      for (let k = 0; k < read.length; k++) {
        const { job, i } = read[k]
        const block = bytes[k]
        if (block == null) { absent.add(i); continue }
        const node = createUnsafe({ cid: job.cid, bytes: block, codec: await init.getCodec(job.cid.code) })
        links[i] = [...node.links()].map(([, cid]) => cid)
      }
      chunk.forEach((job, i) => {
        if (absent.has(i)) { missing.push(job); return }
        blocks.push({ cid: job.cid, links: links[i], record: records[i] ?? null })
        if (job.depth < maxDepth) for (const child of links[i] ?? []) enqueue(child, job.depth + 1)
      })
    }
  }
  return { blocks, missing }
}

/**
 * The links of the blocks imported last (add, CAR upload), within a byte budget, oldest dropped first. Pinning
 * what was just added would otherwise read every node back to learn its links: for a package tree whose small
 * files are UnixFS nodes holding their bytes (with mtime and mode), that was reading the whole tree again (520
 * MiB for the mirror benchmark's first sync). Links are kept as copies of their CID bytes, one buffer per block:
 * CIDs decoded from a block point into its bytes and would keep the whole block in memory.
 */
export class RecentLinks {
  private readonly blocks = new Map<string, { code: number, links: Uint8Array }>()
  private bytes = 0

  /** @param budget bytes of link CIDs kept (36 per CIDv1 link; keys and map entries come on top) */
  constructor (private readonly budget: number) {}

  set (cid: CID, links: CID[]): void {
    const id = blockId(cid)
    this.drop(id)
    const packed = new Uint8Array(links.reduce((n, l) => n + l.bytes.byteLength, 0))
    let offset = 0
    for (const l of links) {
      packed.set(l.bytes, offset)
      offset += l.bytes.byteLength
    }
    this.blocks.set(id, { code: cid.code, links: packed })
    this.bytes += packed.byteLength + id.length
    while (this.bytes > this.budget && this.blocks.size > 0) this.drop(this.blocks.keys().next().value as string)
  }

  get (cid: CID): CID[] | undefined {
    const known = this.blocks.get(blockId(cid))
    if (known?.code !== cid.code) return undefined
    const links: CID[] = []
    for (let rest = known.links; rest.byteLength > 0;) {
      const [link, remainder] = CID.decodeFirst(rest)
      links.push(link)
      rest = remainder
    }
    return links
  }

  delete (cid: CID): void {
    this.drop(blockId(cid))
  }

  private drop (id: string): void {
    const entry = this.blocks.get(id)
    if (entry == null) return
    this.blocks.delete(id)
    this.bytes -= entry.links.byteLength + id.length
  }
}
