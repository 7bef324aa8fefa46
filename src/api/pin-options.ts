// The one validation of pin options, at the edge: the REST API's query parser (./rest/pin-options.ts) and the
// pinning service API call it before they hand options to the cluster, which then trusts them. What needs the
// cluster's config (replication factors resolved from its defaults) or its state (known peers, the pin-update
// source in the pinset) is checked where the pin is built (src/cluster/pins.ts).
import { z } from 'zod'
import { InvalidParameterError } from '../errors.js'
import { parseCid } from '../utils/cid.js'
import { ZERO_TIME } from '../types/wire.js'
import type { PinOptions } from '../components.js'

/**
 * The instant `expire_at` must be after, for the parse under way. safeParse is synchronous, so no other parse can
 * run between setting it and reading it. The schema is built once: built per request, building it and its first
 * parse (zod compiles each new schema) took ~1.2 ms a request, 6.3 s of the receiving peer's 31 s of CPU in the
 * ingest benchmark (5,000 pins).
 */
let now = 0

/** PinOptions as the cluster takes them; other fields (an add's import parameters) pass through. */
const pinOptionsSchema: z.ZodType<PinOptions> = z.looseObject({
  name: z.string().optional(),
  mode: z.enum(['recursive', 'direct']).optional(),
  replication_factor_min: z.int().optional(),
  replication_factor_max: z.int().optional(),
  shard_size: z.int().nonnegative().optional(),
  user_allocations: z.array(z.string()).optional(),
  expire_at: z.string().optional().superRefine((at, ctx) => {
    if (at == null || at === ZERO_TIME) return
    const t = Date.parse(at)
    if (Number.isNaN(t)) ctx.addIssue({ code: 'custom', message: `invalid expire-at "${at}"` })
    else if (t <= now) ctx.addIssue({ code: 'custom', message: `expire-at ${at} is in the past` })
  }),
  metadata: z.record(z.string(), z.string()).optional(),
  origins: z.array(z.string()).optional(),
  spread: z.boolean().optional(),
  pin_update: z.string().optional().superRefine((cid, ctx) => {
    if (cid == null) return
    try {
      parseCid(cid)
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message })
    }
  })
})

/** Pin options fit to pin: InvalidParameterError (400) naming the first bad one otherwise. */
export function validPinOptions<T extends PinOptions> (options: T, at: number = Date.now()): T {
  now = at
  const result = pinOptionsSchema.safeParse(options)
  if (!result.success) throw new InvalidParameterError(result.error.issues[0].message)
  return result.data as T
}
