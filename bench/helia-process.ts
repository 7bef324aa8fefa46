// A stock Helia 7 node in its own process, the alternative a JS user would pick, for the `add` and `bitswap`
// benchmarks to measure beside cairn (started by bench/lib.ts startHeliaProcess; its folder and mode in argv[2] as
// JSON). Written as a user would write it: createHelia, @helia/unixfs, blockstore-fs; nothing of cairn's.
//   - `add` (network: false): an FsBlockstore and an in-memory datastore, Helia never started, so no libp2p is
//     created (an import needs none); the tree imported with @helia/unixfs addAll(globSource(...)).
//   - `bitswap` (network: true): an FsBlockstore and a LevelDatastore (pins are kept there), started with libp2p on
//     127.0.0.1 with cairn's own transport stack (tcp + noise + yamux, stock settings), identify, and Helia's
//     stock @helia/bitswap (createHelia adds it); no discovery, DHT, delegated routers or gateways (see below): the
//     fetcher dials the sender.
import { noise } from '@chainsafe/libp2p-noise'
import { globSource, unixfs } from '@helia/unixfs'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { FsBlockstore } from 'blockstore-fs'
import { MemoryDatastore } from 'datastore-core'
import { LevelDatastore } from 'datastore-level'
import { createHelia } from 'helia'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { CID } from 'multiformats/cid'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { PeerStats } from './lib.js'
import { stopOnSignals } from './child-stop.js'
import { pseudoRandomBytes } from './random-content.js'

export interface HeliaProcessInit {
  /** Folder for the node: its blockstore (and, with network, its datastore) go below it. */
  dir: string
  /** Start the node with libp2p and bitswap on 127.0.0.1 (bitswap); without, Helia is never started (add). */
  network: boolean
}

/** What a Helia node tells the benchmark once it runs. */
export interface HeliaReady { type: 'ready', id?: string, addrs: string[] }

/**
 * The importer options that give cairn's (Kubo's) CIDs: CIDv0, dag-pb leaves, 256 KiB chunks, balanced DAG of 174
 * links. @helia/unixfs defaults to CIDv1, raw leaves, 1 MiB chunks and 1,024 links, and its defaults for the chunker
 * and the layout win over `profile`, so a user must spell them out; the profile adds Kubo's HAMT threshold and field
 * order. The rest (fileImportConcurrency, blockWriteConcurrency) is left at Helia's defaults.
 */
const KUBO_IMPORT = {
  profile: 'unixfs-v0-2015',
  cidVersion: 0,
  rawLeaves: false,
  chunker: fixedSize({ chunkSize: 262_144 }),
  layout: balanced({ maxChildrenPerNode: 174 })
} as const

const raw = process.argv[2]
if (raw === undefined || process.send === undefined) {
  process.stderr.write('usage: started by bench/lib.ts startHeliaProcess with its init as JSON, over IPC\n')
  process.exit(2)
}
const send = process.send.bind(process)
const init = JSON.parse(raw) as HeliaProcessInit

const blockstore = new FsBlockstore(join(init.dir, 'blocks'))
await blockstore.open()
const level = init.network ? new LevelDatastore(join(init.dir, 'datastore')) : undefined
await level?.open()
const datastore = level ?? new MemoryDatastore()
const helia = init.network
  ? createHelia({
    blockstore,
    datastore,
    libp2p: {
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      peerDiscovery: [],
      services: { identify: identify() }
    },
    // no internet lookups: stock createHelia also asks https://delegated-ipfs.dev and public gateways for every
    // block it lacks, racing bitswap (a DNS failure per block on a machine without internet)
    http: { delegatedRouters: [], recursiveGateways: [] }
  })
  : createHelia({ blockstore, datastore })
const fs = unixfs(helia)

stopOnSignals('the Helia node', async () => {
  if (helia.status === 'started') await helia.stop()
  await level?.close()
  await blockstore.close()
})

/** The tree under `tree`, wrapped in a directory: the same root as `cairn add -r <tree>` (a directory's name is not in its CID). */
async function addTree (tree: string): Promise<Record<string, unknown>> {
  const t = performance.now()
  let root: CID | undefined
  let entries = 0
  for await (const entry of fs.addAll(globSource(tree, '**/*'), { ...KUBO_IMPORT, wrapWithDirectory: true })) {
    root = entry.cid
    entries++
  }
  if (root === undefined) throw new Error(`nothing imported from ${tree}`)
  return { cid: root.toString(), ms: performance.now() - t, entries }
}

/**
 * helia.pins.add: walks the DAG (one block at a time: its stock walker), fetching what is missing through the block
 * brokers, and records the pin. Returns the ms until the pin is recorded and until the last block was walked.
 */
async function pin (cid: string): Promise<Record<string, unknown>> {
  const t = performance.now()
  let blocks = 0
  let lastBlockAt = t
  for await (const _ of helia.pins.add(CID.parse(cid))) {
    blocks++
    lastBlockAt = performance.now()
  }
  return { ms: performance.now() - t, last_block_ms: lastBlockAt - t, blocks }
}

/** One file of pseudo-random bytes (the bitswap benchmark's content, same bytes as cairn's), not pinned. */
async function importRandom (bytes: number, seed: number): Promise<Record<string, unknown>> {
  const t = performance.now()
  const cid = await fs.addByteStream(pseudoRandomBytes(bytes, seed), KUBO_IMPORT)
  return { cid: cid.toString(), ms: performance.now() - t }
}

async function dial (addrs: string[]): Promise<Record<string, unknown>> {
  await helia.libp2p.dial(addrs.map(a => multiaddr(a)))
  return {}
}

type Request = { type?: string, seq?: number } & Record<string, unknown>

const answer = (type: string, seq: number | undefined, work: () => Promise<Record<string, unknown>>): void => {
  work().then(result => { send({ ...result, type, seq }) }, (err: Error) => { send({ type, seq, error: err.stack ?? err.message }) })
}

process.on('message', (msg: Request) => {
  const { type, seq } = msg
  if (type === 'stats') {
    const mem = process.memoryUsage()
    const cpu = process.cpuUsage()
    const stats: PeerStats = { rss: mem.rss, heapUsed: mem.heapUsed, cpuUserUs: cpu.user, cpuSystemUs: cpu.system }
    send({ type, seq, stats })
  } else if (type === 'add-tree') {
    answer(type, seq, async () => await addTree(String(msg.tree)))
  } else if (type === 'pin') {
    answer(type, seq, async () => await pin(String(msg.cid)))
  } else if (type === 'import-random') {
    answer(type, seq, async () => await importRandom(Number(msg.bytes), Number(msg.seed)))
  } else if (type === 'dial') {
    answer(type, seq, async () => await dial(msg.addrs as string[]))
  }
})

try {
  if (init.network) await helia.start()
  const ready: HeliaReady = init.network
    ? { type: 'ready', id: helia.libp2p.peerId.toString(), addrs: helia.libp2p.getMultiaddrs().map(a => a.toString()) }
    : { type: 'ready', addrs: [] }
  send(ready)
} catch (err) {
  process.stderr.write(`the Helia node did not start: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
}
