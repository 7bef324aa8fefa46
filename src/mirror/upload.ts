// Streams blocks to the peer as one CAR while they are being made: a bounded queue between the DAG builder and
// the HTTP body, so memory stays flat and hashing waits when the network is slower.
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import * as raw from 'multiformats/codecs/raw'
import { carHeader, carSectionHead } from '../utils/car.js'

/**
 * The CAR header names one root, which is only known once every block has been made. The upload stores the
 * blocks without pinning (no-pin), so the header carries a placeholder: the empty identity CID (bafkqaaa),
 * which the peer never stores. The real root is pinned afterwards by CID.
 */
export const PLACEHOLDER_ROOT = CID.create(1, raw.code, identity.digest(new Uint8Array()))

export class BlockQueue implements AsyncIterable<Uint8Array> {
  private readonly maxBytes: number
  private readonly items: Uint8Array[] = []
  private queued = 0
  private ended = false
  private error?: unknown
  private wakeReader?: () => void
  private readonly wakeWriters: Array<() => void> = []

  constructor (maxBytes = 8 * 1024 * 1024) {
    this.maxBytes = maxBytes
  }

  /** Queues one block as CAR section bytes; resolves once there is room again. */
  async put (cid: CID, bytes: Uint8Array): Promise<void> {
    if (this.error != null) throw this.error
    this.push(carSectionHead(cid, bytes.byteLength))
    this.push(bytes)
    while (this.queued > this.maxBytes && this.error == null) {
      await new Promise<void>(resolve => { this.wakeWriters.push(resolve) })
    }
    if (this.error != null) throw this.error
  }

  end (): void {
    this.ended = true
    this.wakeReader?.()
  }

  /** Ends the stream with an error (the reader throws it), and releases writers waiting for room. */
  fail (err: unknown): void {
    this.error ??= err
    this.wakeReader?.()
    for (const w of this.wakeWriters.splice(0)) w()
  }

  private push (chunk: Uint8Array): void {
    this.items.push(chunk)
    this.queued += chunk.byteLength
    this.wakeReader?.()
  }

  async * [Symbol.asyncIterator] (): AsyncGenerator<Uint8Array> {
    try {
      yield carHeader(PLACEHOLDER_ROOT)
      for (;;) {
        if (this.error != null) throw this.error
        if (this.items.length > 0) {
          const items = this.items.splice(0)
          this.queued = 0
          for (const w of this.wakeWriters.splice(0)) w()
          yield * coalesce(items)
          continue
        }
        if (this.ended) return
        await new Promise<void>(resolve => { this.wakeReader = resolve })
        this.wakeReader = undefined
      }
    } finally {
      // the reader gave up (its request destroyed): writers waiting for room must not wait forever
      if (!this.ended || this.items.length > 0) this.fail(new Error('the upload stopped before every block was sent'))
    }
  }
}

/** Pieces at least this big go out as they are; smaller ones are joined up to it. */
const COALESCE_BYTES = 64 * 1024

/**
 * The queued pieces as few writes as possible without copying much: runs of small pieces (section heads, CIDs,
 * blocks of small files) joined, big blocks passed through (joining everything copied every byte once more).
 */
function * coalesce (items: Uint8Array[]): Generator<Uint8Array> {
  let run: Uint8Array[] = []
  let runBytes = 0
  for (const item of items) {
    if (item.byteLength >= COALESCE_BYTES) {
      if (run.length > 0) yield run.length === 1 ? run[0] : Buffer.concat(run, runBytes)
      run = []
      runBytes = 0
      yield item
      continue
    }
    run.push(item)
    runBytes += item.byteLength
    if (runBytes >= COALESCE_BYTES) {
      yield Buffer.concat(run, runBytes)
      run = []
      runBytes = 0
    }
  }
  if (run.length > 0) yield run.length === 1 ? run[0] : Buffer.concat(run, runBytes)
}
