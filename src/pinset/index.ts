// The shared pinset: a Yjs Y.Map cid -> Pin, changed only through signed envelopes from trusted authors,
// persisted in level, spread by gossipsub and repaired by a catch-up stream (DESIGN §4).
import { join } from 'node:path'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { peerIdFromString } from '@libp2p/peer-id'
import * as Y from 'yjs'
import { InvalidParameterError, NotStartedError } from '../errors.js'
import { clusterSecret, SecretMismatchError, splitProof, withProof, type ClusterSecret } from '../secret.js'
import { cidKey, tryCidKey } from '../utils/cid.js'
import { readFrames, sendFrame } from '../utils/stream.js'
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import {
  checkpointSigningPayload, classifyFrame, decodeCheckpointHeader, decodeEnvelope, decodeGossip, decodeHave,
  decodeSyncRequest, decodeWant, encodeBody, encodeCheckpointBody, encodeCheckpointHeader, encodeChunk,
  encodeEnvelope, encodeHave, encodeNotice, encodeSyncRequest, encodeWant, signingPayload, MalformedMessageError,
  MAX_CHUNK_FRAME, MAX_CONTROL_FRAME, MAX_ENVELOPE_BYTES, type CheckpointHeader, type Envelope, type VersionVector
} from './protocol.js'
import { rescoreSoon } from '../libp2p/index.js'
import { decodePin, encodePin } from './codec.js'
import { applyState, type StateWriter } from './state.js'
import { RateLimiter, type RateInit } from './rate.js'
import { SyncSources } from './sources.js'
import { PinsetStore, SeqTracker, type StoredEnvelope } from './store.js'
import type { AbortOptions, CheckpointInfo, Pin, Pinset, PinsetChange, PinsetStats } from '../components.js'
import type { GossipSub } from '@libp2p/gossipsub'
import type { ComponentLogger, Libp2p, Logger, PeerId, PrivateKey, Stream, Connection } from '@libp2p/interface'

export interface PinsetInit {
  /** Cluster name: part of topic and protocol names and of every signed envelope. */
  cluster: string
  /** Folder for the level store. */
  dataDir: string
  /** Whether an author may change the pinset. This peer always trusts itself. */
  isTrusted: (peerId: string) => boolean
  /** Safety resync with connected peers (default 30 s). */
  syncIntervalMs?: number
  /** Most pins per envelope (default 1000). */
  maxPinsPerEnvelope?: number
  /** Envelopes larger than this are announced by a notice instead of gossiped (default 1 MiB). */
  maxGossipBytes?: number
  /** Write a snapshot of the document after this many envelopes applied since the last one (default 5000). */
  snapshotEvery?: number
  /** Limit for one catch-up (default 120 s). */
  syncTimeoutMs?: number
  /** This peer authors checkpoints (a trusted peer); followers only relay the ones they received. */
  isWriter?: () => boolean
  checkpoint?: {
    /** How often a trusted peer considers making a checkpoint (default 10 min). */
    intervalMs?: number
    /** ... and only when at least this many envelopes arrived since the last one (default 1000). */
    minEnvelopes?: number
    /** Envelopes kept per author below a checkpoint, for peers that are only a little behind (default 1000). */
    keepTail?: number
  }
  /** A requester missing more envelopes than this is sent a checkpoint instead (default 256). */
  checkpointThreshold?: number
  /** The cluster secret guarding gossip and catch-up (default: none). */
  secret?: ClusterSecret
  /** Take checkpoints from peers when far behind (default true; false replays every envelope). */
  acceptCheckpoints?: boolean
  /**
   * A stranger (a peer not trusted) is asked for catch-up at most this often (default 5 min), one stranger at a
   * time, and only when no trusted peer is connected or trusted peers left gaps.
   */
  strangerSyncIntervalMs?: number
  /** Envelope bytes one catch-up stream may bring; past it a new stream continues (default 256 MiB). */
  maxSyncBytes?: number
  /**
   * Gossip a sender may have accepted (relayed and acted on); the rest is dropped and fetched by catch-up when
   * real. Default: 2 notices a second with a burst of 20; 100 envelopes a second with a burst of 1000.
   */
  gossipRate?: { notices?: RateInit, envelopes?: RateInit }
}

export interface PinsetComponents {
  libp2p: Libp2p<{ pubsub: GossipSub }>
  privateKey: PrivateKey
  logger: ComponentLogger
}

export function pinsetTopic (cluster: string): string { return `cairn/${cluster}/pinset` }
// 1.1.0: the server offers (have), the requester chooses (want), and only what was chosen is sent
export function pinsetSyncProtocol (cluster: string): string { return `/cairn/${cluster}/pinset-sync/1.1.0` }

const LOCAL = Symbol('local')
/** Largest checkpoint state accepted (a 1M-pin state is ~200 MB). */
const MAX_CHECKPOINT_STATE = 2 ** 31 - 1
/** Changes of up to this many keys are reported in one event; larger ones in slices of this size. */
const SMALL_CHANGE = 10_000
/** Catch-up envelopes are verified as they come, and stored and applied in batches of this many, or bytes. */
const INGEST_BATCH = 500
const INGEST_BATCH_BYTES = 16 * 1024 * 1024
/** A writer starts a new envelope past this many bytes of pins, so envelopes stay well under MAX_ENVELOPE_BYTES. */
const ENVELOPE_TARGET_BYTES = 1024 * 1024
/** What an envelope holds besides its pins (cluster, author, seq, signature, Yjs framing) is far below this. */
const ENVELOPE_OVERHEAD = 16 * 1024
/** A rate-limited sender is asked for catch-up this long after (once), to fetch what its gossip did not bring. */
const CATCH_UP_DELAY_MS = 1000

/**
 * The number of entries of a Y.Map. Y.Map.size spreads every [key, item] pair into an array: at 1M pins,
 * counting once per checkpoint piece added ~200 MB to a joining follower's peak RSS (garbage the collector had
 * not reached yet). This walks the map's items (Yjs' `_map`, the key -> current item index) without allocating.
 */
function liveEntries<T> (map: Y.Map<T>): number {
  let n = 0
  for (const item of (map as unknown as { _map: Map<string, { deleted: boolean }> })._map.values()) if (!item.deleted) n++
  return n
}

function badCheckpoint (why: string): Error {
  const err = new MalformedMessageError(`bad checkpoint: ${why}`)
  err.name = 'BadCheckpointError'
  return err
}

/** A catch-up server sent what does not verify or was not asked for: it is not asked again for a while. */
function breachError (why: string): Error {
  const err = new MalformedMessageError(why)
  err.name = 'SyncBreachError'
  return err
}

function shuffle<T> (items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]]
  }
  return items
}
const REMOTE = Symbol('remote')

type Op = { type: 'put', pins: Pin[] } | { type: 'remove', cids: string[] }
/** One key of a local change: a pin's encoded value, or undefined to remove it. */
interface Item { key: string, value?: string, bytes: number }
interface PendingOp { op: Op, resolve: () => void, reject: (err: Error) => void }

export function createPinset (init: PinsetInit, components: PinsetComponents): Pinset {
  return new YjsPinset(init, components)
}

class YjsPinset implements Pinset {
  private readonly log: Logger
  private readonly self: string
  private readonly topic: string
  private readonly protocol: string
  private readonly store: PinsetStore
  private readonly seqs = new SeqTracker()
  private readonly listeners = new Set<(change: PinsetChange) => void>()
  private doc = new Y.Doc()
  private map = this.doc.getMap<string>('pins')
  private pending: PendingOp[] = []
  /** While set, local changes are collected here instead of told to listeners (transactLocal). */
  private held?: PinsetChange[]
  /**
   * The document update of commits whose envelopes could not be stored, with the update that undid them: in the
   * document, not in any envelope. The next envelope carries it, so that peers get every local change in order.
   */
  private unsaved?: Uint8Array
  private flushing = false
  private flushScheduled = false
  private started = false
  private sinceSnapshot = 0
  private count = 0
  private rejected = new Map<string, number>()
  private duplicates = 0
  private envelopesApplied = 0
  private checkpointsLoaded = 0
  private checkpointsMade = 0
  private lastCheckpoint?: CheckpointHeader
  private sinceCheckpoint = 0
  private checkpointTimer?: NodeJS.Timeout
  private compacted = new Map<string, number>()
  /** Peers that served a bad checkpoint: their checkpoints are refused for a while. */
  private readonly badCheckpointFrom = new Map<string, number>()
  private syncBytesIn = 0
  private syncBytesOut = 0
  private readonly syncing = new Map<string, Promise<number>>()
  private readonly sources: SyncSources
  private readonly noticeRate: RateLimiter
  private readonly envelopeRate: RateLimiter
  /** Senders over their gossip rate, to be asked for catch-up shortly. */
  private readonly catchUpSoon = new Map<string, NodeJS.Timeout>()
  private round?: Promise<void>
  private snapshotting?: Promise<void>
  private checkpointing?: Promise<CheckpointInfo | undefined>
  private syncTimer?: NodeJS.Timeout
  private readonly shutdown = new AbortController()
  private readonly secret: ClusterSecret
  private readonly onMessage = (evt: CustomEvent<{ topic: string, data: Uint8Array }>): void => {
    if (evt.detail.topic !== this.topic) return
    void this.handleGossip(evt.detail.data, (evt.detail as { from?: PeerId }).from?.toString())
  }

  private readonly onIdentify = (evt: CustomEvent<{ peerId: PeerId, protocols: string[] }>): void => {
    if (evt.detail.protocols.includes(this.protocol)) this.syncInBackground(evt.detail.peerId.toString())
  }

  /** Whether an author's envelopes (or a peer's word as a trusted source) count here. */
  private trusts (peerId: string): boolean {
    return peerId === this.self || this.init.isTrusted(peerId)
  }

  constructor (private readonly init: PinsetInit, private readonly components: PinsetComponents) {
    this.log = components.logger.forComponent('cairn:pinset')
    this.self = components.libp2p.peerId.toString()
    this.topic = pinsetTopic(init.cluster)
    this.protocol = pinsetSyncProtocol(init.cluster)
    this.store = new PinsetStore(join(init.dataDir, 'pinset'))
    this.secret = init.secret ?? clusterSecret('')
    this.sources = new SyncSources({ strangerIntervalMs: init.strangerSyncIntervalMs })
    this.noticeRate = new RateLimiter(init.gossipRate?.notices ?? { perSecond: 2, burst: 20 })
    this.envelopeRate = new RateLimiter(init.gossipRate?.envelopes ?? { perSecond: 100, burst: 1000 })
  }

  // ----- lifecycle

  async start (): Promise<void> {
    await this.store.open()
    await this.load()
    this.count = liveEntries(this.map)
    this.map.observe((event, txn) => {
      const local = txn.origin === LOCAL
      const keys = event.keysChanged
      if (keys.size <= SMALL_CHANGE) {
        const added: Pin[] = []
        const removed: string[] = []
        for (const [key, change] of event.changes.keys) {
          if (change.action === 'add') this.count++
          else if (change.action === 'delete') this.count--
          if (change.action === 'delete') removed.push(key)
          else {
            const value = this.map.get(key)
            if (value != null) added.push(decodePin(value, key))
          }
        }
        this.emit({ added, removed, local })
        return
      }
      // A checkpoint or a large catch-up: Yjs' per-key change list and a Pin object for every key at once took
      // gigabytes for 1M pins. Count again (one walk of the map), and hand the pins over in slices.
      this.count = liveEntries(this.map)
      let added: Pin[] = []
      let removed: string[] = []
      for (const key of keys) {
        const value = this.map.get(key)
        if (value == null) removed.push(key)
        else added.push(decodePin(value, key))
        if (added.length + removed.length >= SMALL_CHANGE) {
          this.emit({ added, removed, local })
          added = []
          removed = []
        }
      }
      this.emit({ added, removed, local })
    })

    const { libp2p } = this.components
    const pubsub = libp2p.services.pubsub
    pubsub.topicValidators.set(this.topic, async (from, msg) => {
      const source = from.toString()
      const result = await this.validateGossip(msg.data, msg.type === 'signed' ? msg.from.toString() : undefined, source)
      if (result === TopicValidatorResult.Reject) rescoreSoon(pubsub, source)
      return result
    })
    pubsub.addEventListener('message', this.onMessage)
    pubsub.subscribe(this.topic)
    await libp2p.handle(this.protocol, (stream, connection) => { void this.serveSync(stream, connection) }, {
      maxInboundStreams: 16, maxOutboundStreams: 16
    })
    libp2p.addEventListener('peer:identify', this.onIdentify)
    this.syncTimer = setInterval(() => { this.periodicSync() }, this.init.syncIntervalMs ?? 30_000)
    this.syncTimer.unref()
    {
      this.checkpointTimer = setInterval(() => {
        if (this.init.isWriter?.() === true && this.sinceCheckpoint >= (this.init.checkpoint?.minEnvelopes ?? 1000)) {
          this.checkpoint().catch(err => { this.log.error('making a checkpoint failed: %e', err) })
        }
      }, this.init.checkpoint?.intervalMs ?? 600_000)
      this.checkpointTimer.unref()
    }
    this.started = true
    this.periodicSync()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    this.shutdown.abort()
    clearInterval(this.syncTimer)
    clearInterval(this.checkpointTimer)
    const { libp2p } = this.components
    libp2p.removeEventListener('peer:identify', this.onIdentify)
    const pubsub = libp2p.services.pubsub
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.topicValidators.delete(this.topic)
    try { pubsub.unsubscribe(this.topic) } catch {}
    await libp2p.unhandle(this.protocol).catch(() => {})
    for (const timer of this.catchUpSoon.values()) clearTimeout(timer)
    this.catchUpSoon.clear()
    await this.waitForFlush()
    // catch-ups and a checkpoint see the shutdown signal; a snapshot under way is waited for by writeSnapshot
    await Promise.allSettled([...this.syncing.values(), this.round, this.checkpointing])
    try {
      await this.writeSnapshot()
    } catch (err) {
      this.log.error('writing the pinset snapshot at stop failed (the log is replayed at start instead): %e', err)
    } finally {
      await this.store.close()
      this.doc.destroy()
    }
  }

  /** Loads the snapshot, then applies the logged envelopes it does not cover. */
  private async load (): Promise<void> {
    const snapshot = await this.store.getSnapshot()
    if (snapshot != null) await applyState(this.doc, snapshot.source, REMOTE)
    this.compacted = await this.store.compacted()
    const header = await this.store.getCheckpointHeader()
    if (header != null) {
      this.lastCheckpoint = decodeCheckpointHeader(header)
      const cpvv = this.lastCheckpoint.vv
      // Only when the snapshot does not already contain it (a crash after receiving a checkpoint).
      if (Object.entries(cpvv).some(([a, n]) => (snapshot?.vv[a] ?? 0) < n)) {
        const cp = await this.store.getCheckpoint()
        if (cp != null) await applyState(this.doc, cp.source, REMOTE)
      }
      for (const [a, n] of Object.entries(cpvv)) this.seqs.cover(a, n)
    }
    for (const [a, n] of this.compacted) this.seqs.cover(a, n)
    for await (const { author, seq } of this.store.keys()) this.seqs.add(author, seq)
    let applied = 0
    for (const author of await this.store.authors()) {
      let batch: Uint8Array[] = []
      const flush = (): void => {
        this.doc.transact(() => { for (const u of batch) this.applyUpdateSafely(u) }, REMOTE)
        applied += batch.length
        batch = []
      }
      for await (const { bytes } of this.store.envelopesAfter(author, snapshot?.vv[author] ?? 0)) {
        batch.push(decodeEnvelope(bytes).update)
        if (batch.length >= 1000) flush()
      }
      flush()
    }
    this.sinceSnapshot = applied
    this.log('loaded %d pins, %d envelopes (%d replayed after the snapshot)', liveEntries(this.map), this.seqs.count(), applied)
  }

  /** Writes a snapshot after the one under way, if any: one at a time, and stop() waits for it. */
  private async writeSnapshot (): Promise<void> {
    while (this.snapshotting != null) await this.snapshotting.catch(() => {})
    // a snapshot holding changes no stored envelope has would hide them from peers after a restart
    if (this.sinceSnapshot === 0 || this.unsaved != null || this.store.refusal() != null) return
    const p = this.snapshot().finally(() => { this.snapshotting = undefined })
    this.snapshotting = p
    await p
  }

  private async snapshot (): Promise<void> {
    // The vector is the contiguous prefix: envelopes above a gap are replayed again at load, which is harmless.
    const state = await this.store.createState('snapshot')
    try {
      // the state and the vector it covers, taken in the same tick
      state.writeDoc(this.doc)
      const vv = this.seqs.versionVector()
      this.sinceSnapshot = 0
      await state.finish()
      await this.store.adoptSnapshot(state, vv)
    } catch (err) {
      await this.store.discard(state)
      throw err
    }
  }

  private async maybeSnapshot (): Promise<void> {
    if (this.snapshotting == null && this.sinceSnapshot >= (this.init.snapshotEvery ?? 5000)) {
      await this.writeSnapshot().catch(err => { this.log.error('writing the pinset snapshot failed: %e', err) })
    }
  }

  // ----- reads

  // Keys are CIDv1 base32 (cidKey); callers may pass any form of a CID.
  get (cid: string): Pin | undefined {
    const key = tryCidKey(cid)
    const value = key == null ? undefined : this.map.get(key)
    return value == null ? undefined : decodePin(value, key!)
  }

  has (cid: string): boolean {
    const key = tryCidKey(cid)
    return key != null && this.map.has(key)
  }

  // Y.Map.size walks every entry; the observer keeps a count instead.
  size (): number { return this.count }

  * list (): IterableIterator<Pin> {
    for (const [key, value] of this.map.entries()) yield decodePin(value, key)
  }
  versionVector (): VersionVector { return this.seqs.versionVector() }

  stats (): PinsetStats {
    let rejected = 0
    for (const n of this.rejected.values()) rejected += n
    return {
      pins: this.count,
      envelopes: this.seqs.count(),
      envelopes_rejected: rejected,
      rejected_by_reason: Object.fromEntries(this.rejected),
      envelopes_duplicate: this.duplicates,
      envelopes_applied: this.envelopesApplied,
      checkpoints_loaded: this.checkpointsLoaded,
      checkpoints_made: this.checkpointsMade,
      sync_bytes_in: this.syncBytesIn,
      sync_bytes_out: this.syncBytesOut,
      checkpoint: this.lastCheckpoint == null
        ? undefined
        : { author: this.lastCheckpoint.author, created: new Date(this.lastCheckpoint.created).toISOString(), version_vector: this.lastCheckpoint.vv, bytes: this.lastCheckpoint.stateLength }
    }
  }

  onChange (listener: (change: PinsetChange) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  private emit (change: PinsetChange): void {
    if (change.added.length === 0 && change.removed.length === 0) return
    // a commit tells its changes once their envelopes are stored
    if (change.local && this.held != null) {
      this.held.push(change)
      return
    }
    for (const l of this.listeners) {
      try { l(change) } catch (err) { this.log.error('pinset listener failed: %e', err) }
    }
  }

  // ----- local writes: group commit, one signed envelope per batch, fsynced before callers resolve

  async put (pins: Pin[], options?: AbortOptions): Promise<void> {
    await this.enqueue({ type: 'put', pins }, options)
  }

  async remove (cids: string[], options?: AbortOptions): Promise<void> {
    await this.enqueue({ type: 'remove', cids }, options)
  }

  private async enqueue (op: Op, options?: AbortOptions): Promise<void> {
    if (!this.started) throw new NotStartedError('the pinset is not started')
    options?.signal?.throwIfAborted()
    await new Promise<void>((resolve, reject) => {
      this.pending.push({ op, resolve, reject })
      this.scheduleFlush()
    })
  }

  private scheduleFlush (): void {
    if (this.flushing || this.flushScheduled) return
    this.flushScheduled = true
    setImmediate(() => { void this.flush() })
  }

  private takeBatch (): PendingOp[] {
    const max = this.init.maxPinsPerEnvelope ?? 1000
    let n = 0
    let i = 0
    while (i < this.pending.length && (i === 0 || n < max)) {
      const op = this.pending[i].op
      n += op.type === 'put' ? op.pins.length : op.cids.length
      i++
    }
    return this.pending.splice(0, i)
  }

  private async flush (): Promise<void> {
    this.flushScheduled = false
    this.flushing = true
    try {
      while (this.pending.length > 0) {
        // an operation that cannot be written (a pin too big for an envelope) fails alone, not its batch
        const batch: Array<PendingOp & { items: Item[] }> = []
        for (const p of this.takeBatch()) {
          try {
            batch.push({ ...p, items: this.itemsOf(p.op) })
          } catch (err) {
            p.reject(err as Error)
          }
        }
        if (batch.length === 0) continue
        try {
          await this.commit(batch.map(p => p.items))
          for (const p of batch) p.resolve()
        } catch (err) {
          this.log.error('committing %d pinset operations failed: %e', batch.length, err)
          for (const p of batch) p.reject(err as Error)
        }
      }
    } finally {
      this.flushing = false
      if (this.pending.length > 0) this.scheduleFlush()
    }
  }

  private async waitForFlush (): Promise<void> {
    while (this.flushing || this.flushScheduled || this.pending.length > 0) {
      await new Promise(resolve => setTimeout(resolve, 5))
    }
  }

  /**
   * Signs the batch's keys as envelopes of at most maxPinsPerEnvelope pins and about ENVELOPE_TARGET_BYTES each
   * (a big operation, such as moving every pin of a lost peer, becomes several: an envelope must fit a catch-up
   * frame), stores them in one fsynced write, then gossips them.
   */
  private async commit (ops: Item[][]): Promise<void> {
    // the store takes no more writes (one failed: the disk filled): refused before the document changes
    const refused = this.store.refusal()
    if (refused != null) throw refused
    // each changed key's value before and after, to put back if the envelopes cannot be stored
    const before = new Map<string, string | undefined>()
    const after = new Map<string, string | undefined>()
    const envelopes: StoredEnvelope[] = []
    const updates: Uint8Array[] = []
    const changes: PinsetChange[] = []
    // After a lost data dir, our own older envelopes come back through catch-up: never reuse their seqs.
    let seq = this.seqs.max(this.self)
    for (const slice of this.slices(ops)) {
      const applied = this.transactLocal(() => {
        for (const item of slice) {
          if (!before.has(item.key)) before.set(item.key, this.map.get(item.key))
          if (item.value != null) this.map.set(item.key, item.value)
          else this.map.delete(item.key)
          after.set(item.key, item.value)
        }
      })
      if (applied.update == null) continue // nothing changed (e.g. removing what is not there)
      changes.push(...applied.changes)
      // the first envelope also carries what earlier refused commits left in the document
      const update = updates.length === 0 && this.unsaved != null ? Y.mergeUpdates([this.unsaved, applied.update]) : applied.update
      updates.push(update)
      seq++
      const body = encodeBody(this.init.cluster, this.self, seq, update)
      const signature = await this.components.privateKey.sign(signingPayload(body))
      envelopes.push({ author: this.self, seq, bytes: encodeEnvelope(body, signature) })
    }
    if (envelopes.length === 0) return
    try {
      await this.store.putEnvelopes(envelopes, true)
    } catch (err) {
      // Refused callers must not see their change: it is undone, as a local change too (a key a peer changed
      // meanwhile keeps the peer's value), and listeners are told of neither. Both stay in the document.
      const undo = this.transactLocal(() => {
        for (const [key, value] of before) {
          if (this.map.get(key) !== after.get(key)) continue
          if (value == null) this.map.delete(key)
          else this.map.set(key, value)
        }
      })
      this.unsaved = Y.mergeUpdates(undo.update != null ? [...updates, undo.update] : updates)
      throw err
    }
    this.unsaved = undefined
    for (const e of envelopes) this.seqs.add(this.self, e.seq)
    this.sinceSnapshot += envelopes.length
    this.sinceCheckpoint += envelopes.length
    for (const change of changes) this.emit(change)
    void this.maybeSnapshot()
    for (const { seq, bytes } of envelopes) {
      const message = bytes.length <= (this.init.maxGossipBytes ?? 1024 * 1024) ? bytes : encodeNotice({ author: this.self, seq })
      this.components.libp2p.services.pubsub.publish(this.topic, this.secret.seal(message)).catch(err => {
        this.log('publishing envelope %d failed (peers will catch up): %e', seq, err)
      })
    }
  }

  /** An operation's keys with their encoded pins; refuses a pin too big for an envelope of its own. */
  private itemsOf (op: Op): Item[] {
    if (op.type === 'remove') return op.cids.map(cid => { const key = cidKey(cid); return { key, bytes: key.length + 8 } })
    return op.pins.map(pin => {
      const key = cidKey(pin.cid)
      const value = encodePin(pin, key)
      const bytes = key.length + Buffer.byteLength(value) + 8
      if (bytes > MAX_ENVELOPE_BYTES - ENVELOPE_OVERHEAD) {
        throw new InvalidParameterError(`the pin of ${pin.cid} takes ${bytes} bytes in the pinset; at most ${MAX_ENVELOPE_BYTES - ENVELOPE_OVERHEAD} fit (its name and metadata are too large)`)
      }
      return { key, value, bytes }
    })
  }

  /** The batch's keys in order, cut into envelope-sized slices. */
  private slices (ops: Item[][]): Item[][] {
    const maxPins = this.init.maxPinsPerEnvelope ?? 1000
    const target = Math.min(this.init.maxGossipBytes ?? ENVELOPE_TARGET_BYTES, ENVELOPE_TARGET_BYTES)
    const out: Item[][] = []
    let slice: Item[] = []
    let bytes = 0
    for (const items of ops) {
      for (const item of items) {
        if (slice.length > 0 && (slice.length >= maxPins || bytes + item.bytes > target)) {
          out.push(slice)
          slice = []
          bytes = 0
        }
        slice.push(item)
        bytes += item.bytes
      }
    }
    if (slice.length > 0) out.push(slice)
    return out
  }

  /**
   * Runs `fn` as a local transaction. Returns its document update (undefined when nothing changed) and the
   * changes it made, which listeners are not told of yet.
   */
  private transactLocal (fn: () => void): { update?: Uint8Array, changes: PinsetChange[] } {
    const updates: Uint8Array[] = []
    const onUpdate = (update: Uint8Array, origin: unknown): void => { if (origin === LOCAL) updates.push(update) }
    const changes: PinsetChange[] = []
    this.doc.on('update', onUpdate)
    this.held = changes
    try {
      this.doc.transact(fn, LOCAL)
    } finally {
      this.doc.off('update', onUpdate)
      this.held = undefined
    }
    return { update: updates.length === 0 ? undefined : updates.length === 1 ? updates[0] : Y.mergeUpdates(updates), changes }
  }


  // ----- remote envelopes

  private reject (reason: string, detail: string): void {
    const n = (this.rejected.get(reason) ?? 0) + 1
    this.rejected.set(reason, n)
    if (n === 1) this.log.error('dropped a pinset envelope (%s): %s; further ones are only counted', reason, detail)
  }

  /** Checks an envelope: cluster, trusted author, signature. Returns why it is rejected, or undefined. */
  private async check (env: Envelope): Promise<string | undefined> {
    return this.precheck(env) ?? await this.checkSignature(env)
  }

  /** The cheap part of check(): cluster and trusted author. */
  private precheck (env: Envelope): string | undefined {
    if (env.cluster !== this.init.cluster) return 'cluster'
    if (!this.trusts(env.author)) return 'untrusted'
    return undefined
  }

  private async checkSignature (env: Envelope): Promise<string | undefined> {
    let key
    try { key = peerIdFromString(env.author).publicKey } catch {}
    if (key == null) return 'malformed'
    if (!(await key.verify(signingPayload(env.body), env.signature))) return 'signature'
    return undefined
  }

  /**
   * Gossipsub's topic validator: it runs before a message is relayed. Reject (what no honest peer sends) lowers
   * the score of the peer it came from (`source`), so that a flooding peer is soon not read at all (src/libp2p,
   * topic score params); Ignore drops without blame: duplicates, and envelopes over a sender's rate, fetched by
   * catch-up when they are real.
   */
  private async validateGossip (sealed: Uint8Array, publisher?: string, source?: string): Promise<TopicValidatorResult> {
    let data: Uint8Array
    try {
      data = this.secret.open(sealed)
    } catch (err) {
      this.reject('secret', (err as Error).message)
      return TopicValidatorResult.Reject
    }
    try {
      const msg = decodeGossip(data)
      if (msg.type === 'notice') {
        // a notice makes every peer that gets it pull from its publisher: only a trusted author announces its own
        const { author, seq } = msg.notice
        if (!this.trusts(author)) { this.reject('untrusted', `notice of ${author} seq ${seq}`); return TopicValidatorResult.Reject }
        if (publisher !== author) { this.reject('sender', `${publisher ?? 'an unsigned message'} published a notice of ${author} seq ${seq}`); return TopicValidatorResult.Reject }
        if (this.seqs.has(author, seq)) { this.duplicates++; return TopicValidatorResult.Ignore }
        if (!this.noticeRate.take(author)) {
          // An honest peer gives notice only of an envelope over 1 MiB (one pin that large): past a burst of them
          // it floods, and is blamed when it sends them itself. A peer relaying them is not: its own bucket of
          // this author's notices may just have refilled a moment before ours.
          return this.overRate(author, `notice of seq ${seq}`, source === author ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore)
        }
        return TopicValidatorResult.Accept
      }
      const env = msg.envelope
      if (this.seqs.has(env.author, env.seq)) { this.duplicates++; return TopicValidatorResult.Ignore }
      const why = this.precheck(env)
      if (why == null && publisher != null && !this.envelopeRate.take(publisher)) {
        // honest writers burst during a large ingest: never blamed
        return this.overRate(publisher, `envelope ${env.author} seq ${env.seq}`, TopicValidatorResult.Ignore)
      }
      const bad = why ?? await this.checkSignature(env)
      if (bad == null) return TopicValidatorResult.Accept
      this.reject(bad, `author ${env.author} seq ${env.seq}`)
      return TopicValidatorResult.Reject
    } catch (err) {
      this.reject('malformed', (err as Error).message)
      return TopicValidatorResult.Reject
    }
  }

  /** A sender over its gossip rate: dropped (`result`), and asked for catch-up once it had a moment. */
  private overRate (sender: string, what: string, result: TopicValidatorResult): TopicValidatorResult {
    this.reject('rate', `${sender} sent more gossip than its rate (${what})`)
    if (this.started && !this.catchUpSoon.has(sender)) {
      const timer = setTimeout(() => {
        this.catchUpSoon.delete(sender)
        this.syncInBackground(sender)
      }, CATCH_UP_DELAY_MS)
      timer.unref()
      this.catchUpSoon.set(sender, timer)
    }
    return result
  }

  private async handleGossip (sealed: Uint8Array, from?: string): Promise<void> {
    try {
      const msg = decodeGossip(this.secret.open(sealed))
      if (msg.type === 'notice') {
        if (!this.seqs.has(msg.notice.author, msg.notice.seq) && from != null) this.syncInBackground(from)
        return
      }
      const env = msg.envelope
      await this.ingest([env], { verified: true })
      if (this.seqs.hasGaps(env.author) && from != null) this.syncInBackground(from)
    } catch (err) {
      this.log.error('handling a gossip message failed: %e', err)
    }
  }

  /** Verifies (unless already done), stores and applies envelopes; returns how many were new. */
  private async ingest (envelopes: Envelope[], options: { verified?: boolean } = {}): Promise<number> {
    const fresh: Envelope[] = []
    const seen = new Set<string>()
    for (const env of envelopes) {
      const id = `${env.author}/${env.seq}`
      if (this.seqs.has(env.author, env.seq) || seen.has(id)) continue
      if (options.verified !== true) {
        const why = await this.check(env)
        if (why != null) { this.reject(why, `author ${env.author} seq ${env.seq}`); continue }
      }
      seen.add(id)
      fresh.push(env)
    }
    if (fresh.length === 0 || !this.started) return 0
    // the store takes no writes (the disk filled): a catch-up after the restart brings them
    if (this.store.refusal() != null) return 0
    await this.store.putEnvelopes(fresh.map(e => ({ author: e.author, seq: e.seq, bytes: encodeEnvelope(e.body, e.signature) })), false)
    let applied = 0
    this.doc.transact(() => {
      for (const env of fresh) {
        if (!this.seqs.add(env.author, env.seq)) continue // a concurrent ingest got it first
        this.applyUpdateSafely(env.update)
        applied++
      }
    }, REMOTE)
    this.sinceSnapshot += applied
    this.sinceCheckpoint += applied
    this.envelopesApplied += applied
    void this.maybeSnapshot()
    return applied
  }

  private applyUpdateSafely (update: Uint8Array): void {
    try {
      Y.applyUpdate(this.doc, update, REMOTE)
    } catch (err) {
      this.reject('malformed', `bad yjs update: ${(err as Error).message}`)
    }
  }

  // ----- catch-up

  /**
   * Signs a snapshot of the whole document with the version vector it covers, then compacts the log. One at a
   * time; stop() waits for it; the signal (and stop) end it between its steps.
   */
  async checkpoint (options: AbortOptions = {}): Promise<CheckpointInfo | undefined> {
    options.signal?.throwIfAborted()
    while (this.checkpointing != null) await this.checkpointing.catch(() => {})
    if (this.init.isWriter?.() !== true || !this.started) return undefined
    const signal = AbortSignal.any([this.shutdown.signal, ...(options.signal != null ? [options.signal] : [])])
    const p = this.makeCheckpoint(signal).finally(() => { this.checkpointing = undefined })
    this.checkpointing = p
    return await p
  }

  private async makeCheckpoint (signal: AbortSignal): Promise<CheckpointInfo> {
    const state = await this.store.createState('checkpoint')
    let bytes: Uint8Array
    let vv: VersionVector
    let length: number
    try {
      // the state and the vector it covers, taken in the same tick
      state.writeDoc(this.doc)
      vv = this.seqs.versionVector()
      signal.throwIfAborted()
      const written = await state.finish()
      signal.throwIfAborted()
      length = written.length
      const body = encodeCheckpointBody({
        cluster: this.init.cluster, author: this.self, created: Date.now(), vv, stateLength: length, stateHash: written.hash
      })
      bytes = encodeCheckpointHeader(body, await this.components.privateKey.sign(checkpointSigningPayload(body)))
      signal.throwIfAborted()
      await this.store.adoptCheckpoint(state, bytes)
    } catch (err) {
      await this.store.discard(state)
      throw err
    }
    this.lastCheckpoint = decodeCheckpointHeader(bytes)
    this.sinceCheckpoint = 0
    this.checkpointsMade++
    // compacting later is harmless: the next checkpoint does it
    if (!signal.aborted) await this.compact(vv)
    this.log('checkpoint of %d pins (%d bytes) covering %o', this.count, length, vv)
    return { author: this.self, created: new Date(this.lastCheckpoint.created).toISOString(), version_vector: vv, bytes: length }
  }

  /** Drops envelopes a checkpoint covers, keeping a tail for peers that are only a little behind. */
  private async compact (vv: VersionVector): Promise<void> {
    const keep = this.init.checkpoint?.keepTail ?? 1000
    for (const [author, n] of Object.entries(vv)) {
      const through = n - keep
      if (through <= (this.compacted.get(author) ?? 0)) continue
      await this.store.compact(author, through)
      this.compacted.set(author, through)
    }
  }

  /** Whether to answer a catch-up request with the checkpoint first. */
  private shouldSendCheckpoint (req: VersionVector, accept: boolean): boolean {
    const cp = this.lastCheckpoint
    if (!accept || cp == null) return false
    if (!Object.entries(cp.vv).some(([a, n]) => (req[a] ?? 0) < n)) return false
    // We no longer hold envelopes the requester needs: only the checkpoint can bring it up to date.
    for (const [a, n] of this.compacted) if ((req[a] ?? 0) < n) return true
    let missing = 0
    for (const a of this.seqs.authors()) missing += Math.max(0, this.seqs.max(a) - (req[a] ?? 0))
    return missing > (this.init.checkpointThreshold ?? 256)
  }

  /** What this peer would send of each author: its highest seq (held, or covered by its checkpoint). */
  private haveVector (): VersionVector {
    return Object.fromEntries(this.seqs.authors().map(a => [a, this.seqs.max(a)]))
  }

  /** Serves catch-up: request, offer (have and maybe a checkpoint header), choice (want), then what was chosen. */
  private async serveSync (stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.init.syncTimeoutMs ?? 120_000)])
    try {
      const remote = connection.remotePeer.toString()
      const frames = readFrames(stream, { signal, maxDataLength: MAX_CONTROL_FRAME })[Symbol.asyncIterator]()
      const first = await frames.next()
      if (first.done === true) throw new Error('stream ended before a request was received')
      const { proof, rest } = splitProof(this.secret, first.value)
      if (!this.secret.verify(proof, this.protocol, remote, this.self)) {
        this.reject('secret', `catch-up request from ${remote} without the cluster secret`)
        stream.abort(new Error('cluster secret proof failed'))
        return
      }
      if (this.secret.enabled) await sendFrame(stream, this.secret.proof(this.protocol, this.self, remote), { signal })
      const req = decodeSyncRequest(rest)
      const have = this.haveVector()
      const cp = this.shouldSendCheckpoint(req.vv, req.acceptCheckpoint) ? await this.store.openCheckpoint() : undefined
      let from: VersionVector
      let sentCheckpoint = false
      try {
        await sendFrame(stream, encodeHave({ vv: have, checkpoint: cp != null }), { signal })
        if (cp != null) await sendFrame(stream, cp.header, { signal })
        const choice = await frames.next()
        if (choice.done === true) {
          // the requester needs nothing of ours
          await stream.close({ signal })
          return
        }
        const want = decodeWant(choice.value)
        from = want.vv
        if (cp != null && want.checkpoint) {
          this.syncBytesOut += cp.header.length + cp.length
          for await (const chunk of cp.chunks) await sendFrame(stream, encodeChunk(chunk), { signal })
          for (const [a, n] of Object.entries(decodeCheckpointHeader(cp.header).vv)) if (a in from) from[a] = Math.max(from[a], n)
          sentCheckpoint = true
        }
      } finally {
        cp?.close()
      }
      let sent = 0
      for (const [author, after] of Object.entries(from)) {
        // only what was offered: the requester drops a server that sends more
        const upTo = have[author] ?? 0
        if (after >= upTo) continue
        for await (const env of this.store.envelopesAfter(author, after)) {
          if (env.seq > upTo) break
          // one written before envelopes were split (a batch of any size was one envelope) would get this peer
          // dropped as a server: the requester is left a gap, which a checkpoint fills
          if (env.bytes.length > MAX_ENVELOPE_BYTES) {
            this.log('not serving envelope %s seq %d of %d bytes (over %d)', author, env.seq, env.bytes.length, MAX_ENVELOPE_BYTES)
            continue
          }
          await sendFrame(stream, env.bytes, { signal })
          this.syncBytesOut += env.bytes.length
          sent++
        }
      }
      await stream.close({ signal })
      this.log('served %s%d envelopes to %p', sentCheckpoint ? 'a checkpoint and ' : '', sent, connection.remotePeer)
    } catch (err) {
      this.log('serving catch-up to %p failed: %e', connection.remotePeer, err)
      stream.abort(err as Error)
    }
  }

  /** Catches up from one peer now (unless it misbehaved lately); returns how many envelopes were applied. */
  async syncWith (peerId: string, options: AbortOptions = {}): Promise<number> {
    if (this.sources.isBanned(peerId)) {
      this.log('not asking %s for catch-up: it sent what does not verify or was not asked for, lately', peerId)
      return 0
    }
    const running = this.syncing.get(peerId)
    if (running != null) return await running
    const p = this.doSync(peerId, options).finally(() => this.syncing.delete(peerId))
    this.syncing.set(peerId, p)
    return await p
  }

  private async doSync (peerId: string, options: AbortOptions): Promise<number> {
    let total = 0
    for (;;) {
      const checkpoints = (this.badCheckpointFrom.get(peerId) ?? 0) <= Date.now() && this.init.acceptCheckpoints !== false
      let pulled
      try {
        pulled = await this.pull(peerId, checkpoints, options)
      } catch (err) {
        if ((err as Error).name === 'SyncBreachError') this.sources.ban(peerId)
        if ((err as Error).name !== 'BadCheckpointError') throw err
        // a signed checkpoint whose state is cut short or corrupt: a trusted peer's disk may be at fault, so its
        // envelopes (verified one by one) are still taken; a stranger's word is not
        if (!this.trusts(peerId)) { this.sources.ban(peerId); throw err }
        this.badCheckpointFrom.set(peerId, Date.now() + 10 * 60_000)
        continue
      }
      total += pulled.applied
      // a stream that reached the byte limit with progress: the next one continues
      if (!pulled.more || pulled.applied === 0 || !this.started) return total
    }
  }

  /** A catch-up frame error, counted, that drops the server for a while (doSync bans it). */
  private breach (peerId: string, reason: string, detail: string): Error {
    this.reject(reason, `catch-up from ${peerId}: ${detail}`)
    return breachError(`catch-up from ${peerId}: ${detail}`)
  }

  /**
   * One catch-up stream: request (our vector), the server's offer, our choice (trusted authors it has more of, and
   * maybe its checkpoint), then exactly that. Every envelope is verified as it comes; the first one that does not
   * verify or was not chosen ends the stream. Frames are refused from their length prefix past the size of their
   * kind; at most maxSyncBytes of envelopes come in one stream (`more`: a new stream continues).
   */
  private async pull (peerId: string, acceptCheckpoint: boolean, options: AbortOptions): Promise<{ applied: number, more: boolean }> {
    const signal = AbortSignal.any([
      this.shutdown.signal, AbortSignal.timeout(this.init.syncTimeoutMs ?? 120_000),
      ...(options.signal != null ? [options.signal] : [])
    ])
    const stream = await this.components.libp2p.dialProtocol(peerIdFromString(peerId), this.protocol, { signal })
    let limit = MAX_CONTROL_FRAME
    const frames = readFrames(stream, { signal, maxDataLength: () => limit })[Symbol.asyncIterator]()
    const next = async (): Promise<Uint8Array | undefined> => {
      let r
      try {
        r = await frames.next()
      } catch (err) {
        if ((err as Error).name === 'FrameTooLongError') throw this.breach(peerId, 'frame', (err as Error).message)
        throw err
      }
      if (r.done === true) return undefined
      this.syncBytesIn += r.value.length
      return r.value
    }
    let applied = 0
    let more = false
    let batch: Envelope[] = []
    // a checkpoint's state is written to a file as it arrives, then checked, then applied piece by piece
    let checkpoint: { header: CheckpointHeader, state: StateWriter } | undefined
    try {
      const ours = this.seqs.versionVector()
      await sendFrame(stream, withProof(this.secret.proof(this.protocol, this.self, peerId), encodeSyncRequest({ vv: ours, acceptCheckpoint })), { signal })
      if (this.secret.enabled) {
        const proof = await next()
        if (proof == null || !this.secret.verify(proof, this.protocol, peerId, this.self)) {
          this.reject('secret', `catch-up answer from ${peerId} without the cluster secret`)
          throw new SecretMismatchError(`peer ${peerId} did not prove the cluster secret`)
        }
      }
      const offer = await next()
      if (offer == null) return { applied, more }
      let have
      try { have = decodeHave(offer) } catch (err) { throw this.breach(peerId, 'malformed', `its offer: ${(err as Error).message}`) }
      let header: CheckpointHeader | undefined
      if (have.checkpoint) {
        const frame = await next()
        if (frame == null) return { applied, more }
        header = await this.offeredCheckpoint(frame, peerId, ours, acceptCheckpoint)
      }
      // what to take: trusted authors the server has more of, after its checkpoint if we take that
      const base: VersionVector = { ...ours }
      if (header != null) for (const [a, n] of Object.entries(header.vv)) base[a] = Math.max(base[a] ?? 0, n)
      const want: VersionVector = {}
      const upTo = new Map<string, number>()
      for (const [author, n] of Object.entries(have.vv)) {
        const after = base[author] ?? 0
        if (n > after && this.trusts(author)) { want[author] = after; upTo.set(author, n) }
      }
      if (header == null && upTo.size === 0) {
        await stream.close({ signal })
        return { applied, more }
      }
      await sendFrame(stream, encodeWant({ vv: want, checkpoint: header != null }), { signal })
      await stream.close({ signal })
      limit = MAX_ENVELOPE_BYTES
      if (header != null) {
        checkpoint = { header, state: await this.store.createState('checkpoint') }
        limit = MAX_CHUNK_FRAME
      }
      const last = new Map<string, number>()
      let batchBytes = 0
      let total = 0
      for (;;) {
        if (checkpoint != null && checkpoint.state.bytes === checkpoint.header.stateLength) {
          const cp = checkpoint
          checkpoint = undefined
          await this.loadCheckpoint(cp.header, cp.state, peerId)
          limit = MAX_ENVELOPE_BYTES
        }
        const frame = await next()
        if (frame == null) break
        let f
        try { f = classifyFrame(frame) } catch (err) { throw this.breach(peerId, 'malformed', (err as Error).message) }
        if (checkpoint != null) {
          if (f.type !== 'chunk') throw this.breach(peerId, 'checkpoint', `a ${f.type} frame before the checkpoint state was complete`)
          if (checkpoint.state.bytes + f.data.length > checkpoint.header.stateLength) throw this.breach(peerId, 'checkpoint', 'state longer than announced')
          await checkpoint.state.write(f.data)
          continue
        }
        if (f.type !== 'envelope') throw this.breach(peerId, 'unpromised', `a ${f.type} frame among the envelopes`)
        let env
        try { env = decodeEnvelope(f.bytes) } catch (err) { throw this.breach(peerId, 'malformed', (err as Error).message) }
        const promised = upTo.get(env.author)
        if (promised == null || env.seq <= want[env.author] || env.seq > promised || env.seq <= (last.get(env.author) ?? 0)) {
          throw this.breach(peerId, 'unpromised', `envelope ${env.author} seq ${env.seq}, which it did not offer or was not asked for`)
        }
        last.set(env.author, env.seq)
        if (this.seqs.has(env.author, env.seq)) { this.duplicates++; continue }
        const why = await this.check(env)
        if (why != null) throw this.breach(peerId, why, `envelope ${env.author} seq ${env.seq} does not verify`)
        batch.push(env)
        batchBytes += f.bytes.length
        total += f.bytes.length
        if (batch.length >= INGEST_BATCH || batchBytes >= INGEST_BATCH_BYTES) {
          const verified = batch
          batch = []
          batchBytes = 0
          applied += await this.ingest(verified, { verified: true })
        }
        if (total >= (this.init.maxSyncBytes ?? 256 * 1024 * 1024)) { more = true; break }
      }
      if (checkpoint != null) {
        this.reject('checkpoint', `state of ${checkpoint.state.bytes} bytes, ${checkpoint.header.stateLength} announced (from ${peerId})`)
        throw badCheckpoint('truncated state')
      }
      applied += await this.ingest(batch, { verified: true })
      batch = []
      if (more) stream.abort(new Error('catch-up byte limit reached; a new stream continues'))
    } catch (err) {
      stream.abort(err as Error)
      if (checkpoint != null) await this.store.discard(checkpoint.state)
      // what verified before the breach is kept
      if (batch.length > 0) await this.ingest(batch, { verified: true }).catch(() => 0)
      throw err
    }
    if (applied > 0) this.log('caught up %d envelopes from %s', applied, peerId)
    return { applied, more }
  }

  /**
   * The checkpoint a server offers: the header if we take it; undefined to decline (not signed by an author we
   * trust, or nothing new); a breach when it is forged or was not asked for.
   */
  private async offeredCheckpoint (frame: Uint8Array, peerId: string, ours: VersionVector, accept: boolean): Promise<CheckpointHeader | undefined> {
    if (!accept) throw this.breach(peerId, 'checkpoint', 'a checkpoint offered though none was asked for')
    let header
    try { header = decodeCheckpointHeader(frame) } catch (err) { throw this.breach(peerId, 'checkpoint', (err as Error).message) }
    if (!this.trusts(header.author)) {
      this.reject('checkpoint', `checkpoint by untrusted author ${header.author} (from ${peerId})`)
      return undefined
    }
    const why = await this.checkCheckpoint(header)
    if (why != null) throw this.breach(peerId, 'checkpoint', why)
    if (!Number.isSafeInteger(header.stateLength) || header.stateLength < 0 || header.stateLength > MAX_CHECKPOINT_STATE) {
      throw this.breach(peerId, 'checkpoint', `state of ${header.stateLength} bytes announced`)
    }
    if (!Object.entries(header.vv).some(([a, n]) => n > (ours[a] ?? 0) && this.trusts(a))) return undefined
    return header
  }

  private async checkCheckpoint (h: CheckpointHeader): Promise<string | undefined> {
    if (h.cluster !== this.init.cluster) return 'checkpoint for another cluster'
    if (!this.trusts(h.author)) return `checkpoint by untrusted author ${h.author}`
    let key
    try { key = peerIdFromString(h.author).publicKey } catch {}
    if (key == null || !(await key.verify(checkpointSigningPayload(h.body), h.signature))) return 'checkpoint with a bad signature'
    return undefined
  }

  /** Verifies the received state against the signed hash, then merges it and marks what it covers. */
  private async loadCheckpoint (header: CheckpointHeader, state: StateWriter, from: string): Promise<void> {
    let adopted = false
    try {
      const { length, hash } = await state.finish()
      if (length !== header.stateLength) { this.reject('checkpoint', `state of ${length} bytes, ${header.stateLength} announced`); throw badCheckpoint('truncated state') }
      if (!uint8ArrayEquals(hash, header.stateHash)) {
        this.reject('checkpoint', `state does not match its signed hash (from ${from})`)
        throw badCheckpoint('state does not match its signed hash')
      }
      try {
        await applyState(this.doc, { path: state.path }, REMOTE)
      } catch (err) {
        // signed by a trusted author but not a state: what was applied of it stays (it came from that author)
        this.reject('checkpoint', `undecodable state: ${(err as Error).message}`)
        throw badCheckpoint('undecodable state')
      }
      for (const [a, n] of Object.entries(header.vv)) this.seqs.cover(a, n)
      await this.store.adoptCheckpoint(state, encodeCheckpointHeader(header.body, header.signature))
      adopted = true
    } finally {
      if (!adopted) await this.store.discard(state)
    }
    this.lastCheckpoint = header
    this.checkpointsLoaded++
    // No snapshot here: load() re-applies the stored checkpoint when the snapshot is behind it.
    this.log('loaded a checkpoint by %s of %d bytes from %s', header.author, header.stateLength, from)
  }

  /** A reason to catch up with a peer (it connected, gave notice, or gossip showed a gap): trusted peers first. */
  private syncInBackground (peerId: string): void {
    // nothing pulled could be stored (the disk filled): the catch-up after the restart
    if (!this.started || peerId === this.self || this.store.refusal() != null) return
    if (this.trusts(peerId)) {
      this.syncWith(peerId).catch(err => { this.log('catch-up with %s failed: %e', peerId, err) })
      return
    }
    this.syncStrangers([peerId]).catch(err => { this.log.error('catch-up with strangers failed: %e', err) })
  }

  /** Connected peers that speak our catch-up protocol (and did not misbehave lately), trusted ones apart. */
  private async connectedSources (): Promise<{ trusted: string[], strangers: string[] }> {
    const peers = new Set<string>()
    for (const conn of this.components.libp2p.getConnections()) peers.add(conn.remotePeer.toString())
    const trusted: string[] = []
    const strangers: string[] = []
    for (const peer of peers) {
      if (this.sources.isBanned(peer)) continue
      const protocols = await this.components.libp2p.peerStore.get(peerIdFromString(peer)).then(p => p.protocols, (): string[] => [])
      if (!protocols.includes(this.protocol)) continue
      if (this.trusts(peer)) trusted.push(peer)
      else strangers.push(peer)
    }
    return { trusted, strangers }
  }

  /**
   * Asks one of the strangers, when trusted peers cannot give what is missing: none is connected, or gaps are
   * left. One stranger at a time, each at most every strangerSyncIntervalMs.
   */
  private async syncStrangers (candidates: string[]): Promise<void> {
    if (candidates.length === 0) return
    if (!this.seqs.hasGaps() && (await this.connectedSources()).trusted.length > 0) return
    for (const peer of candidates) {
      if (!this.started) return
      if (!this.sources.claimStranger(peer)) continue
      try {
        await this.syncWith(peer)
      } catch (err) {
        this.log('catch-up with stranger %s failed: %e', peer, err)
      } finally {
        this.sources.releaseStranger()
      }
      return
    }
  }

  /** Safety resync (also repairs missed gossip): a few trusted peers, then maybe a stranger. One round at a time. */
  private periodicSync (): void {
    if (this.round != null || !this.started) return
    this.round = this.syncRound()
      .catch(err => { this.log.error('the periodic catch-up failed: %e', err) })
      .finally(() => { this.round = undefined })
  }

  private async syncRound (): Promise<void> {
    this.sources.prune()
    const { trusted, strangers } = await this.connectedSources()
    await Promise.allSettled(shuffle(trusted).slice(0, 3).map(async peer => {
      await this.syncWith(peer).catch(err => { this.log('catch-up with %s failed: %e', peer, err) })
    }))
    if (this.started) await this.syncStrangers(shuffle(strangers))
  }
}
