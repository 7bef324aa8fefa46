// What one auditor knows of each peer's storage: probation -> proven after enough passed audits, failed after
// one failed audit (for a cool-down, then probation again). Kept in the peer's datastore so that a restart
// neither forgets a failure nor makes proven peers start over.
import { Key } from 'interface-datastore'
import { z } from 'zod'
import type { Datastore } from 'interface-datastore'

const PREFIX = '/cairn/audit/peers'
/** Distinct pins remembered per peer: enough to tell "passed on 2 pins" from "passed 3 times on one". */
const MAX_PINS = 8

export type AuditedState = 'probation' | 'proven' | 'failed'

const recordSchema = z.object({
  state: z.enum(['probation', 'proven', 'failed']),
  /** Audits passed since the last failure. */
  passed: z.number().int().nonnegative(),
  /** Distinct pins (pinset keys) of those passes, at most MAX_PINS. */
  pins: z.array(z.string()).max(MAX_PINS),
  /** Audits failed, ever. */
  failed: z.number().int().nonnegative(),
  /** Unix ms: first audited or found with allocations; last audit; last failure (0 = never). */
  first_seen: z.number(),
  last_audit: z.number(),
  failed_at: z.number(),
  last_error: z.string()
})

export type TrustRecord = z.output<typeof recordSchema>

export interface TrustPolicy {
  /** Passed audits that make a peer proven. */
  provenAfter: number
  /** ... over at least this many distinct pins. */
  provenPins: number
  /** How long a failed peer stays failed before it is on probation again. */
  cooldownMs: number
}

export class TrustBook {
  private readonly records = new Map<string, TrustRecord>()

  constructor (private readonly policy: TrustPolicy, private readonly datastore: Datastore) {}

  /** Reads the records saved by earlier runs; unreadable ones are dropped (the peer is on probation again). */
  async load (): Promise<void> {
    for await (const { key, value } of this.datastore.query({ prefix: PREFIX })) {
      const peer = key.baseNamespace()
      try {
        const parsed = recordSchema.safeParse(JSON.parse(new TextDecoder().decode(value)))
        if (parsed.success) this.records.set(peer, parsed.data)
      } catch {}
    }
  }

  /** The record, with a finished cool-down turned back into probation. */
  get (peer: string, now = Date.now()): TrustRecord | undefined {
    const r = this.records.get(peer)
    if (r?.state === 'failed' && now - r.failed_at >= this.policy.cooldownMs) {
      r.state = 'probation'
      r.passed = 0
      r.pins = []
    }
    return r
  }

  state (peer: string, now = Date.now()): AuditedState {
    return this.get(peer, now)?.state ?? 'probation'
  }

  /** Notes a peer that holds allocations, so that its grace counts from when this auditor first saw it. */
  seen (peer: string, now = Date.now()): TrustRecord {
    let r = this.get(peer, now)
    if (r == null) {
      r = { state: 'probation', passed: 0, pins: [], failed: 0, first_seen: now, last_audit: 0, failed_at: 0, last_error: '' }
      this.records.set(peer, r)
    }
    return r
  }

  /** A passed audit of `pin`; true when it made the peer proven. */
  async pass (peer: string, pin: string, now = Date.now()): Promise<boolean> {
    const r = this.seen(peer, now)
    r.passed++
    r.last_audit = now
    if (!r.pins.includes(pin)) r.pins = [...r.pins, pin].slice(-MAX_PINS)
    const promoted = r.state === 'probation' && r.passed >= this.policy.provenAfter && r.pins.length >= this.policy.provenPins
    if (promoted) r.state = 'proven'
    await this.save(peer, r)
    return promoted
  }

  async fail (peer: string, reason: string, now = Date.now()): Promise<void> {
    const r = this.seen(peer, now)
    r.state = 'failed'
    r.failed++
    r.passed = 0
    r.pins = []
    r.last_audit = now
    r.failed_at = now
    r.last_error = reason
    await this.save(peer, r)
  }

  /** Forgets the peers `keep` says no: peers long gone, so that made-up identities do not pile up. */
  async prune (keep: (peer: string, record: TrustRecord) => boolean): Promise<void> {
    for (const [peer, r] of [...this.records]) {
      if (keep(peer, r)) continue
      this.records.delete(peer)
      await this.datastore.delete(keyOf(peer))
    }
  }

  peers (): string[] { return [...this.records.keys()] }

  private async save (peer: string, r: TrustRecord): Promise<void> {
    await this.datastore.put(keyOf(peer), new TextEncoder().encode(JSON.stringify(r)))
  }
}

function keyOf (peer: string): Key {
  return new Key(`${PREFIX}/${peer}`)
}
