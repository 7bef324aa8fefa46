// The connection graph (GET /health/graph): the peers on a circle, a line for each cluster connection, trusted
// peers filled and followers hollow. The same links are listed as text for screen readers and small screens.
import { failure, type Context, type View } from './context.js'
import { byId, h, render, svg } from './dom.js'
import { shortId } from './format.js'
import type { ConnectGraph } from './types.js'

const SIZE = 320
const RADIUS = 110

export function graphView (ctx: Context): View {
  const target = byId('graph-body')
  return {
    everyMs: () => 10_000,
    async refresh () {
      try {
        const g = await ctx.api.json<ConnectGraph>('/health/graph')
        const ids = Object.keys(g.cluster_trust_links).sort()
        const name = (id: string): string => g.id_to_peername[id] ?? shortId(id)
        const at = new Map(ids.map((id, i) => {
          const a = (2 * Math.PI * i) / Math.max(1, ids.length) - Math.PI / 2
          return [id, { x: SIZE / 2 + RADIUS * Math.cos(a), y: SIZE / 2 + RADIUS * Math.sin(a) }]
        }))
        const links: Array<[string, string]> = []
        for (const [from, tos] of Object.entries(g.cluster_links)) {
          for (const to of tos) if (from < to || !(g.cluster_links[to] ?? []).includes(from)) links.push([from, to])
        }
        render(target, JSON.stringify([ids, links, g.id_to_peername]), () => [
          svg('svg', { viewBox: `-60 0 ${SIZE + 120} ${SIZE}`, role: 'img', 'aria-label': `Connections between ${ids.length} peers; listed below as text`, class: 'graph' },
            links.flatMap(([a, b]) => {
              const p = at.get(a)
              const q = at.get(b)
              return p == null || q == null ? [] : [svg('line', { x1: p.x, y1: p.y, x2: q.x, y2: q.y, class: 'link' })]
            }),
            ids.map(id => {
              const p = at.get(id)!
              return svg('g', {},
                svg('circle', { cx: p.x, cy: p.y, r: 9, class: g.cluster_trust_links[id] ? 'node trusted' : 'node follower' }),
                svg('text', { x: p.x, y: p.y + (p.y > SIZE / 2 ? 24 : -15), 'text-anchor': 'middle' }, name(id) + (id === g.cluster_id ? ' (this peer)' : '')))
            })),
          h('details', null, h('summary', null, 'Connections as text'),
            h('ul', { class: 'plain' }, ids.map(id => h('li', null,
              `${name(id)} (${g.cluster_trust_links[id] ? 'trusted' : 'follower'}) → `,
              (g.cluster_links[id] ?? []).map(name).join(', ') || 'no connections')))),
          h('p', { class: 'legend' }, 'Filled: trusted peer. Hollow: follower.')
        ])
      } catch (err) {
        render(target, `e${String(err)}`, () => failure(ctx, err))
      }
    }
  }
}
