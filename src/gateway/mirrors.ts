// Which root /mirror/<name>/ serves: the newest version in the pinset, kept between requests and recomputed
// only when a change touches a mirror pin (walking a million-pin pinset per request would not do).
import { heldPinKey } from '../utils/keys.js'
import { mirrorVersions, mirrorVersionOf, type MirrorVersion } from '../mirror/meta.js'
import type { Pinset } from '../components.js'

export type MirrorPinset = Pick<Pinset, 'list' | 'onChange'>

export interface MirrorIndex {
  /** The newest version of a mirror, if any is pinned. */
  newest(name: string): MirrorVersion | undefined
  /** The newest version of every mirror, by name. */
  all(): MirrorVersion[]
  start(): void
  stop(): void
}

export function mirrorIndex (pinset: MirrorPinset): MirrorIndex {
  /** Newest version per mirror; undefined when it must be recomputed. */
  let newest: Map<string, MirrorVersion> | undefined
  /** Keys (CIDv1) of every mirror pin seen at the last computation. */
  let keys = new Set<string>()
  let unsubscribe: (() => void) | undefined

  const compute = (): Map<string, MirrorVersion> => {
    const byName = new Map<string, MirrorVersion>()
    const seen = new Set<string>()
    // newest first within a mirror
    for (const v of mirrorVersions(pinset.list())) {
      seen.add(keyOf(v.pin.cid))
      if (!byName.has(v.mirror)) byName.set(v.mirror, v)
    }
    keys = seen
    return byName
  }
  const current = (): Map<string, MirrorVersion> => {
    // not subscribed to changes: never trust a cached answer
    if (unsubscribe == null) return compute()
    newest ??= compute()
    return newest
  }

  return {
    newest: name => current().get(name),
    all: () => [...current().values()].sort((a, b) => a.mirror.localeCompare(b.mirror)),
    start () {
      unsubscribe ??= pinset.onChange(change => {
        if (newest == null) return
        const touches = change.added.some(p => mirrorVersionOf(p) != null || keys.has(keyOf(p.cid))) ||
          change.removed.some(c => keys.has(keyOf(c)))
        if (touches) newest = undefined
      })
    },
    stop () {
      unsubscribe?.()
      unsubscribe = undefined
      newest = undefined
    }
  }
}

function keyOf (cid: string): string {
  try {
    return heldPinKey(cid)
  } catch {
    return cid
  }
}
