// Envelopes over gossipsub: publishing our own (a notice instead when one is too large), the topic validator
// that runs before a message is relayed (secret, trust, signature, per-sender rates; a reject lowers the
// sender's score), and the handling of what it accepted.
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { rescoreSoon } from '../libp2p/index.js'
import { decodeGossip, encodeNotice } from './protocol.js'
import { RateLimiter, type RateInit } from './rate.js'
import type { ClusterSecret } from '../secret.js'
import type { PinsetCounters } from './counters.js'
import type { Ingest } from './ingest.js'
import type { SeqTracker } from './store.js'
import type { Verifier } from './verify.js'
import type { GossipSub } from '@libp2p/gossipsub'
import type { ComponentLogger, Logger, PeerId } from '@libp2p/interface'

/** A rate-limited sender is asked for catch-up this long after (once), to fetch what its gossip did not bring. */
const CATCH_UP_DELAY_MS = 1000

export interface GossipInit {
  /** The pinset's topic (pinsetTopic). */
  topic: string
  /** This peer: the author of what it publishes. */
  self: string
  /** Envelopes larger than this are announced by a notice instead of gossiped (default 1 MiB). */
  maxGossipBytes?: number
  /** Gossip a sender may have accepted (default: notices 2/s, burst 20; envelopes 100/s, burst 1000). */
  gossipRate?: { notices?: RateInit, envelopes?: RateInit }
}

export interface GossipComponents {
  pubsub: GossipSub
  secret: ClusterSecret
  seqs: SeqTracker
  verifier: Verifier
  counters: PinsetCounters
  ingest: Ingest
  logger: ComponentLogger
  isStarted: () => boolean
  /** Asks a peer for catch-up (it gave notice, left a gap, or went over its rate). */
  syncSoon: (peerId: string) => void
}

export interface PinsetGossip {
  /** Subscribes and installs the topic validator. */
  start(): void
  /** Unsubscribes, and drops the catch-ups planned for senders over their rate. */
  stop(): void
  /** Gossips one of our stored envelopes (or a notice of it, when too large). */
  publish(seq: number, bytes: Uint8Array): void
}

export function createGossip (init: GossipInit, components: GossipComponents): PinsetGossip {
  return new DefaultGossip(init, components)
}

class DefaultGossip implements PinsetGossip {
  private readonly log: Logger
  private readonly noticeRate: RateLimiter
  private readonly envelopeRate: RateLimiter
  /** Senders over their gossip rate, to be asked for catch-up shortly. */
  private readonly catchUpSoon = new Map<string, NodeJS.Timeout>()
  private readonly onMessage = (evt: CustomEvent<{ topic: string, data: Uint8Array }>): void => {
    if (evt.detail.topic !== this.init.topic) return
    void this.handleGossip(evt.detail.data, (evt.detail as { from?: PeerId }).from?.toString())
  }

  constructor (private readonly init: GossipInit, private readonly components: GossipComponents) {
    this.log = components.logger.forComponent('cairn:pinset')
    this.noticeRate = new RateLimiter(init.gossipRate?.notices ?? { perSecond: 2, burst: 20 })
    this.envelopeRate = new RateLimiter(init.gossipRate?.envelopes ?? { perSecond: 100, burst: 1000 })
  }

  start (): void {
    const { pubsub } = this.components
    pubsub.topicValidators.set(this.init.topic, async (from, msg) => {
      const source = from.toString()
      const result = await this.validateGossip(msg.data, msg.type === 'signed' ? msg.from.toString() : undefined, source)
      if (result === TopicValidatorResult.Reject) rescoreSoon(pubsub, source)
      return result
    })
    pubsub.addEventListener('message', this.onMessage)
    pubsub.subscribe(this.init.topic)
  }

  stop (): void {
    const { pubsub } = this.components
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.topicValidators.delete(this.init.topic)
    try { pubsub.unsubscribe(this.init.topic) } catch {}
    for (const timer of this.catchUpSoon.values()) clearTimeout(timer)
    this.catchUpSoon.clear()
  }

  publish (seq: number, bytes: Uint8Array): void {
    const message = bytes.length <= (this.init.maxGossipBytes ?? 1024 * 1024) ? bytes : encodeNotice({ author: this.init.self, seq })
    this.components.pubsub.publish(this.init.topic, this.components.secret.seal(message)).catch(err => {
      this.log('publishing envelope %d failed (peers will catch up): %e', seq, err)
    })
  }

  /**
   * Gossipsub's topic validator: it runs before a message is relayed. Reject (what no honest peer sends) lowers
   * the score of the peer it came from (`source`), so that a flooding peer is soon not read at all (src/libp2p,
   * topic score params); Ignore drops without blame: duplicates, and envelopes over a sender's rate, fetched by
   * catch-up when they are real.
   */
  private async validateGossip (sealed: Uint8Array, publisher?: string, source?: string): Promise<TopicValidatorResult> {
    const { counters, seqs, verifier } = this.components
    let data: Uint8Array
    try {
      data = this.components.secret.open(sealed)
    } catch (err) {
      counters.reject('secret', (err as Error).message)
      return TopicValidatorResult.Reject
    }
    try {
      const msg = decodeGossip(data)
      if (msg.type === 'notice') {
        // a notice makes every peer that gets it pull from its publisher: only a trusted author announces its own
        const { author, seq } = msg.notice
        if (!verifier.trusts(author)) { counters.reject('untrusted', `notice of ${author} seq ${seq}`); return TopicValidatorResult.Reject }
        if (publisher !== author) { counters.reject('sender', `${publisher ?? 'an unsigned message'} published a notice of ${author} seq ${seq}`); return TopicValidatorResult.Reject }
        if (seqs.has(author, seq)) { counters.duplicates++; return TopicValidatorResult.Ignore }
        if (!this.noticeRate.take(author)) {
          // An honest peer gives notice only of an envelope over 1 MiB (one pin that large): past a burst of them
          // it floods, and is blamed when it sends them itself. A peer relaying them is not: its own bucket of
          // this author's notices may just have refilled a moment before ours.
          return this.overRate(author, `notice of seq ${seq}`, source === author ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore)
        }
        return TopicValidatorResult.Accept
      }
      const env = msg.envelope
      if (seqs.has(env.author, env.seq)) { counters.duplicates++; return TopicValidatorResult.Ignore }
      const why = verifier.precheck(env)
      if (why == null && publisher != null && !this.envelopeRate.take(publisher)) {
        // honest writers burst during a large ingest: never blamed
        return this.overRate(publisher, `envelope ${env.author} seq ${env.seq}`, TopicValidatorResult.Ignore)
      }
      const bad = why ?? await verifier.checkSignature(env)
      if (bad == null) return TopicValidatorResult.Accept
      counters.reject(bad, `author ${env.author} seq ${env.seq}`)
      return TopicValidatorResult.Reject
    } catch (err) {
      counters.reject('malformed', (err as Error).message)
      return TopicValidatorResult.Reject
    }
  }

  /** A sender over its gossip rate: dropped (`result`), and asked for catch-up once it had a moment. */
  private overRate (sender: string, what: string, result: TopicValidatorResult): TopicValidatorResult {
    this.components.counters.reject('rate', `${sender} sent more gossip than its rate (${what})`)
    if (this.components.isStarted() && !this.catchUpSoon.has(sender)) {
      const timer = setTimeout(() => {
        this.catchUpSoon.delete(sender)
        this.components.syncSoon(sender)
      }, CATCH_UP_DELAY_MS)
      timer.unref()
      this.catchUpSoon.set(sender, timer)
    }
    return result
  }

  private async handleGossip (sealed: Uint8Array, from?: string): Promise<void> {
    const { seqs } = this.components
    try {
      const msg = decodeGossip(this.components.secret.open(sealed))
      if (msg.type === 'notice') {
        if (!seqs.has(msg.notice.author, msg.notice.seq) && from != null) this.components.syncSoon(from)
        return
      }
      const env = msg.envelope
      await this.components.ingest([env], { verified: true })
      if (seqs.hasGaps(env.author) && from != null) this.components.syncSoon(from)
    } catch (err) {
      this.log.error('handling a gossip message failed: %e', err)
    }
  }
}
