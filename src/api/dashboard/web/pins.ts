// Pins: the pinset, searchable by name, CID or metadata and paged, newest first; for the page shown, each
// peer's status with its error message, and recover / unpin buttons where the user may use them. The list is
// GET /allocations (or GET /pins?filter= when a status is chosen), searched here; the page's statuses are
// GET /pins?cids=. The search and page live in the URL's query (?q=&status=&page=), so a view can be linked.
import { ApiError } from './api.js'
import { failure, mayWrite, peerName, type Context, type View } from './context.js'
import { byId, h, render, table, type Child } from './dom.js'
import { shortId, time } from './format.js'
import type { GlobalPinInfo, Pin } from './types.js'

const PAGE_SIZE = 25
/** The statuses the filter offers: GET /pins?filter= names (groups and single statuses). */
const STATUS_FILTERS = ['error', 'queued', 'pinning', 'pinned', 'unpinning', 'remote']

interface Row {
  cid: string
  name: string
  metadata: Record<string, string>
  created: string
  /** What the search matches: name, CID and metadata, lower case. */
  text: string
}

function rowOf (p: Pin | GlobalPinInfo): Row {
  const metadata = p.metadata ?? {}
  const created = 'timestamp' in p ? p.timestamp : p.created
  const text = [p.name, p.cid, ...Object.entries(metadata).map(([k, v]) => `${k}=${v}`)].join('\n').toLowerCase()
  return { cid: p.cid, name: p.name, metadata, created, text }
}

/** The view's state read from the URL: anything there is taken as a search, never as markup or an error. */
function readQuery (): { q: string, status: string, page: number } {
  const params = new URLSearchParams(window.location.search)
  const status = params.get('status') ?? ''
  const page = Number.parseInt(params.get('page') ?? '1', 10)
  return {
    q: (params.get('q') ?? '').slice(0, 500),
    status: STATUS_FILTERS.includes(status) ? status : '',
    page: Number.isSafeInteger(page) && page > 0 ? page : 1
  }
}

export function pinsView (ctx: Context): View {
  const target = byId('pins-body')
  const errors = byId('pins-error')
  const message = byId('pins-message')
  const search = byId<HTMLInputElement>('pin-search')
  const statusSelect = byId<HTMLSelectElement>('pin-status')
  const state = readQuery()
  search.value = state.q
  statusSelect.value = state.status
  let rows: Row[] = []
  let loaded = false
  let lastMs = 0
  let statuses = new Map<string, GlobalPinInfo>()
  let pendingUnpin = ''

  const writeQuery = (): void => {
    const params = new URLSearchParams()
    if (state.q !== '') params.set('q', state.q)
    if (state.status !== '') params.set('status', state.status)
    if (state.page > 1) params.set('page', String(state.page))
    const qs = params.toString()
    window.history.replaceState(null, '', `${window.location.pathname}${qs === '' ? '' : `?${qs}`}${window.location.hash}`)
  }

  const matching = (): Row[] => {
    const q = state.q.trim().toLowerCase()
    return q === '' ? rows : rows.filter(r => r.text.includes(q))
  }

  const say = (text: string, cls = ''): void => {
    message.className = cls
    message.textContent = text
  }

  const act = async (what: string, method: string, path: string): Promise<void> => {
    say(`${what}…`)
    try {
      await ctx.api.json(path, { method })
      say(`${what}: done.`, 'good')
      await refresh()
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) { ctx.unauthorized(); return }
      say(`${what} failed: ${err instanceof Error ? err.message : String(err)}`, 'bad')
    }
  }

  const peerStatuses = (r: Row): Child => {
    const g = statuses.get(r.cid)
    if (g == null) return h('span', { class: 'muted' }, 'reading…')
    const entries = Object.entries(g.peer_map).filter(([, s]) => s.status !== 'remote')
      .sort(([a, x], [b, y]) => (x.peername || a).localeCompare(y.peername || b))
    if (entries.length === 0) return h('span', { class: 'muted' }, 'no peer holds it')
    return h('ul', { class: 'statuses plain' }, entries.map(([peer, s]) => h('li', null,
      h('span', { class: 'peer' }, `${s.peername !== '' ? s.peername : peerName(ctx, peer) || shortId(peer)}: `),
      h('span', { class: `status s-${s.status}` }, s.status.replaceAll('_', ' ')),
      s.error !== '' ? h('span', { class: 'errmsg' }, ` — ${s.error}`) : null)))
  }

  const actions = (r: Row): Child => {
    const g = statuses.get(r.cid)
    const failed = g != null && Object.values(g.peer_map).some(s => s.status.endsWith('error'))
    const label = r.name !== '' ? r.name : r.cid
    return [
      failed
        ? h('button', { attrs: { type: 'button', 'aria-label': `Recover ${label}` }, on: { click: () => { void act(`Recover ${label}`, 'POST', `/pins/${encodeURIComponent(r.cid)}/recover`) } } }, 'Recover')
        : null,
      mayWrite(ctx)
        ? pendingUnpin === r.cid
          ? h('button', { class: 'danger', attrs: { type: 'button', 'aria-label': `Really unpin ${label}` }, on: { click: () => { pendingUnpin = ''; void act(`Unpin ${label}`, 'DELETE', `/pins/${encodeURIComponent(r.cid)}`) } } }, 'Really unpin?')
          : h('button', { attrs: { type: 'button', 'aria-label': `Unpin ${label}` }, on: { click: () => { pendingUnpin = r.cid; show(); focusUnpin(r.cid) } } }, 'Unpin')
        : null
    ]
  }

  const focusUnpin = (cid: string): void => {
    for (const b of target.querySelectorAll<HTMLButtonElement>('button.danger')) if (b.closest('tr')?.dataset.cid === cid) b.focus()
  }

  /** Renders the current page from what was read; cheap, so typing re-renders at once. */
  const show = (): void => {
    const found = matching()
    const pages = Math.max(1, Math.ceil(found.length / PAGE_SIZE))
    if (state.page > pages) state.page = pages
    const page = found.slice((state.page - 1) * PAGE_SIZE, state.page * PAGE_SIZE)
    const key = JSON.stringify([loaded, state, pendingUnpin, mayWrite(ctx), found.length,
      page.map(r => [r.cid, r.name, r.metadata, statuses.get(r.cid)?.peer_map ?? null])])
    render(target, key, () => {
      if (!loaded) return h('p', { class: 'muted' }, 'Reading the pinset…')
      const summary = found.length === rows.length
        ? `${rows.length} pin${rows.length === 1 ? '' : 's'}`
        : `${found.length} of ${rows.length} pins match`
      const nav = h('nav', { class: 'pager', attrs: { 'aria-label': 'Pin pages' } },
        h('button', { attrs: { type: 'button', ...(state.page <= 1 ? { disabled: '' } : {}) }, on: { click: () => { state.page--; writeQuery(); show(); void readStatuses() } } }, '← Previous'),
        h('span', { attrs: { 'aria-live': 'polite' } }, `Page ${state.page} of ${pages} · ${summary}`),
        h('button', { attrs: { type: 'button', ...(state.page >= pages ? { disabled: '' } : {}) }, on: { click: () => { state.page++; writeQuery(); show(); void readStatuses() } } }, 'Next →'))
      if (page.length === 0) {
        return [nav, h('p', { class: 'muted' }, rows.length === 0 ? 'No pins in the cluster yet.' : `No pin matches “${state.q}”.`)]
      }
      const t = table(`Pins, page ${state.page}`, ['Name', 'CID', 'Pinned', 'Status by peer', 'Actions'], page.map(r => [
        h('span', null, r.name !== '' ? h('span', { class: 'pin-name' }, r.name) : h('span', { class: 'muted' }, '(no name)'),
          Object.keys(r.metadata).length > 0
            ? h('ul', { class: 'meta plain' }, Object.entries(r.metadata).map(([k, v]) => h('li', null, h('code', null, `${k}=${v}`))))
            : null),
        h('code', { class: 'id' }, r.cid),
        time(r.created),
        peerStatuses(r),
        actions(r)
      ]), 'pins')
      // the rows carry their CID, so that a test or a stylesheet can find one pin's row
      t.querySelectorAll('tbody tr').forEach((tr, i) => { (tr as HTMLElement).dataset.cid = page[i].cid })
      return [nav, t]
    })
  }

  const pageCids = (): string[] => matching().slice((state.page - 1) * PAGE_SIZE, state.page * PAGE_SIZE).map(r => r.cid)

  const readStatuses = async (): Promise<void> => {
    const cids = pageCids().filter(c => state.status === '' || !statuses.has(c))
    if (cids.length === 0) return
    const read = await ctx.api.ndjson<GlobalPinInfo>(`/pins?cids=${cids.map(encodeURIComponent).join(',')}`)
    const next = new Map(state.status === '' ? [] : statuses)
    for (const g of read) next.set(g.cid, g)
    statuses = next
    show()
  }

  const refresh = async (): Promise<void> => {
    const started = performance.now()
    try {
      if (state.status === '') {
        rows = (await ctx.api.ndjson<Pin>('/allocations')).map(rowOf)
      } else {
        const list = await ctx.api.ndjson<GlobalPinInfo>(`/pins?filter=${encodeURIComponent(state.status)}`)
        statuses = new Map(list.map(g => [g.cid, g]))
        rows = list.map(rowOf)
      }
      rows.sort((a, b) => b.created.localeCompare(a.created) || a.cid.localeCompare(b.cid))
      loaded = true
      show()
      await readStatuses()
      lastMs = performance.now() - started
      render(errors, '', () => null)
    } catch (err) {
      lastMs = performance.now() - started
      render(errors, `e${String(err)}`, () => failure(ctx, err))
    }
  }

  let typing: ReturnType<typeof setTimeout> | undefined
  search.addEventListener('input', () => {
    clearTimeout(typing)
    typing = setTimeout(() => {
      state.q = search.value.slice(0, 500)
      state.page = 1
      writeQuery()
      show()
      readStatuses().catch(err => { render(errors, `e${String(err)}`, () => failure(ctx, err)) })
    }, 150)
  })
  statusSelect.addEventListener('change', () => {
    state.status = STATUS_FILTERS.includes(statusSelect.value) ? statusSelect.value : ''
    state.page = 1
    statuses = new Map()
    loaded = false
    writeQuery()
    show()
    void refresh()
  })

  return {
    // a large pinset is read less often: at most a fifth of the time goes to reading it
    everyMs: () => Math.max(1000, 5 * lastMs),
    refresh
  }
}
