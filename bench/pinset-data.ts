// Pins for pinset-level benchmarks (no content behind them) and a digest to compare two peers' pinsets with,
// computed in each peer's own process so that no pin list crosses a process boundary.
import { hash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { ZERO_TIME, type Pin } from '../src/components.js'

/**
 * Pins start..start+count-1: distinct CIDv1 raw CIDs, package-like names, replication 1/1 allocated to
 * `allocation` (a peer outside the cluster, so that no tracker fetches anything: every peer sees them `remote`).
 */
export async function benchPins (start: number, count: number, allocation: string): Promise<Pin[]> {
  const timestamp = new Date().toISOString()
  return await Promise.all(Array.from({ length: count }, async (_, k) => {
    const i = start + k
    const digest = await sha256.digest(new TextEncoder().encode(`cairn bench pin ${i}`))
    return {
      cid: CID.createV1(raw.code, digest).toString(),
      type: 'pin' as const,
      name: `mirror/pkg-${i}/pkg-${i}-1.0.${i % 97}.tgz`,
      mode: 'recursive' as const,
      replication_factor_min: 1,
      replication_factor_max: 1,
      allocations: [allocation],
      shard_size: 0,
      max_depth: -1,
      reference: null,
      expire_at: ZERO_TIME,
      metadata: {},
      origins: [],
      pin_update: null,
      user_allocations: null,
      timestamp
    }
  }))
}

export interface PinsetDigest {
  size: number
  /** Hex; equal digests mean equal pinsets (see pinsetDigest). */
  digest: string
  /** Time taken to compute it, ms. */
  ms: number
}

/**
 * An order-independent digest of a pinset: the sum, lane by lane (4 x 32 bits), of SHA-1 over each pin's cid,
 * name, allocations, replication factors and timestamp. It streams over `list()` without sorting or holding
 * the pins, so that it adds little to the RSS being measured; a sum of 128-bit hashes detects any missing,
 * extra or different pin short of a deliberate collision.
 */
export function pinsetDigest (pins: Iterable<Pin>): PinsetDigest {
  const start = performance.now()
  const lanes = new Uint32Array(4)
  let size = 0
  for (const p of pins) {
    // one-shot: a Hash object per pin (1M of them) left the peer's RSS ~170 MiB higher for the joins that follow
    const h = hash('sha1', `${p.cid}\n${p.name}\n${p.allocations.join(',')}\n${p.replication_factor_min}/${p.replication_factor_max}\n${p.timestamp}`, 'buffer')
    for (let i = 0; i < 4; i++) lanes[i] = (lanes[i] + h.readUInt32BE(i * 4)) >>> 0
    size++
  }
  const digest = [...lanes].map(n => n.toString(16).padStart(8, '0')).join('')
  return { size, digest, ms: performance.now() - start }
}
