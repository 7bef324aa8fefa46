// The shared pinset: a Yjs Y.Map cid -> Pin, changed only through signed envelopes from trusted authors,
// persisted in level, spread by gossipsub and repaired by a catch-up stream (DESIGN §4).
import { join } from 'node:path'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { peerIdFromString } from '@libp2p/peer-id'
import * as Y from 'yjs'
import { NotStartedError } from '../errors.js'
import { clusterSecret, SecretMismatchError, splitProof, withProof, type ClusterSecret } from '../secret.js'
import { cidKey, tryCidKey } from '../utils/cid.js'
import { readFrames, readOneFrame, sendFrame } from '../utils/stream.js'
import { equals as uint8ArrayEquals } from 'uint8arrays/equals'
import {
  checkpointSigningPayload, classifyFrame, decodeCheckpointHeader, decodeEnvelope, decodeGossip, decodeSyncRequest,
  encodeBody, encodeCheckpointBody, encodeCheckpointHeader, encodeChunk, encodeEnvelope, encodeNotice,
  encodeSyncRequest, signingPayload, MalformedMessageError, type CheckpointHeader, type Envelope, type VersionVector
} from './protocol.js'
import { decodePin, encodePin } from './codec.js'
import { applyState, type StateWriter } from './state.js'
import { PinsetStore, SeqTracker } from './store.js'
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
}

export interface PinsetComponents {
  libp2p: Libp2p<{ pubsub: GossipSub }>
  privateKey: PrivateKey
  logger: ComponentLogger
}

export function pinsetTopic (cluster: string): string { return `cairn/${cluster}/pinset` }
export function pinsetSyncProtocol (cluster: string): string { return `/cairn/${cluster}/pinset-sync/1.0.0` }

const LOCAL = Symbol('local')
/** Largest checkpoint state accepted (a 1M-pin state is ~200 MB). */
const MAX_CHECKPOINT_STATE = 2 ** 31 - 1
/** Changes of up to this many keys are reported in one event; larger ones in slices of this size. */
const SMALL_CHANGE = 10_000
/** Catch-up envelopes are verified and applied in batches of this many, or of this many bytes. */
const INGEST_BATCH = 500
const INGEST_BATCH_BYTES = 16 * 1024 * 1024

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
const REMOTE = Symbol('remote')

type Op = { type: 'put', pins: Pin[] } | { type: 'remove', cids: string[] }
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
   * The document update of commits whose envelope could not be stored, with the update that undid them: in the
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

  constructor (private readonly init: PinsetInit, private readonly components: PinsetComponents) {
    this.log = components.logger.forComponent('cairn:pinset')
    this.self = components.libp2p.peerId.toString()
    this.topic = pinsetTopic(init.cluster)
    this.protocol = pinsetSyncProtocol(init.cluster)
    this.store = new PinsetStore(join(init.dataDir, 'pinset'))
    this.secret = init.secret ?? clusterSecret('')
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
    pubsub.topicValidators.set(this.topic, async (_from, msg) => await this.validateGossip(msg.data, msg.type === 'signed' ? msg.from.toString() : undefined))
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
    await this.waitForFlush()
    await Promise.allSettled(this.syncing.values())
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

  private async writeSnapshot (): Promise<void> {
    // a snapshot holding changes no stored envelope has would hide them from peers after a restart
    if (this.sinceSnapshot === 0 || this.unsaved != null || this.store.refusal() != null) return
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
    if (this.sinceSnapshot >= (this.init.snapshotEvery ?? 5000)) {
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
    // a commit tells its changes once their envelope is stored
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
        const batch = this.takeBatch()
        try {
          await this.commit(batch.map(p => p.op))
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

  private async commit (ops: Op[]): Promise<void> {
    // the store takes no more writes (one failed: the disk filled): refused before the document changes
    const refused = this.store.refusal()
    if (refused != null) throw refused
    // each changed key's value before and after, to put back if the envelope cannot be stored
    const before = new Map<string, string | undefined>()
    const after = new Map<string, string | undefined>()
    const set = (key: string, value: string | undefined): void => {
      if (!before.has(key)) before.set(key, this.map.get(key))
      if (value == null) this.map.delete(key)
      else this.map.set(key, value)
      after.set(key, value)
    }
    const { update, changes } = this.transactLocal(() => {
      for (const op of ops) {
        if (op.type === 'put') {
          for (const pin of op.pins) {
            const key = cidKey(pin.cid)
            set(key, encodePin(pin, key))
          }
        }
        else for (const cid of op.cids) set(cidKey(cid), undefined)
      }
    })
    if (update == null) return // nothing changed (e.g. removing what is not there)
    const carried = this.unsaved != null ? Y.mergeUpdates([this.unsaved, update]) : update
    // After a lost data dir, our own older envelopes come back through catch-up: never reuse their seqs.
    const seq = this.seqs.max(this.self) + 1
    let bytes: Uint8Array
    try {
      const body = encodeBody(this.init.cluster, this.self, seq, carried)
      bytes = encodeEnvelope(body, await this.components.privateKey.sign(signingPayload(body)))
      await this.store.putEnvelopes([{ author: this.self, seq, bytes }], true)
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
      this.unsaved = undo.update != null ? Y.mergeUpdates([carried, undo.update]) : carried
      throw err
    }
    this.unsaved = undefined
    this.seqs.add(this.self, seq)
    this.sinceSnapshot++
    this.sinceCheckpoint++
    for (const change of changes) this.emit(change)
    void this.maybeSnapshot()
    const message = bytes.length <= (this.init.maxGossipBytes ?? 1024 * 1024) ? bytes : encodeNotice({ author: this.self, seq })
    this.components.libp2p.services.pubsub.publish(this.topic, this.secret.seal(message)).catch(err => {
      this.log('publishing envelope %d failed (peers will catch up): %e', seq, err)
    })
  }

  // ----- remote envelopes

  private reject (reason: string, detail: string): void {
    const n = (this.rejected.get(reason) ?? 0) + 1
    this.rejected.set(reason, n)
    if (n === 1) this.log.error('dropped a pinset envelope (%s): %s; further ones are only counted', reason, detail)
  }

  /** Checks an envelope: cluster, trusted author, signature. Returns why it is rejected, or undefined. */
  private async check (env: Envelope): Promise<string | undefined> {
    if (env.cluster !== this.init.cluster) return 'cluster'
    if (env.author !== this.self && !this.init.isTrusted(env.author)) return 'untrusted'
    let key
    try { key = peerIdFromString(env.author).publicKey } catch {}
    if (key == null) return 'malformed'
    if (!(await key.verify(signingPayload(env.body), env.signature))) return 'signature'
    return undefined
  }

  private async validateGossip (sealed: Uint8Array, publisher?: string): Promise<TopicValidatorResult> {
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
        if (author !== this.self && !this.init.isTrusted(author)) { this.reject('untrusted', `notice of ${author} seq ${seq}`); return TopicValidatorResult.Reject }
        if (publisher !== author) { this.reject('sender', `${publisher ?? 'an unsigned message'} published a notice of ${author} seq ${seq}`); return TopicValidatorResult.Reject }
        return TopicValidatorResult.Accept
      }
      if (this.seqs.has(msg.envelope.author, msg.envelope.seq)) { this.duplicates++; return TopicValidatorResult.Ignore }
      const why = await this.check(msg.envelope)
      if (why == null) return TopicValidatorResult.Accept
      this.reject(why, `author ${msg.envelope.author} seq ${msg.envelope.seq}`)
      return TopicValidatorResult.Reject
    } catch (err) {
      this.reject('malformed', (err as Error).message)
      return TopicValidatorResult.Reject
    }
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

  /** Signs a snapshot of the whole document with the version vector it covers, then compacts the log. */
  async checkpoint (): Promise<CheckpointInfo | undefined> {
    if (this.init.isWriter?.() !== true || !this.started) return undefined
    const state = await this.store.createState('checkpoint')
    let bytes: Uint8Array
    let vv: VersionVector
    let length: number
    try {
      // the state and the vector it covers, taken in the same tick
      state.writeDoc(this.doc)
      vv = this.seqs.versionVector()
      const written = await state.finish()
      length = written.length
      const body = encodeCheckpointBody({
        cluster: this.init.cluster, author: this.self, created: Date.now(), vv, stateLength: length, stateHash: written.hash
      })
      bytes = encodeCheckpointHeader(body, await this.components.privateKey.sign(checkpointSigningPayload(body)))
      await this.store.adoptCheckpoint(state, bytes)
    } catch (err) {
      await this.store.discard(state)
      throw err
    }
    this.lastCheckpoint = decodeCheckpointHeader(bytes)
    this.sinceCheckpoint = 0
    this.checkpointsMade++
    await this.compact(vv)
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

  private async serveSync (stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.any([this.shutdown.signal, AbortSignal.timeout(this.init.syncTimeoutMs ?? 120_000)])
    try {
      const remote = connection.remotePeer.toString()
      const { proof, rest } = splitProof(this.secret, await readOneFrame(stream, { signal, maxDataLength: 1024 * 1024 }))
      if (!this.secret.verify(proof, this.protocol, remote, this.self)) {
        this.reject('secret', `catch-up request from ${remote} without the cluster secret`)
        stream.abort(new Error('cluster secret proof failed'))
        return
      }
      if (this.secret.enabled) await sendFrame(stream, this.secret.proof(this.protocol, this.self, remote), { signal })
      const req = decodeSyncRequest(rest)
      const from: VersionVector = { ...req.vv }
      let sentCheckpoint = false
      if (this.shouldSendCheckpoint(req.vv, req.acceptCheckpoint)) {
        const cp = await this.store.openCheckpoint()
        if (cp != null) {
          try {
            await sendFrame(stream, cp.header, { signal })
            this.syncBytesOut += cp.header.length + cp.length
            for await (const chunk of cp.chunks) {
              await sendFrame(stream, encodeChunk(chunk), { signal })
            }
          } finally {
            cp.close()
          }
          for (const [a, n] of Object.entries(decodeCheckpointHeader(cp.header).vv)) from[a] = Math.max(from[a] ?? 0, n)
          sentCheckpoint = true
        }
      }
      let sent = 0
      for (const author of await this.store.authors()) {
        for await (const env of this.store.envelopesAfter(author, from[author] ?? 0)) {
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

  async syncWith (peerId: string, options: AbortOptions = {}): Promise<number> {
    const running = this.syncing.get(peerId)
    if (running != null) return await running
    const p = this.doSync(peerId, options).finally(() => this.syncing.delete(peerId))
    this.syncing.set(peerId, p)
    return await p
  }

  private async doSync (peerId: string, options: AbortOptions): Promise<number> {
    const banned = (this.badCheckpointFrom.get(peerId) ?? 0) > Date.now()
    try {
      return await this.pull(peerId, !banned && this.init.acceptCheckpoints !== false, options)
    } catch (err) {
      if ((err as Error).name !== 'BadCheckpointError') throw err
      // Envelopes are verified one by one, so the same peer can still serve those safely.
      this.badCheckpointFrom.set(peerId, Date.now() + 10 * 60_000)
      return await this.pull(peerId, false, options)
    }
  }

  private async pull (peerId: string, acceptCheckpoint: boolean, options: AbortOptions): Promise<number> {
    const signal = AbortSignal.any([
      this.shutdown.signal, AbortSignal.timeout(this.init.syncTimeoutMs ?? 120_000),
      ...(options.signal != null ? [options.signal] : [])
    ])
    const stream = await this.components.libp2p.dialProtocol(peerIdFromString(peerId), this.protocol, { signal })
    let applied = 0
    // a checkpoint's state is written to a file as it arrives, then checked, then applied piece by piece
    let checkpoint: { header: CheckpointHeader, state: StateWriter } | undefined
    try {
      const request = encodeSyncRequest({ vv: this.seqs.versionVector(), acceptCheckpoint })
      await sendFrame(stream, withProof(this.secret.proof(this.protocol, this.self, peerId), request), { signal })
      await stream.close({ signal })
      let proven = !this.secret.enabled
      let batch: Envelope[] = []
      // a server may send any envelopes (up to 64 MiB each): they are held unverified only until the batch is full
      let batchBytes = 0
      const finishCheckpoint = async (): Promise<void> => {
        if (checkpoint == null) return
        const cp = checkpoint
        checkpoint = undefined
        await this.loadCheckpoint(cp.header, cp.state, peerId)
      }
      for await (const frame of readFrames(stream, { signal, maxDataLength: 64 * 1024 * 1024 })) {
        this.syncBytesIn += frame.length
        if (!proven) {
          if (!this.secret.verify(frame, this.protocol, peerId, this.self)) {
            this.reject('secret', `catch-up answer from ${peerId} without the cluster secret`)
            throw new SecretMismatchError(`peer ${peerId} did not prove the cluster secret`)
          }
          proven = true
          continue
        }
        let f
        try {
          f = classifyFrame(frame)
        } catch (err) {
          this.reject('malformed', `catch-up from ${peerId}: ${(err as Error).message}`)
          continue
        }
        if (f.type === 'checkpoint') {
          if (!acceptCheckpoint || checkpoint != null || applied > 0 || batch.length > 0) throw badCheckpoint('unexpected checkpoint')
          let header
          try { header = decodeCheckpointHeader(f.bytes) } catch (err) { this.reject('checkpoint', (err as Error).message); throw badCheckpoint((err as Error).message) }
          const why = await this.checkCheckpoint(header)
          if (why != null) { this.reject('checkpoint', `${why} (from ${peerId})`); throw badCheckpoint(why) }
          if (!Number.isSafeInteger(header.stateLength) || header.stateLength < 0 || header.stateLength > MAX_CHECKPOINT_STATE) {
            this.reject('checkpoint', `state of ${header.stateLength} bytes announced (from ${peerId})`)
            throw badCheckpoint(`state of ${header.stateLength} bytes announced`)
          }
          checkpoint = { header, state: await this.store.createState('checkpoint') }
          continue
        }
        if (f.type === 'chunk') {
          if (checkpoint == null) throw badCheckpoint('state chunk without a checkpoint')
          if (checkpoint.state.bytes + f.data.length > checkpoint.header.stateLength) { this.reject('checkpoint', 'state longer than announced'); throw badCheckpoint('state longer than announced') }
          await checkpoint.state.write(f.data)
          continue
        }
        await finishCheckpoint()
        try {
          batch.push(decodeEnvelope(f.bytes))
          batchBytes += f.bytes.length
        } catch (err) {
          this.reject('malformed', `catch-up from ${peerId}: ${(err as Error).message}`)
        }
        if (batch.length >= INGEST_BATCH || batchBytes >= INGEST_BATCH_BYTES) {
          applied += await this.ingest(batch)
          batch = []
          batchBytes = 0
        }
      }
      await finishCheckpoint()
      applied += await this.ingest(batch)
    } catch (err) {
      stream.abort(err as Error)
      if (checkpoint != null) await this.store.discard(checkpoint.state)
      throw err
    }
    if (applied > 0) this.log('caught up %d envelopes from %s', applied, peerId)
    return applied
  }

  private async checkCheckpoint (h: CheckpointHeader): Promise<string | undefined> {
    if (h.cluster !== this.init.cluster) return 'checkpoint for another cluster'
    if (h.author !== this.self && !this.init.isTrusted(h.author)) return `checkpoint by untrusted author ${h.author}`
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

  private syncInBackground (peerId: string): void {
    // nothing pulled could be stored (the disk filled): the catch-up after the restart
    if (!this.started || peerId === this.self || this.store.refusal() != null) return
    this.syncWith(peerId).catch(err => { this.log('catch-up with %s failed: %e', peerId, err) })
  }

  /** Safety resync with a few connected peers that speak our protocol (also repairs missed gossip). */
  private periodicSync (): void {
    const peers = new Set<string>()
    for (const conn of this.components.libp2p.getConnections()) peers.add(conn.remotePeer.toString())
    const candidates = [...peers]
    for (let i = candidates.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [candidates[i], candidates[j]] = [candidates[j], candidates[i]]
    }
    void (async () => {
      let tried = 0
      for (const peer of candidates) {
        if (tried >= 3 || !this.started) break
        const protocols = await this.components.libp2p.peerStore.get(peerIdFromString(peer)).then(p => p.protocols, (): string[] => [])
        if (!protocols.includes(this.protocol)) continue
        tried++
        this.syncInBackground(peer)
      }
    })()
  }
}
