// Pinning a sharded add (DESIGN §5, IPFS Cluster's adder/sharding): the DAG just imported is cut into shards,
// each allocated on its own, and the shard, clusterdag and meta pins are written in one pinset change. This peer
// keeps only its own shards: once the others are pinned where they were allocated, their blocks are deleted here.
import { setTimeout as sleep } from 'node:timers/promises'
import { InvalidParameterError } from '../errors.js'
import { copiesCount } from '../allocator/index.js'
import { isAllocated } from '../cluster/views.js'
import { shardDag, type ShardedDag } from './sharding.js'
import type { AdderComponents } from './index.js'
import type { AbortOptions, AddParams, PinOptions } from '../components.js'
import type { Pin } from '../types/wire.js'
import type { Logger } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

/** How long this peer waits for other peers to pin the shards it holds for them before it keeps them for good. */
const DROP_FOREIGN_TIMEOUT_MS = 3_600_000

export interface ShardedContext {
  components: AdderComponents
  log: Logger
  /** Aborted at stop: dropping the shards held for others gives up. */
  signal: AbortSignal
}

/**
 * Shards the DAG just imported, allocates each shard on its own (free space taken by earlier shards counts),
 * writes shard pins, the clusterdag pin and the meta pin in one pinset change.
 */
export async function pinSharded (ctx: ShardedContext, root: CID, params: AddParams, options: AbortOptions): Promise<void> {
  const { components, log } = ctx
  const { importer, pins, pinset, monitor } = components
  const shardSize = params.shard_size ?? 0
  const existing = pinset.get(root.toString())
  if (existing != null && existing.type !== 'meta-pin') throw new InvalidParameterError(`${root} is already pinned as ${existing.type}; unpin it before adding it sharded`)
  const dag = await shardDag(importer.helia, root, shardSize, options)
  const name = params.name ?? ''
  const base: PinOptions = {
    name, replication_factor_min: params.replication_factor_min, replication_factor_max: params.replication_factor_max,
    user_allocations: params.user_allocations, expire_at: params.expire_at, metadata: params.metadata, shard_size: shardSize
  }
  const debit = new Map<string, number>()
  const out: Pin[] = []
  for (const [i, shard] of dag.shards.entries()) {
    // a peer whose free space (less what earlier shards took) cannot hold this shard is not a candidate
    const noRoom = new Set(monitor.latest('freespace')
      .filter(m => m.weight - (debit.get(m.peer) ?? 0) < shard.bytes).map(m => m.peer))
    const pin = await pins.build(shard.cid, { ...base, name: `${name}-shard-${i}` }, { type: 'shard-pin', exclude: noRoom, debit })
    for (const p of pin.allocations) debit.set(p, (debit.get(p) ?? 0) + shard.bytes)
    out.push({ ...pin, max_depth: 1, reference: root.toString() })
  }
  const clusterDag = await pins.build(dag.clusterDag, { ...base, name: `${name}-clusterDAG`, replication_factor_min: -1, replication_factor_max: -1 }, { type: 'clusterdag-pin' })
  out.push({ ...clusterDag, max_depth: 0, mode: 'direct', reference: root.toString() })
  const meta = await pins.build(root, base, { type: 'meta-pin' })
  out.push({ ...meta, allocations: [], reference: dag.clusterDag.toString() })
  await pinset.put(out, options)
  log('added %s sharded: %d shards of <= %d bytes', root, dag.shards.length, shardSize)
  void dropForeignShards(ctx, dag, out).catch(err => { log.error('dropping the shards of %s held for other peers failed: %e', root, err) })
}

/** After each shard not allocated here is pinned on its allocations, deletes its blocks here (unless pinned). */
async function dropForeignShards ({ components, log, signal }: ShardedContext, dag: ShardedDag, pins: Pin[], timeoutMs = DROP_FOREIGN_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs
  const foreign = dag.shards.filter((_, i) => !isAllocated(pins[i], components.self))
  while (foreign.length > 0 && Date.now() < deadline && !signal.aborted) {
    for (let i = foreign.length - 1; i >= 0 && !signal.aborted; i--) {
      const shard = foreign[i]
      const pin = components.pinset.get(shard.cid)
      if (pin == null) { foreign.splice(i, 1); continue } // unpinned meanwhile
      const status = await components.status.status(shard.cid, { signal: AbortSignal.any([signal, AbortSignal.timeout(30_000)]) }).catch(() => undefined)
      const pinned = pin.allocations.filter(p => copiesCount(components.trust, p) && status?.peer_map[p]?.status === 'pinned').length
      if (pinned < Math.max(1, pin.replication_factor_min)) continue
      const dropped = await components.importer.dropUnpinned([shard.cid, ...shard.blocks])
      log('shard %s is pinned on %d peers: dropped %d of its blocks here', shard.cid, pinned, dropped)
      foreign.splice(i, 1)
    }
    if (foreign.length > 0) await sleep(1000, undefined, { signal, ref: false }).catch(() => {})
  }
}
