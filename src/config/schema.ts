// Zod schemas, defaults and types of the two config files. Messages are written to read well after
// "<file>: <key path>: ", which is how toConfigError prints them.
import { isIP } from 'node:net'
import { hostname } from 'node:os'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import { ConfigError } from '../errors.js'

export const DEFAULT_CLUSTER_NAME = 'cairn'
export const DEFAULT_SWARM_LISTEN: readonly string[] = ['/ip4/0.0.0.0/tcp/9096']
export const DEFAULT_REST_LISTEN = '127.0.0.1:9094'
/** rest.max_heavy_requests: each list costs CPU in proportion to the pinset; this many keep a 2-core peer responsive. */
export const DEFAULT_MAX_HEAVY_REQUESTS = 8
export const DEFAULT_DHT_PROTOCOL = '/ipfs/kad/1.0.0'
/**
 * dht.bootstrap of the `public` profile when the config names none: the IPFS public bootstrap peers, as Kubo
 * ships them (config/bootstrap_peers.go). The `lan` profile has none (a closed DHT names its own).
 */
export const PUBLIC_DHT_BOOTSTRAP: readonly string[] = [
  '/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN',
  '/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa',
  '/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb',
  '/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt',
  '/dnsaddr/va1.bootstrap.libp2p.io/p2p/12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8',
  '/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ',
  '/ip4/104.131.131.82/udp/4001/quic-v1/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ'
]
export const DEFAULT_PINSVC_LISTEN = '127.0.0.1:9097'
export const DEFAULT_GATEWAY_LISTEN = '127.0.0.1:8080'
export const DEFAULT_METRICS_LISTEN = '127.0.0.1:8888'
/** disk.segment_bytes at least: smaller segments would make a file of every few blocks. */
export const MIN_SEGMENT_BYTES = 1024 * 1024
export const REPROVIDE_STRATEGIES = ['roots', 'entities', 'pinned'] as const
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const

/** A value as the user wrote it, short enough for an error message. */
export function show (value: unknown): string {
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

const got = (expected: string) => (issue: { input?: unknown }): string => `${expected}, got ${show(issue.input)}`

/** A string that must pass `ok`; the message says what was expected and echoes the value. */
function stringThat (ok: (value: string) => boolean, expected: string): z.ZodString {
  return z.string({ error: got(expected) }).refine(ok, { error: got(expected) })
}

function section<T extends z.core.$ZodLooseShape> (shape: T): z.ZodObject<T, z.core.$strict> {
  return z.strictObject(shape, { error: got('expected an object') })
}

const positiveInt = (): z.ZodNumber =>
  z.int({ error: got('expected a positive integer') }).positive({ error: got('expected a positive integer') })

const nonNegativeInt = (): z.ZodNumber =>
  z.int({ error: got('expected an integer >= 0') }).nonnegative({ error: got('expected an integer >= 0') })

const bool = (): z.ZodBoolean => z.boolean({ error: got('expected true or false') })

function parses (parse: (value: string) => unknown): (value: string) => boolean {
  return value => {
    try {
      parse(value)
      return true
    } catch {
      return false
    }
  }
}

const isPeerId = parses(peerIdFromString)
// multiaddr('') parses to the empty address, which is never what the user meant
const isMultiaddr = (value: string): boolean => value.startsWith('/') && parses(multiaddr)(value)
const hasPeerId = (value: string): boolean =>
  isMultiaddr(value) && multiaddr(value).getComponents().some(c => c.name === 'p2p' && isPeerId(c.value ?? ''))

const multiaddrString = stringThat(isMultiaddr, 'expected a multiaddr like /ip4/127.0.0.1/tcp/9096')
const peerMultiaddr = stringThat(hasPeerId, 'expected a multiaddr ending in /p2p/<peer ID>')
const peerIdString = stringThat(isPeerId, 'expected a libp2p peer ID')

/** A cluster_config value that is a URL (to fetch) rather than a file path. */
export function isUrlSource (source: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(source)
}

function isHttpUrl (source: string): boolean {
  try {
    const url = new URL(source)
    return url.protocol === 'http:' || url.protocol === 'https:'
  } catch {
    return false
  }
}

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/

const hostPort = z.string({ error: got('expected host:port') }).superRefine((value, ctx) => {
  const match = /^(\[[^\]]*\]|[^:[\]]*):(\d+)$/.exec(value)
  if (match === null) {
    ctx.addIssue({ code: 'custom', message: `expected host:port, got ${show(value)}` })
    return
  }
  const [, host, port] = match as unknown as [string, string, string]
  const hostOk = host.startsWith('[')
    ? isIP(host.slice(1, -1)) === 6
    // an all-digits name such as 999.0.0.1 is a mistyped IPv4 address, not a hostname
    : isIP(host) === 4 || (HOSTNAME.test(host) && !/^[\d.]+$/.test(host))
  if (!hostOk) ctx.addIssue({ code: 'custom', message: `invalid host ${show(host)} in ${show(value)}` })
  if (Number(port) > 65535) ctx.addIssue({ code: 'custom', message: `port must be 0-65535, got ${port}` })
})

const replicationFactor = (): z.ZodNumber => {
  const error = got('expected -1 (every peer) or a positive integer')
  return z.int({ error }).refine(n => n === -1 || n >= 1, { error })
}

// ---------------------------------------------------------------------------------------------------------
// cluster.config.json: shared by every peer of a cluster, publishable (no secrets but `secret`).

const dhtFields = section({
  /** `public`: the IPFS DHT, private addresses dropped; `lan`: own bootstrap list, private addresses kept. */
  profile: z.enum(['public', 'lan'], { error: got('expected "public" or "lan"') }).default('public'),
  protocol: stringThat(p => /^\/\S+$/.test(p), 'expected a protocol ID like /ipfs/kad/1.0.0').default(DEFAULT_DHT_PROTOCOL),
  /** Defaults to PUBLIC_DHT_BOOTSTRAP for the `public` profile and [] for `lan`; an explicit [] stays empty. */
  bootstrap: z.array(peerMultiaddr, { error: got('expected a list of multiaddrs') }).optional(),
  client_mode: bool().default(false),
  /** Defaults to true for the `lan` profile and false for `public`. */
  keep_private_addresses: bool().optional()
})

export const dhtConfigSchema = dhtFields.transform(dht => ({
  ...dht,
  bootstrap: dht.bootstrap ?? (dht.profile === 'public' ? [...PUBLIC_DHT_BOOTSTRAP] : []),
  keep_private_addresses: dht.keep_private_addresses ?? dht.profile === 'lan'
}))

/** The DHT reprovider (DESIGN §6): what is announced and how often. Shared by every peer of the cluster. */
export const reprovideConfigSchema = section({
  strategy: z.enum(REPROVIDE_STRATEGIES, { error: got(`expected one of ${REPROVIDE_STRATEGIES.join('|')}`) }).default('pinned'),
  /** How often every held CID is announced again (Kubo: 22 h). */
  interval_ms: positiveInt().default(22 * 3600_000),
  /** How long a provider record stays valid on the DHT nodes (48 h). */
  validity_ms: positiveInt().default(48 * 3600_000),
  /** Announce a pin's root as soon as it is pinned locally. */
  fast_provide: bool().default(true),
  /** DHT peers written to at once during a sweep. */
  concurrency: positiveInt().default(32),
  /** Records per batch: the unit of progress saved for a restart. */
  batch_size: positiveInt().default(4096),
  /**
   * A send to one DHT peer fails when the peer acknowledges nothing for this long (records go in chunks of 128,
   * each acknowledged by a PING answer: a slow peer that keeps answering is not failed); also the deadline for
   * opening the stream.
   */
  send_timeout_ms: positiveInt().default(30_000),
  /** Deadline of one keyspace-region lookup. */
  lookup_timeout_ms: positiveInt().default(60_000),
  /**
   * Retries of a failed lookup or send; a DHT peer that failed every attempt is then skipped by every sweep
   * (cycle and fast provides) for 10 min, unless a fresh lookup names only skipped peers.
   */
  retries: nonNegativeInt().default(3),
  /** First retry delay, doubled each time. */
  retry_backoff_ms: positiveInt().default(1000),
  /** Records no DHT peer took are tried again after this long. */
  retry_interval_ms: positiveInt().default(5 * 60_000)
}).superRefine((r, ctx) => {
  if (r.interval_ms >= r.validity_ms) {
    ctx.addIssue({ code: 'custom', path: ['interval_ms'], message: `must be below validity_ms (${r.interval_ms} >= ${r.validity_ms}), or records lapse between cycles` })
  }
})

const clusterScalars = {
  name: stringThat(n => /^[A-Za-z0-9._-]+$/.test(n), 'expected a non-empty name of letters, digits, ".", "_" or "-"')
    .default(DEFAULT_CLUSTER_NAME),
  /** 32-byte hex pre-shared key of the libp2p private network; "" = none. */
  secret: stringThat(s => s === '' || /^[0-9a-fA-F]{64}$/.test(s), 'expected 64 hex characters or ""').default(''),
  trusted_peers: z.array(peerIdString, { error: got('expected a list of peer IDs') }).default(() => []),
  /**
   * The followers admitted besides the trusted peers; [] = an open cluster anyone may follow (its peers' copies
   * count once audits prove them). Non-empty: a closed cluster, other peers' metrics and RPC calls are ignored.
   */
  followers: z.array(peerIdString, { error: got('expected a list of peer IDs') }).default(() => []),
  /**
   * The cluster's own peers, kept connected. No default under any dht.profile: the public bootstrap nodes are no
   * cluster's members (they go in dht.bootstrap, which the `public` profile fills).
   */
  bootstrap: z.array(peerMultiaddr, { error: got('expected a list of multiaddrs') }).default(() => []),
  replication_factor_min: replicationFactor().default(-1),
  replication_factor_max: replicationFactor().default(-1),
  /**
   * How often the writer of each spread pin checks whether moving whole partitions would even out the peers' shares
   * (a peer joined, or offers a different storage_max), and moves them make-before-break; 0 = never.
   */
  spread_rebalance_interval_ms: nonNegativeInt().default(600_000)
}

const validRf = (n: unknown): n is number => Number.isInteger(n) && (n === -1 || (n as number) >= 1)

export const clusterConfigSchema = z.strictObject({ ...clusterScalars, dht: dhtConfigSchema.prefault({}), reprovide: reprovideConfigSchema.prefault({}) },
  { error: got('expected a JSON object') }
).superRefine(({ replication_factor_min: min, replication_factor_max: max }, ctx) => {
  // zod runs this even when a field failed; the field's own message is enough then
  if (!validRf(min) || !validRf(max)) return
  if ((min === -1) !== (max === -1)) {
    // -1 is the default, so the key set to a count is the one the user just wrote
    const [key, value, other] = min === -1
      ? ['replication_factor_max', max, 'replication_factor_min']
      : ['replication_factor_min', min, 'replication_factor_max']
    ctx.addIssue({ code: 'custom', path: [key], message: `is ${value} but ${other} is -1 (every peer): set both to -1 or both to a count` })
  } else if (min > max) {
    ctx.addIssue({ code: 'custom', path: ['replication_factor_min'], message: `must be <= replication_factor_max (${min} > ${max})` })
  }
})

// ---------------------------------------------------------------------------------------------------------
// peer.json: one peer's own settings, in its folder (which is also its data dir).

export const swarmConfigSchema = section({
  listen: z.array(multiaddrString, { error: got('expected a list of multiaddrs') }).default(() => [...DEFAULT_SWARM_LISTEN]),
  announce: z.array(multiaddrString, { error: got('expected a list of multiaddrs') }).default(() => [])
})

export const restConfigSchema = section({
  listen: hostPort.default(DEFAULT_REST_LISTEN),
  /** user -> password; null = no authentication. */
  basic_auth_credentials: z.record(z.string().min(1), z.string({ error: got('expected a password string') }), {
    error: issue => issue.code === 'invalid_key'
      ? 'user names must not be empty'
      : got('expected null or an object of user: password')(issue)
  }).nullable().default(null),
  /**
   * Requests that walk the whole pinset (GET /allocations, GET /pins, POST /pins/recover, the pinning service's
   * GET /pins) served at once, by the REST and pinning service APIs together; past it they are refused with 429.
   */
  max_heavy_requests: positiveInt().default(DEFAULT_MAX_HEAVY_REQUESTS)
})

export const trackerConfigSchema = section({
  concurrent_pins: positiveInt().default(10),
  max_queue_size: positiveInt().default(1_000_000),
  max_retries: nonNegativeInt().default(5),
  retry_base_ms: positiveInt().default(1000),
  retry_max_ms: positiveInt().default(60_000),
  pin_timeout_ms: positiveInt().default(120_000),
  recover_interval_ms: positiveInt().default(720_000)
}).superRefine(({ retry_base_ms: base, retry_max_ms: max }, ctx) => {
  if (Number.isInteger(base) && Number.isInteger(max) && max < base) {
    ctx.addIssue({ code: 'custom', path: ['retry_max_ms'], message: `must be >= retry_base_ms (${max} < ${base})` })
  }
})

export const monitorConfigSchema = section({
  /** Bytes this peer offers; 0 = the free space of the disk holding the data dir. */
  storage_max: nonNegativeInt().default(0),
  /** tag:<name> metrics, used by the allocator to spread copies (e.g. {"group": "eu"}). */
  tags: z.record(z.string().min(1), z.string(), { error: got('expected an object of tag: value') }).default(() => ({ group: 'default' })),
  /** TTL of this peer's metrics; they are re-published every TTL/2 (IPFS Cluster: 30 s). */
  metric_ttl_ms: positiveInt().default(30_000)
})

/**
 * Storage audits a trusted peer runs on the other peers (src/audit/, DESIGN §10 "Trust in storage"); followers
 * only answer them.
 */
export const auditConfigSchema = section({
  /** How often each peer's allocations are audited. */
  interval_ms: positiveInt().default(600_000),
  /** A pin is audited on a peer only once allocated to it this long: its time to fetch it. */
  grace_ms: positiveInt().default(3_600_000),
  /** Deadline of one audit of one pin (every block asked). */
  timeout_ms: positiveInt().default(30_000),
  /** Pins audited per peer and round. */
  pins_per_round: positiveInt().default(2),
  /** Audits passed (over 2 or more pins, none failed since) that make a peer proven: its copies count. */
  proven_after: positiveInt().default(3),
  /** A peer on probation takes new extra copies only while it holds fewer allocations than this. */
  probation_pins: positiveInt().default(16),
  /** How long a peer that failed an audit is left out, before it is on probation again. */
  cooldown_ms: positiveInt().default(21_600_000)
})

/** Repo GC on a schedule (`cairn ipfs gc` runs one at any time). */
export const pinsetConfigSchema = section({
  /**
   * How often this peer catches up with a few connected peers (repairs missed gossip), asking a stranger too when no
   * trusted peer can give what is missing.
   */
  sync_interval_ms: nonNegativeInt().min(100, { error: got('expected an integer >= 100 (ms)') }).default(30_000)
})

export const gcConfigSchema = section({
  /** How often this peer deletes the blocks none of its pins holds, when the pinset changed since; 0 = never. */
  interval_ms: nonNegativeInt().default(3_600_000)
})

/** The disk under the peer folder (src/storage/reserve.ts). */
export const diskConfigSchema = section({
  /**
   * A file of this many bytes kept in the peer folder while space allows, deleted at start when the databases
   * need the room to open (LevelDB rewrites its logs then: the block store's can be 64 MiB); 0 = none.
   */
  reserve_bytes: nonNegativeInt().default(128 * 1024 * 1024),
  /**
   * At start, look up every block the pins claim in the store's index and fetch again the ones missing (a store
   * damaged while the peer was off); in the background, retried while some cannot be had yet.
   */
  check_on_start: bool().default(true),
  /**
   * The block store starts a new segment file past this size (src/ipfs/value-log/); compaction rewrites at most
   * one segment at a time, so a smaller one gives space back sooner at the cost of more files. Default 256 MiB.
   */
  segment_bytes: z.int({ error: got('expected an integer >= 1048576 (1 MiB)') }).min(MIN_SEGMENT_BYTES, { error: got('expected an integer >= 1048576 (1 MiB)') }).default(256 * 1024 * 1024)
})

/** A listening HTTP service of the peer (pinning API, gateway, metrics); enabled = false turns it off. */
const serviceSchema = (listen: string) => section({
  enabled: bool().default(true),
  listen: hostPort.default(listen)
})

/** IPFS Pinning Services API v1.0.0. Auth: the REST API's basic_auth_credentials and its JWTs. */
export const pinsvcConfigSchema = serviceSchema(DEFAULT_PINSVC_LISTEN)
/** HTTP gateway: /ipfs/<cid>/<path> and /mirror/<name>/<path>. */
export const gatewayConfigSchema = serviceSchema(DEFAULT_GATEWAY_LISTEN).extend({
  /**
   * Bytes of blocks fetched for reads, not pins (gateway requests, a cat of content not pinned here) kept at most;
   * the least recently used are evicted past it. Default 4 GiB.
   */
  cache_max: nonNegativeInt().default(4 * 1024 ** 3)
})
/** Prometheus text at /metrics. */
export const metricsConfigSchema = serviceSchema(DEFAULT_METRICS_LISTEN)

export const logConfigSchema = section({
  level: z.enum(LOG_LEVELS, { error: got(`expected one of ${LOG_LEVELS.join('|')}`) }).default('info')
})

const peerScalars = {
  peername: stringThat(n => n.trim() !== '', 'expected a non-empty name').default(() => hostname()),
  /** Path relative to the peer folder, absolute path, or http(s) URL of the shared cluster config. */
  cluster_config: stringThat(s => s !== '' && (!isUrlSource(s) || isHttpUrl(s)), 'expected a file path or an http(s) URL')
    .default('cluster.json')
}

export const peerConfigSchema = z.strictObject({
  ...peerScalars,
  swarm: swarmConfigSchema.prefault({}),
  rest: restConfigSchema.prefault({}),
  tracker: trackerConfigSchema.prefault({}),
  monitor: monitorConfigSchema.prefault({}),
  pinset: pinsetConfigSchema.prefault({}),
  gc: gcConfigSchema.prefault({}),
  audit: auditConfigSchema.prefault({}),
  disk: diskConfigSchema.prefault({}),
  pinsvc: pinsvcConfigSchema.prefault({}),
  gateway: gatewayConfigSchema.prefault({}),
  metrics: metricsConfigSchema.prefault({}),
  log: logConfigSchema.prefault({})
}, { error: got('expected a JSON object') })

export type DhtConfig = z.output<typeof dhtConfigSchema>
export type ClusterConfig = z.output<typeof clusterConfigSchema>
export type ClusterConfigInput = z.input<typeof clusterConfigSchema>
export type SwarmConfig = z.output<typeof swarmConfigSchema>
export type RestConfig = z.output<typeof restConfigSchema>
export type TrackerConfig = z.output<typeof trackerConfigSchema>
export type LogConfig = z.output<typeof logConfigSchema>
export type ReprovideConfig = z.output<typeof reprovideConfigSchema>
export type ServiceConfig = z.output<typeof pinsvcConfigSchema>
export type MonitorConfig = z.output<typeof monitorConfigSchema>
export type AuditConfig = z.output<typeof auditConfigSchema>
export type PeerConfig = z.output<typeof peerConfigSchema>
export type PeerConfigInput = z.input<typeof peerConfigSchema>

/** Where `CAIRN_<SECTION>_<KEY>` lands: which file, which object in it, and the keys it may set. */
export interface EnvSection {
  file: 'cluster' | 'peer'
  path: readonly string[]
  keys: Readonly<Record<string, z.ZodType>>
}

export const ENV_SECTIONS: Readonly<Record<string, EnvSection>> = {
  CLUSTER: { file: 'cluster', path: [], keys: clusterScalars },
  DHT: { file: 'cluster', path: ['dht'], keys: dhtFields.shape },
  REPROVIDE: { file: 'cluster', path: ['reprovide'], keys: reprovideConfigSchema.shape },
  PEER: { file: 'peer', path: [], keys: peerScalars },
  SWARM: { file: 'peer', path: ['swarm'], keys: swarmConfigSchema.shape },
  REST: { file: 'peer', path: ['rest'], keys: restConfigSchema.shape },
  TRACKER: { file: 'peer', path: ['tracker'], keys: trackerConfigSchema.shape },
  MONITOR: { file: 'peer', path: ['monitor'], keys: monitorConfigSchema.shape },
  PINSET: { file: 'peer', path: ['pinset'], keys: pinsetConfigSchema.shape },
  GC: { file: 'peer', path: ['gc'], keys: gcConfigSchema.shape },
  AUDIT: { file: 'peer', path: ['audit'], keys: auditConfigSchema.shape },
  DISK: { file: 'peer', path: ['disk'], keys: diskConfigSchema.shape },
  PINSVC: { file: 'peer', path: ['pinsvc'], keys: pinsvcConfigSchema.shape },
  GATEWAY: { file: 'peer', path: ['gateway'], keys: gatewayConfigSchema.shape },
  METRICS: { file: 'peer', path: ['metrics'], keys: metricsConfigSchema.shape },
  LOG: { file: 'peer', path: ['log'], keys: logConfigSchema.shape }
}

function formatPath (path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => {
    if (typeof key === 'number') return `${out}[${key}]`
    // record keys are user data ("" or "a.b" as user names) and need quoting to stay readable
    if (!/^[A-Za-z0-9_-]+$/.test(String(key))) return `${out}[${show(String(key))}]`
    return out === '' ? String(key) : `${out}.${String(key)}`
  }, '')
}

/**
 * One ConfigError listing every issue as "<source>: <key path>: <message>". `blame` maps a key path to the
 * env var that supplied it, so a bad override names the variable instead of the file.
 */
export function toConfigError (error: z.ZodError, source: string, blame: ReadonlyMap<string, string> = new Map()): ConfigError {
  const lines = error.issues
    .flatMap(issue => issue.code === 'unrecognized_keys'
      ? issue.keys.map(key => ({ path: [...issue.path, key], message: 'unknown key' }))
      : [{ path: issue.path, message: issue.message }])
    .map(({ path, message }) => {
      const key = formatPath(path)
      for (const [prefix, name] of blame) {
        if (key === prefix || key.startsWith(`${prefix}.`) || key.startsWith(`${prefix}[`)) {
          return `${name}${key.slice(prefix.length)}: ${message}`
        }
      }
      return key === '' ? `${source}: ${message}` : `${source}: ${key}: ${message}`
    })
  return new ConfigError(lines.join('\n'))
}
