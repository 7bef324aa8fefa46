// The value log's index, in level: `/i/<multihash, base32upper>` -> Ref, and `/c` -> the Checkpoint written in
// the same batch as the entries of each group commit (level applies a batch whole, so once the checkpoint is
// there, every entry before it is too). Writes are not fsynced each (LevelDB's log reaches the disk at its own
// pace): an entry lost in a crash is found again at open by scanning the segments past the checkpoint. Only
// compaction syncs, before it deletes a segment that lost entries may still point to.
import { base32upper } from 'multiformats/bases/base32'
import { guardedLevel, type GuardedLevel } from '../../storage/guarded-level.js'
import { Grouped } from '../../utils/grouped.js'
import { decodeCheckpoint, decodeRef, encodeCheckpoint, encodeRef, type Checkpoint, type Ref } from './ref.js'

const INDEX = '/i/'
const INDEX_END = '/i0'
const CHECKPOINT = '/c'

export const nameOf = (multihash: Uint8Array): string => base32upper.encoder.encode(multihash)
export const multihashOf = (name: string): Uint8Array => base32upper.decoder.decode(name)

export type IndexOp = { type: 'put', name: string, ref: Ref } | { type: 'del', name: string }

export class IndexDb {
  private readonly db: GuardedLevel<string, Uint8Array>
  /** Lone lookups made while one is in flight go together, as one read. */
  private readonly lookups = new Grouped<string, Uint8Array | undefined>(async keys => await this.db.getMany(keys))

  constructor (path: string) {
    this.db = guardedLevel<string, Uint8Array>(path, { keyEncoding: 'utf8', valueEncoding: 'view' })
  }

  async open (): Promise<void> {
    await this.db.open({ createIfMissing: true } as never)
  }

  async close (): Promise<void> {
    await this.db.close()
  }

  get writable (): boolean {
    return this.db.guard.writable
  }

  async get (name: string): Promise<Ref | undefined> {
    const v = await this.lookups.call(INDEX + name)
    return v === undefined ? undefined : decodeRef(v)
  }

  async getMany (names: string[]): Promise<Array<Ref | undefined>> {
    if (names.length === 1) return [await this.get(names[0])]
    const values = await this.db.getMany(names.map(n => INDEX + n))
    return values.map(v => v === undefined ? undefined : decodeRef(v))
  }

  async checkpoint (): Promise<Checkpoint | undefined> {
    const v = await this.db.get(CHECKPOINT)
    return v === undefined ? undefined : decodeCheckpoint(v)
  }

  /** One batch; `sync` makes it (and every write before it) durable before resolving. */
  async write (ops: IndexOp[], checkpoint?: Checkpoint, sync = false): Promise<void> {
    const batch: Array<{ type: 'put', key: string, value: Uint8Array } | { type: 'del', key: string }> = ops.map(op =>
      op.type === 'put' ? { type: 'put', key: INDEX + op.name, value: encodeRef(op.ref) } : { type: 'del', key: INDEX + op.name })
    if (checkpoint != null) batch.push({ type: 'put', key: CHECKPOINT, value: encodeCheckpoint(checkpoint) })
    await this.db.batch(batch, { sync } as never)
  }

  /** Every entry, in key order. */
  async * entries (options?: { signal?: AbortSignal }): AsyncGenerator<[string, Ref]> {
    for await (const [key, value] of this.db.iterator({ gt: INDEX, lt: INDEX_END, signal: options?.signal } as never)) {
      yield [(key as string).slice(INDEX.length), decodeRef(value as Uint8Array)]
    }
  }

  async * names (options?: { signal?: AbortSignal }): AsyncGenerator<string> {
    for await (const key of this.db.keys({ gt: INDEX, lt: INDEX_END, signal: options?.signal } as never)) {
      yield (key as string).slice(INDEX.length)
    }
  }
}
