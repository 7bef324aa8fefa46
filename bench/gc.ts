// `gc`: repo GC on one IPFS node holding N blocks of 1 KiB, half of them pinned (raw leaves under directories of
// 1,000 links, one recursive pin) and half loose: cairn's GC (index keys and records read in slices of 2,048, the
// garbage deleted as grouped batches) against Helia's own `helia.gc()` (every block read, one pin check and one
// delete at a time), each on a fresh node filled with the same blocks, in the same run. Both must delete exactly
// the loose half. The figure is blocks examined per second; the ratio is Helia's time over cairn's. Then the
// 10-version mirror scenario of bench/gc-mirror.ts: bytes held after GC over bytes needed, MB/s given back, and
// gateway read and pin latency while GC runs against a quiet run.
import { randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { generateKeyPair } from '@libp2p/crypto/keys'
import * as dagPb from '@ipld/dag-pb'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { sha256 } from 'multiformats/hashes/sha2'
import { createIpfs, type IpfsNode } from '../src/ipfs/index.js'
import { quietLogger } from '../test/util.js'
import { mirrorGcMetrics, runMirrorGc } from './gc-mirror.js'
import { nonNegativeInt, parseFlags, positiveInt, tempDir, type Benchmark, type BenchContext, type BenchReport } from './lib.js'

const USAGE = [
  '  --blocks N          blocks in the store, half pinned (default 100000)',
  '  --mirror-files N    files of the mirror tree, ~53 KiB each on average (default 6000; 0: no mirror scenario)',
  '  --versions N        mirror versions synced, with --keep 2 (default 10)',
  '  --changed-pct N     percent of the files rewritten before each re-sync (default 5)'
].join('\n')
const LINKS_PER_DIR = 1000

interface Block { cid: CID, bytes: Uint8Array }

async function makeBlocks (count: number): Promise<Block[]> {
  return await Promise.all(Array.from({ length: count }, async () => {
    const bytes = randomBytes(1024)
    return { cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes }
  }))
}

/** Directories of LINKS_PER_DIR leaves each, and a root linking the directories. */
async function makeTree (leaves: Block[]): Promise<{ root: CID, nodes: Block[] }> {
  const node = async (links: Block[]): Promise<Block> => {
    const bytes = dagPb.encode(dagPb.prepare({ Links: links.map((l, i) => ({ Hash: l.cid, Name: `f${i}`, Tsize: l.bytes.byteLength })) }))
    return { cid: CID.createV1(dagPb.code, await sha256.digest(bytes)), bytes }
  }
  const dirs: Block[] = []
  for (let i = 0; i < leaves.length; i += LINKS_PER_DIR) dirs.push(await node(leaves.slice(i, i + LINKS_PER_DIR)))
  const root = await node(dirs)
  return { root: root.cid, nodes: [...dirs, root] }
}

async function withNode<T> (fn: (node: IpfsNode) => Promise<T>): Promise<T> {
  const dir = await tempDir('cairn-bench-gc-')
  const node = createIpfs({
    dataDir: dir.path,
    host: { privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], dht: { protocol: '/cairn-bench-gc/kad/1.0.0', clientMode: true, keepPrivateAddresses: true } }
  }, { logger: quietLogger('gc') })
  await node.start()
  try {
    return await fn(node)
  } finally {
    await node.stop()
    await dir.cleanup()
  }
}

async function fill (node: IpfsNode, blocks: Block[], root: CID, signal: AbortSignal): Promise<void> {
  for (let i = 0; i < blocks.length; i += 512) {
    signal.throwIfAborted()
    await Promise.all(blocks.slice(i, i + 512).map(async b => { await node.helia.blockstore.put(b.cid, b.bytes) }))
  }
  await node.pin(root, { signal })
}

export const gc: Benchmark = {
  description: 'repo GC of N blocks, half pinned: cairn\'s GC against Helia\'s helia.gc(), same blocks, same run',
  usage: USAGE,
  async run (argv: string[], ctx: BenchContext): Promise<BenchReport> {
    const values = parseFlags(argv, { blocks: { type: 'string' }, 'mirror-files': { type: 'string' }, versions: { type: 'string' }, 'changed-pct': { type: 'string' } })
    const total = positiveInt('blocks', values.blocks, 100_000)
    const mirrorFiles = nonNegativeInt('mirror-files', values['mirror-files'], 6000)
    const versions = positiveInt('versions', values.versions, 10)
    const changedPct = positiveInt('changed-pct', values['changed-pct'], 5)
    const pinnedLeaves = await makeBlocks(Math.floor(total / 2))
    const tree = await makeTree(pinnedLeaves)
    const loose = await makeBlocks(total - pinnedLeaves.length - tree.nodes.length)
    const blocks = [...pinnedLeaves, ...tree.nodes, ...loose]
    ctx.log(`${blocks.length.toLocaleString('en-US')} blocks: ${(pinnedLeaves.length + tree.nodes.length).toLocaleString('en-US')} pinned, ${loose.length.toLocaleString('en-US')} loose`)

    const ours = await withNode(async node => {
      await fill(node, blocks, tree.root, ctx.signal)
      ctx.log('cairn gc...')
      const t = performance.now()
      const removed = await node.gc({ signal: ctx.signal })
      const s = (performance.now() - t) / 1000
      if (removed.length !== loose.length) throw new Error(`cairn's GC deleted ${removed.length} blocks, expected ${loose.length}`)
      return s
    })
    const helias = await withNode(async node => {
      await fill(node, blocks, tree.root, ctx.signal)
      ctx.log('helia.gc()...')
      const before = await node.repoSize()
      const t = performance.now()
      await node.helia.gc({ signal: ctx.signal })
      const s = (performance.now() - t) / 1000
      const freed = before - await node.repoSize()
      if (freed !== loose.length * 1024) throw new Error(`helia.gc() freed ${freed} bytes, expected ${loose.length * 1024}`)
      return s
    })
    const n = blocks.length
    const mirror = mirrorFiles === 0 ? undefined : mirrorGcMetrics(await runMirrorGc({ files: mirrorFiles, versions, changedPct, signal: ctx.signal, log: ctx.log }))
    return {
      title: `gc: ${n.toLocaleString('en-US')} blocks of 1 KiB, ${loose.length.toLocaleString('en-US')} of them loose` +
        (mirror == null ? '' : `; a ${mirrorFiles.toLocaleString('en-US')}-file mirror synced ${versions} times, ${changedPct}% changed each, --keep 2`),
      params: { blocks: n, loose: loose.length, mirror_files: mirrorFiles, versions, changed_pct: changedPct },
      goals: mirror == null ? undefined : [mirror.goal],
      metrics: [
        { key: 'cairn_s', label: 'cairn GC', value: ours, unit: 's', digits: 2 },
        { key: 'cairn_blocks_per_s', label: 'cairn GC, blocks examined', value: n / ours, unit: 'blocks/s' },
        { key: 'helia_s', label: 'helia.gc() (baseline)', value: helias, unit: 's', digits: 2 },
        { key: 'speedup', label: 'helia.gc() time / cairn GC time', value: helias / ours, unit: 'x', digits: 1, baseline: `helia.gc(): ${helias.toFixed(2)} s` },
        ...mirror?.metrics ?? []
      ]
    }
  }
}
