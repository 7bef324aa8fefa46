// At open: the records written after the index's checkpoint (their entries were lost with LevelDB's unsynced log
// in a crash, or the index is new) are indexed again, and a torn record at a segment's end is cut off.
import { nameOf, type IndexDb, type IndexOp } from './index-db.js'
import { CRC_BYTES } from './record.js'
import { scanSegment } from './scan.js'
import type { Segments } from './segments.js'
import type { Logger } from '@libp2p/interface'

const BATCH = 1024

export async function recoverSegments (segments: Segments, index: IndexDb, log: Logger): Promise<{ indexed: number, cut: number }> {
  const checkpoint = await index.checkpoint()
  const sizes = segments.sizes()
  let indexed = 0
  let cut = 0
  for (const id of [...sizes.keys()].sort((a, b) => a - b)) {
    if (checkpoint != null && id < checkpoint.segment) continue
    const size = sizes.get(id) ?? 0
    const from = checkpoint != null && id === checkpoint.segment ? Math.min(checkpoint.end, size) : 0
    let ops: IndexOp[] = []
    const records = scanSegment(segments, id, from, size)
    let next = await records.next()
    let end = from
    while (next.done !== true) {
      const r = next.value
      ops.push({ type: 'put', name: nameOf(r.multihash), ref: { segment: id, offset: r.offset, length: r.payload.byteLength } })
      end = r.offset + r.payload.byteLength + CRC_BYTES
      if (ops.length >= BATCH) {
        await index.write(ops, { segment: id, end })
        indexed += ops.length
        ops = []
      }
      next = await records.next()
    }
    end = next.value
    await index.write(ops, { segment: id, end })
    indexed += ops.length
    if (end < size) {
      // a record torn by a crash: nothing was acknowledged from it on (an append resolves after its sync)
      log.error('segment %d: %d bytes past offset %d are not whole records (a write torn by a crash): cut', id, size - end, end)
      await segments.truncate(id, end)
      cut += size - end
    }
  }
  if (indexed > 0) log('indexed %d records written after the last checkpoint', indexed)
  return { indexed, cut }
}
