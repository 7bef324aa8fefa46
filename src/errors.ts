// Error classes with stable names. Callers branch on err.name; src/api/errors.ts maps names to HTTP status.

function defineError (name: string, defaultMessage: string): new (message?: string) => Error {
  const Cls = class extends Error {
    static override name = name
    override name = name
    constructor (message: string = defaultMessage) {
      super(message)
    }
  }
  return Cls
}

/** The exact text IPFS Cluster uses for a CID that is not in the pinset (clients match on it). */
export const NOT_IN_PINSET = 'pin is not part of the pinset'

export class InvalidCIDError extends defineError('InvalidCIDError', 'invalid CID') {}
export class InvalidParameterError extends defineError('InvalidParameterError', 'invalid parameter') {}
export class InvalidBodyError extends defineError('InvalidBodyError', 'invalid request body') {}
export class NotInPinsetError extends defineError('NotInPinsetError', NOT_IN_PINSET) {}
export class NotFoundError extends defineError('NotFoundError', 'not found') {}
export class UnknownPeerError extends defineError('UnknownPeerError', 'unknown peer') {}
export class QueueFullError extends defineError('QueueFullError', 'pin/unpin operation queue is full') {}
/** The peer serves as many heavy requests (whole-pinset lists) as it may at once; the API answers 429 with Retry-After. */
export class TooManyRequestsError extends defineError('TooManyRequestsError', 'too many requests: try again later') {
  constructor (message?: string, readonly retryAfterSeconds = 1) {
    super(message)
  }
}
export class FollowerModeError extends defineError('FollowerModeError', 'follower mode: write operations are disabled') {}
export class UnauthorizedError extends defineError('UnauthorizedError', 'unauthorized: access denied') {}
export class NotEnoughPeersError extends defineError('NotEnoughPeersError', 'not enough peers to allocate CID') {}
/** A spread pin whose shares do not fit the space its peers offer (the message says how much is missing). */
export class NotEnoughSpaceError extends defineError('NotEnoughSpaceError', 'not enough space offered by the cluster\'s peers') {}
export class ConfigError extends defineError('ConfigError', 'invalid configuration') {}
export class NotStartedError extends defineError('NotStartedError', 'component is not started') {}
export class PeerUnreachableError extends defineError('PeerUnreachableError', 'peer did not answer') {}
export class QuotaExceededError extends defineError('QuotaExceededError', 'quota exceeded: storage_max reached') {}
/** The disk holding the peer's folder is full: writes are refused (src/storage/disk.ts names the disk). */
export class InsufficientStorageError extends defineError('InsufficientStorageError', 'insufficient storage: the disk is full') {}
export class RetrievalTimeoutError extends defineError('RetrievalTimeoutError', 'content could not be retrieved in time') {}
export class ShuttingDownError extends defineError('ShuttingDownError', 'the peer is shutting down') {}
/** A repo GC could not start: one runs already, or pins and adds kept writing blocks for longer than it waits. */
export class RepoBusyError extends defineError('RepoBusyError', 'the repo is busy: try the GC again later') {}
/** A peer sent bytes that are not the block asked for (another hash function or digest). */
export class InvalidBlockError extends defineError('InvalidBlockError', 'a peer sent a block that does not match its CID') {}
/** The client accepts none of the variants the gateway can send (a CAR version or order it does not write). */
export class NotAcceptableError extends defineError('NotAcceptableError', 'none of the accepted representations can be served') {}
/** `Cache-Control: only-if-cached` and a block the answer needs is not in the local store. */
export class NotCachedError extends defineError('NotCachedError', 'not in the local store, and only-if-cached forbids fetching it') {}
/** What a mirror holds cannot be served as the client asked (a packument that is not JSON, or too large to rewrite). */
export class InvalidContentError extends defineError('InvalidContentError', 'the content cannot be served as asked') {}
/** A peer announced a stream frame larger than that kind of frame may be: the stream is dropped before reading it. */
export class FrameTooLongError extends defineError('FrameTooLongError', 'a peer sent a frame longer than allowed') {}
