// The serving half of bitswap 1.2.0: answers the wants other peers send us with blocks, HAVEs and DONT_HAVEs.
//
// @helia/bitswap 4 answers a peer's wants in cycles: it takes every want it holds, reads the blocks one at a
// time, sends them as one message on a new stream, and only then looks at the wants that arrived meanwhile
// (measured: 110-130 ms per 8 MiB, 0.16x of a raw libp2p stream; docs/DESIGN.md §10). It also marks wants
// "sending" before a send and never resets them when the send fails, which is what left fetches stuck.
// This sender keeps one outbound stream per peer open while there is something to send, reads wanted blocks in
// small bulk reads (one level getMany each), reads the next batch while the previous one is written, writes each
// message as soon as it is built, and picks up new wants at every batch. Blocks go on the wire without being
// copied into a message buffer: the protobuf framing is written around them. A want whose send failed is
// wanted again (on a fresh stream), and a block that arrives later is sent to the peers that asked for it.
//
// The fetching half (wants, sessions, block verification) stays @helia/bitswap's: it reads any number of
// messages from one stream, so a long-lived stream is what it expects from Kubo too. How this sender is put in
// place of @helia/bitswap's own is in helia-internals.ts, with every other reach into Helia's private objects.
//
// Kept hand-written, not @helia/bitswap's sending nor a protobuf library's encoder, for a measured reason: the
// encoders build each message in one buffer, copying every block into it, and send once per cycle; this one
// writes the framing around the block bytes as read from the store and keeps the stream busy: 46 -> ~140 MB/s
// on the 256 MB `bitswap` bench, the serving peer's CPU 3.9 -> 0.5 s (docs/DESIGN.md, "Bitswap sending").
import { CID } from 'multiformats/cid'
import { identity } from 'multiformats/hashes/identity'
import { Uint8ArrayList } from 'uint8arraylist'
import type { OutboundStreams } from './bitswap-streams.js'
import { blockId } from './local-dag.js'
import { blockPart, cidPrefix, presencePart, PRESENCE_DONT_HAVE, PRESENCE_HAVE } from './bitswap-wire.js'
import type { AbortOptions } from '../components.js'
import type { ComponentLogger, Logger, PeerId } from '@libp2p/interface'

export const BITSWAP_PROTOCOL = '/ipfs/bitswap/1.2.0'

/** Receivers (Helia, Kubo) refuse messages above 4 MiB; smaller ones let the receiver start on blocks sooner. */
const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
const DEFAULT_READ_BATCH = 8
/** Kubo and Helia send small blocks instead of a HAVE below this size. */
const DEFAULT_MAX_SIZE_REPLACE_HAS_WITH_BLOCK = 1024
const DEFAULT_MAX_WANTS_PER_PEER = 8192
/**
 * All peers' wants together (~300 B each): a few hundred connections at the per-peer cap would be millions.
 * 32 peers at the per-peer cap, or a thousand fetching 256 blocks at a time, fit.
 */
const DEFAULT_MAX_WANTS = 262_144
/** Under Helia's 10 s receive timeout, so we close an idle stream before the receiver resets it. */
export const DEFAULT_IDLE_CLOSE_MS = 2_000
export const DEFAULT_SEND_TIMEOUT_MS = 10_000
/** Sends that fail one after the other before a peer's wants are dropped (it will want again). */
const MAX_SEND_FAILURES = 3

export interface BitswapSenderInit {
  /** Largest message written (a larger single block still goes, alone). Default 1 MiB. */
  maxMessageBytes?: number
  /** Blocks read from the store at once. Default 8. */
  readBatch?: number
  /** A WANT_HAVE for a block at most this size is answered with the block. Default 1024. */
  maxSizeReplaceHasWithBlock?: number
  /** Wants kept per peer; the oldest unanswerable ones go first. Default 8192. */
  maxWantsPerPeer?: number
  /** Wants kept for all peers together; past it, the peer whose message went over keeps fewer. Default 262,144. */
  maxWants?: number
  /** An outbound stream with nothing to send for this long is closed. Default 2000 ms. */
  idleCloseMs?: number
  /** Opening a stream, or a write waiting for the peer to read, gives up after this. Default 10,000 ms. */
  sendTimeoutMs?: number
}

export interface BitswapSenderComponents {
  /** The peers' outbound streams, shared with this node's own wants. */
  streams: OutboundStreams
  /** Bytes of each block from the local store, undefined when missing; never fetches. */
  getBlocks(cids: CID[], options?: AbortOptions): Promise<Array<Uint8Array | undefined>>
  logger: ComponentLogger
  /** Told after each message written. */
  onSent?(blocks: number, bytes: number): void
}

/** A wantlist entry as @helia/bitswap's decoder gives it (enums as their names). */
export interface IncomingWant {
  cid: Uint8Array
  priority?: number
  cancel?: boolean
  wantType?: 'WantBlock' | 'WantHave' | number
  sendDontHave?: boolean
}

export interface IncomingMessage {
  wantlist?: { entries?: IncomingWant[], full?: boolean }
}

export interface SenderStats {
  peers: number
  wants: number
  blocksSent: number
  bytesSent: number
  sendFailures: number
}

export interface BitswapSender {
  /** Takes the wantlist part of a message from `peer`. */
  receiveMessage(peer: PeerId, message: IncomingMessage): void
  /** A block just arrived in the store: peers that wanted it get it. */
  receivedBlock(cid: CID): void
  peerDisconnected(peer: PeerId): void
  /** The wants `peer` has with us now. */
  wantsOf(peer: PeerId): CID[]
  stats(): SenderStats
  stop(): Promise<void>
}

type WantStatus = 'want' | 'reading' | 'missing'

/** Keyed by multihash (blockId), as the fetchers key theirs: a CIDv0 want is answered by the same block in v1. */
interface Want {
  key: string
  cid: CID
  wantHave: boolean
  sendDontHave: boolean
  sentDontHave: boolean
  status: WantStatus
}

interface Ledger {
  peer: PeerId
  wants: Map<string, Want>
  running: boolean
  failures: number
  /** Set when the peer disconnected or the sender stopped: the loop ends. */
  gone: boolean
}

/** One message, as the pieces to write (protobuf framing around the block bytes, which are not copied). */
interface Outgoing {
  parts: Uint8ArrayList
  blocks: number
  blockBytes: number
  /** Wants this message answers: removed once it is written. */
  answered: Want[]
}

interface Batch {
  messages: Outgoing[]
  /** Wants picked for this batch (answered or parked as missing). */
  picked: Want[]
}

export function createBitswapSender (init: BitswapSenderInit, components: BitswapSenderComponents): BitswapSender {
  return new BitswapSenderImpl(init, components)
}

class BitswapSenderImpl implements BitswapSender {
  private readonly components: BitswapSenderComponents
  private readonly log: Logger
  private readonly maxMessageBytes: number
  private readonly readBatch: number
  private readonly maxSizeReplaceHasWithBlock: number
  private readonly maxWantsPerPeer: number
  private readonly maxWants: number
  private readonly ledgers = new Map<string, Ledger>()
  private readonly loops = new Set<Promise<void>>()
  private readonly counters = { blocksSent: 0, bytesSent: 0, sendFailures: 0 }
  private stopped = false

  constructor (init: BitswapSenderInit, components: BitswapSenderComponents) {
    this.components = components
    this.log = components.logger.forComponent('cairn:ipfs:bitswap-sender')
    this.maxMessageBytes = init.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
    this.readBatch = init.readBatch ?? DEFAULT_READ_BATCH
    this.maxSizeReplaceHasWithBlock = init.maxSizeReplaceHasWithBlock ?? DEFAULT_MAX_SIZE_REPLACE_HAS_WITH_BLOCK
    this.maxWantsPerPeer = init.maxWantsPerPeer ?? DEFAULT_MAX_WANTS_PER_PEER
    this.maxWants = init.maxWants ?? DEFAULT_MAX_WANTS
  }

  receiveMessage (peer: PeerId, message: IncomingMessage): void {
    if (this.stopped) return
    const wantlist = message.wantlist
    if (wantlist == null) return
    const ledger = this.ledgerFor(peer)
    this.log.trace('%d wants from %p%s', wantlist.entries?.length ?? 0, peer, wantlist.full === true ? ' (full list)' : '')
    const entries: Array<{ entry: IncomingWant, cid: CID, key: string }> = []
    for (const entry of wantlist.entries ?? []) {
      try {
        const cid = CID.decode(entry.cid)
        entries.push({ entry, cid, key: blockId(cid) })
      } catch (err) {
        this.log('ignoring a want for an invalid CID from %p - %e', peer, err)
      }
    }
    if (wantlist.full === true) {
      // a full wantlist replaces what we hold, except what we are reading for the peer right now
      const listed = new Set(entries.filter(e => e.entry.cancel !== true).map(e => e.key))
      for (const [key, want] of ledger.wants) {
        if (!listed.has(key) && want.status !== 'reading') ledger.wants.delete(key)
      }
    }
    for (const { entry, cid, key } of entries) {
      if (entry.cancel === true) {
        ledger.wants.delete(key)
        continue
      }
      const wantHave = entry.wantType === 'WantHave' || entry.wantType === 1
      const existing = ledger.wants.get(key)
      if (existing != null) {
        // a WANT_BLOCK upgrades a WANT_HAVE; a repeated want is answered again (the peer lost our answer)
        existing.wantHave = existing.wantHave && wantHave
        existing.sendDontHave = entry.sendDontHave === true
        if (existing.status === 'missing') {
          existing.status = 'want'
          existing.sentDontHave = false
        }
        continue
      }
      ledger.wants.set(key, { key, cid, wantHave, sendDontHave: entry.sendDontHave === true, sentDontHave: false, status: 'want' })
    }
    this.trim(ledger)
    this.schedule(ledger)
  }

  receivedBlock (cid: CID): void {
    if (this.stopped) return
    const key = blockId(cid)
    for (const ledger of this.ledgers.values()) {
      const want = ledger.wants.get(key)
      if (want?.status === 'missing') {
        want.status = 'want'
        this.schedule(ledger)
      }
    }
  }

  peerDisconnected (peer: PeerId): void {
    const ledger = this.ledgers.get(peer.toString())
    if (ledger == null) return
    this.ledgers.delete(peer.toString())
    ledger.gone = true
  }

  wantsOf (peer: PeerId): CID[] {
    return [...(this.ledgers.get(peer.toString())?.wants.values() ?? [])].map(w => w.cid)
  }

  stats (): SenderStats {
    let wants = 0
    for (const ledger of this.ledgers.values()) wants += ledger.wants.size
    return { peers: this.ledgers.size, wants, ...this.counters }
  }

  async stop (): Promise<void> {
    this.stopped = true
    for (const ledger of this.ledgers.values()) {
      ledger.gone = true
    }
    this.ledgers.clear()
    await Promise.allSettled([...this.loops])
  }

  // -------------------------------------------------------------------------------------------------------

  private ledgerFor (peer: PeerId): Ledger {
    const id = peer.toString()
    let ledger = this.ledgers.get(id)
    if (ledger == null) {
      ledger = { peer, wants: new Map(), running: false, failures: 0, gone: false }
      this.ledgers.set(id, ledger)
    }
    return ledger
  }

  /** Past the cap, wants we cannot answer (missing) go first, oldest first, then the oldest of the rest. */
  private trim (ledger: Ledger): void {
    let total = 0
    for (const l of this.ledgers.values()) total += l.wants.size
    let excess = Math.max(ledger.wants.size - this.maxWantsPerPeer, total - this.maxWants)
    if (excess <= 0) return
    for (const [key, want] of ledger.wants) {
      if (excess <= 0) break
      if (want.status === 'missing') { ledger.wants.delete(key); excess-- }
    }
    for (const [key, want] of ledger.wants) {
      if (excess <= 0) break
      if (want.status === 'want') { ledger.wants.delete(key); excess-- }
    }
  }

  /**
   * A ledger with no wants left is forgotten (the next message makes a new one): peers that asked once, and
   * messages arriving after their peer disconnected, leave nothing behind.
   */
  private dropIfEmpty (ledger: Ledger): void {
    if (ledger.running || ledger.wants.size > 0) return
    const id = ledger.peer.toString()
    if (this.ledgers.get(id) === ledger) this.ledgers.delete(id)
  }

  private schedule (ledger: Ledger): void {
    if (ledger.running || ledger.gone || this.stopped) return
    if (!hasWanted(ledger)) { this.dropIfEmpty(ledger); return }
    ledger.running = true
    const loop = this.run(ledger)
      .catch(err => { this.log.error('sending to %p - %e', ledger.peer, err) })
      .finally(() => {
        this.loops.delete(loop)
        ledger.running = false
        if (ledger.gone || this.stopped) return
        // wants that came back (a failed send, a block that arrived) while the loop was finishing; schedule drops
        // a ledger left empty, as this does after the failed sends that cleared its wants
        if (ledger.failures < MAX_SEND_FAILURES) this.schedule(ledger)
        else this.dropIfEmpty(ledger)
      })
    this.loops.add(loop)
  }

  /** Reads batch n+1 while batch n is written, and picks up new wants at every batch. */
  private async run (ledger: Ledger): Promise<void> {
    let next = this.nextBatch(ledger)
    for (;;) {
      const batch = await next
      if (batch == null) return
      if (ledger.gone) { release(batch.picked); return }
      next = this.nextBatch(ledger)
      try {
        for (const message of batch.messages) {
          await this.write(ledger, message)
          for (const want of message.answered) {
            if (ledger.wants.get(want.key) === want) ledger.wants.delete(want.key)
          }
        }
        ledger.failures = 0
      } catch (err) {
        this.counters.sendFailures++
        ledger.failures++
        this.log('send to %p failed (%d in a row) - %e', ledger.peer, ledger.failures, err)
        // what was not written is wanted again: on a fresh stream, or dropped after repeated failures (a read of
        // the next batch that failed too has released its own wants)
        release(batch.picked)
        const rest = await next.catch(() => undefined)
        if (rest != null) release(rest.picked)
        if (ledger.failures >= MAX_SEND_FAILURES) {
          this.log.error('dropping %d wants of %p after %d failed sends', ledger.wants.size, ledger.peer, ledger.failures)
          ledger.wants.clear()
        }
        return
      }
    }
  }

  /** Picks up to `readBatch` wants, reads their blocks in one bulk read and builds the messages answering them. */
  private async nextBatch (ledger: Ledger): Promise<Batch | undefined> {
    const picked: Want[] = []
    for (const want of ledger.wants.values()) {
      if (want.status !== 'want') continue
      want.status = 'reading'
      picked.push(want)
      if (picked.length >= this.readBatch) break
    }
    if (picked.length === 0) return undefined
    let blocks: Array<Uint8Array | undefined>
    try {
      blocks = await this.readBlocks(picked.map(w => w.cid))
    } catch (err) {
      release(picked)
      throw err
    }
    const messages: Outgoing[] = []
    let current: Outgoing | undefined
    for (let i = 0; i < picked.length; i++) {
      const want = picked[i]
      const data = blocks[i]
      let entry: Uint8Array[]
      let blockBytes = 0
      if (data == null) {
        // parked until the block arrives (receivedBlock) or the peer cancels
        want.status = 'missing'
        if (!want.sendDontHave || want.sentDontHave) continue
        want.sentDontHave = true
        entry = presencePart(want.cid, PRESENCE_DONT_HAVE)
      } else if (want.wantHave && data.byteLength > this.maxSizeReplaceHasWithBlock) {
        entry = presencePart(want.cid, PRESENCE_HAVE)
      } else {
        entry = blockPart(cidPrefix(want.cid), data)
        blockBytes = data.byteLength
      }
      const size = entry.reduce((n, b) => n + b.byteLength, 0)
      if (current == null || (current.parts.byteLength > 0 && current.parts.byteLength + size > this.maxMessageBytes)) {
        current = { parts: new Uint8ArrayList(), blocks: 0, blockBytes: 0, answered: [] }
        messages.push(current)
      }
      current.parts.append(...entry)
      if (blockBytes > 0) {
        current.blocks++
        current.blockBytes += blockBytes
      }
      if (data != null) current.answered.push(want)
    }
    return { messages: messages.filter(m => m.parts.byteLength > 0), picked }
  }

  private async readBlocks (cids: CID[]): Promise<Array<Uint8Array | undefined>> {
    // identity CIDs carry their block; the store never holds them
    if (cids.every(c => c.multihash.code !== identity.code)) return await this.components.getBlocks(cids)
    const stored = await this.components.getBlocks(cids.filter(c => c.multihash.code !== identity.code))
    let i = 0
    return cids.map(c => c.multihash.code === identity.code ? c.multihash.digest : stored[i++])
  }

  private async write (ledger: Ledger, message: Outgoing): Promise<void> {
    await this.components.streams.write(ledger.peer, message.parts)
    this.counters.blocksSent += message.blocks
    this.counters.bytesSent += message.blockBytes
    this.components.onSent?.(message.blocks, message.blockBytes)
  }
}

/** Whether some want waits to be read (a loop: schedule runs for every message and stored block). */
function hasWanted (ledger: Ledger): boolean {
  for (const want of ledger.wants.values()) {
    if (want.status === 'want') return true
  }
  return false
}

/** Wants picked for a batch that was not sent are wanted again. */
function release (wants: Want[]): void {
  for (const want of wants) {
    if (want.status === 'reading') want.status = 'want'
  }
}
