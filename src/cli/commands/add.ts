import { Option, type Command } from 'commander'
import { formatAdded } from '../format.js'
import { formatBytes, parseSize, parseTimeout } from '../parse.js'
import { Session, type CliIO } from '../session.js'
import { waitPinned } from '../wait.js'
import { pinOptionsOf, withPinFlags, type PinFlags } from './pin.js'
import type { AddedOutput } from '../../types/wire.js'

interface AddFlags extends PinFlags {
  recursive?: boolean
  wrapWithDirectory?: boolean
  hidden?: boolean
  dereferenceSymlinks?: boolean
  dereferenceArgs?: boolean
  cidVersion?: '0' | '1'
  rawLeaves?: boolean
  format?: 'unixfs' | 'car'
  chunker?: string
  local?: boolean
  pin: boolean
  quiet?: boolean
  quieter?: boolean
  wait?: boolean
  waitTimeout?: number
  shard?: boolean
  shardSize?: number
  upload: 'files' | 'blocks'
}

export function registerAdd (program: Command, io: CliIO): void {
  withPinFlags(program.command('add <paths...>'), '--replication <n>')
    .description('import files or directories into the cluster and pin the result')
    .option('-r, --recursive', 'add directories recursively')
    .option('-w, --wrap-with-directory', 'wrap the paths in a directory (implied by several paths)')
    .option('-H, --hidden', 'include files whose name starts with a dot')
    .option('--dereference-symlinks', 'follow symlinks (given paths and inside directories) and add what they point to; ' +
      'by default a symlink is added as a link, never followed, as ipfs add does')
    .option('--dereference-args', 'follow the given paths when they are symlinks, not the links inside directories')
    .addOption(new Option('--cid-version <n>', 'CID version (1 implies --raw-leaves)').choices(['0', '1']))
    .option('--raw-leaves', 'use raw blocks for file data')
    .addOption(new Option('--format <format>', 'unixfs: import the files; car: import one CAR file').choices(['unixfs', 'car']))
    .option('--chunker <spec>', "chunker, e.g. 'size-262144'")
    .option('--local', 'put the blocks on the receiving peer only, then pin normally')
    .addOption(new Option('--upload <what>', 'blocks: build the DAG here and send its blocks, then pin the root; ' +
      'files: send the files for the peer to import, as ipfs-cluster-ctl does (always with --shard or --format car)')
      .choices(['blocks', 'files']).default('blocks'))
    .option('--no-pin', 'import without pinning')
    .option('--shard', 'split the content into shards, each pinned on its own peers (for content too big for one peer)')
    .option('--shard-size <size>', 'most bytes per shard, e.g. 8MiB (default 100MiB, as IPFS Cluster)', parseSize)
    .option('-q, --quiet', 'print only CIDs')
    .option('-Q, --quieter', 'print only the root CID')
    .option('--wait', 'wait until every allocated peer has pinned the root')
    .option('--wait-timeout <duration>', 'stop waiting after this long, e.g. 60s (default: forever)', parseTimeout)
    .action(async (paths: string[], o: AddFlags, cmd: Command) => {
      const s = new Session(io, cmd)
      if (o.format === 'car' && (paths.length > 1 || o.wrapWithDirectory === true)) s.usage('--format car imports exactly one CAR file, without -w')
      if (o.shardSize != null && o.shard !== true) s.usage('--shard-size needs --shard')
      const text = o.quiet === true ? (a: AddedOutput) => a.cid : formatAdded
      const bar = s.progress('adding', formatBytes)
      let root: AddedOutput | undefined
      try {
        const added = s.client.add(paths, {
          ...pinOptionsOf(o),
          recursive: o.recursive,
          hidden: o.hidden,
          dereferenceSymlinks: o.dereferenceSymlinks,
          dereferenceArgs: o.dereferenceArgs,
          wrapWithDirectory: o.wrapWithDirectory === true || paths.length > 1 ? true : undefined,
          cidVersion: o.cidVersion != null ? Number(o.cidVersion) as 0 | 1 : undefined,
          rawLeaves: o.rawLeaves,
          format: o.format,
          chunker: o.chunker,
          local: o.local,
          noPin: o.pin ? undefined : true,
          shard: o.shard,
          shard_size: o.shardSize,
          upload: o.upload,
          onProgress: bar != null ? (sent, total) => { bar.update(sent, total) } : undefined
        })
        for await (const line of added) {
          root = line
          if (o.quieter !== true) s.item(line, text)
        }
      } finally {
        bar?.stop()
      }
      if (root == null) throw new Error('the cluster added nothing (no output)')
      if (o.quieter === true) s.item(root, a => a.cid)
      // Progress goes to stderr; stdout keeps only the AddedOutput lines, as with ipfs-cluster-ctl.
      if (o.wait === true && o.pin) await waitPinned(s, await s.client.allocation(root.cid), o.waitTimeout)
    })
}
