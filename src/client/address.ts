// The REST API address as users write it (IPFS Cluster's tools take multiaddrs; scripts take URLs).
import { InvalidParameterError } from '../errors.js'

const MULTIADDR = /^\/(ip4|ip6|dns|dns4|dns6)\/([^/]+)\/tcp\/(\d+)(?:\/(https?))?\/?$/

/** 'http(s)://host:port[/prefix]', 'host:port' or '/ip4|ip6|dns*\/<host>/tcp/<port>[/http|/https]' -> base URL. */
export function apiUrl (api: string): URL {
  const s = api.trim()
  const ma = MULTIADDR.exec(s)
  const href = /^https?:\/\//i.test(s)
    ? s
    : ma != null
      ? `${ma[4] ?? 'http'}://${ma[1] === 'ip6' ? `[${ma[2]}]` : ma[2]}:${ma[3]}`
      : /^[^/\s]+:\d+$/.test(s) ? `http://${s}` : undefined
  if (href != null) {
    try {
      return new URL(href)
    } catch {}
  }
  throw new InvalidParameterError(`invalid API address "${api}": expected host:port, http(s)://host:port or /ip4/<ip>/tcp/<port>`)
}
