// The schedule and the position in the running cycle, kept in the peer's datastore so that a restart resumes the
// cycle where it was (and keeps the schedule) instead of starting over.
import { Key } from 'interface-datastore'
import { z } from 'zod'
import type { Datastore } from 'interface-datastore'

export const STATE_KEY = new Key('/cairn/reprovider/state')

const cycleSchema = z.object({
  /** Unix ms. */
  started: z.number(),
  /** 0: pin roots, 1: the rest. */
  phase: z.number().int().min(0),
  /** Hex DHT key of the last record done in `phase`; '' when none yet. */
  cursor: z.string(),
  done: z.number().int().min(0),
  total: z.number().int().min(0),
  announced: z.number().int().min(0)
})

const stateSchema = z.object({
  v: z.literal(1),
  next_cycle_at: z.number(),
  cycle: cycleSchema.nullable(),
  last: z.object({ started: z.number(), finished: z.number(), duration_ms: z.number(), cids: z.number() }).nullable()
})

export type CycleState = z.output<typeof cycleSchema>
export type ReprovideState = z.output<typeof stateSchema>

export async function loadState (datastore: Datastore): Promise<ReprovideState | undefined> {
  let bytes: Uint8Array
  try {
    bytes = await datastore.get(STATE_KEY)
  } catch (err) {
    if ((err as Error).name === 'NotFoundError') return undefined
    throw err
  }
  // an unreadable state only costs a fresh schedule
  try {
    const parsed = stateSchema.safeParse(JSON.parse(new TextDecoder().decode(bytes)))
    return parsed.success ? parsed.data : undefined
  } catch {
    return undefined
  }
}

export async function saveState (datastore: Datastore, state: ReprovideState): Promise<void> {
  await datastore.put(STATE_KEY, new TextEncoder().encode(JSON.stringify(state)))
}
