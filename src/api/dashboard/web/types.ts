// The fields of the REST API's answers that the page reads (their full shapes: src/types/wire.ts, src/mirror/,
// src/api/rest/). The browser build cannot import the server's modules, so the page names what it relies on.

export interface IDInfo {
  id: string
  peername: string
  addresses: string[]
  version: string
  error: string
  trusted?: boolean
  trust?: string
}

export interface Pin {
  cid: string
  name: string
  type: string
  allocations: string[]
  metadata: Record<string, string> | null
  replication_factor_min: number
  replication_factor_max: number
  timestamp: string
}

export interface PinInfoShort {
  peername: string
  status: string
  timestamp: string
  error: string
}

export interface GlobalPinInfo {
  cid: string
  name: string
  allocations: string[]
  created: string
  metadata: Record<string, string> | null
  peer_map: Record<string, PinInfoShort>
}

export interface MetricInfo {
  name: string
  peer: string
  value: string
  expire: number
  valid: boolean
  received_at: number
}

export interface AlertInfo extends MetricInfo {
  triggered_at: string
}

export interface ConnectGraph {
  cluster_id: string
  id_to_peername: Record<string, string>
  cluster_links: Record<string, string[]>
  cluster_trust_links: Record<string, boolean>
}

export interface ReprovideStatus {
  strategy: string
  running: boolean
  cycle_done: number
  cycle_total: number
  last_cycle_started: string
  last_cycle_finished: string
  last_cycle_duration_ms: number
  last_cycle_cids: number
  next_cycle_at: string
  failures_total: number
  cycles_overrun_total: number
}

export interface RepoStat {
  peer: string
  blocks: number
  held_bytes: number
  pinned_bytes: number
  cache_bytes: number
  garbage_bytes: number
  disk_bytes: number
  storage_max: number
  gc_runs: number
  gc_bytes_reclaimed: number
}

export interface BitswapStat {
  blocks_received: number
  data_received: number
  blocks_sent: number
  data_sent: number
}

export interface MirrorVersionEntry {
  version: number
  cid: string
  created: string
  allocations: string[]
  spread: boolean
  bytes: number
}

export interface MirrorEntry {
  mirror: string
  gateway_url: string
  versions: MirrorVersionEntry[]
}

export interface MirrorStatus {
  version: number
  spread: boolean
  parts: number
  copies: Record<string, number>
  under_replicated: number[]
  moving: string[]
}
