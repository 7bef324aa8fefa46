// Per-sender token buckets: how many gossip messages of one kind a sender may have accepted, as a steady rate
// plus a burst. Used by the topic validator, so that a flood is dropped before it is relayed or acted on.

export interface RateInit {
  /** Messages a second, refilled continuously. */
  perSecond: number
  /** Most messages accepted at once after a quiet spell. */
  burst: number
  /** Most senders tracked; past it, senders whose buckets are full again are forgotten first (default 10,000). */
  maxSenders?: number
}

interface Bucket { tokens: number, at: number }

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>()
  private readonly maxSenders: number

  constructor (private readonly init: RateInit) {
    this.maxSenders = init.maxSenders ?? 10_000
  }

  /** Takes one message's worth from the sender's bucket; false when it is empty (the message is over the rate). */
  take (sender: string, now = Date.now()): boolean {
    let bucket = this.buckets.get(sender)
    if (bucket == null) {
      if (this.buckets.size >= this.maxSenders) this.prune(now)
      bucket = { tokens: this.init.burst, at: now }
      this.buckets.set(sender, bucket)
    } else {
      bucket.tokens = this.refilled(bucket, now)
      bucket.at = now
    }
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }

  private refilled (bucket: Bucket, now: number): number {
    return Math.min(this.init.burst, bucket.tokens + Math.max(0, now - bucket.at) / 1000 * this.init.perSecond)
  }

  /** Forgets senders whose buckets are full again (a new bucket starts full), then the oldest if still too many. */
  private prune (now: number): void {
    for (const [sender, bucket] of this.buckets) {
      if (this.refilled(bucket, now) >= this.init.burst) this.buckets.delete(sender)
    }
    for (const sender of this.buckets.keys()) {
      if (this.buckets.size < this.maxSenders) break
      this.buckets.delete(sender)
    }
  }
}
