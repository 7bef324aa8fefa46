// Pins and CIDs for pinset tests (no content behind them: the pinset does not fetch).
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { ZERO_TIME, type Pin } from '../../src/components.js'

export async function fakeCid (n: number | string): Promise<string> {
  const digest = await sha256.digest(new TextEncoder().encode(`content-${n}`))
  return CID.createV1(raw.code, digest).toString()
}

export function pinOf (cid: string, name = ''): Pin {
  return {
    cid, type: 'pin', name, mode: 'recursive', replication_factor_min: -1, replication_factor_max: -1, allocations: [],
    shard_size: 0, max_depth: -1, reference: null, expire_at: ZERO_TIME, metadata: {}, origins: [], pin_update: null,
    user_allocations: null, timestamp: new Date().toISOString()
  }
}
