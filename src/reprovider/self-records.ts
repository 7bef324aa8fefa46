// This peer's own provider records, in @libp2p/kad-dht's provider store: a GET_PROVIDERS that reaches this peer
// answers with this peer (and its current addresses, which kad-dht reads from the peer store) for every CID the
// reprovider announces, as kad-dht's own provide() and Kubo record themselves before announcing.
//
// Written against @libp2p/kad-dht 16.4.5. Its public API reaches the store only through provide(), which also
// looks up and writes to the k closest DHT peers of each CID (the per-CID work the sweep exists to avoid), and
// cancelReprovide() (one delete). So records are written the way kad-dht's Providers class (src/providers.ts, the
// `providers` field of its KadDHT class, private to the package) writes them: the key
// `<datastorePrefix>/provider/<multihash, base32>/<peer id>` holding the time as a varint, in kad-dht's own
// datastore (libp2p's) and under its own prefix (both read from that object) - but in one datastore batch per
// sweep batch instead of one put per CID. When that object is not where this version keeps it, nothing is
// written and one error is logged (an upgrade is checked here and in test/reprovider/self-records.test.ts).
import { Key } from 'interface-datastore'
import { base32 } from 'multiformats/bases/base32'
import * as varint from 'uint8-varint'
import type { KeyEntry } from './keys.js'
import type { AbortOptions } from '../components.js'
import type { Libp2p, Logger } from '@libp2p/interface'
import type { Datastore } from 'interface-datastore'

/** The parts of kad-dht's Providers object used here. */
interface KadProviders {
  datastore: Datastore
  /** e.g. '/dht/provider' */
  datastorePrefix: string
}

export interface SelfRecords {
  /** Records this peer as provider of every entry, as of now (one datastore batch). */
  add(entries: readonly KeyEntry[], options?: AbortOptions): Promise<void>
  /**
   * Drops this peer's records last written before `before` (epoch ms): CIDs no longer announced (unpinned, or
   * outside the strategy). Resolves with how many were dropped.
   */
  prune(before: number, options?: AbortOptions): Promise<number>
}

/** Writes per datastore batch when pruning (adds go in the caller's batches). */
const PRUNE_BATCH = 4096

export function createSelfRecords (components: { libp2p: Libp2p, log: Logger }): SelfRecords {
  const { libp2p, log } = components
  const self = libp2p.peerId.toString()
  let store: KadProviders | undefined | null
  const providers = (): KadProviders | undefined => {
    if (store !== undefined) return store ?? undefined
    const found = (libp2p.services as { dht?: { providers?: Partial<KadProviders> } }).dht?.providers
    if (found?.datastore == null || typeof found.datastore.batch !== 'function' || typeof found.datastorePrefix !== 'string') {
      log.error('self provider records are off: @libp2p/kad-dht\'s provider store is not where this version of cairn expects it (src/reprovider/self-records.ts)')
      store = null
      return undefined
    }
    store = found as KadProviders
    return store
  }
  return {
    async add (entries, options = {}) {
      const p = providers()
      if (p == null || entries.length === 0) return
      options.signal?.throwIfAborted()
      const time = varint.encode(Date.now())
      const batch = p.datastore.batch()
      // base32 without its multibase prefix, as kad-dht's toProviderKey (uint8arrays' 'base32')
      for (const e of entries) batch.put(new Key(`${p.datastorePrefix}/${base32.baseEncode(e.mh)}/${self}`), time)
      await batch.commit(options)
    },
    async prune (before, options = {}) {
      const p = providers()
      if (p == null) return 0
      const suffix = `/${self}`
      let batch = p.datastore.batch()
      let queued = 0
      let dropped = 0
      for await (const { key, value } of p.datastore.query({ prefix: `${p.datastorePrefix}/` }, options)) {
        if (!key.toString().endsWith(suffix)) continue
        let time: number
        try {
          time = varint.decode(value)
        } catch {
          time = 0
        }
        if (time >= before) continue
        batch.delete(key)
        dropped++
        if (++queued >= PRUNE_BATCH) {
          await batch.commit(options)
          batch = p.datastore.batch()
          queued = 0
        }
      }
      if (queued > 0) await batch.commit(options)
      return dropped
    }
  }
}
