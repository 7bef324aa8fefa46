// Every reach past the public API of Helia and @helia/bitswap, in one file: an upgrade of either is checked here
// and nowhere else. Written against helia 7.1.15 (@helia/utils 3.0.5) and @helia/bitswap 4.0.19.
//
// - `helia.blockBrokers` (a field of Helia's class, not of @helia/interface's Helia): the broker named 'bitswap'
//   holds @helia/bitswap's Bitswap instance as `bitswap`, whose private objects cairn uses:
//   - `peerWantLists` (receiveMessage, receivedBlock, peerDisconnected, wantListForPeer): replaced on that one
//     object by cairn's sender, which answers other peers' wants (bitswap-sender.ts says why);
//   - `network`: `sendMessage` replaced (this node's own wants go on the sender's per-peer stream); its
//     'bitswap:message' and 'peer:disconnected' events listened to; its `metrics` slots (dataSent, blocksSent,
//     empty without a libp2p Metrics service, which cairn's host has not) filled to count sent traffic;
//   - `wantList.wantBlock`: a pin's want goes straight to the want list, which hashed the block already, so
//     Helia's blockstore does not hash it a second time; `notify`: a block stored here cancels our wants for it.
//   When that shape is not found, installBitswapSender and countBitswapTraffic return undefined: Helia's own
//   sending runs, uncounted, and ipfs.ts logs one error.
// - The `maxProviders` option of a blockstore read, which @helia/bitswap hands to its network's findAndConnect:
//   0 asks connected peers only, with no DHT provider lookup (connectedOnly).
// - Helia's datastore keys (helia/src/pins.ts, toDSKey): `/pin/<CIDv1 base36>` -> pin record and
//   `/pinned-block/<multihash base36>` -> block record. pin-records.ts writes these records itself (Helia's
//   pins.ls/get/isPinned read them unchanged); the reprovider lists held blocks by the second prefix (through
//   IpfsNode.pinnedBlocks), and `cairn follow` reads the first from a stopped peer's datastore (offline.ts).
import { Key } from 'interface-datastore'
import { Uint8ArrayList } from 'uint8arraylist'
import { InvalidBlockError } from '../errors.js'
import { datastoreCidName, datastoreMultihashName, fromDatastoreName } from '../utils/keys.js'
import { BITSWAP_PROTOCOL, createBitswapSender, DEFAULT_IDLE_CLOSE_MS, DEFAULT_SEND_TIMEOUT_MS, type BitswapSender, type BitswapSenderComponents, type BitswapSenderInit, type IncomingMessage } from './bitswap-sender.js'
import { OutboundStreams } from './bitswap-streams.js'
import { blockPart, presencePart, wantlistPart, PRESENCE_DONT_HAVE, PRESENCE_HAVE, type WantEntry } from './bitswap-wire.js'
import type { AbortOptions } from '../components.js'
import type { ComponentLogger, Libp2p, PeerId } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'

// ---------------------------------------------------------------------------------------------------------
// @helia/bitswap's private objects

interface CounterLike { increment(value?: number): void }

/** The parts of @helia/bitswap's Bitswap instance cairn uses. */
interface HeliaBitswap {
  notify(cid: CID, options?: AbortOptions): Promise<void>
  peerWantLists: HeliaPeerWantLists
  network: HeliaNetwork
  wantList: HeliaWantList
}

/** The bitswap broker's Bitswap instance, unchecked. */
function brokerBitswap (helia: unknown): Partial<HeliaBitswap> | undefined {
  const brokers = (helia as { blockBrokers?: unknown }).blockBrokers
  if (!Array.isArray(brokers)) return undefined
  const broker = brokers.find(b => (b as { name?: unknown })?.name === 'bitswap') as { bitswap?: Partial<HeliaBitswap> } | undefined
  return broker?.bitswap
}

/** The broker's Bitswap instance, when it has the shape this file was written against. */
function heliaBitswap (helia: unknown): HeliaBitswap | undefined {
  const bitswap = brokerBitswap(helia)
  const { peerWantLists: lists, network, wantList } = bitswap ?? {}
  if (lists == null || network == null || typeof network.sendMessage !== 'function' || typeof network.addEventListener !== 'function') return undefined
  if (typeof wantList?.wantBlock !== 'function' || typeof wantList.addEventListener !== 'function' || typeof bitswap?.notify !== 'function') return undefined
  for (const method of ['receiveMessage', 'receivedBlock', 'peerDisconnected', 'wantListForPeer'] as const) {
    if (typeof lists[method] !== 'function') return undefined
  }
  return bitswap as HeliaBitswap
}

interface BitswapMessageEvent { message: { blocks?: Array<{ data?: Uint8Array }> } }

interface HeliaPeerWantLists {
  receiveMessage(peer: PeerId, message: IncomingMessage): void
  receivedBlock(cid: CID, options?: AbortOptions): Promise<void>
  peerDisconnected(peer: PeerId): void
  wantListForPeer(peer: PeerId): unknown
}

/** @helia/bitswap's QueuedBitswapMessage: what its want list hands its network to send. */
interface QueuedMessage {
  full?: boolean
  wantlist: Map<string, { cid: Uint8Array, priority?: number, cancel?: boolean, wantType?: string | number, sendDontHave?: boolean }>
  blocks: Map<string, { prefix: Uint8Array, data: Uint8Array }>
  blockPresences: Map<string, { cid: Uint8Array, type: string | number }>
}

interface WantListEvent { cid: CID, sender: PeerId, block?: Uint8Array, has?: boolean }

interface HeliaWantList {
  wantBlock(cid: CID, options?: AbortOptions): Promise<{ cid: CID, block: Uint8Array, sender: PeerId }>
  /** Connected bitswap peers (and the wants sent to each). */
  peers?: Map<PeerId, unknown>
  /** 'block' for every block received (wanted or not), 'presence' for every HAVE / DONT_HAVE. */
  addEventListener(type: 'block' | 'presence', listener: (evt: CustomEvent<WantListEvent>) => void): void
  removeEventListener(type: 'block' | 'presence', listener: (evt: CustomEvent<WantListEvent>) => void): void
}

interface HeliaNetwork {
  sendMessage(peer: PeerId, message: QueuedMessage, options?: AbortOptions): Promise<void>
  addEventListener(type: 'peer:disconnected', listener: (evt: CustomEvent<PeerId>) => void): void
  addEventListener(type: 'bitswap:message', listener: (evt: CustomEvent<BitswapMessageEvent>) => void): void
  removeEventListener(type: 'bitswap:message', listener: (evt: CustomEvent<BitswapMessageEvent>) => void): void
  metrics?: { dataSent?: CounterLike, blocksSent?: CounterLike }
}

/** Forged answers to one want before it fails (each forger is disconnected). */
const MAX_FORGED_ANSWERS = 5
/**
 * A want sent to one peer first (`prefer`) goes to every connected peer when that one has neither sent the block
 * nor said DONT_HAVE within this long.
 */
export const PREFERRED_WAIT_MS = 3000

/** Wantlist entries per message: a full wantlist of many thousands goes as several messages under 4 MiB. */
const WANTS_PER_MESSAGE = 4096

export interface InstalledBitswap {
  sender: BitswapSender
  /**
   * Asks connected peers for a block (no provider lookup) and returns its bytes and who sent them: the want
   * list built its CID by hashing the bytes, so a block whose hash function or digest differs is refused here
   * rather than hashed a second time; its sender is disconnected and the block asked for again. With `prefer`
   * (a connected peer likely to hold it: the one that sent the block's parent, a holder of its partition), the
   * want goes to that peer alone first, and to every connected peer only when it says DONT_HAVE or is silent
   * for PREFERRED_WAIT_MS: a block broadcast is sent by every peer holding it (2-4x the bytes in a cluster).
   */
  want(cid: CID, options?: AbortOptions & { prefer?: PeerId }): Promise<{ block: Uint8Array, sender: PeerId }>
  /** A block just stored: the want list cancels our wants for it. */
  announce(cid: CID, options?: AbortOptions): Promise<void>
  stop(): Promise<void>
}

export interface InstallComponents {
  libp2p: Pick<Libp2p, 'dialProtocol' | 'hangUp' | 'getConnections'>
  getBlocks: BitswapSenderComponents['getBlocks']
  logger: ComponentLogger
}

/**
 * Makes a started Helia node's bitswap send through long-lived streams: @helia/bitswap 4's network hands every
 * incoming message to its PeerWantLists, whose methods are replaced on that one object by this sender (its
 * fetching half keeps the message), and its network's sendMessage (now only the want list's wants and cancels)
 * writes on the same per-peer stream. Sent blocks are counted in the network's counter slots, where /metrics
 * reads them. Returns undefined, leaving Helia's own sending in place, when the broker is not the shape this was
 * written against.
 */
export function installBitswapSender (helia: unknown, init: BitswapSenderInit, components: InstallComponents): InstalledBitswap | undefined {
  const bitswap = heliaBitswap(helia)
  if (bitswap == null) return undefined
  const { peerWantLists: lists, network, wantList } = bitswap
  const log = components.logger.forComponent('cairn:ipfs:bitswap')
  const streams = new OutboundStreams({
    protocol: BITSWAP_PROTOCOL,
    sendTimeoutMs: init.sendTimeoutMs ?? DEFAULT_SEND_TIMEOUT_MS,
    idleCloseMs: init.idleCloseMs ?? DEFAULT_IDLE_CLOSE_MS
  }, components)
  const sender = createBitswapSender(init, {
    streams,
    getBlocks: components.getBlocks,
    logger: components.logger,
    onSent: (blocks, bytes) => {
      network.metrics?.dataSent?.increment(bytes)
      network.metrics?.blocksSent?.increment(blocks)
    }
  })
  lists.receiveMessage = (peer, message) => { sender.receiveMessage(peer, message) }
  // Helia announces a block before it writes it: the blockstore's own onStored hook (see ipfs.ts) drives
  // receivedBlock instead, when the block can be read
  lists.receivedBlock = async () => {}
  lists.peerDisconnected = (peer) => { sender.peerDisconnected(peer) }
  lists.wantListForPeer = (peer) => sender.wantsOf(peer).map(cid => ({ cid, priority: 1 }))
  network.sendMessage = async (peer, message, options) => {
    for (const parts of encodeQueued(message)) await streams.write(peer, parts, options)
  }
  network.addEventListener('peer:disconnected', evt => { streams.close(evt.detail) })

  const same = (cid: CID) => (c: CID): boolean => c.multihash.code === cid.multihash.code && Buffer.from(c.multihash.digest).equals(cid.multihash.digest)
  const sendWants = async (peer: PeerId, entries: WantEntry[], options: AbortOptions): Promise<void> => {
    await streams.write(peer, new Uint8ArrayList(...wantlistPart(entries)), options)
  }

  /**
   * Waits for the block (from anyone: the want list hashed it, so its CID is its bytes') or for the first
   * presence `accept` takes, up to `ms`; undefined on timeout.
   */
  const await1 = async (cid: CID, ms: number, accept: (e: WantListEvent) => boolean, signal?: AbortSignal, start?: () => Promise<void>): Promise<WantListEvent | undefined> => {
    const match = same(cid)
    let onBlock: ((evt: CustomEvent<WantListEvent>) => void) | undefined
    let onPresence: ((evt: CustomEvent<WantListEvent>) => void) | undefined
    let onAbort: (() => void) | undefined
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      const answer = new Promise<WantListEvent | undefined>((resolve, reject) => {
        onBlock = evt => { if (evt.detail.block != null && match(evt.detail.cid)) resolve(evt.detail) }
        onPresence = evt => { if (evt.detail.block == null && match(evt.detail.cid) && accept(evt.detail)) resolve(evt.detail) }
        onAbort = () => { reject(signal?.reason) }
        wantList.addEventListener('block', onBlock)
        wantList.addEventListener('presence', onPresence)
        signal?.addEventListener('abort', onAbort, { once: true })
        timer = setTimeout(() => { resolve(undefined) }, ms)
      })
      await start?.()
      return await answer
    } finally {
      clearTimeout(timer)
      if (onBlock != null) wantList.removeEventListener('block', onBlock)
      if (onPresence != null) wantList.removeEventListener('presence', onPresence)
      if (onAbort != null) signal?.removeEventListener('abort', onAbort)
    }
  }

  /**
   * A want-block sent to one peer: its block, or undefined once that peer says DONT_HAVE, is silent
   * PREFERRED_WAIT_MS, or cannot be written to (its want is then cancelled: a peer keeps a want it could not
   * answer, and would send the block once it has it, after this node got it elsewhere).
   */
  const askOne = async (cid: CID, peer: PeerId, options: AbortOptions): Promise<{ block: Uint8Array, sender: PeerId } | undefined> => {
    try {
      const got = await await1(cid, PREFERRED_WAIT_MS, e => e.has === false && e.sender.equals(peer), options.signal,
        async () => { await sendWants(peer, [{ cid, priority: 1, sendDontHave: true }], options) })
      if (got?.block != null) return { block: got.block, sender: got.sender }
    } catch (err) {
      options.signal?.throwIfAborted()
      log('asking %p alone for %c failed: %e', peer, cid, err)
    }
    void sendWants(peer, [{ cid, cancel: true }], {}).catch(() => {})
    return undefined
  }

  /**
   * Who has it: a want-have to every connected bitswap peer but those already asked; the first to say HAVE is
   * asked for the block. Undefined when nobody says HAVE within PREFERRED_WAIT_MS (the caller broadcasts a
   * want-block, which also reaches peers connected later).
   */
  const findAndAsk = async (cid: CID, skip: PeerId | undefined, options: AbortOptions): Promise<{ block: Uint8Array, sender: PeerId } | undefined> => {
    const peers = [...(wantList.peers?.keys() ?? [])].filter(p => skip == null || !p.equals(skip))
    if (peers.length === 0) return undefined
    let got: WantListEvent | undefined
    try {
      got = await await1(cid, PREFERRED_WAIT_MS, e => e.has === true, options.signal, async () => {
        await Promise.all(peers.map(async p => { await sendWants(p, [{ cid, priority: 1, wantHave: true }], options).catch(() => {}) }))
      })
    } finally {
      // the other peers' want-haves are cancelled (one that has the block would otherwise keep the want)
      for (const p of peers) if (got == null || !p.equals(got.sender)) void sendWants(p, [{ cid, cancel: true }], {}).catch(() => {})
    }
    if (got == null) return undefined
    if (got.block != null) return { block: got.block, sender: got.sender }
    return await askOne(cid, got.sender, options)
  }

  return {
    sender,
    async want (cid, options = {}) {
      const prefer = options.prefer != null && components.libp2p.getConnections(options.prefer).length > 0 ? options.prefer : undefined
      const found = (prefer != null ? await askOne(cid, prefer, options) : undefined) ?? await findAndAsk(cid, prefer, options)
      if (found != null) return found
      for (let attempt = 1; ; attempt++) {
        const got = await wantList.wantBlock(cid, options)
        const mh = got.cid.multihash
        if (same(cid)(got.cid)) return { block: got.block, sender: got.sender }
        // the want list took the forged block as the answer and dropped the want: cut the forger off, ask again
        log.error('%p sent bytes for %c under hash function 0x%s: closing its connection', got.sender, cid, mh.code.toString(16))
        await components.libp2p.hangUp(got.sender, options).catch(() => {})
        if (attempt >= MAX_FORGED_ANSWERS) {
          throw new InvalidBlockError(`${attempt} peers sent bytes for ${cid.toString()} that do not hash to it (the last: ${got.sender.toString()})`)
        }
      }
    },
    async announce (cid, options) {
      await bitswap.notify(cid, options)
    },
    async stop () {
      await sender.stop()
      streams.stop()
    }
  }
}

/** A queued message as one or more messages' parts (wants in slices of WANTS_PER_MESSAGE). */
function encodeQueued (message: QueuedMessage): Uint8ArrayList[] {
  const out: Uint8ArrayList[] = []
  const wants: WantEntry[] = [...message.wantlist.values()].map(w => ({
    cid: w.cid,
    priority: w.priority,
    cancel: w.cancel,
    wantHave: w.wantType === 'WantHave' || w.wantType === 1,
    sendDontHave: w.sendDontHave
  }))
  for (let i = 0; i < wants.length || (i === 0 && message.full === true); i += WANTS_PER_MESSAGE) {
    out.push(new Uint8ArrayList(...wantlistPart(wants.slice(i, i + WANTS_PER_MESSAGE), message.full === true && i === 0)))
  }
  const rest = new Uint8ArrayList()
  for (const block of message.blocks.values()) rest.append(...blockPart(block.prefix, block.data))
  for (const p of message.blockPresences.values()) {
    rest.append(...presencePart(p.cid, p.type === 'DoNotHaveBlock' || p.type === 1 ? PRESENCE_DONT_HAVE : PRESENCE_HAVE))
  }
  if (rest.byteLength > 0) out.push(rest)
  return out
}

/** Block traffic over bitswap since counting started (bytes are block bytes, without message framing). */
export interface BitswapTraffic {
  readonly bytesIn: number
  readonly blocksIn: number
  readonly bytesOut: number
  readonly blocksOut: number
}

export interface CountedTraffic extends BitswapTraffic {
  detach(): void
}

/**
 * Counts a started Helia node's bitswap traffic without changing how it runs: received blocks from the network's
 * 'bitswap:message' event (@helia/bitswap never calls its own received-block stats), sent ones by filling the
 * network's sent-counter slots, where both @helia/bitswap's sending and cairn's (installBitswapSender) count.
 * Undefined when the broker is not the shape this was written against.
 */
export function countBitswapTraffic (helia: unknown): CountedTraffic | undefined {
  // the network alone: counting does not need the rest of the shape the sender needs
  const network = brokerBitswap(helia)?.network
  if (typeof network?.addEventListener !== 'function' || typeof network.metrics !== 'object' || network.metrics == null) return undefined
  const slots = network.metrics
  const traffic = { bytesIn: 0, blocksIn: 0, bytesOut: 0, blocksOut: 0 }

  const onMessage = (evt: CustomEvent<BitswapMessageEvent>): void => {
    for (const block of evt.detail?.message?.blocks ?? []) {
      traffic.blocksIn++
      traffic.bytesIn += block.data?.byteLength ?? 0
    }
  }
  // keep whatever counter was there (a libp2p Metrics service) working
  const previous = { dataSent: slots.dataSent, blocksSent: slots.blocksSent }
  const dataSent: CounterLike = { increment (n = 1) { traffic.bytesOut += n; previous.dataSent?.increment(n) } }
  const blocksSent: CounterLike = { increment (n = 1) { traffic.blocksOut += n; previous.blocksSent?.increment(n) } }
  network.addEventListener('bitswap:message', onMessage)
  slots.dataSent = dataSent
  slots.blocksSent = blocksSent

  return {
    get bytesIn () { return traffic.bytesIn },
    get blocksIn () { return traffic.blocksIn },
    get bytesOut () { return traffic.bytesOut },
    get blocksOut () { return traffic.blocksOut },
    detach () {
      network.removeEventListener('bitswap:message', onMessage)
      if (slots.dataSent === dataSent) slots.dataSent = previous.dataSent
      if (slots.blocksSent === blocksSent) slots.blocksSent = previous.blocksSent
    }
  }
}

/**
 * Calls `listener` for every bitswap message the node receives (the bench times their arrival). Returns the
 * unsubscribe function; undefined when the broker is not recognised.
 */
export function onBitswapMessage (helia: unknown, listener: () => void): (() => void) | undefined {
  const network = brokerBitswap(helia)?.network
  if (typeof network?.addEventListener !== 'function') return undefined
  network.addEventListener('bitswap:message', listener)
  return () => { network.removeEventListener('bitswap:message', listener) }
}

/** Options for a Helia blockstore read that asks connected peers only: @helia/bitswap then looks up no providers. */
export function connectedOnly<T extends AbortOptions> (options: T): T {
  return { ...options, maxProviders: 0 }
}

// ---------------------------------------------------------------------------------------------------------
// Helia's datastore keys

const PIN_PREFIX = '/pin/'
const PINNED_BLOCK_PREFIX = '/pinned-block/'

/** Helia's pin record of a root: the CID in base36, CIDv0 as v1 (toDSKey). */
export function pinRecordKey (cid: CID): Key {
  return new Key(`${PIN_PREFIX}${datastoreCidName(cid)}`)
}

/** Helia's record of a block held for a pin, by multihash. */
export function pinnedBlockKey (cid: CID): Key {
  return new Key(`${PINNED_BLOCK_PREFIX}${datastoreMultihashName(cid.multihash.bytes)}`, false)
}

/** The query prefix of every block record. */
export const PINNED_BLOCKS_PREFIX = PINNED_BLOCK_PREFIX

/** The multihash a block record's key names; undefined for any other key. */
export function pinnedBlockMultihash (key: Key | string): Uint8Array | undefined {
  const s = key.toString()
  if (!s.startsWith(PINNED_BLOCK_PREFIX)) return undefined
  return fromDatastoreName(s.slice(PINNED_BLOCK_PREFIX.length))
}
