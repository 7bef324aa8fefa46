// Health: alerts (GET /health/alerts), this peer's storage and GC (GET /ipfs/repo/stat), bitswap traffic
// (GET /ipfs/bitswap/stat, with the rate since the last read) and DHT reprovide progress (GET /reprovide/status).
// A route this peer does not serve (404) shows as such; the others still show.
import { ApiError } from './api.js'
import { failure, peerName, type Context, type View } from './context.js'
import { byId, h, render, table, type Child } from './dom.js'
import { bytes, duration, shortId, time } from './format.js'
import type { AlertInfo, BitswapStat, RepoStat, ReprovideStatus } from './types.js'

type Read<T> = { ok: T } | { error: unknown }

async function read<T> (p: Promise<T>): Promise<Read<T>> {
  try { return { ok: await p } } catch (error) { return { error } }
}

function dl (items: Array<[string, Child]>): HTMLElement {
  return h('dl', { class: 'facts' }, items.map(([k, v]) => [h('dt', null, k), h('dd', null, v)]))
}

export function healthView (ctx: Context): View {
  const target = byId('health-body')
  let lastBitswap: { at: number, stat: BitswapStat } | undefined
  let rates = { in: 0, out: 0 }

  const part = <T>(title: string, r: Read<T>, body: (v: T) => Child): Child => {
    if ('ok' in r) return h('section', { class: 'card' }, h('h3', null, title), body(r.ok))
    const e = r.error
    if (e instanceof ApiError && e.status === 404) return h('section', { class: 'card' }, h('h3', null, title), h('p', { class: 'muted' }, e.message))
    return h('section', { class: 'card' }, h('h3', null, title), failure(ctx, e))
  }

  return {
    everyMs: () => 2000,
    async refresh () {
      const [alerts, repo, bitswap, reprovide] = await Promise.all([
        read(ctx.api.json<AlertInfo[]>('/health/alerts')),
        read(ctx.api.json<RepoStat>('/ipfs/repo/stat')),
        read(ctx.api.json<BitswapStat>('/ipfs/bitswap/stat')),
        read(ctx.api.json<ReprovideStatus>('/reprovide/status'))
      ])
      if ('ok' in bitswap) {
        const now = performance.now()
        if (lastBitswap != null && now > lastBitswap.at) {
          const s = (now - lastBitswap.at) / 1000
          rates = { in: (bitswap.ok.data_received - lastBitswap.stat.data_received) / s, out: (bitswap.ok.data_sent - lastBitswap.stat.data_sent) / s }
        }
        lastBitswap = { at: now, stat: bitswap.ok }
      }
      const key = JSON.stringify([alerts, repo, bitswap, reprovide, rates].map(r => 'error' in r ? String(r.error) : r))
      render(target, key, () => [
        part('Alerts', alerts, list => list.length === 0
          ? h('p', { class: 'good' }, 'No alerts.')
          : table(`${list.length} alerts, newest first`, ['Alert', 'Peer', 'Since'], list.map(a => [
            a.name, peerName(ctx, a.peer) || shortId(a.peer), time(a.triggered_at)
          ]))),
        part('Storage on this peer', repo, s => dl([
          ['Offered', s.storage_max > 0 ? bytes(s.storage_max) : 'whatever the disk has free'],
          ['Held', `${bytes(s.held_bytes)} in ${s.blocks} blocks`],
          ['Pinned / cache / garbage', `${bytes(s.pinned_bytes)} / ${bytes(s.cache_bytes)} / ${bytes(s.garbage_bytes)}`],
          ['On disk', bytes(s.disk_bytes)],
          ['Garbage collections', `${s.gc_runs}, ${bytes(s.gc_bytes_reclaimed)} reclaimed`]
        ])),
        part('Bitswap traffic of this peer', bitswap, b => dl([
          ['Received', `${bytes(b.data_received)} in ${b.blocks_received} blocks (${bytes(rates.in)}/s now)`],
          ['Sent', `${bytes(b.data_sent)} in ${b.blocks_sent} blocks (${bytes(rates.out)}/s now)`]
        ])),
        part('DHT reprovide', reprovide, r => dl([
          ['Now', r.running ? `announcing: ${r.cycle_done} of ${r.cycle_total} CIDs` : 'idle'],
          ['Last cycle', r.last_cycle_finished === '' ? 'none yet' : `${time(r.last_cycle_started)}, ${r.last_cycle_cids} CIDs in ${duration(r.last_cycle_duration_ms)}`],
          ['Next cycle', time(r.next_cycle_at)],
          ['Strategy', r.strategy],
          ['Failures / overruns', `${r.failures_total} / ${r.cycles_overrun_total}`]
        ]))
      ])
    }
  }
}
