// Reads of a stopped peer's IPFS datastore, for the CLI (the running peer holds level's lock, so these are only
// for a peer that is not running).
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import { parseCid } from '../utils/cid.js'
import { pinRecordKey } from './helia-internals.js'

/**
 * Which of `cids` have a pin record in the datastore under `dataDir` (level, opened briefly and closed). A peer
 * records a pin only once every block of it is held. An empty set when there is no datastore yet.
 */
export async function pinnedOffline (dataDir: string, cids: string[]): Promise<Set<string>> {
  const path = join(dataDir, 'datastore')
  const found = new Set<string>()
  if (!(await stat(path).then(st => st.isDirectory(), () => false))) return found
  const db = new Level<string, Uint8Array>(path, { keyEncoding: 'utf8', valueEncoding: 'view', createIfMissing: false })
  await db.open()
  try {
    const has = await db.hasMany(cids.map(cid => pinRecordKey(parseCid(cid)).toString()))
    cids.forEach((cid, i) => { if (has[i]) found.add(cid) })
  } finally {
    await db.close()
  }
  return found
}
