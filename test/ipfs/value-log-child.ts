// A child process for the kill -9 test: writes fresh blocks to a value-log blockstore in a loop, 16 puts in
// flight, and prints each block's CID once its put resolved, until killed.
import { randomBytes } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { ValueLogBlockstore } from '../../src/ipfs/value-log/index.js'

const log = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false }) as never
const store = new ValueLogBlockstore({ path: process.argv[2], log, segmentBytes: 2 * 1024 * 1024 })
await store.open()
process.stdout.write('open\n')
await Promise.all(Array.from({ length: 16 }, async () => {
  for (;;) {
    const bytes = randomBytes(1 + Math.floor(Math.random() * 40_000))
    const cid = CID.createV1(raw.code, await sha256.digest(bytes))
    await store.put(cid, bytes)
    process.stdout.write(cid.toString() + '\n')
  }
}))
