import { setMaxListeners } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import * as dagCbor from '@ipld/dag-cbor'
import { AbortError } from '@libp2p/interface'
import { defaultLogger } from '@libp2p/logger'
import { LevelDatastore } from 'datastore-level'
import { createHeliaLight } from 'helia'
import { exporter } from 'ipfs-unixfs-exporter'
import { InvalidParameterError, NotStartedError, ShuttingDownError } from '../errors.js'
import { libp2pOptions } from '../libp2p/index.js'
import { importCar, importEntries } from './add.js'
import { SizedBlockstore } from './sized-blockstore.js'
import { DEFAULT_WALK_CONCURRENCY, parallelWalker } from './walker.js'
import type { IpfsInit, IpfsNode } from './index.js'
import type { AbortOptions, AddEntry, AddParams, AddedOutput } from '../components.js'
import type { CairnServices } from '../libp2p/index.js'
import type { GraphWalker, Helia, Pin } from '@helia/interface'
import type { ComponentLogger, Libp2p, Logger } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

type CairnHelia = Helia & { libp2p: Libp2p<CairnServices> }

const DEFAULT_CHILD_LOOKUP_DELAY = 5_000

interface Running {
  helia: CairnHelia
  blockstore: SizedBlockstore
  datastore: LevelDatastore
  /** Aborted by stop(): network fetches of pins in progress give up. */
  shutdown: AbortController
}

export class IpfsNodeImpl implements IpfsNode {
  private readonly init: IpfsInit
  private readonly logger: ComponentLogger
  private readonly log: Logger
  private running?: Running
  private starting?: Promise<void>
  /** Pin operations per CID (v1 string) run one after the other. */
  private readonly locks = new Map<string, Promise<void>>()

  constructor (init: IpfsInit) {
    this.init = init
    this.logger = init.logger ?? init.host.logger ?? defaultLogger()
    this.log = this.logger.forComponent('cairn:ipfs')
  }

  get helia (): CairnHelia {
    return this.require().helia
  }

  get libp2p (): Libp2p<CairnServices> {
    return this.require().helia.libp2p
  }

  private require (): Running {
    if (this.running == null) {
      throw new NotStartedError('ipfs node is not started')
    }
    return this.running
  }

  async start (): Promise<void> {
    if (this.running != null) {
      return
    }
    this.starting ??= this.doStart().finally(() => { this.starting = undefined })
    await this.starting
  }

  private async doStart (): Promise<void> {
    const { dataDir } = this.init
    await mkdir(dataDir, { recursive: true })
    const datastore = new LevelDatastore(join(dataDir, 'datastore'))
    await datastore.open()
    const blockstore = new SizedBlockstore({ path: join(dataDir, 'blocks'), datastore, log: this.log })
    let helia: CairnHelia | undefined
    try {
      await blockstore.open()
      const light = createHeliaLight({
        blockstore,
        datastore,
        logger: this.logger,
        // dag-pb, raw and identity are built in; dag-cbor for shard and clusterdag nodes
        codecs: [dagCbor]
      })
      helia = withBitswap(withLibp2pLight(light, libp2pOptions({ ...this.init.host, datastore, logger: this.logger })))
      await helia.start()
      const shutdown = new AbortController()
      // every pin in flight listens to it
      setMaxListeners(Infinity, shutdown.signal)
      this.running = { helia, blockstore, datastore, shutdown }
      this.log('started as %p, listening on %a', helia.libp2p.peerId, helia.libp2p.getMultiaddrs())
    } catch (err) {
      await helia?.stop().catch(e => { this.log.error('stop after failed start - %e', e) })
      await blockstore.close().catch(e => { this.log.error('closing blockstore - %e', e) })
      await datastore.close().catch(e => { this.log.error('closing datastore - %e', e) })
      throw err
    }
  }

  async stop (): Promise<void> {
    await this.starting?.catch(() => {})
    const running = this.running
    if (running == null) {
      return
    }
    this.running = undefined
    running.shutdown.abort()
    // pins in flight stop fetching; those recording a pin finish, so no pin is left half-counted
    await Promise.allSettled([...this.locks.values()])
    try {
      await running.helia.stop()
    } finally {
      // the size is written to the datastore, so the blockstore closes first
      try {
        await running.blockstore.close()
      } finally {
        await running.datastore.close()
      }
    }
    this.log('stopped')
  }

  // ---------------------------------------------------------------------------------------------------------
  // Pins

  async pin (cid: CID, options: AbortOptions & { depth?: number, onProgress?: (blocks: number) => void } = {}): Promise<void> {
    const depthOption = options.depth ?? -1
    if (!Number.isInteger(depthOption) || depthOption < -1) {
      throw new InvalidParameterError(`pin depth must be -1 (recursive) or >= 0, got ${depthOption}`)
    }
    const depth = depthOption === -1 ? Infinity : depthOption
    const { helia, shutdown } = this.require()
    // Helia keys pins by CIDv1 but records "pinned by" with the bytes given: use one form throughout
    const root = cid.toV1()
    const signal = options.signal
    const fetchSignal = signal != null ? AbortSignal.any([signal, shutdown.signal]) : shutdown.signal
    await this.withLock(root, signal, async () => {
      const existing = await this.pinRecord(root, signal)
      if (existing?.depth === depth) {
        return
      }
      // 1. fetch everything first: an abort here leaves no half-counted pin behind, only cached blocks
      let blocks = 0
      try {
        for await (const node of this.fetchWalker(helia).walk(root, { depth, signal: fetchSignal })) {
          void node
          options.onProgress?.(++blocks)
        }
      } catch (err) {
        if (shutdown.signal.aborted) {
          throw new ShuttingDownError(`stopped while pinning ${root}`)
        }
        throw toAbortError(err, signal)
      }
      // 2. record the pin from local blocks, without the signal: Helia cannot undo a half-recorded pin
      const walker = (): GraphWalker => this.localWalker(helia)
      if (existing != null) {
        this.log('changing pin depth of %c from %s to %s', root, existing.depth, depth)
        await drain(helia.pins.rm(root, { walker }))
      }
      await drain(helia.pins.add(root, { depth, walker }))
      this.log('pinned %c (depth %s, %d blocks)', root, depth, blocks)
    })
  }

  async unpin (cid: CID, options: AbortOptions = {}): Promise<void> {
    const { helia } = this.require()
    const root = cid.toV1()
    await this.withLock(root, options.signal, async () => {
      if (await this.pinRecord(root, options.signal) == null) {
        return
      }
      // local walk, no signal: stopping half-way would leave block pin counts wrong
      await drain(helia.pins.rm(root, { walker: () => this.localWalker(helia) }))
      this.log('unpinned %c', root)
    })
  }

  async isPinned (cid: CID, options: AbortOptions = {}): Promise<boolean> {
    this.require()
    return await this.pinRecord(cid.toV1(), options.signal) != null
  }

  async * pinLs (options: AbortOptions = {}): AsyncIterable<CID> {
    const { helia } = this.require()
    for await (const pin of helia.pins.ls({ signal: options.signal })) {
      yield pin.cid
    }
  }

  async hasBlock (cid: CID, options: AbortOptions = {}): Promise<boolean> {
    return this.require().helia.blockstore.has(cid, options)
  }

  async repoSize (options: AbortOptions = {}): Promise<number> {
    options.signal?.throwIfAborted()
    return this.require().blockstore.size()
  }

  private async pinRecord (root: CID, signal?: AbortSignal): Promise<Pin | undefined> {
    try {
      return await this.require().helia.pins.get(root, { signal })
    } catch (err) {
      if ((err as Error).name === 'NotFoundError') {
        return undefined
      }
      throw err
    }
  }

  private async withLock<T> (cid: CID, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    const key = cid.toString()
    const prior = this.locks.get(key)
    let release!: () => void
    const held = new Promise<void>(resolve => { release = resolve })
    // the next operation waits for this one and for everything before it, even if this one gives up early
    const tail = Promise.all([prior, held]).then(() => {})
    this.locks.set(key, tail)
    try {
      if (prior != null) {
        await raceSignal(prior, signal)
      }
      signal?.throwIfAborted()
      return await fn()
    } finally {
      release()
      if (this.locks.get(key) === tail) {
        this.locks.delete(key)
      }
    }
  }

  /** Loads blocks from the network when missing. */
  private fetchWalker (helia: CairnHelia): GraphWalker {
    const delay = this.init.childLookupDelay ?? DEFAULT_CHILD_LOOKUP_DELAY
    return parallelWalker({
      concurrency: this.init.fetchConcurrency ?? DEFAULT_WALK_CONCURRENCY,
      getCodec: helia.getCodec,
      load: async (cid, { signal, depth }) => {
        if (depth === 0 || await helia.blockstore.has(cid, { signal })) {
          return toBuffer(helia.blockstore.get(cid, { signal }))
        }
        return fetchChild(helia, cid, signal, delay)
      }
    })
  }

  /** Loads local blocks only: a missing block is an error, never a network fetch. */
  private localWalker (helia: CairnHelia): GraphWalker {
    const offline = { offline: true }
    return parallelWalker({
      concurrency: this.init.fetchConcurrency ?? DEFAULT_WALK_CONCURRENCY,
      getCodec: helia.getCodec,
      load: async (cid, { signal }) => toBuffer(helia.blockstore.get(cid, { ...offline, signal }))
    })
  }

  // ---------------------------------------------------------------------------------------------------------
  // Content

  async * addEntries (entries: AsyncIterable<AddEntry>, params: AddParams, options: AbortOptions = {}): AsyncGenerator<AddedOutput> {
    const { helia } = this.require()
    if (params.format === 'car') {
      yield * this.addCar(singleCarEntry(entries), options)
      return
    }
    yield * importEntries(entries, params, helia.blockstore, options)
  }

  async * addCar (bytes: AsyncIterable<Uint8Array>, options: AbortOptions = {}): AsyncGenerator<AddedOutput> {
    const { helia } = this.require()
    yield * importCar(bytes, { blocks: helia.blockstore, getHasher: helia.getHasher }, options)
  }

  async * cat (cid: CID, options: AbortOptions = {}): AsyncIterable<Uint8Array> {
    const { helia } = this.require()
    const entry = await exporter(cid, helia.blockstore, { signal: options.signal })
    if (entry.type !== 'file' && entry.type !== 'raw' && entry.type !== 'identity') {
      throw new InvalidParameterError(`${cid} is a ${entry.type}, not a file`)
    }
    yield * entry.content({ signal: options.signal })
  }
}

/**
 * Asks connected peers (bitswap broadcasts wants to them) without a DHT provider lookup; Helia would otherwise
 * start one lookup per block. After `delay` ms without the block, a lookup is started as well.
 */
async function fetchChild (helia: CairnHelia, cid: CID, signal: AbortSignal, delay: number): Promise<Uint8Array> {
  const done = new AbortController()
  const both = AbortSignal.any([signal, done.signal])
  setMaxListeners(Infinity, both)
  // maxProviders reaches @helia/bitswap's findAndConnect, which then takes no providers from routing
  const quiet = { signal: both, maxProviders: 0 }
  let timer: ReturnType<typeof setTimeout> | undefined
  const attempts = [
    toBuffer(helia.blockstore.get(cid, quiet)),
    new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = (): void => { clearTimeout(timer); reject(both.reason) }
      both.addEventListener('abort', onAbort, { once: true })
      timer = setTimeout(() => {
        both.removeEventListener('abort', onAbort)
        toBuffer(helia.blockstore.get(cid, { signal: both })).then(resolve, reject)
      }, delay)
    })
  ]
  try {
    return await Promise.any(attempts)
  } catch (err) {
    throw (err as AggregateError).errors?.[0] ?? err
  } finally {
    clearTimeout(timer)
    done.abort()
  }
}

async function * singleCarEntry (entries: AsyncIterable<AddEntry>): AsyncGenerator<Uint8Array> {
  let content: AsyncIterable<Uint8Array> | undefined
  for await (const entry of entries) {
    if (entry.content == null) {
      continue
    }
    if (content != null) {
      throw new InvalidParameterError('format=car takes exactly one file')
    }
    content = entry.content
    yield * content
  }
  if (content == null) {
    throw new InvalidParameterError('no files in the request')
  }
}

function toAbortError (err: unknown, signal?: AbortSignal): unknown {
  if (signal?.aborted === true) {
    const reason = signal.reason as Error | undefined
    return new AbortError(`operation aborted${reason?.message != null ? `: ${reason.message}` : ''}`)
  }
  return err
}

async function raceSignal<T> (promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal == null) {
    return promise
  }
  signal.throwIfAborted()
  let onAbort!: () => void
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => { reject(new AbortError('operation aborted')) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

async function drain (source: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of source) {
    void _
  }
}

async function toBuffer (chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Uint8Array> {
  const list: Uint8Array[] = []
  let length = 0
  for await (const chunk of chunks) {
    list.push(chunk)
    length += chunk.byteLength
  }
  if (list.length === 1) {
    return list[0]
  }
  const out = new Uint8Array(length)
  let offset = 0
  for (const chunk of list) {
    out.set(chunk, offset)
    offset += chunk.byteLength
  }
  return out
}
