// Storage audits (DESIGN §10 "Trust in storage"): trusted peers check, on a schedule, that the other peers
// hold what they were allocated, by asking them for random blocks of their pins and verifying the bytes
// against the CIDs. What a peer earned decides whether its copies count toward a pin's replication_factor_min.
import { Auditor } from './auditor.js'
import type { AbortOptions, Pinset, Startable, TrustView } from '../components.js'
import type { AlertInfo, TrustState } from '../types/wire.js'
import type { Monitor } from '../monitor/index.js'
import type { ClusterSecret } from '../secret.js'
import type { LocalBlocks } from './server.js'
import type { Verifier } from './walk.js'
import type { ComponentLogger, Libp2p } from '@libp2p/interface'
import type { Datastore } from 'interface-datastore'

export { auditProtocol, MAX_AUDIT_BLOCK_BYTES, MAX_AUDIT_CIDS } from './protocol.js'
export { offlineBlocks, type LocalBlocks } from './server.js'
export type { Verifier } from './walk.js'

export type { TrustState } from '../types/wire.js'
export type { TrustView } from '../components.js'
export const TRUST_STATES: readonly TrustState[] = ['trusted', 'proven', 'probation', 'failed', 'unknown']

/** The `audit` section of peer.json. */
export interface AuditConfig {
  /** How often a trusted peer audits the other peers (default 10 min). */
  intervalMs?: number
  /** A pin is audited on a peer once it was allocated there this long ago: time to fetch it (default 1 h). */
  graceMs?: number
  /** Deadline of one audit of one pin, all its requests together (default 30 s). */
  timeoutMs?: number
  /** Pins audited per peer and round (default 2). */
  pinsPerRound?: number
  /** Passed audits, over at least 2 distinct pins and none failed since, that make a peer proven (default 3). */
  provenAfter?: number
  /** A peer on probation takes new extra copies only while it holds fewer allocations than this (default 16). */
  probationPins?: number
  /** How long a failed peer is left out before it is on probation again (default 6 h). */
  cooldownMs?: number
}

export interface AuditorInit extends AuditConfig {
  cluster: string
  secret?: ClusterSecret
  isTrusted: (peer: string) => boolean
  /** Only peers that may write the pinset audit (they are the ones that allocate). Asked at every round. */
  isWriter: () => boolean
  /**
   * A closed cluster (a secret, or a followers allow-list) admitted its members by config: they count at once
   * (audits still run, and a failure still demotes them). Asked at every use, so a config change applies.
   */
  isClosed: () => boolean
  /** Levels below a pin's root walked, and blocks asked per level (default 3 and 2). */
  walkDepth?: number
  walkWidth?: number
}

export interface AuditorComponents {
  libp2p: Libp2p
  logger: ComponentLogger
  pinset: Pick<Pinset, 'list' | 'onChange'>
  monitor: Pick<Monitor, 'peerset'>
  /** This peer's own blocks, read without the network: what it answers audits with. */
  blocks: LocalBlocks
  /** Hash functions and codecs, to check what audited peers send. */
  verifier: Verifier
  /** Where the trust records are kept across restarts. */
  datastore: Datastore
}

/** One peer's standing, as GET /peers shows it. */
export interface PeerTrust {
  trust: TrustState
  audits_passed: number
  audits_failed: number
  /** ISO time of the last audit of it; '' when never. */
  last_audit: string
  last_error: string
}

export interface AuditStats {
  /** Audits of one pin each, since start, by result. */
  audits: { pass: number, fail: number, skip: number }
  /** Peers of the peerset (this one left out) by trust state. */
  peers: Record<TrustState, number>
  /** Pins whose allocations hold fewer trusted or proven peers than their replication_factor_min (last scan). */
  under_replicated: number
  /** When the last round ended (ms since epoch; 0 = none yet). */
  last_round: number
}

export interface AuditorAPI extends TrustView, Startable {
  peerTrust(peer: string): PeerTrust
  /** Audit failures, newest first, in the shape of the monitor's alerts (name "audit", value the reason). */
  alerts(): AlertInfo[]
  stats(): AuditStats
  /** Runs a round now (or waits for the one running). */
  auditNow(options?: AbortOptions): Promise<void>
}

export function createAuditor (init: AuditorInit, components: AuditorComponents): AuditorAPI {
  return new Auditor(init, components)
}
