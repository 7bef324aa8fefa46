// Where a block is: the index's value, and the checkpoint's (how far the segments are indexed). Pure encoding.

export interface Ref {
  segment: number
  /** Offset of the payload in the segment file. */
  offset: number
  length: number
}

export interface Checkpoint {
  segment: number
  /** Every record of `segment` before this offset (and of every segment before it) is indexed. */
  end: number
}

export function encodeRef (ref: Ref): Uint8Array {
  const bytes = new Uint8Array(16)
  const view = new DataView(bytes.buffer)
  view.setUint32(0, ref.segment)
  view.setFloat64(4, ref.offset)
  view.setUint32(12, ref.length)
  return bytes
}

export function decodeRef (bytes: Uint8Array): Ref {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return { segment: view.getUint32(0), offset: view.getFloat64(4), length: view.getUint32(12) }
}

export function encodeCheckpoint (cp: Checkpoint): Uint8Array {
  return encodeRef({ segment: cp.segment, offset: cp.end, length: 0 })
}

export function decodeCheckpoint (bytes: Uint8Array): Checkpoint {
  const ref = decodeRef(bytes)
  return { segment: ref.segment, end: ref.offset }
}

export const sameRef = (a: Ref | undefined, b: Ref): boolean => a !== undefined && a.segment === b.segment && a.offset === b.offset
