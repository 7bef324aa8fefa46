import { rm } from 'node:fs/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { prefixLogger } from '@libp2p/logger'
import { createIpfs } from '../../src/ipfs/index.js'
import type { IpfsInit, IpfsNode } from '../../src/ipfs/index.js'
import type { PrivateKey } from '@libp2p/interface'
import { TEST_DHT, tempDir } from '../util.js'

export interface TestPeer {
  node: IpfsNode
  dataDir: string
  privateKey: PrivateKey
  name: string
}

/** A started IpfsNode on 127.0.0.1:0 with its own temp dir (or the one given, to test restarts). */
export async function startPeer (name: string, opts: { dataDir?: string, privateKey?: PrivateKey, clientMode?: boolean, init?: Partial<IpfsInit> } = {}): Promise<TestPeer> {
  const dataDir = opts.dataDir ?? (await tempDir(`cairn-ipfs-${name}-`)).path
  const privateKey = opts.privateKey ?? await generateKeyPair('Ed25519')
  const node = createIpfs({
    dataDir,
    host: { privateKey, listen: ['/ip4/127.0.0.1/tcp/0'], dht: { ...TEST_DHT, clientMode: opts.clientMode ?? false } },
    ...opts.init
  }, { logger: prefixLogger(name) })
  await node.start()
  return { node, dataDir, privateKey, name }
}

export async function stopPeers (...peers: Array<TestPeer | undefined>): Promise<void> {
  await Promise.all(peers.map(async p => p?.node.stop()))
}

export async function removeDirs (...peers: Array<TestPeer | undefined>): Promise<void> {
  await Promise.all(peers.map(async p => p != null ? rm(p.dataDir, { recursive: true, force: true }) : undefined))
}

export async function * chunked (bytes: Uint8Array, chunk = 65_536): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += chunk) {
    yield bytes.subarray(i, i + chunk)
  }
}

export async function collect<T> (source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of source) {
    out.push(x)
  }
  return out
}

export async function concatBytes (source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  return Buffer.concat(await collect(source))
}
