// The optional cluster secret. It guards the cluster's own protocols (pinset gossip, catch-up, RPC), not the
// libp2p host: a libp2p private network (pnet) would also wall off bitswap and the DHT, and the whole point of
// a mirror is that any IPFS node can fetch it. So the host stays public and:
// - gossip payloads are sealed with AES-256-GCM under a key derived from the secret (strangers can neither
//   read nor forge them; gossipsub rejects what does not open, lowering the sender's score);
// - every cluster stream starts with an HMAC proof bound to the protocol and to both peer ids (which noise
//   authenticates), in each direction, so neither side talks to a peer that lacks the secret.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'

export const PROOF_LENGTH = 32

export interface ClusterSecret {
  readonly enabled: boolean
  /** Gossip payload -> sealed bytes (identity without a secret). */
  seal(data: Uint8Array): Uint8Array
  /** Sealed bytes -> payload; throws SecretMismatchError when it does not open. */
  open(data: Uint8Array): Uint8Array
  /** Proof that `from` holds the secret, for a stream of `protocol` to `to` (empty without a secret). */
  proof(protocol: string, from: string, to: string): Uint8Array
  /** Checks a proof made by `from` for `to`. Always true without a secret. */
  verify(proof: Uint8Array, protocol: string, from: string, to: string): boolean
}

export class SecretMismatchError extends Error {
  static override name = 'SecretMismatchError'
  override name = 'SecretMismatchError'
}

const NONE: ClusterSecret = {
  enabled: false,
  seal: data => data,
  open: data => data,
  proof: () => new Uint8Array(0),
  verify: () => true
}

/** secretHex: the 64 hex characters of cluster.config.json's `secret`, or '' for none. */
export function clusterSecret (secretHex: string): ClusterSecret {
  if (secretHex === '') return NONE
  const ikm = Buffer.from(secretHex, 'hex')
  const gossipKey = Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), 'cairn gossip v1', 32))
  const streamKey = Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), 'cairn stream v1', 32))
  const proof = (protocol: string, from: string, to: string): Uint8Array =>
    createHmac('sha256', streamKey).update(`${protocol}\n${from}\n${to}`).digest()
  return {
    enabled: true,
    seal (data) {
      const nonce = randomBytes(12)
      const cipher = createCipheriv('aes-256-gcm', gossipKey, nonce)
      const body = Buffer.concat([cipher.update(data), cipher.final()])
      return Buffer.concat([nonce, body, cipher.getAuthTag()])
    },
    open (data) {
      if (data.length < 28) throw new SecretMismatchError('sealed message too short')
      try {
        const decipher = createDecipheriv('aes-256-gcm', gossipKey, data.subarray(0, 12))
        decipher.setAuthTag(data.subarray(data.length - 16))
        return Buffer.concat([decipher.update(data.subarray(12, data.length - 16)), decipher.final()])
      } catch {
        throw new SecretMismatchError('message not sealed with this cluster\'s secret')
      }
    },
    proof,
    verify (p, protocol, from, to) {
      const want = proof(protocol, from, to)
      return p.length === want.length && timingSafeEqual(p, want)
    }
  }
}

/** Splits a request frame into its proof and the request itself. */
export function splitProof (secret: ClusterSecret, frame: Uint8Array): { proof: Uint8Array, rest: Uint8Array } {
  const n = secret.enabled ? PROOF_LENGTH : 0
  if (frame.length < n) throw new SecretMismatchError('request without a cluster secret proof')
  return { proof: frame.subarray(0, n), rest: frame.subarray(n) }
}

export function withProof (proof: Uint8Array, request: Uint8Array): Uint8Array {
  if (proof.length === 0) return request
  const out = new Uint8Array(proof.length + request.length)
  out.set(proof, 0)
  out.set(request, proof.length)
  return out
}
