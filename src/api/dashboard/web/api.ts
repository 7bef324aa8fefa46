// The REST API as the dashboard reads it: the same routes and auth as any client (Bearer token from POST /token).
// Requests never carry the browser's own credentials (`credentials: 'omit'`), so a 401 reaches the page's login
// form instead of the browser's password dialog.

/** An answer other than 2xx; `message` is the API's own (`{code, message}` bodies). */
export class ApiError extends Error {
  override name = 'ApiError'
  constructor (readonly status: number, message: string, readonly path: string) {
    super(message)
  }
}

const TOKEN_KEY = 'cairn-dashboard-token'

export interface Api {
  json<T>(path: string, init?: { method?: string }): Promise<T>
  /** An NDJSON list (204: empty). */
  ndjson<T>(path: string): Promise<T[]>
  /** Trades a user name and password for a token (POST /token) and keeps it for this tab. */
  signIn(user: string, password: string): Promise<void>
  signOut(): void
  signedIn(): boolean
}

/** UTF-8 then base64: btoa alone throws on characters beyond Latin-1. */
function base64 (s: string): string {
  let bin = ''
  for (const b of new TextEncoder().encode(s)) bin += String.fromCharCode(b)
  return btoa(bin)
}

async function errorOf (res: Response, path: string): Promise<ApiError> {
  let message = res.statusText
  try {
    const body = JSON.parse(await res.text()) as { message?: unknown }
    if (typeof body.message === 'string' && body.message !== '') message = body.message
  } catch {
    // not JSON: keep the status text
  }
  return new ApiError(res.status, message, path)
}

export function createApi (): Api {
  const storage = (): Storage | undefined => {
    try { return window.sessionStorage } catch { return undefined }
  }
  let token = storage()?.getItem(TOKEN_KEY) ?? ''

  const request = async (path: string, init: { method?: string, authorization?: string } = {}): Promise<Response> => {
    const headers: Record<string, string> = {}
    const auth = init.authorization ?? (token !== '' ? `Bearer ${token}` : undefined)
    if (auth !== undefined) headers.Authorization = auth
    const res = await fetch(path, { method: init.method ?? 'GET', headers, credentials: 'omit', cache: 'no-store' })
    if (!res.ok) throw await errorOf(res, path)
    return res
  }

  return {
    async json<T> (path: string, init: { method?: string } = {}): Promise<T> {
      const res = await request(path, init)
      return (res.status === 204 ? null : await res.json()) as T
    },
    async ndjson<T> (path: string): Promise<T[]> {
      const res = await request(path)
      if (res.status === 204) return []
      const text = await res.text()
      const out: T[] = []
      for (const line of text.split('\n')) if (line.trim() !== '') out.push(JSON.parse(line) as T)
      // an error after the first line ends the stream early; fetch cannot read the trailer that names it
      return out
    },
    async signIn (user: string, password: string): Promise<void> {
      const res = await request('/token', { method: 'POST', authorization: `Basic ${base64(`${user}:${password}`)}` })
      const body = await res.json() as { token?: unknown }
      if (typeof body.token !== 'string') throw new ApiError(500, 'the API answered without a token', '/token')
      token = body.token
      storage()?.setItem(TOKEN_KEY, token)
    },
    signOut (): void {
      token = ''
      storage()?.removeItem(TOKEN_KEY)
    },
    signedIn: () => token !== ''
  }
}
