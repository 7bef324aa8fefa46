// The Pinning Service operations over the cluster: requests are entries in their pin's metadata (./requests.ts),
// found by requestid and listed through this peer's level index (./request-index.ts).
import { randomUUID } from 'node:crypto'
import { FollowerModeError, InvalidBodyError, InvalidParameterError, NotFoundError } from '../../errors.js'
import { parseCid } from '../../utils/cid.js'
import { pinKey, type PinKey } from '../../utils/keys.js'
import { turnBudget } from '../../utils/turns.js'
import { validPinOptions } from '../pin-options.js'
import { matchesMeta, matchesName, type ListQuery, type PinBody } from './query.js'
import { hasRequests, isTombstoned, replacingRequest, requestKey, withoutRequest, withRequest, type PinRequest } from './requests.js'
import { delegateAddresses, SVC_STATUSES, svcStatusOf, type SvcStatus, type SvcStatusInfo } from './status.js'
import type { RequestIndex, IndexedRequest } from './request-index.js'
import type { AbortOptions, ClusterAPI, PinOptions, Pinset, PinsetChange } from '../../components.js'
import type { Logger } from '@libp2p/logger'

/** The spec's PinStatus. */
export interface PinStatus {
  requestid: string
  status: SvcStatus
  created: string
  /** `name` is left out when the request has none: "" would read as a name, and Joi-based spec validators refuse it. */
  pin: { cid: string, name?: string, origins: string[], meta: Record<string, string> }
  delegates: string[]
  info: Record<string, string>
}

export interface PinResults {
  count: number
  results: PinStatus[]
}

export interface PinServiceComponents {
  cluster: ClusterAPI
  pinset: Pick<Pinset, 'get' | 'list' | 'onChange'>
  index: RequestIndex
  /** This peer's id: the delegate of last resort. */
  peerId: string
  /** A cluster peer's IPFS multiaddrs (ending in /p2p/<id>); [] when unknown. */
  addressesOf: (peer: string) => Promise<string[]>
  log?: Logger
}

/** One request's entry (name, meta, origins as JSON) may take this much of the shared pinset. */
const MAX_REQUEST_BYTES = 32 * 1024
/** All the requests on one CID together: the pin is one pinset value, gossiped whole on every change. */
const MAX_PIN_METADATA_BYTES = 512 * 1024
/** Past this many per-CID status lookups in one listing, one cluster-wide status walk is cheaper. */
const BULK_STATUS_AFTER = 64
const STATUS_BATCH = 32
/** How long this peer watches a request it created for a concurrent write on another peer that dropped it. */
const WATCH_MS = 60_000

export class PinService {
  private lastCreated = 0
  private readonly locks = new Map<string, Promise<unknown>>()
  /** Requests created here lately, by requestid: see watch(). */
  private readonly recent = new Map<string, { request: PinRequest, key: PinKey, until: number, seenElsewhere: boolean }>()

  private readonly watchMs: number

  /** @param init.watchMs how long a request created here is watched (default 60 s; tests) */
  constructor (private readonly components: PinServiceComponents, init: { watchMs?: number } = {}) {
    this.watchMs = init.watchMs ?? WATCH_MS
  }

  /** Requests created here that are watched now. */
  get watched (): number { return this.recent.size }

  /**
   * Watches a request created here. Expired entries go first: they were pruned only when a change came from
   * another peer, so a one-peer cluster kept every request it ever created.
   */
  private remember (request: PinRequest, key: PinKey): void {
    const now = Date.now()
    // entries are kept in the order they expire (re-watching one moves it last)
    for (const [id, w] of this.recent) {
      if (w.until >= now) break
      this.recent.delete(id)
    }
    this.recent.delete(request.requestid)
    this.recent.set(request.requestid, { request, key, until: now + this.watchMs, seenElsewhere: false })
  }

  /**
   * A pin is one pinset value, last writer wins: a peer that wrote the same CID at the same moment without
   * knowing our new request dropped it. For a minute after creating a request, each remote change of its CID
   * is checked: missing without a tombstone (a deletion) means lost, and it is written again. A removal of
   * the whole pin only counts as lost while no other peer has shown it knew the request.
   */
  watch (): () => void {
    return this.components.pinset.onChange(change => { if (!change.local && this.recent.size > 0) this.check(change) })
  }

  private check (change: PinsetChange): void {
    const now = Date.now()
    for (const [id, w] of this.recent) if (w.until < now) this.recent.delete(id)
    const pins = new Map(change.added.map(p => [pinKey(p.cid), p]))
    const removed = new Set(change.removed.map(c => pinKey(c)))
    for (const [id, w] of this.recent) {
      const pin = pins.get(w.key)
      if (pin !== undefined) {
        if (pin.metadata?.[requestKey(id)] != null) { w.seenElsewhere = true; continue }
        if (isTombstoned(pin, id)) { this.recent.delete(id); continue }
      } else if (!removed.has(w.key) || w.seenElsewhere) {
        if (removed.has(w.key)) this.recent.delete(id)
        continue
      }
      this.restore(w.request, w.key)
    }
  }

  private restore (request: PinRequest, key: PinKey): void {
    if (!this.components.cluster.writable) return
    this.components.log?.('pin request %s on %s was dropped by a concurrent write elsewhere: writing it again', request.requestid, request.cid)
    this.locked(key, async () => {
      const pin = this.components.pinset.get(key)
      if (pin !== undefined && (pin.metadata?.[requestKey(request.requestid)] != null || isTombstoned(pin, request.requestid))) return
      await this.write(pin?.cid ?? request.cid, withRequest(pin, request), {})
    }).catch(err => { this.components.log?.error('could not restore pin request %s: %e', request.requestid, err) })
  }

  async create (body: PinBody, options: AbortOptions = {}): Promise<PinStatus> {
    this.requireWritable()
    const request = this.newRequest(body)
    await this.addRequest(request, undefined, options)
    return await this.render(await this.written(request), options)
  }

  async get (requestid: string, options: AbortOptions = {}): Promise<PinStatus> {
    return await this.render(await this.find(requestid), options)
  }

  /** POST /pins/{requestid}: a new request replaces the old one; blocks common to both stay pinned throughout. */
  async replace (requestid: string, body: PinBody, options: AbortOptions = {}): Promise<PinStatus> {
    this.requireWritable()
    const old = await this.find(requestid)
    const request = this.newRequest(body)
    const key = pinKey(body.root)
    if (key === old.key) {
      await this.locked(key, async () => {
        const pin = this.components.pinset.get(key)
        if (pin?.metadata?.[requestKey(old.requestid)] == null) throw this.notFound(requestid)
        this.recent.delete(old.requestid)
        await this.write(pin.cid, replacingRequest(pin, old.requestid, request), options)
      })
      this.remember(request, key)
    } else {
      // the new pin first (as a pin update of the old CID, so peers fetch only new blocks), then drop the old
      await this.addRequest(request, this.components.pinset.get(old.key)?.cid, options)
      await this.removeRequest(old, options).catch(err => { if (err.name !== 'NotFoundError') throw err })
    }
    return await this.render(await this.written(request), options)
  }

  async remove (requestid: string, options: AbortOptions = {}): Promise<void> {
    this.requireWritable()
    await this.removeRequest(await this.find(requestid), options)
  }

  async list (q: ListQuery, options: AbortOptions = {}): Promise<PinResults> {
    const { index } = this.components
    await index.idle()
    const filterStatus = SVC_STATUSES.some(s => !q.statuses.has(s))
    const statuses = new StatusLookup(this.components, options)
    const range = { before: q.before, after: q.after }
    const source = q.cids === undefined ? index.scan(range) : this.byCids(q.cids, range)
    let count = 0
    const page: IndexedRequest[] = []
    let batch: IndexedRequest[] = []
    const flush = async (): Promise<void> => {
      if (filterStatus) await statuses.load(batch)
      for (const r of batch) {
        if (filterStatus && !q.statuses.has(statuses.get(r).status)) continue
        count++
        if (page.length < q.limit) page.push(r)
      }
      batch = []
    }
    const turn = turnBudget()
    for await (const r of source) {
      options.signal?.throwIfAborted()
      if (turn.spent()) await turn.yield()
      if (q.name !== undefined && !matchesName(r.name, q.name, q.match)) continue
      if (q.meta !== undefined && !matchesMeta(r.meta, q.meta)) continue
      batch.push(r)
      if (batch.length >= STATUS_BATCH) await flush()
    }
    await flush()
    await statuses.load(page)
    return { count, results: await Promise.all(page.map(async r => await this.toPinStatus(r, statuses.get(r)))) }
  }

  // ----- writes

  private requireWritable (): void {
    if (!this.components.cluster.writable) throw new FollowerModeError('follower mode: this peer cannot create or remove pins; use a trusted peer')
  }

  private newRequest (body: PinBody): PinRequest {
    // unique per peer even within one millisecond: `before` pagination needs distinct created values
    const now = Math.max(Date.now(), this.lastCreated + 1)
    this.lastCreated = now
    const request = { requestid: randomUUID(), cid: body.cid, name: body.name, meta: body.meta, origins: body.origins, created: new Date(now).toISOString() }
    const size = Buffer.byteLength(JSON.stringify(request))
    if (size > MAX_REQUEST_BYTES) throw new InvalidBodyError(`the Pin object is too large: ${size} bytes of name, meta and origins (at most ${MAX_REQUEST_BYTES})`)
    return request
  }

  private async addRequest (request: PinRequest, updateOf: string | undefined, options: AbortOptions): Promise<void> {
    const key = pinKey(request.cid)
    await this.locked(key, async () => {
      const existing = this.components.pinset.get(key)
      const pinOptions = withRequest(existing, request)
      if (existing === undefined && updateOf !== undefined) pinOptions.pin_update = updateOf
      await this.write(existing?.cid ?? request.cid, pinOptions, options)
    })
    this.remember(request, key)
  }

  private async removeRequest (request: IndexedRequest, options: AbortOptions): Promise<void> {
    await this.locked(request.key, async () => {
      const pin = this.components.pinset.get(request.key)
      if (pin?.metadata?.[requestKey(request.requestid)] == null) throw this.notFound(request.requestid)
      this.recent.delete(request.requestid)
      const { options: rest, unpin } = withoutRequest(pin, request.requestid)
      // the tombstone goes out before the unpin: a peer that just added a request here then knows this was a delete
      await this.write(pin.cid, rest, options)
      if (unpin) await this.components.cluster.unpin(parseCid(pin.cid), options)
    })
    await this.components.index.idle()
  }

  private async write (cid: string, pinOptions: PinOptions, options: AbortOptions): Promise<void> {
    const size = Buffer.byteLength(JSON.stringify(pinOptions.metadata ?? {}))
    if (size > MAX_PIN_METADATA_BYTES) {
      throw new InvalidParameterError(`too many pin requests on ${cid}: their entries would take ${size} bytes (at most ${MAX_PIN_METADATA_BYTES})`)
    }
    await this.components.cluster.pin(parseCid(cid), validPinOptions(pinOptions), options)
  }

  /** Read-modify-write of one pin at a time on this peer (the pin value is replaced whole). */
  private async locked<T> (key: string, work: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve()
    const run = prev.then(work, work)
    const tail = run.catch(() => {})
    this.locks.set(key, tail)
    try {
      return await run
    } finally {
      if (this.locks.get(key) === tail) this.locks.delete(key)
    }
  }

  // ----- reads

  private notFound (requestid: string): NotFoundError {
    const shown = requestid.length > 100 ? `${requestid.slice(0, 100)}...` : requestid
    return new NotFoundError(`no pin request with requestid "${shown}"`)
  }

  /** Any requestid this peer does not know is a 404, whatever its form (the spec's NotFound for the path). */
  private async find (requestid: string): Promise<IndexedRequest> {
    await this.components.index.idle()
    const found = await this.components.index.get(requestid)
    if (found === undefined) throw this.notFound(requestid)
    return found
  }

  /**
   * A request this peer has just written, as written: another peer's write of the same CID may have won the
   * pin for a moment without it (watch() writes it again), which must not turn the 202 into a 404.
   */
  private async written (request: PinRequest): Promise<IndexedRequest> {
    await this.components.index.idle() // so that a GET right after the 202 finds it here
    return { ...request, key: pinKey(request.cid) }
  }

  private async * byCids (keys: PinKey[], range: { before?: string, after?: string }): AsyncGenerator<IndexedRequest> {
    const all = (await Promise.all(keys.map(async k => await this.components.index.byCid(k, range)))).flat()
    yield * all.sort((a, b) => a.created === b.created ? b.requestid.localeCompare(a.requestid) : b.created.localeCompare(a.created))
  }

  private async render (r: IndexedRequest, options: AbortOptions): Promise<PinStatus> {
    const statuses = new StatusLookup(this.components, options)
    await statuses.load([r])
    return await this.toPinStatus(r, statuses.get(r))
  }

  private async toPinStatus (r: IndexedRequest, st: SvcStatusInfo): Promise<PinStatus> {
    const { addressesOf, peerId } = this.components
    return {
      requestid: r.requestid,
      status: st.status,
      created: r.created,
      pin: { cid: r.cid, ...(r.name === '' ? {} : { name: r.name }), origins: r.origins, meta: r.meta },
      delegates: await delegateAddresses(st.delegates, addressesOf, peerId),
      info: { status_details: st.details }
    }
  }
}

/** The service status of the CIDs one API request needs, each looked up once. */
class StatusLookup {
  private readonly known = new Map<string, SvcStatusInfo>()
  private lookups = 0
  private bulk = false

  constructor (private readonly components: Pick<PinServiceComponents, 'cluster' | 'pinset'>, private readonly options: AbortOptions) {}

  get (r: IndexedRequest): SvcStatusInfo {
    return this.known.get(r.key) ?? { status: 'failed', details: 'the CID is no longer in the cluster pinset', delegates: [] }
  }

  async load (requests: IndexedRequest[]): Promise<void> {
    const { cluster, pinset } = this.components
    const missing = [...new Map(requests.filter(r => !this.known.has(r.key)).map(r => [r.key, r])).values()]
    if (missing.length === 0 || this.bulk) return
    this.lookups += missing.length
    if (this.lookups > BULK_STATUS_AFTER) {
      // one status stream from every peer instead of a round trip per CID; only CIDs with requests are kept
      this.bulk = true
      const turn = turnBudget()
      for await (const gpi of cluster.statusAll(this.options)) {
        if (turn.spent()) await turn.yield()
        const key = pinKey(gpi.cid)
        const pin = pinset.get(key)
        if (pin !== undefined && hasRequests(pin)) this.known.set(key, svcStatusOf(gpi, pin))
      }
      return
    }
    await Promise.all(missing.map(async r => {
      const pin = pinset.get(r.key)
      if (pin === undefined) return
      this.known.set(r.key, svcStatusOf(await cluster.status(parseCid(pin.cid), this.options), pin))
    }))
  }
}
