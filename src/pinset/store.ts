// The pinset's append-only envelope log in level (y-leveldb's shape: one key per update, plus a snapshot of
// the merged document that lets a restart skip replaying the log).
import { Level } from 'level'
import type { VersionVector } from './protocol.js'

const ENV_PREFIX = 'e!'
const SNAPSHOT_STATE = 's!state'
const SNAPSHOT_VV = 's!vv'
const CHECKPOINT_HEADER = 'c!header'
const CHECKPOINT_STATE = 'c!state'
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
  private readonly db: Level<string, Uint8Array>

  constructor (path: string) {
    this.db = new Level<string, Uint8Array>(path, { valueEncoding: 'view' })
  }

  async open (): Promise<void> { await this.db.open() }
  async close (): Promise<void> { await this.db.close() }

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

  async getSnapshot (): Promise<{ state: Uint8Array, vv: VersionVector } | undefined> {
    const [state, vv] = await this.db.getMany([SNAPSHOT_STATE, SNAPSHOT_VV])
    if (state == null || vv == null) return undefined
    return { state, vv: JSON.parse(new TextDecoder().decode(vv)) }
  }

  async getCheckpoint (): Promise<{ header: Uint8Array, state: Uint8Array } | undefined> {
    const [header, state] = await this.db.getMany([CHECKPOINT_HEADER, CHECKPOINT_STATE])
    if (header == null || state == null) return undefined
    return { header, state }
  }

  async getCheckpointHeader (): Promise<Uint8Array | undefined> {
    return await this.db.get(CHECKPOINT_HEADER)
  }

  async putCheckpoint (header: Uint8Array, state: Uint8Array): Promise<void> {
    await this.db.batch([
      { type: 'put', key: CHECKPOINT_HEADER, value: header },
      { type: 'put', key: CHECKPOINT_STATE, value: state }
    ], { sync: true })
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

  async putSnapshot (state: Uint8Array, vv: VersionVector): Promise<void> {
    await this.db.batch([
      { type: 'put', key: SNAPSHOT_STATE, value: state },
      { type: 'put', key: SNAPSHOT_VV, value: new TextEncoder().encode(JSON.stringify(vv)) }
    ], { sync: true })
  }
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
