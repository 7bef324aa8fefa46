// The DHT reprovider (DESIGN §6): keeps every held CID findable in the DHT. Scheduled sweep cycles (records
// sorted by DHT key, one lookup per keyspace region, records sent in batches over reused streams), fast provide
// of pin roots, schedule and cycle position persisted for restarts.
import { ReproviderImpl } from './reprovider.js'
export { bootstrapNotice, type BootstrapNoticeInit } from './bootstrap.js'
import type { SourceComponents } from './source.js'
import type { ReprovideAPI, ReprovideStatus, Startable } from '../components.js'
import type { ComponentLogger, Libp2p } from '@libp2p/interface'
import type { KadDHT } from '@libp2p/kad-dht'
import type { Datastore } from 'interface-datastore'
import type { CID } from 'multiformats/cid'

export type ReprovideStrategy = ReprovideStatus['strategy']

/** The reprovider's options (the cluster config's `reprovide` section, mapped by peer.ts); defaults as that section's. */
export interface ReprovideInit {
  strategy?: ReprovideStrategy
  /** How often every held CID is announced again (reprovide.interval_ms). */
  intervalMs?: number
  /** How long a provider record stays valid on the DHT nodes (reprovide.validity_ms). */
  validityMs?: number
  /** Announce a pin's root as soon as it is pinned locally (reprovide.fast_provide). */
  fastProvide?: boolean
  /** DHT peers written to at once during a sweep. */
  concurrency?: number
  /** Records per batch: the unit of progress saved for a restart. */
  batchSize?: number
  sendTimeoutMs?: number
  lookupTimeoutMs?: number
  retries?: number
  retryBackoffMs?: number
  retryIntervalMs?: number
  /** The DHT's protocol (cluster config dht.protocol). */
  protocol: string
  /** DHT bootstrap multiaddrs with /p2p/<id> (cluster config dht.bootstrap): dialled at start and when the routing table is empty. */
  bootstrap?: string[]
  /** Delay of the very first cycle of a peer (no schedule saved yet). Default min(interval_ms, 60 s). */
  firstCycleDelayMs?: number
  /** How long a region lookup is reused (by fast provides and the next sweep). Default 10 min. */
  regionCacheMs?: number
}

export interface ReprovideComponents extends SourceComponents {
  /** Where the schedule and the running cycle's position are kept (state.ts). */
  datastore: Datastore
  libp2p: Libp2p<{ dht: KadDHT }>
  logger: ComponentLogger
  /** Subscribes to local pin changes (fast provide, and dropping roots unpinned before their turn). */
  onPinChange?: (listener: (cid: CID, pinned: boolean) => void) => () => void
  /** Lines worth an operator's attention (a cycle overran its interval). Default: the debug log. */
  warn?: (line: string) => void
}

/** ReprovideStatus plus the sweep's own counters (also in GET /reprovide/status). */
export interface ReprovideStatusDetail extends ReprovideStatus {
  /** Failed attempts that were tried again. */
  retries_total: number
  /** Region lookups made (one per keyspace region per cycle, plus fast provides without a cached region). */
  lookups_total: number
  /** ADD_PROVIDER records acknowledged by DHT peers (about k per CID). */
  records_sent_total: number
  /** Keyspace region prefix length in use (0: one region); -1 before the first lookup. */
  region_prefix_bits: number
  /** CIDs the running (or last) cycle skipped because a previous run of it had done them before a restart. */
  cycle_resumed_from: number
  /** CIDs no DHT peer took, waiting for their retry. */
  retry_pending: number
}

export interface Reprovider extends ReprovideAPI, Startable {
  status(): ReprovideStatusDetail
  /** Announces a pin root now (fast provide); resolves with whether a DHT peer took the record. */
  provide(cid: CID, options?: { signal?: AbortSignal }): Promise<boolean>
}

export function createReprovider (init: ReprovideInit, components: ReprovideComponents): Reprovider {
  return new ReproviderImpl(init, components)
}
