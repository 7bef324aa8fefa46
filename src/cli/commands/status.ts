import { InvalidArgumentError, type Command } from 'commander'
import { STATUS_FILTER_GROUPS, STATUS_FILTER_NAMES } from '../../api/rest/filters.js'
import { formatStatus } from '../format.js'
import { parseList } from '../parse.js'
import { Session, type CliIO } from '../session.js'
import type { StatusAllOptions } from '../../client/index.js'
import type { GlobalPinInfo } from '../../types/wire.js'

export function registerStatus (program: Command, io: CliIO): void {
  program.command('status [cids...]')
    .description('status of CIDs on each peer (every pin when no CID is given)')
    .option('--local', 'only the status on the peer the API belongs to')
    .option('--filter <statuses>', `comma-separated statuses to list, only without CIDs: ${STATUS_FILTER_NAMES.join(', ')} ` +
      `(error: ${STATUS_FILTER_GROUPS.error.join(', ')}; queued: ${STATUS_FILTER_GROUPS.queued.join(', ')})`, parseStatusFilter)
    .action(async (cids: string[], o: { local?: boolean, filter?: StatusAllOptions['filter'] }, cmd: Command) => {
      const s = new Session(io, cmd)
      if (cids.length > 0 && o.filter != null) s.usage('--filter applies to the whole pinset: give no CID with it')
      const items: AsyncIterable<GlobalPinInfo> | GlobalPinInfo[] = cids.length === 0
        ? s.client.statusAll({ local: o.local, filter: o.filter })
        : cids.length === 1
          ? [await s.client.status(cids[0], { local: o.local })]
          : s.client.statusAll({ local: o.local, cids })
      for await (const g of items) s.item(g, formatStatus)
    })

  program.command('recover [cid]')
    .description('retry the pins in an error state: one CID, or all of them (prints those re-queued)')
    .option('--local', 'only on the peer the API belongs to')
    .action(async (cid: string | undefined, o: { local?: boolean }, cmd: Command) => {
      const s = new Session(io, cmd)
      const items = cid != null ? [await s.client.recover(cid, { local: o.local })] : s.client.recoverAll({ local: o.local })
      for await (const g of items) s.item(g, formatStatus)
    })
}

/** --filter: the names GET /pins?filter= knows (the server ignores unknown ones, which hides a typo). */
function parseStatusFilter (value: string): StatusAllOptions['filter'] {
  const names = parseList(value)
  const unknown = names.filter(n => !STATUS_FILTER_NAMES.includes(n))
  if (unknown.length > 0) throw new InvalidArgumentError(`${unknown.map(n => `"${n}"`).join(', ')} ${unknown.length === 1 ? 'is not a status' : 'are not statuses'}: give one of ${STATUS_FILTER_NAMES.join(', ')}.`)
  return names as StatusAllOptions['filter']
}
