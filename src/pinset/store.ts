// The pinset's append-only envelope log in level (y-leveldb's shape: one key per update, plus a snapshot of
// the merged document that lets a restart skip replaying the log).
//
// The snapshot's and the checkpoint's states are whole-document states (~200 MB for 1M pins, see state.ts):
// they live in files next to the database (`<path>/state/`), named in level, not in level itself. Written
// into level, each one was copied into LevelDB's memtable and log, hundreds of MB of process memory while a
// follower joined; a file is written piece by piece, read back piece by piece, and a checkpoint is served to a
// joining peer straight from its file.
import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { access, mkdir, open, readdir, rename, rm } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { guardedLevel, type GuardedLevel } from '../storage/guarded-level.js'
import { StateWriter, type StateSource } from './state.js'
import type { VersionVector } from './protocol.js'

const ENV_PREFIX = 'e!'
const SNAPSHOT_STATE = 's!state'
const SNAPSHOT_VV = 's!vv'
const CHECKPOINT_HEADER = 'c!header'
const CHECKPOINT_STATE = 'c!state'
/** The names (in STATE_DIR) of the snapshot's and the checkpoint's state files. */
const SNAPSHOT_FILE = 's!file'
const CHECKPOINT_FILE = 'c!file'
const STATE_DIR = 'state'
/** Chunks a checkpoint is read in when served. */
const READ_CHUNK = 1024 * 1024
const COMPACTED = 'k!'

/** Storage keys behind one helper: seq is fixed-width hex so keys sort numerically. */
export function envelopeKey (author: string, seq: number): string {
  return `${ENV_PREFIX}${author}!${seq.toString(16).padStart(13, '0')}`
}

function parseEnvelopeKey (key: string): { author: string, seq: number } {
  const bang = key.lastIndexOf('!')
  return { author: key.slice(ENV_PREFIX.length, bang), seq: parseInt(key.slice(bang + 1), 16) }
}

export interface StoredEnvelope { author: string, seq: number, bytes: Uint8Array }

export class PinsetStore {
  private readonly db: GuardedLevel<string, Uint8Array>
  private readonly stateDir: string

  constructor (path: string) {
    this.db = guardedLevel<string, Uint8Array>(path, { valueEncoding: 'view' })
    this.stateDir = join(path, STATE_DIR)
  }

  async open (): Promise<void> {
    await this.db.open()
    await mkdir(this.stateDir, { recursive: true })
    // files of a write that crashed before level named them
    const named = new Set((await this.db.getMany([SNAPSHOT_FILE, CHECKPOINT_FILE])).filter(v => v != null).map(v => new TextDecoder().decode(v)))
    for (const name of await readdir(this.stateDir)) {
      if (!named.has(name)) await rm(join(this.stateDir, name), { force: true })
    }
  }

  async close (): Promise<void> { await this.db.close() }

  /** Why writes are refused (one failed on the disk: src/storage/guarded-level.ts), or undefined. */
  refusal (): Error | undefined { return this.db.guard.refusal() }

  /**
   * A new state file to write (the snapshot's or a checkpoint's), under a temporary name until adopted with
   * adoptSnapshot / adoptCheckpoint, or dropped with discard. A crash leaves an unnamed file, removed at open.
   */
  async createState (kind: 'snapshot' | 'checkpoint'): Promise<StateWriter> {
    return await StateWriter.create(join(this.stateDir, `${kind}-${Date.now()}-${randomBytes(4).toString('hex')}.state.tmp`))
  }

  async discard (state: StateWriter): Promise<void> {
    await state.abandon()
    await rm(state.path, { force: true })
  }

  private async fileName (key: string): Promise<string | undefined> {
    const v = await this.db.get(key)
    return v == null ? undefined : new TextDecoder().decode(v)
  }

  /** The state under `fileKey`, or (data of an older version) under `levelKey` in level. */
  private async stateSource (fileKey: string, levelKey: string): Promise<StateSource | undefined> {
    const name = await this.fileName(fileKey)
    if (name == null) {
      const bytes = await this.db.get(levelKey)
      return bytes == null ? undefined : { bytes }
    }
    const path = join(this.stateDir, name)
    try {
      await access(path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    return { path }
  }

  /** Writes envelopes in one batch; sync = fsync before resolving (local writes answer the API only then). */
  async putEnvelopes (envelopes: StoredEnvelope[], sync: boolean): Promise<void> {
    if (envelopes.length === 0) return
    await this.db.batch(envelopes.map(e => ({ type: 'put' as const, key: envelopeKey(e.author, e.seq), value: e.bytes })), { sync })
  }

  /** Every stored (author, seq), in key order, without reading values. */
  async * keys (): AsyncGenerator<{ author: string, seq: number }> {
    for await (const key of this.db.keys({ gt: ENV_PREFIX, lt: `${ENV_PREFIX}\xff` })) {
      yield parseEnvelopeKey(key)
    }
  }

  /** Envelopes of one author with seq > after, in seq order. */
  async * envelopesAfter (author: string, after: number): AsyncGenerator<StoredEnvelope> {
    const it = this.db.iterator({ gt: envelopeKey(author, after), lt: `${ENV_PREFIX}${author}!\xff` })
    for await (const [key, bytes] of it) {
      yield { ...parseEnvelopeKey(key), bytes }
    }
  }

  async authors (): Promise<string[]> {
    const out: string[] = []
    let from = ENV_PREFIX
    // Skip from author to author instead of walking every key.
    for (;;) {
      const [key] = await this.db.keys({ gt: from, lt: `${ENV_PREFIX}\xff`, limit: 1 }).all()
      if (key == null) return out
      const { author } = parseEnvelopeKey(key)
      out.push(author)
      from = `${ENV_PREFIX}${author}!\xff`
    }
  }

  async getSnapshot (): Promise<{ source: StateSource, vv: VersionVector } | undefined> {
    const vv = await this.db.get(SNAPSHOT_VV)
    if (vv == null) return undefined
    const source = await this.stateSource(SNAPSHOT_FILE, SNAPSHOT_STATE)
    if (source == null) return undefined
    return { source, vv: JSON.parse(new TextDecoder().decode(vv)) }
  }

  async getCheckpoint (): Promise<{ header: Uint8Array, source: StateSource } | undefined> {
    const header = await this.db.get(CHECKPOINT_HEADER)
    if (header == null) return undefined
    const source = await this.stateSource(CHECKPOINT_FILE, CHECKPOINT_STATE)
    if (source == null) return undefined
    return { header, source }
  }

  /** The checkpoint's header, its state's length and the state in chunks, read from its file as they are sent. */
  async openCheckpoint (): Promise<{ header: Uint8Array, length: number, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, close: () => void } | undefined> {
    const header = await this.db.get(CHECKPOINT_HEADER)
    if (header == null) return undefined
    const name = await this.fileName(CHECKPOINT_FILE)
    if (name == null) {
      const state = await this.db.get(CHECKPOINT_STATE)
      if (state == null) return undefined
      return { header, length: state.length, chunks: chunksOf(state), close: () => {} }
    }
    const path = join(this.stateDir, name)
    let fh
    try {
      fh = await open(path, 'r')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    // open now: a newer checkpoint may delete the file while this one is being sent
    const length = (await fh.stat()).size
    const chunks = createReadStream(path, { fd: fh, highWaterMark: READ_CHUNK })
    return { header, length, chunks, close: () => { chunks.destroy() } }
  }

  async getCheckpointHeader (): Promise<Uint8Array | undefined> {
    return await this.db.get(CHECKPOINT_HEADER)
  }

  /** Makes a finished state file the checkpoint, with its signed header. */
  async adoptCheckpoint (state: StateWriter, header: Uint8Array): Promise<void> {
    await this.replaceState(CHECKPOINT_FILE, state, [
      { type: 'put', key: CHECKPOINT_HEADER, value: header },
      { type: 'del', key: CHECKPOINT_STATE }
    ])
  }

  /** Gives the finished file its final name, names it in level with `ops` (one synced batch), then deletes the old file. */
  private async replaceState (fileKey: string, state: StateWriter, ops: Array<{ type: 'put', key: string, value: Uint8Array } | { type: 'del', key: string }>): Promise<void> {
    const old = await this.fileName(fileKey)
    const name = basename(state.path, '.tmp')
    await rename(state.path, join(this.stateDir, name))
    await this.db.batch([...ops, { type: 'put', key: fileKey, value: new TextEncoder().encode(name) }], { sync: true })
    if (old != null && old !== name) await rm(join(this.stateDir, old), { force: true })
  }

  /** Deletes an author's envelopes with seq <= through and remembers that they are gone. */
  async compact (author: string, through: number): Promise<void> {
    await this.db.clear({ gt: envelopeKey(author, 0), lte: envelopeKey(author, through) })
    await this.db.put(`${COMPACTED}${author}`, new TextEncoder().encode(String(through)))
  }

  /** author -> highest seq deleted by compaction. */
  async compacted (): Promise<Map<string, number>> {
    const out = new Map<string, number>()
    for await (const [key, value] of this.db.iterator({ gt: COMPACTED, lt: `${COMPACTED}\xff` })) {
      out.set(key.slice(COMPACTED.length), Number(new TextDecoder().decode(value)))
    }
    return out
  }

  /** Makes a finished state file the snapshot, covering `vv`. */
  async adoptSnapshot (state: StateWriter, vv: VersionVector): Promise<void> {
    await this.replaceState(SNAPSHOT_FILE, state, [
      { type: 'put', key: SNAPSHOT_VV, value: new TextEncoder().encode(JSON.stringify(vv)) },
      { type: 'del', key: SNAPSHOT_STATE }
    ])
  }
}

function * chunksOf (bytes: Uint8Array): Generator<Uint8Array> {
  for (let off = 0; off < bytes.length; off += READ_CHUNK) yield bytes.subarray(off, off + READ_CHUNK)
}

/** Which (author, seq) pairs a peer holds: the contiguous prefix per author plus any seqs above a gap. */
export class SeqTracker {
  private readonly contiguous = new Map<string, number>()
  private readonly above = new Map<string, Set<number>>()

  has (author: string, seq: number): boolean {
    return seq <= (this.contiguous.get(author) ?? 0) || (this.above.get(author)?.has(seq) ?? false)
  }

  /** Records a seq; false if it was already held. */
  add (author: string, seq: number): boolean {
    if (this.has(author, seq)) return false
    let c = this.contiguous.get(author) ?? 0
    if (seq === c + 1) {
      c = seq
      const set = this.above.get(author)
      while (set?.delete(c + 1) === true) c++
      if (set?.size === 0) this.above.delete(author)
      this.contiguous.set(author, c)
    } else {
      let set = this.above.get(author)
      if (set == null) { set = new Set(); this.above.set(author, set) }
      set.add(seq)
    }
    return true
  }

  /** Marks 1..through as held (a checkpoint covers them). */
  cover (author: string, through: number): void {
    let c = this.contiguous.get(author) ?? 0
    if (through <= c) return
    c = through
    const set = this.above.get(author)
    if (set != null) {
      for (const s of set) if (s <= c) set.delete(s)
      while (set.delete(c + 1)) c++
      if (set.size === 0) this.above.delete(author)
    }
    this.contiguous.set(author, c)
  }

  authors (): string[] {
    return [...new Set([...this.contiguous.keys(), ...this.above.keys()])]
  }

  /** Highest seq held per author, with or without gaps. */
  max (author: string): number {
    let m = this.contiguous.get(author) ?? 0
    for (const s of this.above.get(author) ?? []) if (s > m) m = s
    return m
  }

  hasGaps (author?: string): boolean {
    return author == null ? this.above.size > 0 : this.above.has(author)
  }

  versionVector (): VersionVector {
    return Object.fromEntries(this.contiguous)
  }

  count (): number {
    let n = 0
    for (const c of this.contiguous.values()) n += c
    for (const s of this.above.values()) n += s.size
    return n
  }
}
