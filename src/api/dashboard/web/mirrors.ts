// Mirrors: each mirror's versions (GET /mirrors), when each version reached its allocations (the pinned times in
// GET /pins?cids=), its bytes, the gateway URL, and for the newest version the copies of each part
// (GET /mirrors/{name}/status: for a spread mirror, how many copies each partition has).
import { failure, peerName, type Context, type View } from './context.js'
import { byId, h, render, table, type Child } from './dom.js'
import { bytes, shortId, time } from './format.js'
import type { GlobalPinInfo, MirrorEntry, MirrorStatus, MirrorVersionEntry } from './types.js'

/** "3 of 3 pinned, the last at <time>", or who is still missing. */
function reached (ctx: Context, v: MirrorVersionEntry, g: GlobalPinInfo | undefined): Child {
  if (g == null) return h('span', { class: 'muted' }, 'reading…')
  const peers = v.allocations.length > 0 ? v.allocations : Object.keys(g.peer_map).filter(p => g.peer_map[p].status !== 'remote')
  const pinned = peers.filter(p => g.peer_map[p]?.status === 'pinned')
  const last = pinned.map(p => g.peer_map[p].timestamp).sort().at(-1)
  const missing = peers.filter(p => g.peer_map[p]?.status !== 'pinned')
    .map(p => `${g.peer_map[p]?.peername || peerName(ctx, p) || shortId(p)}: ${(g.peer_map[p]?.status ?? 'unknown').replaceAll('_', ' ')}`)
  return h('span', null,
    h('span', { class: missing.length === 0 ? 'good' : 'warn' }, `${pinned.length} of ${peers.length} pinned`),
    missing.length === 0 && last != null ? `, all by ${time(last)}` : '',
    missing.length > 0 ? h('span', { class: 'muted' }, ` (${missing.join('; ')})`) : null)
}

function copies (s: MirrorStatus | undefined): Child {
  if (s == null) return null
  const hist = Object.entries(s.copies).sort(([a], [b]) => Number(b) - Number(a))
    .map(([k, n]) => `${n} part${n === 1 ? '' : 's'} with ${k} cop${k === '1' ? 'y' : 'ies'}`).join(', ')
  return h('p', null,
    s.spread ? `Spread in ${s.parts} partitions: ${hist}.` : `Pinned whole: ${hist}.`,
    s.under_replicated.length > 0 ? h('span', { class: 'bad' }, ` ${s.under_replicated.length} under-replicated.`) : null,
    s.moving.length > 0 ? h('span', { class: 'warn' }, ` ${s.moving.length} peer(s) still fetching.`) : null)
}

export function mirrorsView (ctx: Context): View {
  const target = byId('mirrors-body')
  const errors = byId('mirrors-error')
  return {
    everyMs: () => 5000,
    async refresh () {
      try {
        const mirrors = await ctx.api.json<MirrorEntry[]>('/mirrors')
        const cids = mirrors.flatMap(m => m.versions.map(v => v.cid))
        const [statuses, newest] = await Promise.all([
          cids.length === 0 ? [] : ctx.api.ndjson<GlobalPinInfo>(`/pins?cids=${cids.join(',')}`),
          Promise.all(mirrors.map(async m => await ctx.api.json<MirrorStatus>(`/mirrors/${encodeURIComponent(m.mirror)}/status`).catch(() => undefined)))
        ])
        const statusOf = new Map(statuses.map(g => [g.cid, g]))
        const key = JSON.stringify([mirrors, statuses.map(g => g.peer_map), newest])
        render(target, key, () => mirrors.length === 0
          ? h('p', { class: 'muted' }, 'No mirror is published in this cluster (cairn mirror sync).')
          : mirrors.map((m, i) => h('article', { class: 'mirror' },
            h('h3', null, m.mirror),
            m.gateway_url !== ''
              ? h('p', null, 'Served at ', h('a', { attrs: { href: /^https?:\/\//.test(m.gateway_url) ? m.gateway_url : undefined } }, m.gateway_url))
              : h('p', { class: 'muted' }, 'This peer runs no gateway.'),
            copies(newest[i]),
            table(`Versions of ${m.mirror}`, ['Version', 'Root CID', 'Published', 'Bytes', 'Reached its peers'], m.versions.map(v => [
              String(v.version), h('code', { class: 'id' }, v.cid), time(v.created), v.bytes > 0 ? bytes(v.bytes) : '–', reached(ctx, v, statusOf.get(v.cid))
            ])))))
        render(errors, '', () => null)
      } catch (err) {
        render(errors, `e${String(err)}`, () => failure(ctx, err))
      }
    }
  }
}
