// The one place that turns error names into HTTP statuses. REST (`{code, message}`) and the pinning service
// API (`{error: {reason, details}}`) share the status map and differ only in the body they build from it.
import { asInsufficientStorage } from '../storage/disk.js'
import type { Logger } from '@libp2p/logger'

/** HTTP status for each error class name of src/errors.ts. Anything else is a 500. */
export const HTTP_STATUS_BY_NAME: Readonly<Record<string, number>> = Object.freeze({
  InvalidCIDError: 400,
  InvalidParameterError: 400,
  InvalidBodyError: 400,
  UnknownPeerError: 400,
  UnauthorizedError: 401,
  FollowerModeError: 403,
  NotInPinsetError: 404,
  NotFoundError: 404,
  NotAcceptableError: 406,
  // only-if-cached: a client error (RFC 9111 names 504, the gateway specs 412 to keep it out of server errors)
  NotCachedError: 412,
  QueueFullError: 429,
  TooManyRequestsError: 429,
  QuotaExceededError: 507,
  InsufficientStorageError: 507,
  NotEnoughSpaceError: 507,
  // IPFS Cluster answers "not enough peers to allocate" with a 500, and its clients expect that
  NotEnoughPeersError: 500,
  ShuttingDownError: 503,
  RepoBusyError: 503,
  InvalidBlockError: 502,
  InvalidContentError: 502,
  // Helia's and the UnixFS exporter's, for a block below the CID asked for (that one is checked first) in a codec
  // or hash function this peer does not know: the content, not the request, is what cannot be served
  UnknownCodecError: 502,
  UnknownHashAlgorithmError: 502,
  NoResolverError: 502,
  RetrievalTimeoutError: 504
})

export interface HttpError {
  status: number
  message: string
  /** Seconds for a Retry-After header (a 429 past the heavy-request cap). */
  retryAfter?: number
}

/** Maps any thrown value to a status and message. Unmapped errors are logged: they are ours, not the caller's. */
export function toHttpError (err: unknown, log?: Logger): HttpError {
  const e = (err instanceof Error ? err : new Error(String(err))) as Error & { status?: unknown, type?: unknown, retryAfterSeconds?: unknown }
  let status = HTTP_STATUS_BY_NAME[e.name]
  let message = e.message
  // a full disk, also when a library wrapped the error into its own
  const noSpace = status === undefined ? asInsufficientStorage(e) : undefined
  if (noSpace != null) {
    status = HTTP_STATUS_BY_NAME[noSpace.name]
    message = noSpace.message
  }
  // express's body parsers and router tag client errors (bad JSON 400, too large 413, bad %-escape 400)
  if (status === undefined && typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    status = e.status
    if (e.type === 'entity.parse.failed') message = `malformed JSON body: ${e.message}`
  }
  if (status === undefined) {
    status = 500
    log?.error('unexpected %s answered with 500: %e', e.name, e)
  }
  const retryAfter = e.retryAfterSeconds
  return typeof retryAfter === 'number' && Number.isSafeInteger(retryAfter) && retryAfter >= 0 ? { status, message, retryAfter } : { status, message }
}

/** IPFS Cluster's REST error body (`api.Error`). */
export interface RestErrorBody {
  code: number
  message: string
}

export function restErrorBody (status: number, message: string): RestErrorBody {
  return { code: status, message }
}

/** The Pinning Service API's `Failure` body: a machine reason by status, the message as details. */
export interface PinsvcErrorBody {
  error: { reason: string, details: string }
}

const PINSVC_REASON_BY_STATUS: Readonly<Record<number, string>> = Object.freeze({
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  409: 'INSUFFICIENT_FUNDS',
  413: 'PAYLOAD_TOO_LARGE',
  429: 'TOO_MANY_REQUESTS',
  500: 'INTERNAL_SERVER_ERROR',
  503: 'SERVICE_UNAVAILABLE',
  507: 'INSUFFICIENT_STORAGE'
})

export function pinsvcErrorBody (status: number, message: string): PinsvcErrorBody {
  const reason = PINSVC_REASON_BY_STATUS[status] ?? (status >= 500 ? 'INTERNAL_SERVER_ERROR' : 'BAD_REQUEST')
  return { error: { reason, details: message } }
}
