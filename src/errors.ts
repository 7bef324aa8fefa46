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
export class FollowerModeError extends defineError('FollowerModeError', 'follower mode: write operations are disabled') {}
export class UnauthorizedError extends defineError('UnauthorizedError', 'unauthorized: access denied') {}
export class NotEnoughPeersError extends defineError('NotEnoughPeersError', 'not enough peers to allocate CID') {}
export class ConfigError extends defineError('ConfigError', 'invalid configuration') {}
export class NotStartedError extends defineError('NotStartedError', 'component is not started') {}
export class PeerUnreachableError extends defineError('PeerUnreachableError', 'peer did not answer') {}
export class QuotaExceededError extends defineError('QuotaExceededError', 'quota exceeded: storage_max reached') {}
export class RetrievalTimeoutError extends defineError('RetrievalTimeoutError', 'content could not be retrieved in time') {}
export class ShuttingDownError extends defineError('ShuttingDownError', 'the peer is shutting down') {}
/** A repo GC could not start: one runs already, or pins and adds kept writing blocks for longer than it waits. */
export class RepoBusyError extends defineError('RepoBusyError', 'the repo is busy: try the GC again later') {}
/** A peer sent bytes that are not the block asked for (another hash function or digest). */
export class InvalidBlockError extends defineError('InvalidBlockError', 'a peer sent a block that does not match its CID') {}
/** What a mirror holds cannot be served as the client asked (a packument that is not JSON, or too large to rewrite). */
export class InvalidContentError extends defineError('InvalidContentError', 'the content cannot be served as asked') {}
/** A peer announced a stream frame larger than that kind of frame may be: the stream is dropped before reading it. */
export class FrameTooLongError extends defineError('FrameTooLongError', 'a peer sent a frame longer than allowed') {}
