// Reading the records of a segment file in order: at open (what the index lacks, and where a torn tail starts)
// and for compaction (which records to move).
import { checkRecord, decodeHead, HEAD_BYTES, recordBytes } from './record.js'
import type { Segments } from './segments.js'

export interface ScannedRecord {
  multihash: Uint8Array
  payload: Uint8Array
  /** Offset of the payload in the segment. */
  offset: number
}

/**
 * The whole records of segment `id` from `from` up to `size`, in order; `end` is where the last whole one ends
 * (below `size` when a record is torn: cut there, nothing after it can be trusted).
 */
export async function * scanSegment (segments: Segments, id: number, from: number, size: number): AsyncGenerator<ScannedRecord, number> {
  let at = from
  while (at < size) {
    const headBytes = await segments.read(id, at, Math.min(HEAD_BYTES, size - at))
    const head = headBytes === undefined ? undefined : decodeHead(headBytes)
    if (head === undefined) return at
    const length = recordBytes(head.multihashLength, head.payloadLength)
    if (at + length > size) return at
    const bytes = await segments.read(id, at, length)
    const record = bytes === undefined ? undefined : checkRecord(bytes, head)
    if (record === undefined) return at
    yield { ...record, offset: at + HEAD_BYTES + head.multihashLength }
    at += length
  }
  return at
}
