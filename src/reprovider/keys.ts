// DHT keyspace helpers: a CID's DHT key is sha256(multihash), a peer's is sha256(peer id multihash); closeness is
// XOR distance (libp2p kad-dht spec). Keys are compared as unsigned big-endian 256-bit numbers.
import { createHash } from 'node:crypto'

/** One record to announce: the multihash (the ADD_PROVIDER key) and its DHT key. */
export interface KeyEntry {
  mh: Uint8Array
  key: Uint8Array
}

export function dhtKey (bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest()
}

export function entryOf (mh: Uint8Array): KeyEntry {
  return { mh, key: dhtKey(mh) }
}

export function compareKeys (a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b)
}

/** Sorts by DHT key and drops duplicates (the same block reached from two pins). */
export function sortUnique (entries: KeyEntry[]): KeyEntry[] {
  entries.sort((a, b) => compareKeys(a.key, b.key))
  let out = 0
  for (let i = 0; i < entries.length; i++) {
    if (out === 0 || compareKeys(entries[out - 1].key, entries[i].key) !== 0) entries[out++] = entries[i]
  }
  entries.length = out
  return entries
}

/** The top `bits` bits of a key as a number (bits <= 32). */
export function prefixOf (key: Uint8Array, bits: number): number {
  if (bits === 0) return 0
  const top = ((key[0] << 24) | (key[1] << 16) | (key[2] << 8) | key[3]) >>> 0
  return Math.floor(top / 2 ** (32 - bits))
}

/** XOR distance on the first 64 bits, as a float: orders peers by closeness (ties beyond 2^-64 are negligible). */
export function distance64 (a: Uint8Array, b: Uint8Array): number {
  const hi = (((a[0] ^ b[0]) << 24) | ((a[1] ^ b[1]) << 16) | ((a[2] ^ b[2]) << 8) | (a[3] ^ b[3])) >>> 0
  const lo = (((a[4] ^ b[4]) << 24) | ((a[5] ^ b[5]) << 16) | ((a[6] ^ b[6]) << 8) | (a[7] ^ b[7])) >>> 0
  return hi * 4294967296 + lo
}

/**
 * Network size estimate from the peers closest to a key: the i-th closest of N uniform peers lies near
 * distance i/N of the keyspace. Median of i/d_i over the list.
 */
export function estimateNetworkSize (target: Uint8Array, peerKeys: Uint8Array[]): number {
  const fractions = peerKeys.map(k => distance64(target, k) / 2 ** 64).sort((a, b) => a - b)
  const estimates = fractions.map((f, i) => (i + 1) / Math.max(f, 2 ** -64)).sort((a, b) => a - b)
  return estimates.length === 0 ? 0 : estimates[Math.floor(estimates.length / 2)]
}

/** Prefix length of the keyspace regions: each region holds about `k` DHT servers. */
export function regionBits (networkSize: number, k: number, max = 24): number {
  if (!(networkSize > k)) return 0
  return Math.max(0, Math.min(max, Math.floor(Math.log2(networkSize / k))))
}

export function toHex (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

export function fromHex (hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'))
}
