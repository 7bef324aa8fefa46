// Local writes: group commit. Operations queued in the same moment become one batch; its keys are signed as
// envelopes of at most maxPinsPerEnvelope pins and about ENVELOPE_TARGET_BYTES each, stored in one fsynced
// write, told to listeners, then gossiped. Callers resolve once their envelopes are on disk.
import * as Y from 'yjs'
import { InvalidParameterError, NotStartedError } from '../errors.js'
import { pinKey } from '../utils/keys.js'
import { encodePin } from './codec.js'
import { encodeBody, encodeEnvelope, signingPayload, MAX_ENVELOPE_BYTES } from './protocol.js'
import type { AbortOptions, Pin, PinsetChange } from '../components.js'
import type { PinsetDocument } from './document.js'
import type { PinsetStore, SeqTracker, StoredEnvelope } from './store.js'
import type { ComponentLogger, Logger, PrivateKey } from '@libp2p/interface'

/** A writer starts a new envelope past this many bytes of pins, so envelopes stay well under MAX_ENVELOPE_BYTES. */
const ENVELOPE_TARGET_BYTES = 1024 * 1024
/** What an envelope holds besides its pins (cluster, author, seq, signature, Yjs framing) is far below this. */
const ENVELOPE_OVERHEAD = 16 * 1024

type Op = { type: 'put', pins: Pin[] } | { type: 'remove', cids: string[] }
/** One key of a local change: a pin's encoded value, or undefined to remove it. */
interface Item { key: string, value?: string, bytes: number }
interface PendingOp { op: Op, resolve: () => void, reject: (err: Error) => void }

export interface CommitInit {
  /** Cluster name: part of every signed envelope. */
  cluster: string
  /** This peer: the author of the envelopes. */
  self: string
  /** Most pins per envelope (default 1000). */
  maxPinsPerEnvelope?: number
  /** Envelopes larger than this are announced by a notice instead of gossiped (default 1 MiB): also a size target. */
  maxGossipBytes?: number
}

export interface CommitComponents {
  document: PinsetDocument
  store: PinsetStore
  seqs: SeqTracker
  privateKey: PrivateKey
  logger: ComponentLogger
  isStarted: () => boolean
  /** Told how many envelopes were stored (snapshot and checkpoint schedules). */
  onStored: (n: number) => void
  /** Gossips a stored envelope. */
  publish: (seq: number, bytes: Uint8Array) => void
}

export interface GroupCommit {
  put(pins: Pin[], options?: AbortOptions): Promise<void>
  remove(cids: string[], options?: AbortOptions): Promise<void>
  /** Resolves once every queued operation has been committed or refused. */
  drain(): Promise<void>
  /** Whether the document holds local changes no stored envelope has (a commit the store refused). */
  hasUnsaved(): boolean
}

export function createGroupCommit (init: CommitInit, components: CommitComponents): GroupCommit {
  return new DefaultGroupCommit(init, components)
}

class DefaultGroupCommit implements GroupCommit {
  private readonly log: Logger
  private pending: PendingOp[] = []
  /**
   * The document update of commits whose envelopes could not be stored, with the update that undid them: in the
   * document, not in any envelope. The next envelope carries it, so that peers get every local change in order.
   */
  private unsaved?: Uint8Array
  private flushing = false
  private flushScheduled = false

  constructor (private readonly init: CommitInit, private readonly components: CommitComponents) {
    this.log = components.logger.forComponent('cairn:pinset')
  }

  async put (pins: Pin[], options?: AbortOptions): Promise<void> {
    await this.enqueue({ type: 'put', pins }, options)
  }

  async remove (cids: string[], options?: AbortOptions): Promise<void> {
    await this.enqueue({ type: 'remove', cids }, options)
  }

  hasUnsaved (): boolean { return this.unsaved != null }

  private async enqueue (op: Op, options?: AbortOptions): Promise<void> {
    if (!this.components.isStarted()) throw new NotStartedError('the pinset is not started')
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

  async drain (): Promise<void> {
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
    const { document, store, seqs } = this.components
    const { map } = document
    const self = this.init.self
    // the store takes no more writes (one failed: the disk filled): refused before the document changes
    const refused = store.refusal()
    if (refused != null) throw refused
    // each changed key's value before and after, to put back if the envelopes cannot be stored
    const before = new Map<string, string | undefined>()
    const after = new Map<string, string | undefined>()
    const envelopes: StoredEnvelope[] = []
    const updates: Uint8Array[] = []
    const changes: PinsetChange[] = []
    // After a lost data dir, our own older envelopes come back through catch-up: never reuse their seqs.
    let seq = seqs.max(self)
    for (const slice of this.slices(ops)) {
      const applied = document.transactLocal(() => {
        for (const item of slice) {
          if (!before.has(item.key)) before.set(item.key, map.get(item.key))
          if (item.value != null) map.set(item.key, item.value)
          else map.delete(item.key)
          after.set(item.key, item.value)
        }
      })
      if (applied.update == null) continue // nothing changed (e.g. removing what is not there)
      changes.push(...applied.changes)
      // the first envelope also carries what earlier refused commits left in the document
      const update = updates.length === 0 && this.unsaved != null ? Y.mergeUpdates([this.unsaved, applied.update]) : applied.update
      updates.push(update)
      seq++
      const body = encodeBody(this.init.cluster, self, seq, update)
      const signature = await this.components.privateKey.sign(signingPayload(body))
      envelopes.push({ author: self, seq, bytes: encodeEnvelope(body, signature) })
    }
    if (envelopes.length === 0) return
    try {
      await store.putEnvelopes(envelopes, true)
    } catch (err) {
      // Refused callers must not see their change: it is undone, as a local change too (a key a peer changed
      // meanwhile keeps the peer's value), and listeners are told of neither. Both stay in the document.
      const undo = document.transactLocal(() => {
        for (const [key, value] of before) {
          if (map.get(key) !== after.get(key)) continue
          if (value == null) map.delete(key)
          else map.set(key, value)
        }
      })
      this.unsaved = Y.mergeUpdates(undo.update != null ? [...updates, undo.update] : updates)
      throw err
    }
    this.unsaved = undefined
    for (const e of envelopes) seqs.add(self, e.seq)
    for (const change of changes) document.emit(change)
    this.components.onStored(envelopes.length)
    for (const { seq, bytes } of envelopes) this.components.publish(seq, bytes)
  }

  /** An operation's keys with their encoded pins; refuses a pin too big for an envelope of its own. */
  private itemsOf (op: Op): Item[] {
    if (op.type === 'remove') return op.cids.map(cid => { const key = pinKey(cid); return { key, bytes: key.length + 8 } })
    return op.pins.map(pin => {
      const key = pinKey(pin.cid)
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
}
