// Whom the pinset may pull from, and when. Trusted peers are asked whenever there is a reason. Strangers (peers
// not in trusted_peers: followers, or anyone that reaches the swarm port) are asked one at a time, each at most
// once per interval. A peer that sent an envelope that does not verify, or broke the catch-up protocol, is not
// asked at all for a while.

export interface SyncSourcesInit {
  /** A stranger is asked at most this often (default 5 min). */
  strangerIntervalMs?: number
  /** How long a peer that misbehaved is not asked (default 10 min). */
  banMs?: number
}

export class SyncSources {
  private readonly banned = new Map<string, number>()
  private readonly strangerAsked = new Map<string, number>()
  private strangerBusy = false
  private readonly strangerIntervalMs: number
  private readonly banMs: number

  constructor (init: SyncSourcesInit = {}) {
    this.strangerIntervalMs = init.strangerIntervalMs ?? 5 * 60_000
    this.banMs = init.banMs ?? 10 * 60_000
  }

  ban (peer: string, now = Date.now()): void {
    this.banned.set(peer, now + this.banMs)
  }

  isBanned (peer: string, now = Date.now()): boolean {
    return (this.banned.get(peer) ?? 0) > now
  }

  /** Takes the one stranger slot for `peer`; false when a stranger pull runs, or `peer` was asked lately or is banned. */
  claimStranger (peer: string, now = Date.now()): boolean {
    if (this.strangerBusy || this.isBanned(peer, now)) return false
    if ((this.strangerAsked.get(peer) ?? -Infinity) > now - this.strangerIntervalMs) return false
    this.strangerBusy = true
    this.strangerAsked.set(peer, now)
    return true
  }

  releaseStranger (): void {
    this.strangerBusy = false
  }

  /** Forgets bans and stranger times that no longer matter (strangers come and go on a public network). */
  prune (now = Date.now()): void {
    for (const [peer, until] of this.banned) if (until <= now) this.banned.delete(peer)
    for (const [peer, at] of this.strangerAsked) if (at <= now - this.strangerIntervalMs) this.strangerAsked.delete(peer)
  }
}
