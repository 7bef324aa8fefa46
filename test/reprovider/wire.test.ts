// The kad messages the reprovider sends, encoded by protons (src/reprovider/dht.ts) and by the hand-written
// encoder it replaced (kept here only for this comparison): the bytes on the wire must not change.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { sha256 } from 'multiformats/hashes/sha2'
import { Message, MessageType } from '../../src/reprovider/dht.js'
import { addProviderMessage, pingMessage, providerInfo } from '../../src/reprovider/wire.js'
import type { PeerId } from '@libp2p/interface'

// ----- the encoder before protons (src/reprovider/wire.ts at b6349a3)
function oldVarint (n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return out
}
function oldField (tag: number, bytes: Uint8Array): Uint8Array {
  const head = [tag, ...oldVarint(bytes.byteLength)]
  const out = new Uint8Array(head.length + bytes.byteLength)
  out.set(head)
  out.set(bytes, head.length)
  return out
}
function oldProviderField (peerId: PeerId, addrs: Multiaddr[]): Uint8Array {
  const info = Buffer.concat([oldField(0x0a, peerId.toMultihash().bytes), ...addrs.map(a => oldField(0x12, a.bytes))])
  return oldField(0x4a, info)
}
function oldAddProvider (mh: Uint8Array, provider: Uint8Array): Uint8Array {
  return Buffer.concat([Uint8Array.of(0x08, 2), oldField(0x12, mh), provider])
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

describe('reprovider kad messages', () => {
  it('ADD_PROVIDER and PING are the same bytes as before protons', async () => {
    const ed = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const rsa = peerIdFromPrivateKey(await generateKeyPair('RSA', 2048))
    const addrSets = [
      [],
      [multiaddr('/ip4/127.0.0.1/tcp/4001')],
      [multiaddr('/ip4/10.0.0.7/tcp/4001'), multiaddr('/ip6/::1/tcp/4001'), multiaddr(`/dns4/${'a'.repeat(120)}.example.org/tcp/443/tls/ws`)]
    ]
    const keys = [
      (await sha256.digest(randomBytes(32))).bytes,
      Uint8Array.of(0x00, 0x03, 1, 2, 3), // identity multihash
      new Uint8Array(randomBytes(300)) // a key longer than 127 bytes: two-byte length
    ]
    let compared = 0
    for (const peer of [ed, rsa]) {
      for (const addrs of addrSets) {
        const info = providerInfo(peer, addrs)
        const old = oldProviderField(peer, addrs)
        for (const mh of keys) {
          assert.equal(hex(addProviderMessage(mh, info)), hex(oldAddProvider(mh, old)), `${peer.type} peer, ${addrs.length} addrs, ${mh.byteLength}-byte key`)
          compared++
        }
      }
    }
    assert.equal(compared, 18)
    assert.equal(hex(pingMessage()), '0805')
  })

  it('reads back as the DHT message it is', async () => {
    const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const mh = (await sha256.digest(Uint8Array.of(1))).bytes
    const decoded = Message.decode(addProviderMessage(mh, providerInfo(peer, [multiaddr('/ip4/127.0.0.1/tcp/1')])))
    assert.equal(decoded.type, MessageType.ADD_PROVIDER)
    assert.deepEqual(decoded.key, mh)
    assert.deepEqual(decoded.providers[0].id, peer.toMultihash().bytes)
    assert.equal(Message.decode(pingMessage()).type, MessageType.PING)
  })
})
