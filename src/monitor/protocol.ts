// Pure encode/decode of the metrics gossip (no I/O).
//
// message   = 0x01 || u32be(body length) || body || signature
// body      = UTF-8 JSON {"cluster", "peer", "metrics": [Metric...]}, every metric's peer == "peer"
// signature = the peer's libp2p key over DOMAIN || body
// The gossip payload is the message sealed with the cluster secret (identity without one).
import type { Metric } from './index.js'

const VERSION = 0x01
const DOMAIN = new TextEncoder().encode('cairn-monitor-metrics-v1\n')
const enc = new TextEncoder()
const dec = new TextDecoder('utf-8', { fatal: true })

/** A peer may not claim liveness further ahead than this (IPFS Cluster's longest default TTL is 30 s). */
export const MAX_METRIC_TTL_MS = 10 * 60_000
export const MAX_MESSAGE_BYTES = 256 * 1024
export const MAX_METRICS_PER_MESSAGE = 256
export const MAX_NAME_LENGTH = 256
export const MAX_VALUE_LENGTH = 16 * 1024

export function metricsTopic (cluster: string): string { return `cairn/${cluster}/metrics` }

export interface MetricsBody {
  cluster: string
  peer: string
  metrics: Metric[]
}

export interface MetricsMessage extends MetricsBody {
  /** The signed bytes, kept to verify without re-encoding. */
  body: Uint8Array
  signature: Uint8Array
}

export class MalformedMetricsError extends Error {
  static override name = 'MalformedMetricsError'
  override name = 'MalformedMetricsError'
}

export function encodeMetricsBody (body: MetricsBody): Uint8Array {
  // received_at is the receiver's to set: never sent.
  const metrics = body.metrics.map(m => ({
    name: m.name, peer: m.peer, value: m.value, expire: m.expire, valid: m.valid, weight: m.weight, partitionable: m.partitionable
  }))
  return enc.encode(JSON.stringify({ cluster: body.cluster, peer: body.peer, metrics }))
}

export function metricsSigningPayload (body: Uint8Array): Uint8Array {
  const out = new Uint8Array(DOMAIN.length + body.length)
  out.set(DOMAIN, 0)
  out.set(body, DOMAIN.length)
  return out
}

export function encodeMetricsMessage (body: Uint8Array, signature: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + body.length + signature.length)
  out[0] = VERSION
  new DataView(out.buffer).setUint32(1, body.length)
  out.set(body, 5)
  out.set(signature, 5 + body.length)
  return out
}

/** Parses and shape-checks a message; the signature is checked by the caller. Throws MalformedMetricsError. */
export function decodeMetricsMessage (bytes: Uint8Array): MetricsMessage {
  if (bytes.length > MAX_MESSAGE_BYTES) throw new MalformedMetricsError(`message of ${bytes.length} bytes, at most ${MAX_MESSAGE_BYTES}`)
  if (bytes.length < 5) throw new MalformedMetricsError('truncated message')
  if (bytes[0] !== VERSION) throw new MalformedMetricsError(`unknown message version ${bytes[0]}`)
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(1)
  if (5 + length > bytes.length) throw new MalformedMetricsError('body length out of range')
  const body = bytes.subarray(5, 5 + length)
  const signature = bytes.subarray(5 + length)
  if (signature.length === 0) throw new MalformedMetricsError('no signature')
  let json: unknown
  try {
    json = JSON.parse(dec.decode(body))
  } catch (err) {
    throw new MalformedMetricsError(`body is not UTF-8 JSON: ${(err as Error).message}`)
  }
  if (!isObject(json)) throw new MalformedMetricsError('body is not a JSON object')
  const { cluster, peer, metrics } = json
  if (typeof cluster !== 'string') throw new MalformedMetricsError('"cluster" is not a string')
  if (typeof peer !== 'string' || peer === '') throw new MalformedMetricsError('"peer" is not a peer id string')
  if (!Array.isArray(metrics) || metrics.length === 0) throw new MalformedMetricsError('"metrics" is not a non-empty array')
  if (metrics.length > MAX_METRICS_PER_MESSAGE) throw new MalformedMetricsError(`${metrics.length} metrics, at most ${MAX_METRICS_PER_MESSAGE}`)
  const parsed = metrics.map((m, i) => parseMetric(m, i))
  if (new Set(parsed.map(m => m.name)).size !== parsed.length) throw new MalformedMetricsError('a metric name appears twice')
  return { cluster, peer, metrics: parsed, body, signature }
}

function isObject (x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x != null && !Array.isArray(x)
}

function parseMetric (x: unknown, i: number): Metric {
  const bad = (what: string): MalformedMetricsError => new MalformedMetricsError(`metrics[${i}]: ${what}`)
  if (!isObject(x)) throw bad('not an object')
  const { name, peer, value, expire, valid, weight, partitionable } = x
  if (typeof name !== 'string' || name === '' || name.length > MAX_NAME_LENGTH) throw bad(`"name" is not a string of 1-${MAX_NAME_LENGTH} characters`)
  if (typeof peer !== 'string') throw bad('"peer" is not a string')
  if (typeof value !== 'string' || value.length > MAX_VALUE_LENGTH) throw bad(`"value" is not a string of at most ${MAX_VALUE_LENGTH} characters`)
  // unix ns exceed 2^53: a finite positive number is all JSON can promise
  if (typeof expire !== 'number' || !Number.isFinite(expire) || expire <= 0) throw bad('"expire" is not a positive number of unix ns')
  if (typeof valid !== 'boolean') throw bad('"valid" is not a boolean')
  if (typeof weight !== 'number' || !Number.isSafeInteger(weight)) throw bad('"weight" is not an integer')
  if (typeof partitionable !== 'boolean') throw bad('"partitionable" is not a boolean')
  return { name, peer, value, expire, valid, weight, partitionable, received_at: 0 }
}
