// The peer's libp2p key pair. It lives in identity.json (mode 0600), apart from peer.json, because it is the
// one secret a peer has: configs get copied and published, the key must not.
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { z } from 'zod'
import { ConfigError } from '../errors.js'
import { toConfigError } from './schema.js'

export const IDENTITY_FILE = 'identity.json'

export interface Identity {
  privateKey: PrivateKey
  peerId: PeerId
}

export const identityFileSchema = z.strictObject({
  id: z.string({ error: 'expected the peer ID string' }).min(1, { error: 'expected the peer ID string' }),
  /** base64 of the protobuf-marshalled private key. */
  private_key: z.string({ error: 'expected a base64 string' }).regex(/^[A-Za-z0-9+/]+={0,2}$/, { error: 'expected a base64 string' })
}, { error: 'expected a JSON object' })

export type IdentityFile = z.output<typeof identityFileSchema>

export async function createIdentity (): Promise<Identity> {
  const privateKey = await generateKeyPair('Ed25519')
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey) }
}

export function identityToJSON ({ privateKey, peerId }: Identity): IdentityFile {
  return { id: peerId.toString(), private_key: Buffer.from(privateKeyToProtobuf(privateKey)).toString('base64') }
}

/** Decodes identity.json, checking that `id` is the key's peer ID. */
export function identityFromJSON (json: unknown, source: string = IDENTITY_FILE): Identity {
  const parsed = identityFileSchema.safeParse(json)
  if (!parsed.success) throw toConfigError(parsed.error, source)
  let privateKey: PrivateKey
  try {
    privateKey = privateKeyFromProtobuf(Buffer.from(parsed.data.private_key, 'base64'))
  } catch (err) {
    throw new ConfigError(`${source}: private_key: not a protobuf-encoded libp2p private key (${(err as Error).message})`)
  }
  const peerId = peerIdFromPrivateKey(privateKey)
  if (peerId.toString() !== parsed.data.id) {
    throw new ConfigError(`${source}: id: ${parsed.data.id} does not match private_key, whose peer ID is ${peerId.toString()}`)
  }
  return { privateKey, peerId }
}
