// Package mirrors: versions of a directory tree pinned under one name (see meta.ts for how they are recorded).
export * from './meta.js'
export { syncMirror, listVersions, waitPinned, DEFAULT_KEEP, DEFAULT_PIN_TIMEOUT_MS } from './sync.js'
export type { MirrorSyncEvent, MirrorSyncOptions, MirrorSyncParams, MirrorSyncResult } from './sync.js'
export { listMirrors, formatStatusCounts } from './ls.js'
export type { MirrorInfo, MirrorVersionInfo } from './ls.js'
export { defaultCachePath } from './cache.js'
export { buildTree } from './build.js'
export { walkTree } from './walk.js'
