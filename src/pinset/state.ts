// Whole-document pinset states (snapshots and checkpoints) as a sequence of small Yjs updates ("pieces").
//
// A 1M-pin document encodes to a ~200 MB update. Applied as one update, the receiver holds those bytes next to
// the document being built from them (~650 MB), which kept a joining follower above 1 GB. Cut into pieces of
// a bounded number of structs, a state is written, read and applied one piece at a time: a checkpoint streams
// to a file as it arrives, its hash is checked, and the file is applied piece by piece.
//
// Layout: MAGIC, then length-prefixed (unsigned varint) Yjs v1 updates. Each piece holds one client's structs
// over a clock range and an empty delete set; the last piece holds no structs and the whole delete set. Pieces
// of several clients go round-robin by clock fraction, so that an item usually arrives after what it refers to;
// when it does not, Yjs keeps it pending until the piece it waits for is applied (the result is the same).
// A state without MAGIC is a plain Yjs update (what earlier versions wrote, and what a test may serve).
import { createHash } from 'node:crypto'
import { writeSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { varint } from 'multiformats'
import * as Y from 'yjs'
import { lengthPrefixed } from '../utils/bytes.js'

/** "CYP1": cairn Yjs pieces, version 1. A plain update starting with these bytes would claim 67 clients. */
export const PIECES_MAGIC = Uint8Array.of(0x43, 0x59, 0x50, 0x31)
/** Structs per piece: ~13 MB of a pinset's map entries. */
export const STRUCTS_PER_PIECE = 16_384
/** Largest piece accepted when reading (a bound against a corrupt length, not a format limit). */
const MAX_PIECE = 512 * 1024 * 1024

/** The document's whole state as framed pieces, in order (MAGIC first). Built one piece at a time. */
export function * statePieces (doc: Y.Doc, structsPerPiece = STRUCTS_PER_PIECE): Generator<Uint8Array> {
  yield PIECES_MAGIC
  // the struct arrays are read synchronously by the caller's loop: nothing else runs on the document meanwhile
  const clients = [...doc.store.clients.entries()].map(([client, structs]) => ({ client, structs, next: 0 }))
  const rounds = Math.max(1, ...clients.map(c => Math.ceil(c.structs.length / structsPerPiece)))
  for (let round = 1; round <= rounds; round++) {
    for (const c of clients) {
      const end = Math.min(c.structs.length, Math.ceil(c.structs.length * round / rounds))
      for (let start = c.next; start < end; start += structsPerPiece) {
        const stop = Math.min(end, start + structsPerPiece)
        const enc = new Y.UpdateEncoderV1()
        // one client: struct count, client, first clock, the structs; then an empty delete set
        enc.writeLen(1)
        enc.writeLen(stop - start)
        enc.writeClient(c.client)
        enc.writeLen(c.structs[start].id.clock)
        for (let i = start; i < stop; i++) c.structs[i].write(enc, 0)
        enc.writeLen(0)
        yield lengthPrefixed(enc.toUint8Array())
      }
      c.next = end
    }
  }
  // no structs, then the delete set (v1: client count; per client: client, range count, clock/len pairs)
  const ds = Y.createDeleteSetFromStructStore(doc.store)
  const enc = new Y.UpdateEncoderV1()
  enc.writeLen(0)
  enc.writeLen(ds.clients.size)
  for (const [client, items] of ds.clients) {
    enc.writeLen(client)
    enc.writeLen(items.length)
    for (const item of items) {
      enc.writeLen(item.clock)
      enc.writeLen(item.len)
    }
  }
  yield lengthPrefixed(enc.toUint8Array())
}

/** The whole state in one buffer (tests and small documents). */
export function encodeState (doc: Y.Doc, structsPerPiece = STRUCTS_PER_PIECE): Uint8Array {
  return Buffer.concat([...statePieces(doc, structsPerPiece)])
}

/** Where a stored state is: a file, or (data of an older version) bytes read from level. */
export type StateSource = { path: string } | { bytes: Uint8Array }

/**
 * Applies a state, pieced or plain, to the document. A file is read one piece at a time. Throws a
 * MalformedStateError when the pieces are cut short or a piece is not a Yjs update; pieces applied before
 * that stay applied (each is part of a state whose hash or origin was checked).
 */
export async function applyState (doc: Y.Doc, source: StateSource, origin?: unknown): Promise<void> {
  if ('bytes' in source) {
    const { bytes } = source
    if (isPieced(bytes)) await applyPieces(doc, bytes.length, async (at, length) => bytes.subarray(at, at + length), origin)
    else applyPiece(doc, bytes, origin, 0)
    return
  }
  const fh = await open(source.path, 'r')
  try {
    const read = async (at: number, length: number): Promise<Uint8Array> => {
      const out = new Uint8Array(length)
      const { bytesRead } = await fh.read(out, 0, length, at)
      return out.subarray(0, bytesRead)
    }
    const size = (await fh.stat()).size
    if (isPieced(await read(0, PIECES_MAGIC.length))) await applyPieces(doc, size, read, origin)
    else applyPiece(doc, await fh.readFile(), origin, 0)
  } finally {
    await fh.close()
  }
}

/** The pieces after MAGIC, each read (from a file, or a buffer) only when the one before it was applied. */
async function applyPieces (doc: Y.Doc, size: number, read: (at: number, length: number) => Promise<Uint8Array>, origin: unknown): Promise<void> {
  let pos = PIECES_MAGIC.length
  while (pos < size) {
    const [length, prefix] = pieceLength(await read(pos, Math.min(10, size - pos)))
    if (length > MAX_PIECE || pos + prefix + length > size) throw new MalformedStateError(`piece at byte ${pos} runs past the end of the state`)
    applyPiece(doc, await read(pos + prefix, length), origin, pos)
    pos += prefix + length
  }
}

function applyPiece (doc: Y.Doc, piece: Uint8Array, origin: unknown, at: number): void {
  try {
    Y.applyUpdate(doc, piece, origin)
  } catch (err) {
    throw new MalformedStateError(`piece at byte ${at} is not a Yjs update: ${(err as Error).message}`)
  }
}

export function isPieced (bytes: Uint8Array): boolean {
  if (bytes.length < PIECES_MAGIC.length) return false
  for (let i = 0; i < PIECES_MAGIC.length; i++) if (bytes[i] !== PIECES_MAGIC[i]) return false
  return true
}

export class MalformedStateError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'MalformedStateError'
  }
}

/** A state being written to a file: its length and sha256 are computed on the way. */
export class StateWriter {
  readonly path: string
  private readonly hash = createHash('sha256')
  private length = 0
  private fh?: Awaited<ReturnType<typeof open>>

  private constructor (path: string) { this.path = path }

  static async create (path: string): Promise<StateWriter> {
    const w = new StateWriter(path)
    w.fh = await open(path, 'w')
    return w
  }

  get bytes (): number { return this.length }

  async write (bytes: Uint8Array): Promise<void> {
    let off = 0
    while (off < bytes.length) {
      const { bytesWritten } = await this.handle().write(bytes, off, bytes.length - off)
      off += bytesWritten
    }
    this.hash.update(bytes)
    this.length += bytes.length
  }

  /**
   * Writes the document's whole state. One synchronous pass, as Y.encodeStateAsUpdate is: the document must not
   * change in between (Yjs merges and splits structs as it does), but only one piece is in memory at a time;
   * the writes go to the page cache (the fsync in finish() is awaited).
   */
  writeDoc (doc: Y.Doc, structsPerPiece = STRUCTS_PER_PIECE): void {
    const fd = this.handle().fd
    for (const piece of statePieces(doc, structsPerPiece)) {
      let off = 0
      while (off < piece.length) off += writeSync(fd, piece, off, piece.length - off)
      this.hash.update(piece)
      this.length += piece.length
    }
  }

  /** fsyncs and closes; returns the state's length and sha256. */
  async finish (): Promise<{ length: number, hash: Uint8Array }> {
    const fh = this.handle()
    await fh.sync()
    await fh.close()
    this.fh = undefined
    return { length: this.length, hash: new Uint8Array(this.hash.digest()) }
  }

  /** Closes without keeping anything (the caller removes the file). */
  async abandon (): Promise<void> {
    await this.fh?.close().catch(() => {})
    this.fh = undefined
  }

  private handle (): NonNullable<StateWriter['fh']> {
    if (this.fh == null) throw new Error(`state file ${this.path} is closed`)
    return this.fh
  }
}

/** [piece length, bytes of its varint]. */
function pieceLength (bytes: Uint8Array): [number, number] {
  try {
    return varint.decode(bytes)
  } catch {
    throw new MalformedStateError('bad piece length')
  }
}
