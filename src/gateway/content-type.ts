// Content types of files: by extension (the mime-types table express already carries), else by a look at the
// first bytes, as Kubo does with Go's http.DetectContentType (a smaller set: what package mirrors hold).
import { extname } from 'node:path'
import mime from 'mime-types'

export const OCTET_STREAM = 'application/octet-stream'

/** Bytes read from the start of a file to guess its type. */
export const SNIFF_BYTES = 512

// extensions package mirrors serve that the mime-types table lacks or gets wrong for a mirror
const EXTRA: Readonly<Record<string, string>> = {
  '.tgz': 'application/gzip',
  '.zst': 'application/zstd',
  '.whl': 'application/zip',
  '.gpg': OCTET_STREAM,
  '.ts': 'text/plain; charset=utf-8',
  '.mts': 'text/plain; charset=utf-8',
  '.cts': 'text/plain; charset=utf-8'
}

/** The type a file name implies, or undefined when its extension says nothing. */
export function typeByName (name: string): string | undefined {
  const ext = extname(name).toLowerCase()
  if (ext === '') return undefined
  const extra = EXTRA[ext]
  if (extra != null) return extra
  const type = mime.contentType(ext)
  return type === false ? undefined : type
}

const MAGIC: Array<[number[], string]> = [
  [[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'image/png'],
  [[0xff, 0xd8, 0xff], 'image/jpeg'],
  [[0x47, 0x49, 0x46, 0x38], 'image/gif'],
  [[0x25, 0x50, 0x44, 0x46, 0x2d], 'application/pdf'],
  [[0x1f, 0x8b], 'application/gzip'],
  [[0x28, 0xb5, 0x2f, 0xfd], 'application/zstd'],
  [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 'application/x-xz'],
  [[0x42, 0x5a, 0x68], 'application/x-bzip2'],
  [[0x50, 0x4b, 0x03, 0x04], 'application/zip'],
  [[0x00, 0x61, 0x73, 0x6d], 'application/wasm'],
  [[0x21, 0x3c, 0x61, 0x72, 0x63, 0x68, 0x3e], 'application/x-archive']
]

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Guesses a type from the first bytes of a file (at most SNIFF_BYTES are looked at). */
export function sniff (head: Uint8Array): string {
  const bytes = head.subarray(0, SNIFF_BYTES)
  for (const [magic, type] of MAGIC) {
    if (bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b)) return type
  }
  if (bytes.includes(0)) return OCTET_STREAM
  let text: string
  try {
    // a multi-byte character cut at the end of the window is still text
    text = utf8.decode(trimPartialChar(bytes))
  } catch {
    return OCTET_STREAM
  }
  const start = text.trimStart().slice(0, 64).toLowerCase()
  if (start.startsWith('<!doctype html') || start.startsWith('<html')) return 'text/html; charset=utf-8'
  if (start.startsWith('<?xml')) return 'text/xml; charset=utf-8'
  if (start.startsWith('<svg')) return 'image/svg+xml'
  return 'text/plain; charset=utf-8'
}

/** Drops a UTF-8 sequence left unfinished at the end. */
function trimPartialChar (bytes: Uint8Array): Uint8Array {
  let i = bytes.length - 1
  // walk back over continuation bytes (10xxxxxx) to the lead byte
  while (i >= 0 && i > bytes.length - 4 && (bytes[i] & 0xc0) === 0x80) i--
  if (i < 0) return bytes
  const lead = bytes[i]
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1
  return bytes.length - i < need ? bytes.subarray(0, i) : bytes
}
