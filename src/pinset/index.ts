// The shared pinset: a Yjs Y.Map cid -> Pin, changed only through signed envelopes from trusted authors,
// persisted in level, spread by gossipsub and repaired by a catch-up stream (DESIGN §4). This file wires the
// pieces: document.ts (the Y.Doc and its changes), commit.ts (local writes), ingest.ts (remote envelopes),
// gossip.ts, sync-client.ts / sync-server.ts / sync-scheduler.ts (catch-up), checkpoints.ts, snapshots.ts.
import { join } from 'node:path'
import { clusterSecret, type ClusterSecret } from '../secret.js'
import { Checkpoints, type CheckpointSchedule } from './checkpoints.js'
import { createGroupCommit, type GroupCommit } from './commit.js'
import { PinsetCounters } from './counters.js'
import { PinsetDocument } from './document.js'
import { createGossip, type PinsetGossip } from './gossip.js'
import { createIngest } from './ingest.js'
import { Snapshots } from './snapshots.js'
import { SyncSources } from './sources.js'
import { PinsetStore, SeqTracker } from './store.js'
import { SyncClient } from './sync-client.js'
import { SyncScheduler } from './sync-scheduler.js'
import { createSyncServer, type SyncServer } from './sync-server.js'
import { Verifier } from './verify.js'
import type { CID } from 'multiformats/cid'
import type { AbortOptions, CheckpointInfo, Pin, Pinset, PinsetChange, PinsetStats } from '../components.js'
import type { RateInit } from './rate.js'
import type { VersionVector } from './protocol.js'
import type { GossipSub } from '@libp2p/gossipsub'
import type { ComponentLogger, Libp2p, Logger, PrivateKey } from '@libp2p/interface'

export interface PinsetInit {
  /** Cluster name: part of topic and protocol names and of every signed envelope. */
  cluster: string
  /** Folder for the level store. */
  dataDir: string
  /** Whether an author may change the pinset. This peer always trusts itself. */
  isTrusted: (peerId: string) => boolean
  /** Safety resync with connected peers (default 30 s). */
  syncIntervalMs?: number
  /** Most pins per envelope (default 1000). */
  maxPinsPerEnvelope?: number
  /** Envelopes larger than this are announced by a notice instead of gossiped (default 1 MiB). */
  maxGossipBytes?: number
  /** Write a snapshot of the document after this many envelopes applied since the last one (default 5000). */
  snapshotEvery?: number
  /** Limit for one catch-up (default 120 s). */
  syncTimeoutMs?: number
  /** This peer authors checkpoints (a trusted peer); followers only relay the ones they received. */
  isWriter?: () => boolean
  /** When a trusted peer makes checkpoints, and what it keeps below them. */
  checkpoint?: CheckpointSchedule
  /** A requester missing more envelopes than this is sent a checkpoint instead (default 256). */
  checkpointThreshold?: number
  /** The cluster secret guarding gossip and catch-up (default: none). */
  secret?: ClusterSecret
  /** Take checkpoints from peers when far behind (default true; false replays every envelope). */
  acceptCheckpoints?: boolean
  /**
   * A stranger (a peer not trusted) is asked for catch-up at most this often (default 5 min), one stranger at a
   * time, and only when no trusted peer is connected or trusted peers left gaps.
   */
  strangerSyncIntervalMs?: number
  /** Envelope bytes one catch-up stream may bring; past it a new stream continues (default 256 MiB). */
  maxSyncBytes?: number
  /**
   * Gossip a sender may have accepted (relayed and acted on); the rest is dropped and fetched by catch-up when
   * real. Default: 2 notices a second with a burst of 20; 100 envelopes a second with a burst of 1000.
   */
  gossipRate?: { notices?: RateInit, envelopes?: RateInit }
}

export interface PinsetComponents {
  libp2p: Libp2p<{ pubsub: GossipSub }>
  privateKey: PrivateKey
  logger: ComponentLogger
}

export function pinsetTopic (cluster: string): string { return `cairn/${cluster}/pinset` }
// 1.1.0: the server offers (have), the requester chooses (want), and only what was chosen is sent
export function pinsetSyncProtocol (cluster: string): string { return `/cairn/${cluster}/pinset-sync/1.1.0` }

export function createPinset (init: PinsetInit, components: PinsetComponents): Pinset {
  return new YjsPinset(init, components)
}

class YjsPinset implements Pinset {
  private readonly log: Logger
  private readonly store: PinsetStore
  private readonly seqs = new SeqTracker()
  private readonly counters: PinsetCounters
  private readonly document: PinsetDocument
  private readonly commits: GroupCommit
  private readonly gossip: PinsetGossip
  private readonly checkpoints: Checkpoints
  private readonly snapshots: Snapshots
  private readonly client: SyncClient
  private readonly serve: SyncServer
  private readonly scheduler: SyncScheduler
  private readonly protocol: string
  private started = false
  private readonly shutdown = new AbortController()

  constructor (init: PinsetInit, private readonly components: PinsetComponents) {
    const { libp2p, privateKey, logger } = components
    const self = libp2p.peerId.toString()
    const { cluster } = init
    const isStarted = (): boolean => this.started
    const shutdown = this.shutdown.signal
    const secret: ClusterSecret = init.secret ?? clusterSecret('')
    this.log = logger.forComponent('cairn:pinset')
    this.protocol = pinsetSyncProtocol(cluster)
    this.store = new PinsetStore(join(init.dataDir, 'pinset'))
    const { store, seqs } = this
    const counters = this.counters = new PinsetCounters({ logger })
    const document = this.document = new PinsetDocument({ logger, onMalformed: detail => { counters.reject('malformed', detail) } })
    const verifier = new Verifier({ cluster, self, isTrusted: init.isTrusted })
    const sources = new SyncSources({ strangerIntervalMs: init.strangerSyncIntervalMs })
    const checkpoints = this.checkpoints = new Checkpoints({ ...init, self }, { document, store, seqs, privateKey, counters, logger, isStarted, shutdown })
    const snapshots = this.snapshots = new Snapshots(init, {
      document, store, seqs, logger,
      restoreCheckpoint: async vv => { await checkpoints.restore(vv) },
      hasUnsaved: () => this.commits.hasUnsaved()
    })
    // envelopes stored, ours or peers': they count towards the next snapshot and checkpoint
    const onStored = (n: number): void => { checkpoints.noteApplied(n); snapshots.noteApplied(n) }
    this.commits = createGroupCommit({ ...init, self }, {
      document, store, seqs, privateKey, logger, isStarted, onStored,
      publish: (seq, bytes) => { this.gossip.publish(seq, bytes) }
    })
    const ingest = createIngest({ document, store, seqs, verifier, counters, isStarted, onApplied: onStored })
    const client = this.client = new SyncClient({ ...init, protocol: this.protocol, self }, {
      libp2p, store, seqs, verifier, counters, checkpoints, sources, secret, ingest, logger, isStarted, shutdown
    })
    this.serve = createSyncServer({ ...init, protocol: this.protocol, self }, { store, seqs, counters, checkpoints, secret, logger, shutdown })
    const scheduler = this.scheduler = new SyncScheduler({ ...init, protocol: this.protocol, self }, {
      libp2p, seqs, store, verifier, sources, logger, isStarted,
      syncWith: async (peerId, options) => await client.syncWith(peerId, options)
    })
    this.gossip = createGossip({ ...init, topic: pinsetTopic(cluster), self }, {
      pubsub: libp2p.services.pubsub, secret, seqs, verifier, counters, ingest, logger, isStarted,
      syncSoon: peerId => { scheduler.syncInBackground(peerId) }
    })
  }

  // ----- lifecycle

  async start (): Promise<void> {
    await this.store.open()
    await this.snapshots.restore()
    this.document.observe()
    const { libp2p } = this.components
    this.gossip.start()
    await libp2p.handle(this.protocol, (stream, connection) => { void this.serve(stream, connection) }, {
      maxInboundStreams: 16, maxOutboundStreams: 16
    })
    this.scheduler.start()
    this.checkpoints.start()
    this.started = true
    this.scheduler.periodicSync()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    this.shutdown.abort()
    this.scheduler.stop()
    this.checkpoints.stop()
    this.gossip.stop()
    await this.components.libp2p.unhandle(this.protocol).catch(() => {})
    await this.commits.drain()
    // catch-ups and a checkpoint see the shutdown signal; a snapshot under way is waited for by snapshots.write
    await Promise.allSettled([...this.client.running(), this.scheduler.pending(), this.checkpoints.pending()])
    try {
      await this.snapshots.write()
    } catch (err) {
      this.log.error('writing the pinset snapshot at stop failed (the log is replayed at start instead): %e', err)
    } finally {
      await this.store.close()
      this.document.destroy()
    }
  }

  // ----- reads

  get (cid: CID | string): Pin | undefined { return this.document.get(cid) }
  has (cid: CID | string): boolean { return this.document.has(cid) }
  size (): number { return this.document.size() }
  list (): IterableIterator<Pin> { return this.document.list() }
  versionVector (): VersionVector { return this.seqs.versionVector() }

  stats (): PinsetStats {
    const { counters } = this
    const last = this.checkpoints.newest()
    return {
      pins: this.document.size(),
      envelopes: this.seqs.count(),
      envelopes_rejected: counters.rejectedTotal(),
      rejected_by_reason: Object.fromEntries(counters.rejected),
      envelopes_duplicate: counters.duplicates,
      envelopes_applied: counters.envelopesApplied,
      checkpoints_loaded: counters.checkpointsLoaded,
      checkpoints_made: counters.checkpointsMade,
      sync_bytes_in: counters.syncBytesIn,
      sync_bytes_out: counters.syncBytesOut,
      checkpoint: last == null
        ? undefined
        : { author: last.author, created: new Date(last.created).toISOString(), version_vector: last.vv, bytes: last.stateLength }
    }
  }

  onChange (listener: (change: PinsetChange) => void): () => void { return this.document.onChange(listener) }

  // ----- writes, catch-up, checkpoints

  /** Group commit: one signed envelope per batch (or several, when large), fsynced before callers resolve. */
  async put (pins: Pin[], options?: AbortOptions): Promise<void> { await this.commits.put(pins, options) }
  async remove (cids: string[], options?: AbortOptions): Promise<void> { await this.commits.remove(cids, options) }

  /** Catches up from one peer now (unless it misbehaved lately); returns how many envelopes were applied. */
  async syncWith (peerId: string, options: AbortOptions = {}): Promise<number> { return await this.client.syncWith(peerId, options) }

  /** Makes a signed checkpoint now (a writer only; undefined elsewhere). */
  async checkpoint (options: AbortOptions = {}): Promise<CheckpointInfo | undefined> { return await this.checkpoints.checkpoint(options) }
}
