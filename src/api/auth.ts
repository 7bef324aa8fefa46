// IPFS Cluster's API auth, shared by REST and the pinning service API: Basic credentials, or a Bearer JWT
// (HS256, `iss` = user name, HMAC key = that user's password) obtained from POST /token.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { UnauthorizedError } from '../errors.js'
import { sendJson } from './common.js'
import type { RequestHandler, Response } from 'express'

export type Credentials = Record<string, string>

const REALM = 'Restricted IPFS Cluster API'
const HMAC: Readonly<Record<string, string>> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }

function wwwAuthenticate (scheme: string, error?: string): string {
  return `${scheme} realm="${REALM}"` + (error == null ? '' : `, error="${error}"`)
}

/** Constant-time string comparison (hashing first makes the lengths equal). */
function same (a: string, b: string): boolean {
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest()
  return timingSafeEqual(digest(a), digest(b))
}

function passwordOf (credentials: Credentials, user: string): string | undefined {
  return Object.hasOwn(credentials, user) ? credentials[user] : undefined
}

function parseBasic (header: string): { user: string, password: string } | undefined {
  if (!/^basic /i.test(header)) return undefined
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8')
  const i = decoded.indexOf(':')
  return i < 0 ? undefined : { user: decoded.slice(0, i), password: decoded.slice(i + 1) }
}

function parseBearer (header: string): string | undefined {
  return /^bearer /i.test(header) ? header.slice(7) : undefined
}

function verifyBasic (credentials: Credentials, user: string, password: string): boolean {
  const expected = passwordOf(credentials, user)
  return user !== '' && password !== '' && expected !== undefined && same(password, expected)
}

/** Signs a token for `user` with the user's password, as IPFS Cluster's POST /token does. */
export function signToken (user: string, password: string): string {
  const part = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url')
  const data = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ iss: user })}`
  return `${data}.${createHmac('sha256', password).update(data).digest('base64url')}`
}

/** Returns the token's issuer when it is signed with that issuer's password and is within exp/nbf. */
export function verifyToken (credentials: Credentials, token: string): string | undefined {
  const [header, payload, signature, ...rest] = token.split('.')
  if (signature === undefined || rest.length > 0) return undefined
  try {
    const { alg } = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { alg?: unknown }
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>
    const hash = typeof alg === 'string' && Object.hasOwn(HMAC, alg) ? HMAC[alg] : undefined
    const key = typeof claims.iss === 'string' ? passwordOf(credentials, claims.iss) : undefined
    if (hash === undefined || key === undefined) return undefined
    if (!same(createHmac(hash, key).update(`${header}.${payload}`).digest('base64url'), signature)) return undefined
    const now = Date.now() / 1000
    if (typeof claims.exp === 'number' && now >= claims.exp) return undefined
    if (typeof claims.nbf === 'number' && now < claims.nbf) return undefined
    return claims.iss as string
  } catch {
    return undefined
  }
}

/**
 * Enforces auth when credentials are configured; OPTIONS and GET /health stay open. Failures go to the error
 * middleware as UnauthorizedError (so each API renders its own body) after the WWW-Authenticate header is set.
 * The authenticated user name is left in `res.locals.user`.
 */
export function authenticate (credentials: Credentials | null | undefined): RequestHandler {
  return (req, res, next) => {
    if (credentials == null || req.method === 'OPTIONS' || (req.method === 'GET' && req.path === '/health')) {
      next()
      return
    }
    const header = req.get('authorization') ?? ''
    const basic = parseBasic(header)
    const bearer = basic === undefined ? parseBearer(header) : undefined
    if (basic !== undefined) {
      if (!verifyBasic(credentials, basic.user, basic.password)) {
        res.setHeader('WWW-Authenticate', wwwAuthenticate('Basic'))
        next(new UnauthorizedError('unauthorized: access denied'))
        return
      }
      res.locals.user = basic.user
    } else if (bearer !== undefined) {
      const user = verifyToken(credentials, bearer)
      if (user === undefined) {
        res.setHeader('WWW-Authenticate', wwwAuthenticate('Bearer', 'invalid_token'))
        next(new UnauthorizedError('unauthorized: invalid token'))
        return
      }
      res.locals.user = user
    } else {
      res.setHeader('WWW-Authenticate', [wwwAuthenticate('Bearer'), wwwAuthenticate('Basic')])
      next(new UnauthorizedError('unauthorized: no auth provided'))
      return
    }
    next()
  }
}

/** POST /token: a JWT for the authenticated user; 401 when the API has no credentials configured. */
export function tokenHandler (credentials: Credentials | null | undefined): RequestHandler {
  return (_req, res: Response) => {
    const user = res.locals.user as string | undefined
    const password = credentials == null || user === undefined ? undefined : passwordOf(credentials, user)
    if (password === undefined) throw new UnauthorizedError('unauthorized')
    sendJson(res, 200, { token: signToken(user as string, password) })
  }
}
