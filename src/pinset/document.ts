// The pinset's Yjs document: Y.Map cid -> compact pin value, the pin count, and the changes it tells listeners.
// Local transactions (a commit) hold their changes back until their envelopes are stored; remote ones (envelopes,
// snapshots, checkpoints) are told at once. Origins tell the two apart (yjs' origin tagging).
import * as Y from 'yjs'
import { pinKey, tryPinKey } from '../utils/keys.js'
import { decodePin } from './codec.js'
import { applyState, type StateSource } from './state.js'
import type { CID } from 'multiformats/cid'
import type { Pin, PinsetChange } from '../components.js'
import type { ComponentLogger, Logger } from '@libp2p/interface'

const LOCAL = Symbol('local')
const REMOTE = Symbol('remote')
/** Changes of up to this many keys are reported in one event; larger ones in slices of this size. */
const SMALL_CHANGE = 10_000

/**
 * The number of entries of a Y.Map. Y.Map.size spreads every [key, item] pair into an array: at 1M pins,
 * counting once per checkpoint piece added ~200 MB to a joining follower's peak RSS (garbage the collector had
 * not reached yet). This walks the map's items (Yjs' `_map`, the key -> current item index) without allocating.
 */
export function liveEntries<T> (map: Y.Map<T>): number {
  let n = 0
  for (const item of (map as unknown as { _map: Map<string, { deleted: boolean }> })._map.values()) if (!item.deleted) n++
  return n
}

export interface PinsetDocumentComponents {
  logger: ComponentLogger
  /** Counts (and logs once) an update Yjs could not apply. */
  onMalformed: (detail: string) => void
}

export class PinsetDocument {
  readonly doc = new Y.Doc()
  readonly map = this.doc.getMap<string>('pins')
  private readonly log: Logger
  private readonly listeners = new Set<(change: PinsetChange) => void>()
  /** While set, local changes are collected here instead of told to listeners (transactLocal). */
  private held?: PinsetChange[]
  private count = 0

  constructor (private readonly components: PinsetDocumentComponents) {
    this.log = components.logger.forComponent('cairn:pinset')
  }

  /** Counts the pins loaded so far, then keeps the count and tells listeners of every change from now on. */
  observe (): void {
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
  }

  destroy (): void { this.doc.destroy() }

  // ----- reads

  // Keys are PinKeys; callers may pass a CID or any form of a CID string.
  get (cid: CID | string): Pin | undefined {
    const key = typeof cid === 'string' ? tryPinKey(cid) : pinKey(cid)
    const value = key == null ? undefined : this.map.get(key)
    return value == null ? undefined : decodePin(value, key!)
  }

  has (cid: CID | string): boolean {
    const key = typeof cid === 'string' ? tryPinKey(cid) : pinKey(cid)
    return key != null && this.map.has(key)
  }

  // Y.Map.size walks every entry; the observer keeps a count instead.
  size (): number { return this.count }

  * list (): IterableIterator<Pin> {
    for (const [key, value] of this.map.entries()) yield decodePin(value, key)
  }

  // ----- changes

  onChange (listener: (change: PinsetChange) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** Tells listeners of a change (a held local one too, once its envelopes are stored). */
  emit (change: PinsetChange): void {
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

  /**
   * Runs `fn` as a local transaction. Returns its document update (undefined when nothing changed) and the
   * changes it made, which listeners are not told of yet.
   */
  transactLocal (fn: () => void): { update?: Uint8Array, changes: PinsetChange[] } {
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

  /** Runs `fn` as one remote transaction (listeners are told once, at its end). */
  transactRemote (fn: () => void): void {
    this.doc.transact(fn, REMOTE)
  }

  /** Applies a remote update; one Yjs cannot decode is counted as malformed and skipped. */
  applyUpdate (update: Uint8Array): void {
    try {
      Y.applyUpdate(this.doc, update, REMOTE)
    } catch (err) {
      this.components.onMalformed(`bad yjs update: ${(err as Error).message}`)
    }
  }

  /** Merges a whole-document state (a snapshot's or a checkpoint's) as a remote change. */
  async applyState (source: StateSource): Promise<void> {
    await applyState(this.doc, source, REMOTE)
  }
}
