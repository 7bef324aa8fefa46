// Who may change the pinset, and whether an envelope or a checkpoint header is what it claims: the cluster, a
// trusted author, the author's signature. This peer always trusts itself.
import { peerIdFromString } from '@libp2p/peer-id'
import { checkpointSigningPayload, signingPayload, type CheckpointHeader, type Envelope } from './protocol.js'

export interface VerifierInit {
  cluster: string
  /** This peer. */
  self: string
  isTrusted: (peerId: string) => boolean
}

export class Verifier {
  constructor (private readonly init: VerifierInit) {}

  /** Whether an author's envelopes (or a peer's word as a trusted source) count here. */
  trusts (peerId: string): boolean {
    return peerId === this.init.self || this.init.isTrusted(peerId)
  }

  /** Checks an envelope: cluster, trusted author, signature. Returns why it is rejected, or undefined. */
  async check (env: Envelope): Promise<string | undefined> {
    return this.precheck(env) ?? await this.checkSignature(env)
  }

  /** The cheap part of check(): cluster and trusted author. */
  precheck (env: Envelope): string | undefined {
    if (env.cluster !== this.init.cluster) return 'cluster'
    if (!this.trusts(env.author)) return 'untrusted'
    return undefined
  }

  async checkSignature (env: Envelope): Promise<string | undefined> {
    let key
    try { key = peerIdFromString(env.author).publicKey } catch {}
    if (key == null) return 'malformed'
    if (!(await key.verify(signingPayload(env.body), env.signature))) return 'signature'
    return undefined
  }

  async checkCheckpoint (h: CheckpointHeader): Promise<string | undefined> {
    if (h.cluster !== this.init.cluster) return 'checkpoint for another cluster'
    if (!this.trusts(h.author)) return `checkpoint by untrusted author ${h.author}`
    let key
    try { key = peerIdFromString(h.author).publicKey } catch {}
    if (key == null || !(await key.verify(checkpointSigningPayload(h.body), h.signature))) return 'checkpoint with a bad signature'
    return undefined
  }
}
