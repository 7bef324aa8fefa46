// What the pinset counts for its stats (GET /pinset, the metrics): envelopes dropped by reason, duplicates,
// envelopes applied, checkpoints, catch-up bytes. A drop is logged the first time its reason is seen.
import type { ComponentLogger, Logger } from '@libp2p/interface'

export interface PinsetCountersComponents {
  logger: ComponentLogger
}

export class PinsetCounters {
  readonly rejected = new Map<string, number>()
  duplicates = 0
  envelopesApplied = 0
  checkpointsLoaded = 0
  checkpointsMade = 0
  syncBytesIn = 0
  syncBytesOut = 0
  private readonly log: Logger

  constructor (components: PinsetCountersComponents) {
    this.log = components.logger.forComponent('cairn:pinset')
  }

  /** Counts a dropped envelope (or gossip message, or catch-up frame) by reason; logs the first of each reason. */
  reject (reason: string, detail: string): void {
    const n = (this.rejected.get(reason) ?? 0) + 1
    this.rejected.set(reason, n)
    if (n === 1) this.log.error('dropped a pinset envelope (%s): %s; further ones are only counted', reason, detail)
  }

  rejectedTotal (): number {
    let rejected = 0
    for (const n of this.rejected.values()) rejected += n
    return rejected
  }
}
