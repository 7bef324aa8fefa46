// Pin requests live in the pin's metadata, one key per request, so the pinset carries them to every peer:
// `cairn-pinsvc/<requestid>` -> {"cid","name","meta","origins","created"}. The pinset stays keyed by CID;
// a CID is unpinned only when its last request goes and no plain cluster pin holds it.
import type { PinOptions } from '../../components.js'
import type { Pin } from '../../types/wire.js'

export const REQUEST_KEY_PREFIX = 'cairn-pinsvc/'
/** Set when requests were added to a pin that existed before them (a plain cluster pin): it outlives them. */
export const CLUSTER_PIN_MARK = 'cairn-pinsvc:cluster-pin'
/** `cairn-pinsvc-deleted/<requestid>` -> deletion time: kept a while so concurrent writers can tell deletes from lost writes. */
export const TOMBSTONE_KEY_PREFIX = 'cairn-pinsvc-deleted/'
const TOMBSTONE_TTL_MS = 10 * 60_000

export interface PinRequest {
  requestid: string
  /** The CID as the client gave it. */
  cid: string
  name: string
  meta: Record<string, string>
  origins: string[]
  /** RFC 3339 with milliseconds; immutable, unique per peer. */
  created: string
}

export function requestKey (requestid: string): string {
  return REQUEST_KEY_PREFIX + requestid
}

/** The requests stored in a pin's metadata; entries that do not parse are skipped (never written by us). */
export function requestsOf (pin: Pin): PinRequest[] {
  const out: PinRequest[] = []
  for (const [key, value] of Object.entries(pin.metadata ?? {})) {
    if (!key.startsWith(REQUEST_KEY_PREFIX)) continue
    const request = decodeRequest(key.slice(REQUEST_KEY_PREFIX.length), value, pin.cid)
    if (request !== undefined) out.push(request)
  }
  return out
}

export function hasRequests (pin: Pin): boolean {
  return Object.keys(pin.metadata ?? {}).some(k => k.startsWith(REQUEST_KEY_PREFIX))
}

export function encodeRequest (request: PinRequest): string {
  const { cid, name, meta, origins, created } = request
  return JSON.stringify({ cid, name, meta, origins, created })
}

function decodeRequest (requestid: string, value: string, pinCid: string): PinRequest | undefined {
  try {
    const v = JSON.parse(value) as Partial<PinRequest>
    if (typeof v.created !== 'string' || Number.isNaN(Date.parse(v.created))) return undefined
    return {
      requestid,
      cid: typeof v.cid === 'string' ? v.cid : pinCid,
      name: typeof v.name === 'string' ? v.name : '',
      meta: isStringRecord(v.meta) ? v.meta : {},
      origins: Array.isArray(v.origins) ? v.origins.filter((o): o is string => typeof o === 'string') : [],
      created: v.created
    }
  } catch {
    return undefined
  }
}

function isStringRecord (v: unknown): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every(x => typeof x === 'string')
}

/** The options that rewrite `pin` as it is (allocations are kept by the cluster while replication is unchanged). */
function optionsOf (pin: Pin, now = Date.now()): PinOptions {
  const metadata = { ...pin.metadata }
  for (const [k, v] of Object.entries(metadata)) {
    if (k.startsWith(TOMBSTONE_KEY_PREFIX) && now - Date.parse(v) > TOMBSTONE_TTL_MS) delete metadata[k]
  }
  return {
    name: pin.name,
    mode: pin.mode,
    replication_factor_min: pin.replication_factor_min,
    replication_factor_max: pin.replication_factor_max,
    shard_size: pin.shard_size,
    user_allocations: pin.user_allocations ?? undefined,
    expire_at: pin.expire_at,
    metadata,
    origins: [...pin.origins]
  }
}

/** Whether `pin` records the deletion of `requestid` (a tombstone). */
export function isTombstoned (pin: Pin, requestid: string): boolean {
  return pin.metadata?.[TOMBSTONE_KEY_PREFIX + requestid] != null
}

/** A pin that existed without requests (nor recent pinsvc deletions) is somebody's plain cluster pin. */
function isPlain (pin: Pin): boolean {
  if (pin.metadata?.[CLUSTER_PIN_MARK] === 'true') return true
  return !Object.keys(pin.metadata ?? {}).some(k => k.startsWith(REQUEST_KEY_PREFIX) || k.startsWith(TOMBSTONE_KEY_PREFIX))
}

/** The pin options for adding `request` to `existing` (undefined: a new pin owned by its requests). */
export function withRequest (existing: Pin | undefined, request: PinRequest): PinOptions {
  const entry = { [requestKey(request.requestid)]: encodeRequest(request) }
  if (existing === undefined) {
    return { name: request.name, metadata: entry, origins: request.origins }
  }
  const options = optionsOf(existing)
  const metadata = options.metadata!
  // remember that a plain pin must outlive the requests added to it
  if (isPlain(existing)) metadata[CLUSTER_PIN_MARK] = 'true'
  else if (!hasRequests(existing)) options.name = request.name
  Object.assign(metadata, entry)
  options.origins = [...new Set([...options.origins!, ...request.origins])].slice(0, 20)
  return options
}

/**
 * The pin once `requestid` is removed from it, with a tombstone so that a peer that added a request to the
 * same CID at the same moment can tell a deletion from a lost write. `unpin`: nothing holds the pin any more.
 */
export function withoutRequest (pin: Pin, requestid: string): { options: PinOptions, unpin: boolean } {
  const now = Date.now()
  const options = optionsOf(pin, now)
  const metadata = options.metadata!
  delete metadata[requestKey(requestid)]
  metadata[TOMBSTONE_KEY_PREFIX + requestid] = new Date(now).toISOString()
  const plain = metadata[CLUSTER_PIN_MARK] === 'true'
  const remaining = requestsOf({ ...pin, metadata })
  // a plain pin keeps its mark (and its name) for good: the tombstone alone would make it look pinsvc-owned
  if (remaining.length === 0) return { options, unpin: !plain }
  if (!plain) {
    // the pin's display name and origins follow the requests still holding it (a plain pin keeps its own)
    options.name = remaining.sort((a, b) => b.created.localeCompare(a.created))[0].name
    options.origins = [...new Set(remaining.flatMap(r => r.origins))].slice(0, 20)
  }
  return { options, unpin: false }
}

/** The pin options for swapping request `oldId` for `request` on the same CID, in one write. */
export function replacingRequest (pin: Pin, oldId: string, request: PinRequest): PinOptions {
  const { options, unpin } = withoutRequest(pin, oldId)
  const next = withRequest({ ...pin, ...options, metadata: options.metadata ?? {} } as Pin, request)
  // the old request was all that held the pin: the new one owns it alone
  if (unpin) {
    next.name = request.name
    next.origins = request.origins
  }
  return next
}
