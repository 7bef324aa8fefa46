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
