// Peers: who is in the cluster, trusted or follower, online or lost since when, addresses, the space each offers
// (its offer metric) and uses (offer less freespace), its pin queue and when its last metric arrived. GET /peers
// and GET /monitor/metrics/{offer,freespace,pinqueue,ping}.
import { failure, type Context, type View } from './context.js'
import { byId, h, render, table, type Child } from './dom.js'
import { bytes, shortId, time, timeNs } from './format.js'
import type { IDInfo, MetricInfo } from './types.js'

const LOST = 'peer lost since '

function byPeer (metrics: MetricInfo[]): Map<string, MetricInfo> {
  return new Map(metrics.map(m => [m.peer, m]))
}

function state (p: IDInfo): { text: string, cls: string } {
  if (p.error.startsWith(LOST)) {
    const [since, rest] = p.error.slice(LOST.length).split(';')
    return { text: `lost since ${time(since)}${rest != null ? ` (${rest.trim()})` : ''}`, cls: 'bad' }
  }
  if (p.error !== '') return { text: `not answering: ${p.error}`, cls: 'warn' }
  return { text: 'online', cls: 'good' }
}

export function peersView (ctx: Context): View {
  const target = byId('peers-body')
  const errors = byId('peers-error')
  return {
    everyMs: () => 2000,
    async refresh () {
      try {
        const [peers, offers, free, queue, ping] = await Promise.all([
          ctx.api.ndjson<IDInfo>('/peers'),
          ctx.api.json<MetricInfo[]>('/monitor/metrics/offer'),
          ctx.api.json<MetricInfo[]>('/monitor/metrics/freespace'),
          ctx.api.json<MetricInfo[]>('/monitor/metrics/pinqueue'),
          ctx.api.json<MetricInfo[]>('/monitor/metrics/ping')
        ])
        for (const p of peers) if (p.peername !== '') ctx.names.set(p.id, p.peername)
        const offerOf = byPeer(offers)
        const freeOf = byPeer(free)
        const queueOf = byPeer(queue)
        const pingOf = byPeer(ping)
        peers.sort((a, b) => a.peername.localeCompare(b.peername) || a.id.localeCompare(b.id))
        const rows: Child[][] = peers.map(p => {
          const s = state(p)
          const f = freeOf.get(p.id)
          const o = offerOf.get(p.id)
          const q = queueOf.get(p.id)
          const seen = pingOf.get(p.id)
          return [
            h('span', null, h('strong', null, p.peername !== '' ? p.peername : shortId(p.id)), p.id === ctx.self?.id ? ' (this peer)' : '',
              h('br'), h('code', { class: 'id' }, p.id)),
            h('span', { class: `role ${p.trusted === false ? 'follower' : 'trusted'}` }, p.trusted === false ? 'follower' : 'trusted'),
            h('span', { class: `state ${s.cls}` }, s.text),
            p.addresses.length === 0
              ? '–'
              : h('details', null, h('summary', null, `${p.addresses.length} address${p.addresses.length === 1 ? '' : 'es'}`),
                h('ul', { class: 'plain' }, p.addresses.map(a => h('li', null, h('code', null, a))))),
            o != null ? bytes(Number(o.value)) : '–',
            o != null && f != null ? bytes(Math.max(0, Number(o.value) - Number(f.value))) : '–',
            f != null ? bytes(Number(f.value)) : '–',
            q != null ? q.value : '–',
            seen != null ? timeNs(seen.received_at) : '–',
            p.trust ?? '–'
          ]
        })
        const key = JSON.stringify(rows.map(r => r.map(c => c instanceof Node ? c.textContent : c)))
        render(target, key, () => table(`${peers.length} peers`, ['Peer', 'Role', 'State', 'Addresses', 'Offered', 'Used', 'Free', 'Pin queue', 'Last metric', 'Audit'], rows, 'peers'))
        render(errors, '', () => null)
      } catch (err) {
        render(errors, `e${String(err)}`, () => failure(ctx, err))
      }
    }
  }
}
