// How a mirror's versions are recorded in the pinset: each synced root is a pin whose metadata names the mirror
// and its version number. Shared by `cairn mirror`, the gateway's /mirror/<name>/ and the pinning API.
import type { Pin } from '../components.js'

/** Pin metadata key holding the mirror's name. */
export const MIRROR_KEY = 'cairn-mirror'
/** Pin metadata key holding the version: 1 for the first sync, previous + 1 after. */
export const MIRROR_VERSION_KEY = 'cairn-mirror-version'

export interface MirrorVersion {
  mirror: string
  version: number
  pin: Pin
}

/** The mirror version a pin records, if it is one. */
export function mirrorVersionOf (pin: Pin): MirrorVersion | undefined {
  const mirror = pin.metadata?.[MIRROR_KEY]
  const version = Number(pin.metadata?.[MIRROR_VERSION_KEY])
  if (mirror == null || mirror === '' || !Number.isSafeInteger(version) || version < 1) return undefined
  return { mirror, version, pin }
}

/** Every version of every mirror (or of one), newest first within a mirror; ties broken by pin timestamp. */
export function mirrorVersions (pins: Iterable<Pin>, mirror?: string): MirrorVersion[] {
  const out: MirrorVersion[] = []
  for (const pin of pins) {
    const v = mirrorVersionOf(pin)
    if (v != null && (mirror == null || v.mirror === mirror)) out.push(v)
  }
  return out.sort((a, b) => a.mirror.localeCompare(b.mirror) || b.version - a.version || b.pin.timestamp.localeCompare(a.pin.timestamp))
}

/** The newest root of a mirror, or undefined when no version is pinned. */
export function newestMirrorRoot (pins: Iterable<Pin>, mirror: string): Pin | undefined {
  return mirrorVersions(pins, mirror)[0]?.pin
}

/** Mirror names appear in URLs (/mirror/<name>/) and file names: letters, digits, '.', '_', '-'; 1-100 chars. */
export const MIRROR_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/

/** True when `name` can name a mirror. */
export function isMirrorName (name: string): boolean {
  return MIRROR_NAME.test(name)
}

/** The pin name and metadata that record version `version` of `mirror`. */
export function mirrorPinOptions (mirror: string, version: number): { name: string, metadata: Record<string, string> } {
  return { name: `${mirror}@${version}`, metadata: { [MIRROR_KEY]: mirror, [MIRROR_VERSION_KEY]: String(version) } }
}
