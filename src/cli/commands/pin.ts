import { Option, type Command } from 'commander'
import { formatPin, formatStatus } from '../format.js'
import { parseExpireIn, parseInteger, parseList, parseMetadata, parseTimeout } from '../parse.js'
import { Session, type CliIO } from '../session.js'
import { waitPinned } from '../wait.js'
import type { ClientPinOptions } from '../../client/index.js'
import type { Pin, PinMode, PinType } from '../../types/wire.js'

export interface PinFlags {
  name?: string
  replication?: number
  rmin?: number
  rmax?: number
  allocations?: string[]
  expireIn?: number
  metadata?: Record<string, string>
}

interface ShowFlags { status: boolean, wait?: boolean, waitTimeout?: number }

/** The pin options `pin add` and `add` share; `replication` is the flags of the replication option. */
export function withPinFlags (cmd: Command, replication: string): Command {
  return cmd
    .option('-n, --name <name>', 'name of the pin')
    .option(replication, 'replication factor, min and max (-1 = every peer, 0 = cluster default)', parseInteger)
    .option('--rmin <n>', 'minimum replication factor', parseInteger)
    .option('--rmax <n>', 'maximum replication factor', parseInteger)
    .option('--allocations <peers>', 'comma-separated peer IDs to allocate first', parseList)
    .option('--expire-in <duration>', 'unpin automatically after this long, e.g. 24h', parseExpireIn)
    .option('--metadata <key=value>', 'metadata entry (repeatable)', parseMetadata)
}

export function pinOptionsOf (o: PinFlags): ClientPinOptions {
  return {
    name: o.name,
    replication_factor_min: o.replication ?? o.rmin,
    replication_factor_max: o.replication ?? o.rmax,
    user_allocations: o.allocations,
    // Computed here, as ipfs-cluster-ctl does, so that any server honouring expire-at gets it right.
    expire_at: o.expireIn != null ? new Date(Date.now() + o.expireIn).toISOString() : undefined,
    metadata: o.metadata
  }
}

function withWaitFlags (cmd: Command): Command {
  return cmd
    .option('--no-status', 'print the pin instead of fetching its status')
    .option('-w, --wait', 'wait until every allocated peer has pinned it')
    .option('--wait-timeout <duration>', 'stop waiting after this long, e.g. 60s (default: forever)', parseTimeout)
}

/** After a pin request: optionally wait, then print the global status (or the pin itself with --no-status). */
async function show (s: Session, pin: Pin, o: ShowFlags): Promise<void> {
  const status = o.wait === true ? await waitPinned(s, pin, o.waitTimeout) : undefined
  if (!o.status) s.one(pin, formatPin)
  else s.one(status ?? await s.client.status(pin.cid), formatStatus)
}

export function registerPin (program: Command, io: CliIO): void {
  const pin = program.command('pin').description('add, remove, update and list the pins of the cluster')

  withWaitFlags(withPinFlags(pin.command('add <cid>'), '-r, --replication <n>'))
    .description('pin a CID in the cluster, then print its status')
    .addOption(new Option('--mode <mode>', 'pin mode').choices(['recursive', 'direct']))
    .option('--origins <multiaddrs>', 'comma-separated multiaddrs (with /p2p/) of peers that have the content', parseList)
    .option('--spread', 'spread the files of a directory across the peers, each holding its share (needs a replication factor)')
    .action(async (cid: string, o: PinFlags & ShowFlags & { mode?: PinMode, origins?: string[], spread?: boolean }, cmd: Command) => {
      const s = new Session(io, cmd)
      await show(s, await s.client.pin(cid, { ...pinOptionsOf(o), mode: o.mode, origins: o.origins, spread: o.spread }), o)
    })

  pin.command('rm <cid>')
    .description('unpin a CID from the cluster, then print its status')
    .option('--no-status', 'print the removed pin instead of fetching its status')
    .action(async (cid: string, o: ShowFlags, cmd: Command) => {
      const s = new Session(io, cmd)
      await show(s, await s.client.unpin(cid), { status: o.status })
    })

  withWaitFlags(pin.command('update <from> <to>'))
    .description('pin <to> with the allocations and options of <from> (which stays pinned)')
    .option('-n, --name <name>', 'name of the new pin')
    .option('--expire-in <duration>', 'unpin the new pin automatically after this long', parseExpireIn)
    .action(async (from: string, to: string, o: PinFlags & ShowFlags, cmd: Command) => {
      const s = new Session(io, cmd)
      await show(s, await s.client.pinUpdate(from, to, pinOptionsOf({ name: o.name, expireIn: o.expireIn })), o)
    })

  pin.command('ls [cid]')
    .description('list the pinset (one line per pin), or one pin')
    .option('--filter <types>', 'comma-separated pin types: pin, meta-pin, clusterdag-pin, shard-pin, all', parseList)
    .action(async (cid: string | undefined, o: { filter?: Array<PinType | 'all'> }, cmd: Command) => {
      const s = new Session(io, cmd)
      if (cid != null) {
        if (o.filter != null) s.usage('--filter lists the whole pinset: give no CID with it')
        s.item(await s.client.allocation(cid), formatPin)
        return
      }
      for await (const p of s.client.allocations({ filter: o.filter })) s.item(p, formatPin)
    })
}
