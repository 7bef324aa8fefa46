// Pinset writes: a pin is built from its options (replication resolved from the cluster's defaults,
// allocations chosen by the allocator) and written to the pinset; an unpin of a sharded root takes its shards.
import { CID } from 'multiformats/cid'
import { FollowerModeError, InvalidParameterError, NotInPinsetError, UnknownPeerError } from '../errors.js'
import { readClusterDag } from '../adder/sharding.js'
import { checkReadable, parseCid } from '../utils/cid.js'
import { pinKey } from '../utils/keys.js'
import { concatChunks } from '../utils/bytes.js'
import { DEFAULT_PARTITIONS, layoutKey, partitionOf, readLayout } from '../spread/layout.js'
import { readLayoutIndex, writeLayoutIndex } from '../spread/index-block.js'
import type { BlockReader, Layout } from '../spread/layout.js'
import { ZERO_TIME } from '../types/wire.js'
import type { Peerset } from './peerset.js'
import type { AbortOptions, Allocator, Importer, Pinset, PinOptions } from '../components.js'
import type { Pin, PinType } from '../types/wire.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export interface PinsInit {
  /** The cluster's defaults, for a pin that sets 0 (or nothing). */
  replicationFactorMin: number
  replicationFactorMax: number
  /** false on followers: the API refuses writes. Asked on every write, so trust changes apply at once. */
  isWriter: () => boolean
}

export interface PinsComponents {
  peerset: Pick<Peerset, 'peers'>
  pinset: Pick<Pinset, 'get' | 'has' | 'list' | 'put' | 'remove'>
  allocator: Allocator
  importer: Pick<Importer, 'helia' | 'hasBlock'>
  /**
   * How much room this peer has beyond what its freespace metric says, if it held `uploadBytes` less: a version
   * uploaded to it, of which it keeps only its share (its metric counts the upload as used, and stops at 0).
   */
  uploadRoom?: (uploadBytes: number) => Promise<number>
  /** This peer's id. */
  self?: string
  logger: ComponentLogger
}

export interface BuildOptions {
  type?: PinType
  /** The pin now in the pinset under this CID: its allocations are kept first while the replication stays the same. */
  existing?: Pin
  /** Peers left out of the allocation (one being vacated). */
  exclude?: ReadonlySet<string>
  /** Bytes promised to earlier shards of the same add, by peer. */
  debit?: ReadonlyMap<string, number>
}

export interface Pins {
  /**
   * Resolves the replication factors from the cluster's defaults (InvalidParameterError when the pair does not
   * fit), checks the user allocations are peers, and allocates; writes nothing. The options themselves were
   * validated at the edge (src/api/pin-options.ts).
   */
  build(cid: CID, options: PinOptions, build?: BuildOptions): Promise<Pin>
  /** Options validated at the edge (src/api/pin-options.ts). */
  pin(cid: CID, options: PinOptions, opts?: AbortOptions): Promise<Pin>
  unpin(cid: CID, opts?: AbortOptions): Promise<Pin>
  allocations(types?: Set<PinType>): Iterable<Pin>
  allocation(cid: CID): Pin
}

/** FollowerModeError unless this peer may write the pinset. */
export function requireWriter (isWriter: () => boolean): void {
  if (!isWriter()) throw new FollowerModeError()
}

export function createPins (init: PinsInit, components: PinsComponents): Pins {
  const { pinset, allocator } = components
  const log: Logger = components.logger.forComponent('cairn:cluster:pins')

  async function build (cid: CID, options: PinOptions, { type = 'pin', existing, exclude, debit }: BuildOptions = {}): Promise<Pin> {
    const cidString = cid.toString()
    let min = options.replication_factor_min ?? 0
    let max = options.replication_factor_max ?? 0
    if (min === 0) min = init.replicationFactorMin
    if (max === 0) max = init.replicationFactorMax
    if (min < -1 || max < -1) throw new InvalidParameterError(`replication factors must be >= -1 (got min ${min}, max ${max})`)
    if ((min === -1) !== (max === -1)) throw new InvalidParameterError(`replication-min and replication-max must both be -1 (everywhere) or both positive (got ${min} and ${max})`)
    if (max !== -1 && min > max) throw new InvalidParameterError(`replication-min ${min} is greater than replication-max ${max}`)
    const priority = options.user_allocations ?? []
    // replication -1 allocates to every peer: the peerset only serves to check user allocations
    const peers = max === -1 && priority.length === 0 ? [] : (await components.peerset.peers()).filter(p => exclude?.has(p) !== true)
    for (const p of priority) {
      if (!peers.includes(p)) throw new UnknownPeerError(`unknown peer in user-allocations: ${p} is not a cluster peer`)
    }
    const mode = options.mode ?? 'recursive'
    if (options.spread === true) return await buildSpread(cid, options, { min, max, mode, existing, exclude })
    const current = existing != null && existing.replication_factor_max === max ? existing.allocations : []
    const allocations = allocator.allocate({ cid: cidString, min, max, current, priority, candidates: peers, debit })
    return {
      cid: cidString,
      type,
      name: options.name ?? '',
      mode,
      replication_factor_min: min,
      replication_factor_max: max,
      allocations,
      shard_size: options.shard_size ?? 0,
      max_depth: mode === 'direct' ? 0 : -1,
      reference: null,
      expire_at: options.expire_at ?? ZERO_TIME,
      metadata: options.metadata ?? {},
      origins: options.origins ?? [],
      pin_update: options.pin_update ?? null,
      user_allocations: options.user_allocations ?? null,
      timestamp: new Date().toISOString()
    }
  }

  /**
   * A spread pin: its layout read (the skeleton fetched when not held here), its partitions allocated by the
   * room peers offer, the current map kept where it fits (a re-pin, a pin-update from the previous version).
   */
  async function buildSpread (cid: CID, options: PinOptions, s: { min: number, max: number, mode: string, existing?: Pin, exclude?: ReadonlySet<string> }): Promise<Pin> {
    if (s.mode === 'direct') throw new InvalidParameterError('a spread pin is recursive: --spread cannot be used with mode direct')
    if (s.max === -1) throw new InvalidParameterError('a spread pin needs a replication factor (for example replication-min=2&replication-max=2): with -1 every peer would hold everything')
    if ((options.user_allocations ?? []).length > 0) throw new InvalidParameterError('a spread pin is allocated by partition: user-allocations cannot be given')
    const previous = s.existing?.spread_map
    const partitions = previous?.partition_bytes.length ?? DEFAULT_PARTITIONS
    const helia = components.importer.helia
    const read: BlockReader = async (c, o) => await concatChunks(helia.blockstore.get(c, { signal: o?.signal ?? AbortSignal.timeout(60_000) }))
    // a re-pin of the same CID reads the skeleton from its index; a new one reads every dag-pb node once
    const sameCid = s.existing != null && pinKey(s.existing.cid) === pinKey(cid)
    const known = sameCid && previous?.layout != null ? (await readLayoutIndex(parseCid(previous.layout), read)).skeleton : undefined
    // a new version (pin-update from a spread pin) reads only the nodes its previous version did not have as files
    let hints: { units: Set<string> } | undefined
    if (!sameCid && s.existing != null && previous?.layout != null) {
      try {
        const before = await readLayout(parseCid(s.existing.cid), partitions, read, { skeleton: (await readLayoutIndex(parseCid(previous.layout), read)).skeleton })
        // one-block files only: a bigger file's root stays skeleton, as when read
        const roots = new Set(before.skeleton.map(b => layoutKey(b.cid)))
        hints = { units: new Set(before.units.map(u => layoutKey(u.cid)).filter(k => !roots.has(k))) }
      } catch (err) {
        log('reading the layout of %s, the previous version of %s, failed: every node of the new one is read - %e', s.existing.cid, cid, err)
      }
    }
    const layout = await readLayout(cid, partitions, read, { skeleton: known, hints })
    // the layout index, for the peers to read the skeleton alone (kept from the previous pin of this CID)
    let layoutCid = sameCid ? previous?.layout : undefined
    if (layoutCid == null) {
      const index = await writeLayoutIndex(layout.skeleton.map(b => b.cid))
      for (const b of index) await helia.blockstore.put(b.cid, b.bytes)
      layoutCid = index[index.length - 1].cid.toString()
    }
    const candidates = (await components.peerset.peers()).filter(p => s.exclude?.has(p) !== true)
    // the current holders that remain allocated keep their partitions first
    const kept = s.existing?.allocations
    const current = previous == null ? undefined : Object.fromEntries(Object.entries(previous.shares).filter(([peer]) => kept == null || kept.includes(peer)))
    const credit = await uploadCredit(layout, current, s.exclude)
    const shares = allocator.allocateSpread({
      cid: cid.toString(), min: s.min, max: s.max, partitionBytes: layout.partitionBytes, skeletonBytes: layout.skeletonBytes, candidates, current, credit
    })
    return {
      cid: cid.toString(),
      type: 'pin',
      name: options.name ?? '',
      mode: 'recursive',
      replication_factor_min: s.min,
      replication_factor_max: s.max,
      allocations: Object.keys(shares).sort(),
      shard_size: 0,
      max_depth: -1,
      reference: null,
      expire_at: options.expire_at ?? ZERO_TIME,
      metadata: options.metadata ?? {},
      origins: options.origins ?? [],
      pin_update: options.pin_update ?? null,
      user_allocations: null,
      timestamp: new Date().toISOString(),
      spread: true,
      spread_map: { partition_bytes: layout.partitionBytes, skeleton_bytes: layout.skeletonBytes, shares, layout: layoutCid }
    }
  }

  /**
   * The files of a new version this peer holds already, outside its current share (the version was uploaded to
   * it): room for its own share, as it keeps only that and its repo GC frees the rest once the other peers hold
   * theirs.
   */
  async function uploadCredit (layout: Layout, current: Readonly<Record<string, number[]>> | undefined, exclude?: ReadonlySet<string>): Promise<Map<string, number> | undefined> {
    const self = components.self
    if (self == null || exclude?.has(self) === true) return undefined
    const mine = new Set(current?.[self] ?? [])
    const units = layout.units.filter(u => !mine.has(partitionOf(u.cid, layout.partitionBytes.length)))
    if (units.length === 0) return undefined
    let bytes = 0
    for (const u of units) if (await components.importer.hasBlock(u.cid)) bytes += u.bytes
    if (bytes === 0 || components.uploadRoom == null) return undefined
    const room = await components.uploadRoom(bytes).catch(err => { log('the room an upload leaves here is not known: %e', err); return 0 })
    return room > 0 ? new Map([[self, room]]) : undefined
  }

  async function pin (parsed: CID, options: PinOptions, opts?: AbortOptions): Promise<Pin> {
    requireWriter(init.isWriter)
    const cid = parsed.toString()
    // every peer runs the same codecs: a CID this one cannot read would only be a pin_error everywhere (a direct
    // pin too: the walker decodes every block it fetches, as Kubo's pin add does)
    await checkReadable(parsed, components.importer.helia)
    let existing = pinset.get(parsed)
    const updateFrom = options.pin_update != null ? parseCid(options.pin_update) : undefined
    if (updateFrom != null && pinKey(updateFrom) !== pinKey(parsed)) {
      // As IPFS Cluster's PinUpdate, whether or not the new CID is pinned already: the new pin takes the old one's
      // replication and allocations (so the same peers pin it and fetch only the blocks that differ), and its
      // other options unless given
      const from = pinset.get(updateFrom)
      if (from == null) throw new InvalidParameterError(`pin-update: ${options.pin_update} is not in the pinset`)
      if (from.type !== 'pin') throw new InvalidParameterError(`pin-update: ${options.pin_update} is a ${from.type}, which cannot be updated`)
      if (existing != null && existing.type !== 'pin') throw new InvalidParameterError(`${cid} is already pinned as ${existing.type}; its type cannot change`)
      options = {
        ...options,
        replication_factor_min: options.replication_factor_min ?? from.replication_factor_min,
        replication_factor_max: options.replication_factor_max ?? from.replication_factor_max,
        mode: options.mode ?? from.mode,
        origins: options.origins ?? from.origins,
        metadata: options.metadata ?? from.metadata ?? undefined,
        expire_at: options.expire_at ?? (from.expire_at !== ZERO_TIME && Date.parse(from.expire_at) > Date.now() ? from.expire_at : undefined),
        user_allocations: options.user_allocations ?? from.user_allocations ?? undefined,
        spread: options.spread ?? from.spread,
        pin_update: updateFrom.toString()
      }
      existing = { ...from, replication_factor_max: options.replication_factor_max ?? from.replication_factor_max }
      const updated = await build(parsed, options, { existing })
      await pinset.put([updated], opts)
      return updated
    }
    const built = await build(parsed, options, { existing })
    if (existing != null && existing.type !== built.type) throw new InvalidParameterError(`${cid} is already pinned as ${existing.type}; its type cannot change`)
    await pinset.put([built], opts)
    return built
  }

  /** The clusterdag and shard pins of a sharded root (from its clusterdag node, else by scanning the pinset). */
  async function shardPinsOf (meta: Pin, options: AbortOptions = {}): Promise<string[]> {
    const out = new Set<string>()
    if (meta.reference != null) {
      out.add(meta.reference)
      try {
        const signal = AbortSignal.any([AbortSignal.timeout(10_000), ...(options.signal != null ? [options.signal] : [])])
        for (const shard of await readClusterDag(components.importer.helia, parseCid(meta.reference), { signal })) out.add(shard.toString())
      } catch (err) {
        log('reading clusterdag %s failed, scanning the pinset instead: %e', meta.reference, err)
      }
    }
    for (const p of pinset.list()) {
      if ((p.type === 'shard-pin' || p.type === 'clusterdag-pin') && p.reference === meta.cid) out.add(p.cid)
    }
    return [...out].filter(c => pinset.has(c))
  }

  async function unpin (cid: CID, opts?: AbortOptions): Promise<Pin> {
    requireWriter(init.isWriter)
    const pin = pinset.get(cid)
    if (pin == null) throw new NotInPinsetError()
    if (pin.type === 'shard-pin' || pin.type === 'clusterdag-pin') {
      throw new InvalidParameterError(`${pin.cid} is a ${pin.type} of the sharded content ${pin.reference ?? '(unknown root)'}: unpin the root ${pin.reference ?? ''} instead`.trimEnd())
    }
    const removed = [pin.cid]
    if (pin.type === 'meta-pin') removed.push(...await shardPinsOf(pin, opts))
    await pinset.remove(removed, opts)
    return pin
  }

  function allocations (types?: Set<PinType>): Iterable<Pin> {
    const pins = pinset.list()
    if (types == null || types.size === 0) return pins
    return (function * () { for (const p of pins) if (types.has(p.type)) yield p })()
  }

  function allocation (cid: CID): Pin {
    const pin = pinset.get(cid)
    if (pin == null) throw new NotInPinsetError()
    return pin
  }

  return { build, pin, unpin, allocations, allocation }
}
