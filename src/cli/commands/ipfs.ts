import type { Command } from 'commander'
import { Session, type CliIO } from '../session.js'
import type { GlobalRepoGC } from '../../types/wire.js'

export function registerIpfs (program: Command, io: CliIO): void {
  const ipfs = program.command('ipfs')
    .description('the embedded IPFS node of every peer')

  registerGc(ipfs, io)
}

/** `gc` under `parent`: `cairn ipfs gc` (ipfs-cluster-ctl's name) and `cairn repo gc` (Kubo's). */
export function registerGc (parent: Command, io: CliIO): void {
  parent.command('gc')
    .description('repo GC: each peer deletes the blocks none of its pins holds (content still owed to other peers stays); one asked for while a GC runs on a peer waits for it and gets its answer')
    .option('--local', 'only on the peer the API belongs to')
    .option('--keys', 'list every block deleted, not only the counts')
    .action(async (o: { local?: boolean, keys?: boolean }, cmd: Command) => {
      const s = new Session(io, cmd)
      const gc = await s.client.repoGC({ local: o.local })
      s.one(gc, g => formatRepoGC(g, o.keys === true))
      const failed = Object.values(gc.peer_map).filter(p => p.error != null && p.error !== '')
      if (failed.length > 0) throw new Error(`repo GC failed on ${failed.length} of ${Object.keys(gc.peer_map).length} peers`)
    })
}

export function formatRepoGC (gc: GlobalRepoGC, keys: boolean): string {
  const peers = Object.values(gc.peer_map).sort((a, b) => a.peername.localeCompare(b.peername) || a.peer.localeCompare(b.peer))
  const lines: string[] = []
  for (const p of peers) {
    const who = `${p.peername !== '' ? p.peername : p.peer} (${p.peer})`
    if (p.error != null && p.error !== '') {
      lines.push(`${who}: error: ${p.error}`)
      continue
    }
    lines.push(`${who}: ${p.keys.length.toLocaleString('en-US')} blocks deleted`)
    if (keys) for (const k of p.keys) lines.push(`  ${k.key}${k.error != null && k.error !== '' ? `  error: ${k.error}` : ''}`)
  }
  return lines.join('\n')
}
