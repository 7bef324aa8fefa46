import { varint } from 'multiformats'

/** Joins chunks into one buffer (the chunk itself when there is only one). */
export async function concatChunks (chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const list: Uint8Array[] = []
  let length = 0
  for await (const chunk of chunks) {
    list.push(chunk)
    length += chunk.byteLength
  }
  if (list.length === 1) {
    return list[0]
  }
  const out = new Uint8Array(length)
  let offset = 0
  for (const chunk of list) {
    out.set(chunk, offset)
    offset += chunk.byteLength
  }
  return out
}

/** `body` behind its length as an unsigned varint (CAR sections, kad messages on a stream, pinset state pieces). */
export function lengthPrefixed (body: Uint8Array): Uint8Array {
  const head = varint.encodingLength(body.byteLength)
  const out = new Uint8Array(head + body.byteLength)
  varint.encodeTo(body.byteLength, out, 0)
  out.set(body, head)
  return out
}
