// The `filter` query parameters of GET /pins (tracker statuses) and GET /allocations (pin types). Both are
// comma lists where unknown names are ignored, but a non-empty filter that matches nothing is a 400.
import { InvalidParameterError } from '../../errors.js'
import type { PinType, TrackerStatus } from '../../types/wire.js'

const STATUS_NAMES: Readonly<Record<string, readonly TrackerStatus[]>> = {
  error: ['cluster_error', 'pin_error', 'unpin_error'],
  queued: ['pin_queued', 'unpin_queued'],
  ...Object.fromEntries(([
    'pin_queued', 'pinning', 'pinned', 'pin_error', 'unpin_queued', 'unpinning', 'unpinned', 'unpin_error',
    'remote', 'sharded', 'unexpectedly_unpinned', 'cluster_error'
  ] as const).map(s => [s, [s]]))
}

/** The names GET /pins?filter= takes: the statuses, and the groups 'error' and 'queued'. */
export const STATUS_FILTER_NAMES: readonly string[] = Object.keys(STATUS_NAMES)

/** What each group name of GET /pins?filter= stands for. */
export const STATUS_FILTER_GROUPS: Readonly<Record<'error' | 'queued', readonly TrackerStatus[]>> = { error: STATUS_NAMES.error, queued: STATUS_NAMES.queued }

const TYPE_NAMES: Readonly<Record<string, readonly PinType[]>> = {
  pin: ['pin'],
  'meta-pin': ['meta-pin'],
  'clusterdag-pin': ['clusterdag-pin'],
  'shard-pin': ['shard-pin'],
  all: ['pin', 'meta-pin', 'clusterdag-pin', 'shard-pin']
}

function parseFilter<T> (value: string | null, names: Readonly<Record<string, readonly T[]>>): Set<T> | undefined {
  if (value === null || value === '') return undefined
  const set = new Set<T>()
  for (const name of value.replaceAll(' ', '').split(',')) {
    if (Object.hasOwn(names, name)) for (const v of names[name]) set.add(v)
  }
  if (set.size === 0) throw new InvalidParameterError(`invalid filter value: "${value}"`)
  return set
}

/** GET /pins?filter=: statuses to keep, or undefined for all. */
export function parseStatusFilter (value: string | null): Set<TrackerStatus> | undefined {
  return parseFilter(value, STATUS_NAMES)
}

/** GET /allocations?filter=: pin types to keep, or undefined for all. */
export function parseTypeFilter (value: string | null): Set<PinType> | undefined {
  const set = parseFilter(value, TYPE_NAMES)
  return set?.size === TYPE_NAMES.all.length ? undefined : set
}
