// Fresh raw blocks for blockstore tests, a temp folder with a datastore for a store to live in, and a logger that
// says nothing.
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { LevelDatastore } from 'datastore-level'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { tempDir } from '../util.js'

export const silentLog = Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false }) as never

/** n blocks of pseudo-random bytes, block i of size(i) bytes, with their raw CIDs. */
export async function makeBlocks (n: number, size: (i: number) => number): Promise<Array<{ cid: CID, bytes: Uint8Array }>> {
  return await Promise.all(Array.from({ length: n }, async (_, i) => {
    const bytes = randomBytes(size(i))
    return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
  }))
}

/** Runs fn with a temp folder and a level datastore open at `<folder>/datastore`; both are gone afterwards. */
export async function withDatastoreDir (prefix: string, fn: (dir: string, datastore: LevelDatastore) => Promise<void>): Promise<void> {
  const tmp = await tempDir(prefix)
  const datastore = new LevelDatastore(join(tmp.path, 'datastore'))
  await datastore.open()
  try {
    await fn(tmp.path, datastore)
  } finally {
    await datastore.close()
    await tmp.cleanup()
  }
}
