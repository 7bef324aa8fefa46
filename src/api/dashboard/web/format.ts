// How numbers, times and ids read on the page.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']

export function bytes (n: number): string {
  if (!Number.isFinite(n) || n < 0) return '–'
  let i = 0
  while (n >= 1024 && i < UNITS.length - 1) { n /= 1024; i++ }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${UNITS[i]}`
}

/** A local date and time, or '–' for an empty or unreadable one (Go's zero time included). */
export function time (iso: string | number): string {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() <= 1) return '–'
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' })
}

/** Nanoseconds since the epoch (IPFS Cluster's metric times) as a local time. */
export function timeNs (ns: number): string {
  return time(ns / 1e6)
}

/** The tail of a peer id, as IPFS Cluster's CLI shortens them. */
export function shortId (id: string): string {
  return id.length > 12 ? `…${id.slice(-8)}` : id
}

export function duration (ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '–'
  if (ms < 1000) return `${Math.round(ms)} ms`
  const s = ms / 1000
  if (s < 120) return `${s.toFixed(s < 10 ? 1 : 0)} s`
  const m = s / 60
  return m < 120 ? `${m.toFixed(0)} min` : `${(m / 60).toFixed(1)} h`
}
