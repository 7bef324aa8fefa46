// Adding content through the cluster (POST /add): import into the local node, then pin the root, plain or
// sharded. The DAG sharding itself is ./sharding.ts; pinning the shards is ./sharded.ts.
import { ClusterAdder } from './adder.js'
import type { Pins } from '../cluster/pins.js'
import type { ClusterStatus } from '../cluster/status.js'
import type { AbortOptions, AddEntry, AddParams, Importer, Monitor, Pinset, Startable, TrustView } from '../components.js'
import type { AddedOutput } from '../types/wire.js'
import type { ComponentLogger } from '@libp2p/interface'

export { checkShardSize } from './sharding.js'

export interface AdderInit {
  /** false on followers: the API refuses writes. */
  isWriter: () => boolean
  /** How long an add without a pin keeps repo GC off after it ends (default 30 s; its pin comes next). */
  noPinHoldMs?: number
}

export interface AdderComponents {
  /** This peer's id. */
  self: string
  importer: Importer
  pins: Pick<Pins, 'build' | 'pin'>
  pinset: Pick<Pinset, 'get' | 'put'>
  /** Free space per peer, for sharded adds. */
  monitor: Pick<Monitor, 'latest'>
  /** Whether shards held here for others are pinned where they were allocated. */
  status: Pick<ClusterStatus, 'status'>
  trust?: Pick<TrustView, 'trustOf'>
  logger: ComponentLogger
}

export interface Adder extends Startable {
  /** Imports entries (or one CAR), pins the root unless no_pin; yields AddedOutput lines. */
  add(entries: AsyncIterable<AddEntry>, params: AddParams, options?: AbortOptions): AsyncIterable<AddedOutput>
}

export function createAdder (init: AdderInit, components: AdderComponents): Adder {
  return new ClusterAdder(init, components)
}
