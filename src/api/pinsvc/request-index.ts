// Each peer's index of the pin requests in the pinset, in level under <dataDir>/pinsvc, so that listing
// streams newest-first from disk instead of walking the pinset. Kept from Pinset.onChange, rebuilt at start.
//   t!<created>!<requestid> -> the request (JSON, with its CID key): the listing order
//   r!<requestid>           -> <created>
//   c!<cid key>!<requestid> -> <created>
import { guardedLevel, type GuardedLevel } from '../../storage/guarded-level.js'
import { pinKey, type PinKey } from '../../utils/keys.js'
import { hasRequests, requestsOf, type PinRequest } from './requests.js'
import type { Pinset, PinsetChange } from '../../components.js'
import type { Pin } from '../../types/wire.js'
import type { Logger } from '@libp2p/logger'

export interface IndexedRequest extends PinRequest {
  /** The pinset key of the CID. */
  key: PinKey
}

export interface ScanRange {
  /** created < before (ISO, ms precision) */
  before?: string
  /** created > after */
  after?: string
}

const timeKey = (created: string, requestid: string): string => `t!${created}!${requestid}`
const idKey = (requestid: string): string => `r!${requestid}`
const cidPrefix = (key: string): string => `c!${key}!`

type Op = { type: 'put', key: string, value: string } | { type: 'del', key: string }

export class RequestIndex {
  private readonly db: GuardedLevel<string, string>
  private unsubscribe?: () => void
  /** Index writes run one after another, in pinset order. */
  private tail: Promise<void> = Promise.resolve()
  /**
   * The CIDs that have (or had, since the start) requests, as pinset keys and as their pins write them. Only
   * their changes are queued: queueing every change (and a level iterator per pin) made a peer loading 1M pins
   * hold every change's Pin objects in the queue, ~150 MB per 200,000 pins, and run out of heap.
   */
  private readonly indexed = new Set<string>()

  constructor (path: string, private readonly pinset: Pick<Pinset, 'list' | 'get' | 'onChange'>, private readonly log?: Logger) {
    this.db = guardedLevel<string, string>(path, { valueEncoding: 'utf8' })
  }

  async start (): Promise<void> {
    await this.db.open()
    // subscribe first: changes during the rebuild queue up behind it
    this.unsubscribe = this.pinset.onChange(change => {
      const added = change.added.filter(pin => {
        if (hasRequests(pin)) {
          this.indexed.add(pin.cid)
          this.indexed.add(pinKey(pin.cid))
          return true
        }
        return this.indexed.has(pin.cid)
      })
      const removed = change.removed.filter(cid => this.indexed.has(cid))
      if (added.length + removed.length > 0) this.enqueue(async () => { await this.apply({ added, removed, local: change.local }) })
    })
    this.enqueue(async () => { await this.rebuild() })
    await this.idle()
  }

  async stop (): Promise<void> {
    this.unsubscribe?.()
    await this.idle()
    await this.db.close()
  }

  /** Resolves once every pinset change seen so far is in the index. */
  async idle (): Promise<void> { await this.tail }

  private enqueue (work: () => Promise<void>): void {
    this.tail = this.tail.then(work).catch(err => { this.log?.error('updating the pin request index failed: %e', err) })
  }

  async get (requestid: string): Promise<IndexedRequest | undefined> {
    const created = await this.db.get(idKey(requestid))
    if (created === undefined) return undefined
    const value = await this.db.get(timeKey(created, requestid))
    return value === undefined ? undefined : JSON.parse(value) as IndexedRequest
  }

  /** The requests for one CID, newest first. */
  async byCid (key: PinKey, range: ScanRange = {}): Promise<IndexedRequest[]> {
    const out: IndexedRequest[] = []
    for await (const [k, created] of this.db.iterator({ gt: cidPrefix(key), lt: `${cidPrefix(key)}\xff` })) {
      if (range.before !== undefined && created >= range.before) continue
      if (range.after !== undefined && created <= range.after) continue
      const r = await this.get(k.slice(cidPrefix(key).length))
      if (r !== undefined) out.push(r)
    }
    return out.sort(newestFirst)
  }

  /** Every request in the range, newest first, streamed from disk. */
  async * scan (range: ScanRange = {}): AsyncGenerator<IndexedRequest> {
    const it = this.db.values({
      reverse: true,
      gt: range.after === undefined ? 't!' : `${timeKey(range.after, '')}\xff`,
      lt: range.before === undefined ? 't!\xff' : timeKey(range.before, '')
    })
    for await (const value of it) yield JSON.parse(value) as IndexedRequest
  }

  private async apply (change: PinsetChange): Promise<void> {
    const ops: Op[] = []
    for (const pin of change.added) ops.push(...await this.diff(pinKey(pin.cid), pin))
    for (const cid of change.removed) ops.push(...await this.diff(pinKey(cid), undefined))
    if (ops.length > 0) await this.db.batch(ops)
  }

  /** The writes that make the index hold exactly the requests of `pin` (none when undefined) for `key`. */
  private async diff (key: PinKey, pin: Pin | undefined): Promise<Op[]> {
    const wanted = new Map((pin === undefined ? [] : requestsOf(pin)).map(r => [r.requestid, r]))
    const ops: Op[] = []
    for await (const [k, created] of this.db.iterator({ gt: cidPrefix(key), lt: `${cidPrefix(key)}\xff` })) {
      const requestid = k.slice(cidPrefix(key).length)
      const keep = wanted.get(requestid)
      // a request is immutable once written: only its presence can change
      if (keep !== undefined && keep.created === created) { wanted.delete(requestid); continue }
      ops.push({ type: 'del', key: k }, { type: 'del', key: idKey(requestid) }, { type: 'del', key: timeKey(created, requestid) })
    }
    for (const r of wanted.values()) {
      const indexed: IndexedRequest = { ...r, key }
      ops.push(
        { type: 'put', key: timeKey(r.created, r.requestid), value: JSON.stringify(indexed) },
        { type: 'put', key: idKey(r.requestid), value: r.created },
        { type: 'put', key: cidPrefix(key) + r.requestid, value: r.created }
      )
    }
    return ops
  }

  /** Brings the index in line with the pinset after a restart: drops requests gone, adds those that arrived. */
  private async rebuild (): Promise<void> {
    let ops: Op[] = []
    const flush = async (): Promise<void> => {
      if (ops.length > 0) await this.db.batch(ops)
      ops = []
    }
    let lastKey = ''
    for await (const k of this.db.keys({ gt: 'c!', lt: 'c!\xff' })) {
      const key = k.slice(2, k.indexOf('!', 2)) as PinKey // written by diff() from a pinKey
      if (key === lastKey) continue
      lastKey = key
      this.indexed.add(key)
      const pinCid = this.pinset.get(key)?.cid
      if (pinCid != null) this.indexed.add(pinCid)
      ops.push(...await this.diff(key, this.pinset.get(key)))
      if (ops.length >= 1000) await flush()
    }
    await flush()
    // pins that gained requests while this peer was down (a diff is cheap and idempotent)
    for (const pin of this.pinset.list()) {
      if (!hasRequests(pin)) continue
      this.indexed.add(pin.cid)
      this.indexed.add(pinKey(pin.cid))
      ops.push(...await this.diff(pinKey(pin.cid), pin))
      if (ops.length >= 1000) await flush()
    }
    await flush()
  }
}

function newestFirst (a: PinRequest, b: PinRequest): number {
  return a.created === b.created ? (a.requestid < b.requestid ? 1 : -1) : (a.created < b.created ? 1 : -1)
}
