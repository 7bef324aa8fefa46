// Option parsers: a bad value is a usage error (exit 2) that names what was expected.
import { InvalidArgumentError } from 'commander'

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

export function parseInteger (value: string): number {
  if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError(`"${value}" is not an integer.`)
  return Number(value)
}

/** A Go duration ('90s', '1h30m', '500ms') in milliseconds. */
const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 }

/** A byte count: 8388608, 8MiB, 8MB, 512KiB... */
export function parseSize (value: string): number {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(value.trim())
  const unit = m == null ? undefined : SIZE_UNITS[m[2].toLowerCase()]
  if (m == null || unit === undefined) throw new InvalidArgumentError(`expected a size like 8MiB or 8388608, got "${value}"`)
  return Number(m[1]) * unit
}

export function parseDuration (value: string): number {
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(value)) throw new InvalidArgumentError(`"${value}" is not a duration such as 90s, 30m or 24h.`)
  let ms = 0
  for (const [, n, , unit] of value.matchAll(/(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(n) * UNIT_MS[unit]
  return ms
}

/** Node's timers fire at once (with only a warning) past 2^31-1 ms, ~24.8 days: longer waits are refused. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1

function checkTimeout (value: string, ms: number): number {
  if (ms > MAX_TIMEOUT_MS) throw new InvalidArgumentError(`"${value}" is longer than the longest timeout, ${formatDuration(Math.floor(MAX_TIMEOUT_MS / 3_600_000) * 3_600_000)}.`)
  return ms
}

/** A timeout as a Go duration, at most ~24.8 days; in milliseconds. */
export function parseTimeout (value: string): number {
  return checkTimeout(value, parseDuration(value))
}

/** Seconds as a plain number, or a Go duration; in milliseconds (a timeout, so at most ~24.8 days). */
export function parseSeconds (value: string): number {
  return checkTimeout(value, /^\d+(\.\d+)?$/.test(value) ? Number(value) * 1000 : parseDuration(value))
}

/** The latest time a Date can hold (year 275760). */
const MAX_DATE_MS = 8.64e15

/** An --expire-in duration in milliseconds; refused when the expiry would be past what a date can hold. */
export function parseExpireIn (value: string): number {
  const ms = parseDuration(value)
  if (Date.now() + ms > MAX_DATE_MS) throw new InvalidArgumentError(`"${value}" is too long: the expiry would be past year 275760.`)
  return ms
}

export function parseList (value: string): string[] {
  return value.split(',').map(s => s.trim()).filter(s => s !== '')
}

/** Collects repeated `--metadata key=value`. */
export function parseMetadata (value: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = value.indexOf('=')
  if (i <= 0) throw new InvalidArgumentError(`"${value}" is not key=value.`)
  return { ...previous, [value.slice(0, i)]: value.slice(i + 1) }
}

export { formatBytes } from '../utils/bytes.js'

export function formatDuration (ms: number): string {
  return ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`
}
