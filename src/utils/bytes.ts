import * as varint from 'uint8-varint'

/** A byte count for people: "512 B", "1.5 MiB". */
export function formatBytes (n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`
}

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
  varint.encode(body.byteLength, out, 0)
  out.set(body, head)
  return out
}
