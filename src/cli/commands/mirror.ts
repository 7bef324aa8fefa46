// `cairn mirror sync|ls|npm-index`: publish versions of a directory tree (a package mirror), list them, and write
// the packuments of an npm mirror tree.
import { homedir } from 'node:os'
import type { Command } from 'commander'
import { DEFAULT_KEEP, formatStatusCounts, isMirrorName, listMirrors, syncMirror, writePackuments, type MirrorStatus, type MirrorSyncResult } from '../../mirror/index.js'
import { formatBytes, parseInteger, parseTimeout } from '../parse.js'
import { Session, type CliIO } from '../session.js'
import type { Progress } from '../progress.js'

interface SyncFlags {
  name: string
  keep?: number
  cache?: string
  metadata: boolean
  replication?: number
  rmin?: number
  rmax?: number
  waitTimeout?: number
  spread?: boolean
}

export function registerMirror (program: Command, io: CliIO): void {
  const mirror = program.command('mirror').description('publish versions of a directory tree (a package mirror) and list them')

  mirror.command('sync <dir>')
    .description('import <dir> as the next version of a mirror, uploading only what changed, then pin it and unpin old versions')
    .requiredOption('-n, --name <mirror>', 'name of the mirror (letters, digits, ".", "_", "-")')
    .option('-k, --keep <n>', `versions to keep pinned, this one included (default: ${DEFAULT_KEEP})`, parseInteger)
    .option('--cache <file>', 'cache of file hashes (default: $XDG_CACHE_HOME/cairn/mirror/<name>.json or ~/.cache/...)')
    .option('--no-metadata', 'do not store mtime and mode (CIDs then equal `cairn add -r -H --cid-version 1`)')
    .option('--replication <n>', 'replication factor, min and max (default: that of the previous version)', parseInteger)
    .option('--rmin <n>', 'minimum replication factor', parseInteger)
    .option('--rmax <n>', 'maximum replication factor', parseInteger)
    .option('--spread', 'spread the mirror\'s files across the peers, each holding its share; every block on --replication peers (default: as the previous version)')
    .option('--wait-timeout <duration>', 'give up waiting for the new version to be pinned after this long (default: 10m)', parseTimeout)
    .action(async (dir: string, o: SyncFlags, cmd: Command) => {
      const s = new Session(io, cmd)
      if (!isMirrorName(o.name)) s.usage(`invalid mirror name "${o.name}": use letters, digits, ".", "_" or "-", starting with a letter or digit`)
      if (o.keep != null && o.keep < 1) s.usage(`--keep must be at least 1, got ${o.keep}`)
      let bar: Progress | undefined
      let barKind = ''
      let waitLine = ''
      const useBar = (kind: string, label: string, format: (n: number) => string): Progress | undefined => {
        if (barKind !== kind) {
          bar?.stop()
          bar = s.progress(label, format)
          barKind = kind
        }
        return bar
      }
      try {
        const result = await syncMirror(s.client, {
          dir,
          name: o.name,
          keep: o.keep,
          cacheFile: o.cache,
          metadata: o.metadata,
          replication_factor_min: o.replication ?? o.rmin,
          replication_factor_max: o.replication ?? o.rmax,
          spread: o.spread,
          pinTimeoutMs: o.waitTimeout,
          env: io.env,
          onProgress: e => {
            if (e.phase === 'scan') {
              s.note(`${o.name}: ${e.files} files, ${formatBytes(e.bytes)} in ${dir}`)
            } else if (e.phase === 'hash') {
              useBar('hash', 'hashing', formatBytes)?.update(e.bytes_read, e.bytes_to_read)
            } else if (e.phase === 'pin') {
              bar?.stop()
              s.note(`pinning ${e.cid} as ${o.name} version ${e.version}`)
            } else if (e.phase === 'wait') {
              const b = useBar('wait', 'pinned', String)
              const line = `waiting for ${e.cid}: ${e.pinned}/${e.peers} peers pinned`
              if (b != null) b.update(e.pinned, e.peers)
              else if (line !== waitLine) s.note(line)
              waitLine = line
            } else if (e.phase === 'unpin') {
              bar?.stop()
              barKind = ''
              s.note(`unpinning version ${e.version} (${e.cid})`)
            }
          }
        })
        bar?.stop()
        s.one(result, formatSync)
      } finally {
        bar?.stop()
      }
    })

  mirror.command('ls [name]')
    .description('list the mirrors in the cluster and their versions (newest first), with the status of each')
    .action(async (name: string | undefined, _o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      if (name != null && !isMirrorName(name)) s.usage(`invalid mirror name "${name}"`)
      const mirrors = await listMirrors(s.client, { name })
      if (!s.json && mirrors.length === 0) {
        s.note(name != null ? `no versions of mirror "${name}" in the pinset` : 'no mirrors in the pinset')
        return
      }
      for (const m of mirrors) {
        if (!s.json) s.item(m, x => `${x.mirror}:`)
        for (const v of m.versions) {
          s.item({ mirror: v.mirror, version: v.version, root: v.root, created: v.created, status: v.status },
            x => `  v${x.version}  ${x.root}  ${x.created}  ${formatStatusCounts(x.status)}`)
        }
      }
    })

  mirror.command('status <name>')
    .description('where the newest version of a mirror is: bytes per peer, copies of each part, what is under-replicated or moving')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      if (!isMirrorName(name)) s.usage(`invalid mirror name "${name}"`)
      s.one(await s.client.mirrorStatus(name), formatMirrorStatus)
    })

  mirror.command('npm-index <dir>')
    .description('write <name>/index.json (the packument npm reads) for every package with tarballs in <dir>/<name>/-/ or <dir>/@scope/<name>/-/')
    .action(async (dir: string, _o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      const packages = await writePackuments(dir)
      if (!s.json && packages.length === 0) s.note(`no package tarballs in ${dir}: expected <name>/-/*.tgz or @scope/<name>/-/*.tgz`)
      for (const p of packages) s.item(p, x => `${x.name}: ${x.versions.length} version${x.versions.length === 1 ? '' : 's'}, latest ${x.latest}${x.written ? '' : ' (unchanged)'}`)
    })
}

function formatMirrorStatus (m: MirrorStatus): string {
  const copies = Object.entries(m.copies).sort(([a], [b]) => Number(b) - Number(a)).map(([k, n]) => `${n} with ${k} ${k === '1' ? 'copy' : 'copies'}`).join(', ')
  const lines = [
    `${m.mirror}: version ${m.version} ${m.cid}${m.spread ? `, spread in ${m.parts} partitions (${formatBytes(m.bytes)})` : ', pinned whole'}, replication ${m.replication_factor_min}..${m.replication_factor_max}`,
    `${m.spread ? 'partitions' : 'copies'}: ${copies}`,
    m.under_replicated.length > 0 ? `under-replicated: ${m.under_replicated.length} ${m.spread ? `partitions (${m.under_replicated.slice(0, 10).join(', ')}${m.under_replicated.length > 10 ? ', ...' : ''})` : 'part'}` : 'under-replicated: none',
    `moving: ${m.moving.length > 0 ? `${m.moving.length} peers fetching their share` : 'nothing'}`
  ]
  for (const p of m.peers) {
    lines.push(`  ${(p.peername !== '' ? p.peername : p.peer).padEnd(20)} ${p.status.padEnd(12)}${m.spread ? ` ${String(p.partitions).padStart(3)} partitions  ${formatBytes(p.bytes)}` : ''}${p.error !== '' ? `  ${p.error}` : ''}`)
  }
  return lines.join('\n')
}

function formatSync (r: MirrorSyncResult): string {
  const f = r.files
  const home = homedir()
  const cacheFile = r.cache_file.startsWith(home + '/') ? `~${r.cache_file.slice(home.length)}` : r.cache_file
  const lines = [
    r.unchanged
      ? `${r.mirror}: unchanged, still version ${r.version} ${r.root}`
      : `${r.mirror}: version ${r.version} ${r.root}${r.previous != null ? ` (was version ${r.previous.version} ${r.previous.root})` : ''}`,
    `files: ${f.total} (${f.added} added, ${f.changed} changed, ${f.removed} removed, ${f.unchanged} unchanged)`,
    `read ${r.files_read} files (${formatBytes(r.bytes_read)}), ${r.dirs_kept} unchanged directories kept whole; uploaded ${r.blocks_uploaded} blocks (${formatBytes(r.bytes_uploaded)} new); tree ${formatBytes(r.dag_size)}`,
    `pinned on ${r.pinned_on.length} peers${r.unreachable.length > 0 ? ` (${r.unreachable.length} unreachable, they catch up later)` : ''}`
  ]
  if (r.skipped.length > 0) lines.push(`skipped ${r.skipped.length} special files (sockets, fifos, devices): ${r.skipped.slice(0, 3).join(', ')}${r.skipped.length > 3 ? ', ...' : ''}`)
  for (const u of r.unpinned) lines.push(`unpinned version ${u.version} ${u.root}`)
  lines.push(`cache: ${r.cache} (${cacheFile})`, `took ${(r.duration_ms / 1000).toFixed(1)} s`)
  return lines.join('\n')
}
