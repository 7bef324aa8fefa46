import { CID } from 'multiformats/cid'

/** The pinset's map key for a CID string: CIDv1, base32 (Qm... and bafy... of the same content share a key). */
export function cidKey (cid: string | CID): string {
  const parsed = typeof cid === 'string' ? CID.parse(cid) : cid
  return parsed.version === 1 ? parsed.toString() : parsed.toV1().toString()
}

/** cidKey, or undefined for a string that is not a CID. */
export function tryCidKey (cid: string): string | undefined {
  try { return cidKey(cid) } catch { return undefined }
}
