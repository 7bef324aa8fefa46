import type { Command } from 'commander'
import { formatId } from '../format.js'
import { Session, type CliIO } from '../session.js'

export function registerPeers (program: Command, io: CliIO): void {
  program.command('id')
    .description('identity and addresses of the peer the API belongs to')
    .action(async (_o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      s.one(await s.client.id(), formatId)
    })

  program.command('version')
    .description('version of the peer the API belongs to')
    .action(async (_o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      s.one(await s.client.version(), v => v.version)
    })

  program.command('peers').description('cluster peers')
    .command('ls')
    .description('list the peers of the cluster, with their addresses')
    .action(async (_o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      for await (const peer of s.client.peersStream()) s.item(peer, formatId)
    })

  program.command('health').description('cluster health')
    .command('metrics')
    .description('names of the metrics the peers publish')
    .action(async (_o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      for (const name of await s.client.metrics()) s.item(name, String)
    })
}
