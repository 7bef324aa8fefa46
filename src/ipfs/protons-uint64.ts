// protons-runtime (5.x to 8.0.1, the latest) writes a 64-bit varint in [2^31, 2^32) wrongly: LongBits keeps its
// low word signed (`lo | 0`) and writeVarint64 loops `while (lo > 127)`, so such a value goes out as its low 7
// bits padded with zero bytes. ipfs-unixfs writes a file node's `filesize` and `blocksizes` (and mtime seconds)
// that way: a file of 2-4 GiB (a DVD image in a Debian mirror) got a root node saying 0 bytes or a few, a CID
// Kubo does not give, and a gateway answer of the wrong length. Values below 2^32 are written here as the 32-bit
// varint they are (the same bytes a correct uint64 gives); larger and negative ones go the library's way, which
// is right for them. Applied once per process to the copy ipfs-unixfs loads (and the top-level one): the module
// is shared by every peer in the process, so the fix is too.
import { access } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

interface ProtonsWriter {
  uint32(value: number): ProtonsWriter
  uint64(value: bigint): ProtonsWriter
  int64(value: bigint): ProtonsWriter
}

const TWO_32 = 2n ** 32n
const FIXED = Symbol.for('cairn.protons-uint64-fixed')

/** Patches the writer class of one protons-runtime module (its `writer()` factory); idempotent. */
export function fixWriter (createWriter: () => unknown): void {
  const proto = Object.getPrototypeOf(createWriter()) as ProtonsWriter & { [FIXED]?: true }
  if (proto[FIXED] === true) return
  const { uint64, int64 } = proto
  proto.uint64 = function (this: ProtonsWriter, value: bigint) {
    return value >= 0n && value < TWO_32 ? this.uint32(Number(value)) : uint64.call(this, value)
  }
  proto.int64 = function (this: ProtonsWriter, value: bigint) {
    return value >= 0n && value < TWO_32 ? this.uint32(Number(value)) : int64.call(this, value)
  }
  proto[FIXED] = true
}

/** The entry file of the protons-runtime that a module at `from` (a file URL) imports, as Node resolves it. */
async function protonsFrom (from: string): Promise<string | undefined> {
  for (let dir = dirname(fileURLToPath(from)); ; dir = dirname(dir)) {
    const entry = join(dir, 'node_modules', 'protons-runtime', 'dist', 'src', 'index.js')
    if (await access(entry).then(() => true, () => false)) return entry
    if (dirname(dir) === dir) return undefined
  }
}

const copies = new Set<string>()
for (const from of [import.meta.resolve('ipfs-unixfs'), import.meta.url]) {
  const entry = await protonsFrom(from)
  if (entry != null) copies.add(entry)
}
for (const entry of copies) {
  const runtime = await import(pathToFileURL(entry).href) as { writer: () => unknown }
  fixWriter(runtime.writer)
}
