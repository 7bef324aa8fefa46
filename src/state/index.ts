// `cairn state export|import`: the pinset as NDJSON of Pin, one per line, the JSON of GET /allocations (IPFS
// Cluster's `ipfs-cluster-service state export` format). Import checks every line before it writes anything,
// then writes through the REST API as ordinary pins (so the receiving cluster signs, allocates and spreads
// them), skipping pins that are already there with the same options: importing twice changes nothing.
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import { parseCid } from '../utils/cid.js'
import { parseRfc3339 } from '../api/rest/pin-options.js'
import { InvalidParameterError } from '../errors.js'
import { pinKey } from '../utils/keys.js'
import { ZERO_TIME, type AbortOptions, type Pin, type PinOptions } from '../components.js'

/** One NDJSON line of an export. */
export function pinLine (pin: Pin): string {
  return JSON.stringify(pin) + '\n'
}

const valid = (check: (s: string) => unknown): ((s: string) => boolean) => s => {
  try { check(s); return true } catch { return false }
}
const cidString = z.string().refine(valid(s => parseCid(s)), { error: i => `not a CID: ${JSON.stringify(i.input)}` })
const peerId = z.string().refine(valid(peerIdFromString), { error: i => `not a peer ID: ${JSON.stringify(i.input)}` })
const time = z.string().refine(s => s === ZERO_TIME || parseRfc3339(s) !== undefined, { error: i => `not an RFC3339 time: ${JSON.stringify(i.input)}` })
const replication = z.int().min(-1)
// as Go's decoder: null for a slice or map, absent fields take their zero value, unknown fields are ignored
const list = <T extends z.ZodType>(item: T) => z.array(item).nullish().transform(v => v ?? [])

/** A Pin as IPFS Cluster (>= 1.0) and cairn write it; only `cid` is required. */
export const pinLineSchema = z.object({
  cid: cidString,
  type: z.enum(['pin', 'meta-pin', 'clusterdag-pin', 'shard-pin']).default('pin'),
  name: z.string().nullish().transform(v => v ?? ''),
  mode: z.enum(['recursive', 'direct']).nullish(),
  replication_factor_min: replication.default(0),
  replication_factor_max: replication.default(0),
  allocations: list(peerId),
  shard_size: z.int().nonnegative().default(0),
  max_depth: z.int().min(-1).default(-1),
  reference: cidString.nullish().transform(v => v ?? null),
  expire_at: time.nullish().transform(v => v ?? ZERO_TIME),
  metadata: z.record(z.string(), z.string()).nullish().transform(v => v ?? {}),
  origins: list(z.string().refine(valid(s => {
    if (!multiaddr(s).getComponents().some(c => c.name === 'p2p')) throw new Error('no /p2p/')
  }), { error: i => `not a multiaddr with /p2p/<peer ID>: ${JSON.stringify(i.input)}` })),
  pin_update: cidString.nullish().transform(v => v ?? null),
  user_allocations: z.array(peerId).nullish().transform(v => v ?? null),
  timestamp: time.nullish().transform(v => v ?? ZERO_TIME)
}).transform((p): Pin => ({
  ...p,
  // IPFS Cluster does not store mode: it follows from max_depth
  mode: p.mode ?? (p.max_depth === 0 ? 'direct' : 'recursive')
}))

/** A line that failed validation. */
export interface LineProblem {
  line: number
  message: string
}

export interface ParsedExport {
  pins: Array<{ line: number, pin: Pin }>
  problems: LineProblem[]
}

/**
 * Parses and checks every line (empty lines are skipped). All problems are returned, not just the first, so
 * one run shows everything to fix; a CID on two lines is a problem too.
 */
export function parseExport (text: string): ParsedExport {
  const pins: ParsedExport['pins'] = []
  const problems: LineProblem[] = []
  const seen = new Map<string, number>()
  const lines = text.split('\n')
  lines.forEach((raw, i) => {
    const line = i + 1
    const content = raw.trim()
    if (content === '') return
    let json: unknown
    try {
      json = JSON.parse(content)
    } catch (err) {
      problems.push({ line, message: `not JSON: ${(err as Error).message}` })
      return
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      problems.push({ line, message: 'expected a JSON object (one Pin per line)' })
      return
    }
    const result = pinLineSchema.safeParse(json)
    if (!result.success) {
      for (const issue of result.error.issues) {
        const key = issue.path.map(String).join('.')
        problems.push({ line, message: key === '' ? issue.message : `${key}: ${issue.message}` })
      }
      return
    }
    const key = pinKey(result.data.cid)
    const first = seen.get(key)
    if (first !== undefined) {
      problems.push({ line, message: `cid ${result.data.cid} is already on line ${first}` })
      return
    }
    seen.set(key, line)
    pins.push({ line, pin: result.data })
  })
  return { pins, problems }
}

/** The problems as one error message: "<file>:<line>: <message>", at most `max` of them. */
export function problemsError (source: string, problems: LineProblem[], max = 20): InvalidParameterError {
  const shown = problems.slice(0, max).map(p => `${source}:${p.line}: ${p.message}`)
  if (problems.length > max) shown.push(`... and ${problems.length - max} more`)
  return new InvalidParameterError(`${problems.length === 1 ? 'a line is' : `${problems.length} lines are`} not a valid Pin; nothing was imported:\n${shown.join('\n')}`)
}

/** What POST /pins/{cid} gets for an imported pin. Allocations are chosen again by the receiving cluster. */
export function importOptions (pin: Pin, peers?: ReadonlySet<string>): { options: PinOptions, droppedAllocations: string[] } {
  const wanted = pin.user_allocations ?? []
  const kept = peers == null ? wanted : wanted.filter(p => peers.has(p))
  const options: PinOptions = {
    name: pin.name,
    mode: pin.mode,
    replication_factor_min: pin.replication_factor_min,
    replication_factor_max: pin.replication_factor_max,
    shard_size: pin.shard_size === 0 ? undefined : pin.shard_size,
    metadata: pin.metadata ?? {},
    origins: pin.origins,
    expire_at: pin.expire_at === ZERO_TIME ? undefined : pin.expire_at,
    user_allocations: kept.length > 0 ? kept : undefined
  }
  return { options, droppedAllocations: wanted.filter(p => !kept.includes(p)) }
}

const sameSet = (a: readonly string[] | null | undefined, b: readonly string[] | null | undefined): boolean => {
  const x = [...(a ?? [])].sort()
  const y = [...(b ?? [])].sort()
  return x.length === y.length && x.every((v, i) => v === y[i])
}

const sameRecord = (a: Record<string, string> | null | undefined, b: Record<string, string> | null | undefined): boolean => {
  const x = Object.entries(a ?? {}).sort(([k1], [k2]) => k1 < k2 ? -1 : 1)
  const y = Object.entries(b ?? {}).sort(([k1], [k2]) => k1 < k2 ? -1 : 1)
  return JSON.stringify(x) === JSON.stringify(y)
}

const sameTime = (a: string, b: string): boolean => a === b || (a !== ZERO_TIME && b !== ZERO_TIME && Date.parse(a) === Date.parse(b))

/**
 * Whether the pin already in the cluster carries the options an import would give it (so importing it again
 * would only rewrite it). Replication 0 in the file means "the cluster's default", which any value satisfies.
 */
export function samePinOptions (existing: Pin, options: PinOptions): boolean {
  const rf = (want: number | undefined, have: number): boolean => want == null || want === 0 || want === have
  return existing.type === 'pin' &&
    existing.name === (options.name ?? '') &&
    existing.mode === (options.mode ?? 'recursive') &&
    rf(options.replication_factor_min, existing.replication_factor_min) &&
    rf(options.replication_factor_max, existing.replication_factor_max) &&
    existing.shard_size === (options.shard_size ?? 0) &&
    sameTime(existing.expire_at, options.expire_at ?? ZERO_TIME) &&
    sameRecord(existing.metadata, options.metadata) &&
    sameSet(existing.origins, options.origins) &&
    sameSet(existing.user_allocations, options.user_allocations)
}

/** What an import needs from the receiving peer's REST API (src/client's Client fits). */
export interface ImportTarget {
  allocations(options?: AbortOptions): AsyncIterable<Pin>
  pin(cid: string, options: PinOptions & AbortOptions): Promise<Pin>
  peers?(options?: AbortOptions): Promise<Array<{ id: string }>>
}

export interface ImportOptions extends AbortOptions {
  /** Pins written at once (default 16; the peer batches concurrent writes into one signed envelope). */
  concurrency?: number
  onProgress?: (done: number, total: number) => void
}

export interface ImportSummary {
  /** Pins in the file. */
  total: number
  /** Written (new, or options changed). */
  imported: number
  /** Already in the pinset with the same options. */
  unchanged: number
  /** Sharded-content pins (meta-pin, clusterdag-pin, shard-pin), which the REST API cannot create. */
  skipped_sharded: number
  /** Already expired: importing them would only have them removed again. */
  skipped_expired: number
  /** Pins whose user_allocations named peers that are not in this cluster (those peers were left out). */
  allocations_dropped: number
  failed: Array<{ line: number, cid: string, error: string }>
}

/** Writes the parsed pins; failures are collected per line, the others still go in. */
export async function importPins (pins: ParsedExport['pins'], target: ImportTarget, options: ImportOptions = {}): Promise<ImportSummary> {
  const { signal } = options
  const summary: ImportSummary = {
    total: pins.length, imported: 0, unchanged: 0, skipped_sharded: 0, skipped_expired: 0, allocations_dropped: 0, failed: []
  }
  const existing = new Map<string, Pin>()
  for await (const pin of target.allocations({ signal })) existing.set(pinKey(pin.cid), pin)
  const peers = target.peers != null ? new Set((await target.peers({ signal })).map(p => p.id).filter(id => id !== '')) : undefined

  const now = Date.now()
  const todo: Array<{ line: number, cid: string, options: PinOptions }> = []
  for (const { line, pin } of pins) {
    if (pin.type !== 'pin') { summary.skipped_sharded++; continue }
    if (pin.expire_at !== ZERO_TIME && Date.parse(pin.expire_at) <= now) { summary.skipped_expired++; continue }
    const { options: opts, droppedAllocations } = importOptions(pin, peers)
    if (droppedAllocations.length > 0) summary.allocations_dropped++
    const have = existing.get(pinKey(pin.cid))
    if (have != null && samePinOptions(have, opts)) { summary.unchanged++; continue }
    todo.push({ line, cid: pin.cid, options: opts })
  }

  let done = pins.length - todo.length
  options.onProgress?.(done, pins.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      signal?.throwIfAborted()
      const item = todo[next++]
      try {
        await target.pin(item.cid, { ...item.options, signal })
        summary.imported++
      } catch (err) {
        if (signal?.aborted === true) throw err
        summary.failed.push({ line: item.line, cid: item.cid, error: (err as Error).message })
      }
      options.onProgress?.(++done, pins.length)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 16) }, worker))
  summary.failed.sort((a, b) => a.line - b.line)
  return summary
}
