import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { prefixLogger } from '@libp2p/logger'
import { createIpfs } from '../../src/ipfs/index.js'
import type { IpfsInit, IpfsNode } from '../../src/ipfs/index.js'
import type { PrivateKey } from '@libp2p/interface'

export const TEST_DHT = { protocol: '/cairn-test/kad/1.0.0', clientMode: false, keepPrivateAddresses: true }

export interface TestPeer {
  node: IpfsNode
  dataDir: string
  privateKey: PrivateKey
  name: string
}

/** A started IpfsNode on 127.0.0.1:0 with its own temp dir (or the one given, to test restarts). */
export async function startPeer (name: string, opts: { dataDir?: string, privateKey?: PrivateKey, clientMode?: boolean, init?: Partial<IpfsInit> } = {}): Promise<TestPeer> {
  const dataDir = opts.dataDir ?? await mkdtemp(join(tmpdir(), `cairn-ipfs-${name}-`))
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

/** Polls until `check` is true; fails after `ms`. */
export async function waitFor (check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}
