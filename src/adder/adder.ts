// An add: entries (or one CAR) are imported into the local node while repo GC is held off, then the root is
// pinned like any pin, or sharded (./sharded.ts). An add without a pin keeps the hold a little longer.
import { CID } from 'multiformats/cid'
import { InvalidParameterError, ShuttingDownError } from '../errors.js'
import { requireWriter } from '../cluster/pins.js'
import { parseCid } from '../utils/cid.js'
import { checkShardSize } from './sharding.js'
import { pinSharded, type ShardedContext } from './sharded.js'
import type { Adder, AdderComponents, AdderInit } from './index.js'
import type { AbortOptions, AddEntry, AddParams } from '../components.js'
import type { AddedOutput } from '../types/wire.js'
import type { Logger } from '@libp2p/interface'

/** The empty identity CID: what the pin options of an add are validated with before its root is known. */
const EMPTY = CID.parse('bafkqaaa')

/** How long an add without a pin keeps repo GC off after it ends (its pin comes in the next request). */
const NO_PIN_HOLD_MS = 30_000

export class ClusterAdder implements Adder {
  private readonly log: Logger
  private shutdown = new AbortController()

  constructor (private readonly init: AdderInit, private readonly components: AdderComponents) {
    this.log = components.logger.forComponent('cairn:adder')
  }

  async start (): Promise<void> {
    this.shutdown = new AbortController()
  }

  async stop (): Promise<void> {
    this.shutdown.abort(new ShuttingDownError())
  }

  async * add (entries: AsyncIterable<AddEntry>, params: AddParams, options: AbortOptions = {}): AsyncIterable<AddedOutput> {
    requireWriter(this.init.isWriter)
    // Validate the pin options before reading the body, so a bad request fails before any import work.
    if (params.no_pin !== true) await this.components.pins.build(EMPTY, { ...params, name: params.name ?? '' })
    if ((params.shard_size ?? 0) > 0) {
      checkShardSize(params.shard_size ?? 0)
      if (params.format === 'car') throw new InvalidParameterError('shard: a CAR cannot be added sharded; add the files instead')
    }
    const { importer } = this.components
    // no repo GC until the pin is in the pinset: the blocks imported belong to no pin before
    const release = await importer.holdBlocks(options.signal)
    let lingering = false
    try {
      yield * this.addHeld(entries, params, options)
      // An add without a pin is how `cairn add` and `mirror sync` upload blocks, then pin the root by CID in a
      // second request: the hold lasts a little longer, so that no GC comes in between
      if (params.no_pin === true) {
        lingering = true
        setTimeout(release, this.init.noPinHoldMs ?? NO_PIN_HOLD_MS).unref()
      }
    } finally {
      if (!lingering) release()
    }
  }

  private async * addHeld (entries: AsyncIterable<AddEntry>, params: AddParams, options: AbortOptions): AsyncIterable<AddedOutput> {
    const { importer } = this.components
    let root: AddedOutput | undefined
    let source: AsyncIterable<AddedOutput>
    if (params.format === 'car') {
      source = (async function * () {
        for await (const entry of entries) {
          if (entry.content == null) continue
          yield * importer.addCar(entry.content, options)
          return
        }
        throw new InvalidParameterError('no CAR file in the request')
      })()
    } else {
      source = importer.addEntries(entries, params, options)
    }
    for await (const out of source) {
      if (out.cid !== '') root = out
      yield out
    }
    if (root == null) throw new InvalidParameterError('no files in the request')
    if (params.no_pin === true) return
    if ((params.shard_size ?? 0) > 0) {
      const ctx: ShardedContext = { components: this.components, log: this.log, signal: this.shutdown.signal }
      await pinSharded(ctx, parseCid(root.cid), { ...params, name: params.name ?? root.name }, options)
      return
    }
    const pin = await this.components.pins.pin(parseCid(root.cid), { ...params, name: params.name ?? root.name }, options)
    this.log('added and pinned %s (%s)', pin.cid, pin.name)
  }
}
