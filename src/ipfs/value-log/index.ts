// The value-log blockstore (see value-log-blockstore.ts).
export { ValueLogBlockstore, DEFAULT_SEGMENT_BYTES, DEFAULT_COMPACT_BELOW, DEFAULT_MAX_DEAD, type ValueLogInit, type ValueLogStats } from './value-log-blockstore.js'
