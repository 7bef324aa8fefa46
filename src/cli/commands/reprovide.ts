import type { Command } from 'commander'
import { formatDuration } from '../parse.js'
import { Session, type CliIO } from '../session.js'
import type { ReprovideStatus } from '../../types/wire.js'

export function registerReprovide (program: Command, io: CliIO): void {
  const reprovide = program.command('reprovide')
    .description('the DHT reprovider of the peer the API belongs to: keeps every held CID findable')

  reprovide.command('status')
    .description('CIDs announced, last and next cycle, failures')
    .action(async (_o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      s.one(await s.client.reprovideStatus(), formatReprovideStatus)
    })

  reprovide.command('now')
    .description('run a reprovide cycle now (or follow the running one) and print the status after it')
    .action(async (_o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      const bar = s.progress('reproviding', n => n.toLocaleString('en-US'))
      let status: ReprovideStatus
      try {
        status = await s.client.reprovideNow({
          onProgress: p => { if (p.running && p.cycle_total > 0) bar?.update(p.cycle_done, p.cycle_total) }
        })
      } finally {
        bar?.stop()
      }
      s.one(status, formatReprovideStatus)
    })
}

export function formatReprovideStatus (r: ReprovideStatus): string {
  const n = (v: number): string => v.toLocaleString('en-US')
  const extra = r as ReprovideStatus & { retries_total?: number, records_sent_total?: number, retry_pending?: number }
  const lines = [
    `Strategy: ${r.strategy} | Interval: ${formatDuration(r.interval_ms)} | Record validity: ${formatDuration(r.validity_ms)}`,
    r.running
      ? `Cycle running: ${n(r.cycle_done)}/${n(r.cycle_total)} CIDs`
      : `Next cycle: ${r.next_cycle_at || 'not scheduled'}`,
    r.last_cycle_finished === ''
      ? 'Last cycle: none yet'
      : `Last cycle: ${n(r.last_cycle_cids)} CIDs announced in ${(r.last_cycle_duration_ms / 1000).toFixed(1)}s (started ${r.last_cycle_started}, finished ${r.last_cycle_finished})`,
    `Since start: ${n(r.cids_announced_total)} CIDs announced in ${n(r.cycles_total)} cycles, ${n(r.fast_provides_total)} fast provides`,
    `Failures: ${n(r.failures_total)}${extra.retries_total != null ? ` (${n(extra.retries_total)} retried)` : ''} | Cycles over their interval: ${n(r.cycles_overrun_total)}` +
      (extra.retry_pending != null && extra.retry_pending > 0 ? ` | Waiting for a retry: ${n(extra.retry_pending)} CIDs` : '')
  ]
  return lines.join('\n')
}
