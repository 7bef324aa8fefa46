// Peer-to-peer calls between cluster peers (IPFS Cluster's go-libp2p-gorpc, reduced to what cairn needs):
// one stream per call, a JSON request frame, then JSON response frames until the server closes.
// Frames: {"item": ...} for each result, {"error": "..."} on failure.
import { peerIdFromString } from '@libp2p/peer-id'
import { PeerUnreachableError, UnauthorizedError } from '../errors.js'
import { clusterSecret, SecretMismatchError, splitProof, withProof, type ClusterSecret } from '../secret.js'
import { readFrames, readOneFrame, sendFrame } from '../utils/stream.js'
import type { AbortOptions } from '../components.js'
import type { ComponentLogger, Libp2p, Logger, Stream, Connection } from '@libp2p/interface'

export type RpcHandler = (params: any, context: { peer: string, signal: AbortSignal }) => AsyncIterable<unknown> | Promise<unknown>

export interface RpcMethod {
  handler: RpcHandler
  /** Only trusted peers may call it (state-changing calls). */
  trustedOnly?: boolean
  /** Only members of the cluster may call it (costly reads: a whole status), see RpcInit.isMember. */
  membersOnly?: boolean
  /** How long a call may run here (default 4x the RPC timeout). */
  deadlineMs?: number
}

export interface CallOptions extends AbortOptions {
  /** How long to wait for the whole answer (default the RPC timeout). */
  timeoutMs?: number
}

export interface RpcInit {
  cluster: string
  methods: Record<string, RpcMethod>
  isTrusted: (peerId: string) => boolean
  /** Who is answered at all (default: anyone): a closed cluster's members. */
  admits?: (peerId: string) => boolean
  /** Who may call the members-only methods (trusted peers always may); default: trusted peers only. */
  isMember?: (peerId: string) => boolean
  timeoutMs?: number
  /** The cluster secret: both sides of every call prove they hold it (default: none). */
  secret?: ClusterSecret
}

export interface RpcComponents {
  libp2p: Libp2p
  logger: ComponentLogger
}

export interface Rpc {
  start(): Promise<void>
  stop(): Promise<void>
  /** Calls a method on a peer; yields each result item. */
  call<T = unknown>(peer: string, method: string, params?: unknown, options?: CallOptions): AsyncGenerator<T>
  /** Calls a method that returns one item. */
  callOne<T = unknown>(peer: string, method: string, params?: unknown, options?: CallOptions): Promise<T>
}

export function rpcProtocol (cluster: string): string { return `/cairn/${cluster}/rpc/1.0.0` }

const DIAL_ATTEMPTS = 2

/** What went wrong, in words, whatever was thrown (libp2p has rejected with values that carry no message). */
function describe (err: unknown): string {
  if (err instanceof Error) return err.message !== '' ? err.message : err.name
  if (typeof err === 'object' && err != null && 'type' in err) return `${String((err as { type: unknown }).type)} event`
  return String(err)
}

const enc = new TextEncoder()
const dec = new TextDecoder()
const toFrame = (v: unknown): Uint8Array => enc.encode(JSON.stringify(v))

export function createRpc (init: RpcInit, components: RpcComponents): Rpc {
  const log: Logger = components.logger.forComponent('cairn:rpc')
  const protocol = rpcProtocol(init.cluster)
  const shutdown = new AbortController()
  const timeoutMs = init.timeoutMs ?? 15_000
  const secret = init.secret ?? clusterSecret('')
  const self = components.libp2p.peerId.toString()

  async function serve (stream: Stream, connection: Connection): Promise<void> {
    const peer = connection.remotePeer.toString()
    let signal = AbortSignal.any([shutdown.signal, AbortSignal.timeout(timeoutMs * 4)])
    try {
      const { proof, rest } = splitProof(secret, await readOneFrame(stream, { signal, maxDataLength: 4 * 1024 * 1024 }))
      if (!secret.verify(proof, protocol, peer, self)) throw new SecretMismatchError(`rpc from ${peer} without the cluster secret`)
      if (secret.enabled) await sendFrame(stream, secret.proof(protocol, self, peer), { signal })
      const req = JSON.parse(dec.decode(rest))
      // own keys only: "constructor" or "__proto__" would otherwise find Object.prototype's members
      const method = typeof req?.method === 'string' && Object.hasOwn(init.methods, req.method) ? init.methods[req.method] : undefined
      if (method?.deadlineMs != null) signal = AbortSignal.any([shutdown.signal, AbortSignal.timeout(method.deadlineMs)])
      try {
        if (init.admits != null && !init.admits(peer)) throw new UnauthorizedError(`rpc ${String(req?.method)}: peer ${peer} is not a member of this cluster`)
        if (method == null) throw new Error(`unknown rpc method ${String(req?.method)}`)
        if (method.trustedOnly === true && !init.isTrusted(peer)) throw new UnauthorizedError(`rpc ${String(req.method)}: peer ${peer} is not trusted`)
        if (method.membersOnly === true && !init.isTrusted(peer) && init.isMember?.(peer) !== true) {
          throw new UnauthorizedError(`rpc ${String(req.method)}: peer ${peer} is not a member of the cluster`)
        }
        const result = method.handler(req.params, { peer, signal })
        if (result != null && typeof (result as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
          for await (const item of result as AsyncIterable<unknown>) await sendFrame(stream, toFrame({ item }), { signal })
        } else {
          await sendFrame(stream, toFrame({ item: await result }), { signal })
        }
      } catch (err) {
        await sendFrame(stream, toFrame({ error: (err as Error).message ?? String(err) }), { signal })
      }
      await stream.close({ signal })
    } catch (err) {
      log('rpc from %s failed: %e', peer, err)
      stream.abort(err as Error)
    }
  }

  async function * call<T> (peer: string, method: string, params?: unknown, options: CallOptions = {}): AsyncGenerator<T> {
    const signal = AbortSignal.any([shutdown.signal, AbortSignal.timeout(options.timeoutMs ?? timeoutMs), ...(options.signal != null ? [options.signal] : [])])
    let stream: Stream | undefined
    // a second try when the first fails before the deadline: a connection closing as the stream opens (seen in a
    // status across 5 busy peers) is not the peer being unreachable
    for (let attempt = 1; stream == null; attempt++) {
      try {
        stream = await components.libp2p.dialProtocol(peerIdFromString(peer), protocol, { signal })
      } catch (err) {
        if (attempt >= DIAL_ATTEMPTS || signal.aborted) throw new PeerUnreachableError(`peer ${peer} did not answer: ${describe(err)}`)
        log('opening an rpc stream to %s failed, trying again: %s', peer, describe(err))
      }
    }
    let done = false
    try {
      await sendFrame(stream, withProof(secret.proof(protocol, self, peer), toFrame({ method, params })), { signal })
      await stream.close({ signal })
      let proven = !secret.enabled
      for await (const frame of readFrames(stream, { signal, maxDataLength: 16 * 1024 * 1024 })) {
        if (!proven) {
          if (!secret.verify(frame, protocol, peer, self)) throw new PeerUnreachableError(`peer ${peer} did not prove the cluster secret`)
          proven = true
          continue
        }
        const msg = JSON.parse(dec.decode(frame))
        if (msg.error != null) throw new PeerUnreachableError(`peer ${peer}: ${String(msg.error)}`)
        yield msg.item as T
      }
      done = true
    } catch (err) {
      if ((err as Error).name === 'PeerUnreachableError') throw err
      throw new PeerUnreachableError(`peer ${peer} did not answer: ${describe(err)}`)
    } finally {
      // The caller stopped early or it failed: drop the stream instead of leaving it half open.
      if (!done) stream.abort(new Error('rpc call ended early'))
    }
  }

  return {
    async start () {
      await components.libp2p.handle(protocol, (stream, connection) => { void serve(stream, connection) }, {
        maxInboundStreams: 64, maxOutboundStreams: 64
      })
    },
    async stop () {
      shutdown.abort()
      await components.libp2p.unhandle(protocol).catch(() => {})
    },
    call,
    async callOne<T>(peer: string, method: string, params?: unknown, options?: CallOptions): Promise<T> {
      // eslint-disable-next-line no-unreachable-loop -- the first item is the answer
      for await (const item of call<T>(peer, method, params, options)) return item
      throw new PeerUnreachableError(`peer ${peer}: empty answer to ${method}`)
    }
  }
}
