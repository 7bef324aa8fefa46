// The web dashboard (issue 22): GET / of the REST API listener serves a page whose scripts read the cluster
// through the REST API's own routes, as any other client does (docs/DESIGN.md §10, "Dashboard"). The page, its
// scripts and its style sheet hold no cluster data, so they are served without credentials; every request for
// data goes through the API's auth. Assets are the files `npm run build` leaves beside this module in web/
// (scripts compiled from ./web/*.ts, index.html and style.css copied): nothing is fetched from elsewhere.
import { readdirSync, readFileSync } from 'node:fs'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { sendJson } from '../common.js'
import { restErrorBody } from '../errors.js'
import type { Express, Response } from 'express'
import type { Logger } from '@libp2p/logger'

/** Where the built assets are: dist/src/api/dashboard/web/. */
export const DASHBOARD_ASSETS = fileURLToPath(new URL('./web/', import.meta.url))

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8'
}

/**
 * Scripts and styles from this origin only, no inline script or style, no plugin, no framing, requests to this
 * API only: even a pin name that escaped the page's escaping could run nothing.
 */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

export interface DashboardInit {
  /** Folder holding index.html and the assets (default DASHBOARD_ASSETS). */
  assets?: string
}

export interface DashboardComponents {
  log?: Logger
}

interface Asset { type: string, body: Buffer }

/** Reads the assets once; an empty map when they are missing (GET / then says how to build them). */
function loadAssets (dir: string, log?: Logger): Map<string, Asset> {
  const assets = new Map<string, Asset>()
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (err) {
    log?.error('the dashboard\'s assets are missing in %s: %e', dir, err)
    return assets
  }
  for (const name of names) {
    const type = TYPES[extname(name)]
    if (type !== undefined) assets.set(name, { type, body: readFileSync(join(dir, name)) })
  }
  return assets
}

/** GET / (the page) and GET /dashboard/<file> (its assets); registered before the API's auth. */
export function registerDashboard (app: Express, init: DashboardInit = {}, components: DashboardComponents = {}): void {
  const assets = loadAssets(init.assets ?? DASHBOARD_ASSETS, components.log)
  const send = (res: Response, asset: Asset): void => {
    res.status(200)
    res.setHeader('Content-Type', asset.type)
    res.setHeader('Content-Security-Policy', CSP)
    res.setHeader('X-Content-Type-Options', 'nosniff')
    res.setHeader('Referrer-Policy', 'no-referrer')
    // a peer upgraded in place serves new scripts: the browser asks again each time (a 304 is not worth a hash)
    res.setHeader('Cache-Control', 'no-cache')
    res.end(asset.body)
  }
  app.get('/', (_req, res) => {
    const page = assets.get('index.html')
    if (page === undefined) {
      sendJson(res, 404, restErrorBody(404, 'the dashboard is not built: run `npm run build`'))
      return
    }
    send(res, page)
  })
  app.get('/dashboard/:file', (req, res, next) => {
    const asset = assets.get(String(req.params.file))
    if (asset === undefined) { next(); return }
    send(res, asset)
  })
}
