import type { Command } from 'commander'
import type { ConnectGraph } from '../../types/wire.js'
import { formatAlert, formatId, formatMetric } from '../format.js'
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

  const peers = program.command('peers').description('cluster peers')
  peers.command('ls')
    .description('list the peers of the cluster, with their addresses; a lost peer (ping expired) as ERROR: peer lost since <time>')
    .action(async (_o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      for await (const peer of s.client.peersStream()) s.item(peer, formatId)
    })
  peers.command('rm <peer-id>')
    .description('vacate a peer: re-allocate every pin it holds to other peers, and stop listing it if it is lost (trusted peers only)')
    .action(async (peer: string, _o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      s.one(await s.client.peerRemove(peer), r => `${r.reallocated} pins re-allocated away from ${r.peer}`)
    })

  const health = program.command('health').description('cluster health')
  health.command('metrics [name]')
    .description('names of the metrics the peers publish; with a name, its latest value on each peer (weight, expiry)')
    .action(async (name: string | undefined, _o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      if (name == null) {
        for (const n of await s.client.metrics()) s.item(n, String)
        return
      }
      const metrics = await s.client.latestMetrics(name)
      if (metrics.length === 0) s.note(`no peer has a live "${name}" metric (names: cairn health metrics)`)
      for (const m of metrics) s.item(m, m => formatMetric(m))
    })
  health.command('alerts')
    .description('metrics that expired, newest first: an expired ping is a lost peer')
    .action(async (_o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      for (const a of await s.client.alerts()) s.item(a, a => formatAlert(a))
    })
  health.command('graph')
    .description('who is connected to whom, as a Graphviz dot graph (--json: the ConnectGraph)')
    .action(async (_o: unknown, cmd: Command) => {
      const s = new Session(io, cmd)
      s.one(await s.client.graph(), formatGraph)
    })
}

/** The graph in dot: cluster links solid (trusted peers boxed), other libp2p links dotted. */
export function formatGraph (g: ConnectGraph): string {
  const label = (p: string): string => JSON.stringify(`${g.id_to_peername[p] !== '' && g.id_to_peername[p] != null ? `${g.id_to_peername[p]}\n` : ''}${p.slice(-8)}`)
  const node = (p: string): string => `"${p}"`
  const lines = ['digraph cluster {']
  for (const p of Object.keys(g.cluster_trust_links).sort()) {
    lines.push(`  ${node(p)} [label=${label(p)}, shape=${g.cluster_trust_links[p] ? 'box' : 'ellipse'}${p === g.cluster_id ? ', style=bold' : ''}]`)
  }
  for (const [from, tos] of Object.entries(g.cluster_links)) for (const to of tos) lines.push(`  ${node(from)} -> ${node(to)}`)
  for (const [from, tos] of Object.entries(g.ipfs_links)) {
    for (const to of tos) if (!(g.cluster_links[from] ?? []).includes(to)) lines.push(`  ${node(from)} -> ${node(to)} [style=dotted]`)
  }
  lines.push('}')
  return lines.join('\n')
}
