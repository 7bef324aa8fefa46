// Text output in ipfs-cluster-ctl's formats (cmd/ipfs-cluster-ctl/formatters.go), so its users can read it
// and existing scripts that scrape it keep working.
import { ZERO_TIME, type AddedOutput, type AlertInfo, type GlobalPinInfo, type IDInfo, type MetricInfo, type Pin } from '../types/wire.js'
import { formatBytes } from './parse.js'

/** `<cid> | <name>:` then one `    > <peer> : <STATUS>[: error] | <timestamp> | Attempts: n | Priority: b` line per peer. */
export function formatStatus (g: GlobalPinInfo): string {
  const lines = [`${g.cid}${g.name ? ` | ${g.name}` : ''}:`]
  for (const id of Object.keys(g.peer_map ?? {}).sort()) {
    const p = g.peer_map[id]
    const error = p.error ? `: ${p.error}` : ''
    lines.push(`    > ${(p.peername || id).padEnd(20)} : ${p.status.toUpperCase()}${error} | ${p.timestamp} | Attempts: ${p.attempt_count ?? 0} | Priority: ${p.priority_pin === true}`)
  }
  return lines.join('\n')
}

/** One line: cid | name | TYPE | replication | allocations | depth | metadata | expiry | added. */
export function formatPin (p: Pin): string {
  const type = p.type.toUpperCase() + (p.mode === 'direct' ? '-DIRECT' : '')
  const repl = p.replication_factor_min === -1 && p.replication_factor_max === -1
    ? 'Repl. Factor: -1 | Allocations: [everywhere]'
    : `Repl. Factor: ${p.replication_factor_min}--${p.replication_factor_max} | Allocations: [${[...(p.allocations ?? [])].sort().join(' ')}]`
  const depth = p.max_depth === 0 ? 'Direct' : p.max_depth === -1 ? 'Recursive' : `Recursive-${p.max_depth}`
  const meta = Object.keys(p.metadata ?? {}).length > 0 ? 'yes' : 'no'
  return `${p.cid} | ${p.name} | ${type} | ${repl} | ${depth} | Metadata: ${meta} | Exp: ${goTime(p.expire_at) ?? '∞'} | Added: ${goTime(p.timestamp) ?? 'unknown'}`
}

/**
 * `<id> | <peername> | Sees N other peers` ("peer" when N is 1), then its addresses and its IPFS identity; a peer
 * that could not be asked, or is lost, `<id> | [<peername> | ]ERROR: <error>` (ipfs-cluster-ctl gives no name there).
 * In `peers ls`, ` | Trust: <state>` ends the first line (how the answering peer judges its storage).
 */
export function formatId (id: IDInfo): string {
  const trust = id.trust != null ? ` | Trust: ${id.trust}${id.trust === 'failed' && id.audits?.error ? ` (${id.audits.error})` : ''}` : ''
  if (id.error) return `${id.id} | ${id.peername ? `${id.peername} | ` : ''}ERROR: ${id.error}${trust}`
  const others = Math.max(0, (id.cluster_peers?.length ?? 0) - 1)
  const lines = [`${id.id} | ${id.peername} | Sees ${others} other ${others === 1 ? 'peer' : 'peers'}${trust}`, '  > Addresses:']
  for (const a of [...(id.addresses ?? [])].sort()) lines.push(`    - ${a}`)
  if (id.ipfs?.error) {
    lines.push(`  > IPFS ERROR: ${id.ipfs.error}`)
  } else if (id.ipfs?.id) {
    lines.push(`  > IPFS: ${id.ipfs.id}`)
    for (const a of [...(id.ipfs.addresses ?? [])].sort()) lines.push(`    - ${a}`)
  }
  return lines.join('\n')
}

export function formatAdded (a: AddedOutput): string {
  return `added ${a.cid} ${a.name}`
}

/** 'YYYY-MM-DD HH:MM:SS' in the timestamp's own offset, as Go's Format does; undefined for the zero time. */
function goTime (t: string | undefined): string | undefined {
  if (t == null || t === '' || t === ZERO_TIME) return undefined
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)/.exec(t)
  return m != null ? `${m[1]} ${m[2]}` : t
}

/** `<peer> | <name>: <value> | Weight: <w> | Expires in: <when>` (freespace as bytes, from its weight). */
export function formatMetric (m: MetricInfo, now = Date.now()): string {
  const value = m.name === 'freespace' && m.weight > 0 ? formatBytes(m.weight) : m.value
  return `${m.peer} | ${m.name}: ${value} | Weight: ${m.weight} | Expires in: ${relativeTime(m.expire / NS_PER_MS, now)}`
}

/** `<peer>: <name>. Expired at: <when>. Triggered at: <when>` (an expired ping: the peer is lost). */
export function formatAlert (a: AlertInfo, now = Date.now()): string {
  return `${a.peer}: ${a.name}. Expired at: ${relativeTime(a.expire / NS_PER_MS, now)}. Triggered at: ${relativeTime(Date.parse(a.triggered_at), now)}`
}

const NS_PER_MS = 1_000_000
const UNITS: Array<[number, string]> = [[86_400_000, 'day'], [3_600_000, 'hour'], [60_000, 'minute'], [1000, 'second']]

/** '12 seconds ago', '3 minutes from now', 'now' (as go-humanize's Time, which ipfs-cluster-ctl prints). */
export function relativeTime (t: number, now = Date.now()): string {
  if (!Number.isFinite(t)) return 'unknown'
  const delta = Math.abs(now - t)
  const unit = UNITS.find(([ms]) => delta >= ms)
  if (unit == null) return 'now'
  const n = Math.floor(delta / unit[0])
  return `${n} ${unit[1]}${n === 1 ? '' : 's'} ${t < now ? 'ago' : 'from now'}`
}
