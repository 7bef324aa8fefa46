import type { Command } from 'commander'
import { formatBytes } from '../../utils/bytes.js'
import { Session, type CliIO } from '../session.js'
import { registerGc } from './ipfs.js'
import type { RepoStat, RepoVerify } from '../../types/wire.js'

export function registerRepo (program: Command, io: CliIO): void {
  const repo = program.command('repo')
    .description('the block store of the peer the API belongs to')

  repo.command('stat')
    .description('bytes held by kind (pinned, cache, garbage), on disk, and GC and cache counters (reads every block)')
    .action(async (_o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      s.one(await s.client.repoStat(), formatRepoStat)
    })

  repo.command('verify')
    .description('re-hash every held block: corrupt ones are deleted, and a pin\'s corrupt or missing blocks fetched again; exit 1 when one could not be repaired')
    .action(async (_o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      const result = await s.client.repoVerify()
      s.one(result, formatRepoVerify)
      const left = result.problems.filter(p => p.action === 'none').length
      if (left > 0) throw new Error(`${left} blocks of pins could not be fetched again`)
    })

  registerGc(repo, io)
}

export function formatRepoStat (r: RepoStat): string {
  const b = (n: number): string => `${formatBytes(n)} (${n.toLocaleString('en-US')} B)`
  return [
    `Blocks:        ${r.blocks.toLocaleString('en-US')}, ${b(r.held_bytes)}`,
    `  pinned:      ${b(r.pinned_bytes)}`,
    `  cache:       ${b(r.cache_bytes)} of ${r.cache_max > 0 ? formatBytes(r.cache_max) : 'none'} (gateway.cache_max)`,
    `  garbage:     ${b(r.garbage_bytes)} (the next repo GC deletes it)`,
    `On disk:       ${b(r.disk_bytes)}`,
    `  segments:    ${r.segments.toLocaleString('en-US')} files, ${b(r.segment_bytes)} (${formatBytes(r.compacted_bytes)} given back by compaction since start)`,
    ...(r.unmigrated_bytes > 0 ? [`  migrating:   ${b(r.unmigrated_bytes)} still in the earlier level layout`] : []),
    `Storage max:   ${r.storage_max > 0 ? `${formatBytes(r.storage_max)}, ${formatBytes(r.held_bytes - r.cache_bytes)} counted (all but the cache, which gives way to pins)` : 'none (monitor.storage_max)'}`,
    `GC:            ${r.gc_runs.toLocaleString('en-US')} runs since start, ${formatBytes(r.gc_bytes_reclaimed)} reclaimed; ${formatBytes(r.cache_evicted_bytes)} evicted from the cache`
  ].join('\n')
}

export function formatRepoVerify (r: RepoVerify): string {
  const lines = [`${r.blocks_checked.toLocaleString('en-US')} blocks checked, ${r.problems.length} problems`]
  for (const p of r.problems) {
    const what = p.action === 'refetched' ? 'fetched again' : p.action === 'deleted' ? 'deleted' : `not repaired: ${p.error ?? ''}`
    lines.push(`  ${p.cid}  ${p.problem}${p.pinned ? ' (pinned)' : ''}: ${what}`)
  }
  return lines.join('\n')
}
