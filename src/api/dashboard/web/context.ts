// What the views share: the API, what this peer is, the peers' names, and how a view reports a failure.
import { ApiError, type Api } from './api.js'
import { h, type Child } from './dom.js'
import type { IDInfo } from './types.js'

export interface Context {
  api: Api
  /** GET /id of the peer serving the page. */
  self?: IDInfo
  /** Peer id -> peer name, from GET /peers. */
  names: Map<string, string>
  /** Called when the API refuses the stored token (or wants one): the page asks for credentials. */
  unauthorized(): void
}

/** A view: refreshed by the page's scheduler at most every everyMs(). */
export interface View {
  refresh(): Promise<void>
  everyMs(): number
}

export function peerName (ctx: Context, id: string): string {
  return ctx.names.get(id) ?? (ctx.self?.id === id ? ctx.self.peername : '')
}

/** Whether the user may change the pinset through this peer: a trusted peer (followers refuse writes). */
export function mayWrite (ctx: Context): boolean {
  return ctx.self?.trusted !== false
}

/** The line a section shows when its data could not be read; 401 goes to the login form instead. */
export function failure (ctx: Context, err: unknown): Child {
  if (err instanceof ApiError && err.status === 401) {
    ctx.unauthorized()
    return null
  }
  const what = err instanceof ApiError
    ? `${err.path} answered ${err.status}: ${err.message}`
    : `the peer could not be reached (${err instanceof Error ? err.message : String(err)})`
  return h('p', { class: 'error', attrs: { role: 'status' } }, `Could not refresh: ${what}. Showing the last data read; retrying.`)
}
