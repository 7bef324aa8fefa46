// The page's start: read GET /id (asking for credentials when the API wants them), then refresh each view on
// its own cadence while the page is visible. Polling, not server-sent events: every route polled already exists
// and is authenticated as any client's request (docs/DESIGN.md §10, "Dashboard").
import { ApiError, createApi } from './api.js'
import { byId } from './dom.js'
import { graphView } from './graph.js'
import { healthView } from './health.js'
import { mirrorsView } from './mirrors.js'
import { peersView } from './peers.js'
import { pinsView } from './pins.js'
import type { Context, View } from './context.js'
import type { IDInfo } from './types.js'

const TICK_MS = 250

const api = createApi()
const login = byId<HTMLFormElement>('login')
const loginMessage = byId('login-message')
const main = byId('main')
const signOut = byId<HTMLButtonElement>('sign-out')
const updated = byId('updated')

let running = false
let views: Array<{ view: View, last: number, busy: boolean }> = []

const ctx: Context = {
  api,
  names: new Map(),
  unauthorized () {
    if (!running) return
    running = false
    const had = api.signedIn()
    api.signOut()
    askCredentials(had ? 'The peer no longer accepts this sign-in: sign in again.' : 'This peer\'s API needs a user name and password.')
  }
}

function askCredentials (text: string): void {
  main.hidden = true
  signOut.hidden = true
  login.hidden = false
  loginMessage.textContent = text
  byId<HTMLInputElement>('login-user').focus()
}

async function start (): Promise<void> {
  try {
    ctx.self = await api.json<IDInfo>('/id')
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      api.signOut()
      askCredentials('This peer\'s API needs a user name and password.')
      return
    }
    updated.textContent = `Could not reach the peer's API: ${err instanceof Error ? err.message : String(err)}. Retrying.`
    setTimeout(() => { void start() }, 2000)
    return
  }
  login.hidden = true
  main.hidden = false
  signOut.hidden = !api.signedIn()
  byId('self').textContent = `${ctx.self.peername} (${ctx.self.trusted === false ? 'follower: read-only' : 'trusted peer'}, cairn ${ctx.self.version})`
  if (views.length === 0) {
    views = [peersView(ctx), pinsView(ctx), mirrorsView(ctx), healthView(ctx), graphView(ctx)].map(view => ({ view, last: 0, busy: false }))
  }
  running = true
  tick()
}

function tick (): void {
  if (!running) return
  const now = performance.now()
  if (!document.hidden) {
    for (const v of views) {
      if (v.busy || now - v.last < v.view.everyMs()) continue
      v.busy = true
      v.view.refresh().finally(() => {
        v.busy = false
        v.last = performance.now()
        updated.textContent = `Updated ${new Date().toLocaleTimeString()}`
      }).catch(() => {})
    }
  }
  setTimeout(tick, TICK_MS)
}

login.addEventListener('submit', event => {
  event.preventDefault()
  const user = byId<HTMLInputElement>('login-user').value
  const password = byId<HTMLInputElement>('login-password').value
  loginMessage.textContent = 'Signing in…'
  api.signIn(user, password).then(async () => {
    byId<HTMLInputElement>('login-password').value = ''
    loginMessage.textContent = ''
    await start()
  }, err => {
    loginMessage.textContent = err instanceof ApiError && err.status === 401
      ? 'Wrong user name or password: the peer refused them.'
      : `Could not sign in: ${err instanceof Error ? err.message : String(err)}`
  })
})

signOut.addEventListener('click', () => {
  running = false
  api.signOut()
  askCredentials('Signed out.')
})

void start()
