import { randomBytes } from 'node:crypto'
import { apiUrl } from './address.js'
import { ClientError, Http } from './http.js'
import { checkPaths, multipartBody, totalBytes, walk } from './multipart.js'
import type { MirrorStatus } from '../mirror/status.js'
import type { AddCarOptions, AddOptions, Client, ClientInit, ClientPinOptions, LocalOptions, StatusAllOptions } from './index.js'
import type { AbortOptions } from '../components.js'
import type { AddedOutput, AlertInfo, ConnectGraph, GlobalPinInfo, GlobalRepoGC, IDInfo, RepoStat, RepoVerify, MetricInfo, Pin, PinType, ReprovideStatus } from '../types/wire.js'

export class RestClient implements Client {
  readonly url: string
  private readonly http: Http

  constructor (init: ClientInit) {
    const base = apiUrl(init.api ?? '127.0.0.1:9094')
    const headers: Record<string, string> = {}
    if (init.token != null) headers.authorization = `Bearer ${init.token}`
    else if (init.basicAuth != null) headers.authorization = `Basic ${Buffer.from(init.basicAuth).toString('base64')}`
    this.http = new Http({ base, headers, timeoutMs: init.timeoutMs, log: init.log })
    this.url = this.http.origin
  }

  async id (options: AbortOptions = {}): Promise<IDInfo> {
    return await this.http.json({ method: 'GET', path: '/id', signal: options.signal })
  }

  async version (options: AbortOptions = {}): Promise<{ version: string }> {
    return await this.http.json({ method: 'GET', path: '/version', signal: options.signal })
  }

  async peers (options: AbortOptions = {}): Promise<IDInfo[]> {
    const peers: IDInfo[] = []
    for await (const peer of this.peersStream(options)) peers.push(peer)
    return peers
  }

  peersStream (options: AbortOptions = {}): AsyncIterable<IDInfo> {
    return this.http.ndjson({ method: 'GET', path: '/peers', signal: options.signal })
  }

  async pin (cid: string, options: ClientPinOptions & AbortOptions = {}): Promise<Pin> {
    return await this.http.json({ method: 'POST', path: pinPath(cid), query: pinQuery(options), signal: options.signal })
  }

  async unpin (cid: string, options: AbortOptions = {}): Promise<Pin> {
    const path = cid.startsWith('/') ? pinPath(cid) : `/pins/${encodeURIComponent(cid)}`
    return await this.http.json({ method: 'DELETE', path, signal: options.signal })
  }

  async pinUpdate (from: string, to: string, options: ClientPinOptions & AbortOptions = {}): Promise<Pin> {
    return await this.pin(to, { ...options, pin_update: from })
  }

  allocations (options: AbortOptions & { filter?: Array<PinType | 'all'> } = {}): AsyncIterable<Pin> {
    const query = new URLSearchParams()
    if (options.filter != null && options.filter.length > 0) query.set('filter', options.filter.join(','))
    return this.http.ndjson({ method: 'GET', path: '/allocations', query, signal: options.signal })
  }

  async allocation (cid: string, options: AbortOptions = {}): Promise<Pin> {
    return await this.http.json({ method: 'GET', path: `/allocations/${encodeURIComponent(cid)}`, signal: options.signal })
  }

  async status (cid: string, options: LocalOptions = {}): Promise<GlobalPinInfo> {
    return await this.http.json({ method: 'GET', path: `/pins/${encodeURIComponent(cid)}`, query: localQuery(options), signal: options.signal })
  }

  statusAll (options: StatusAllOptions = {}): AsyncIterable<GlobalPinInfo> {
    const query = localQuery(options)
    if (options.filter != null && options.filter.length > 0) query.set('filter', options.filter.join(','))
    if (options.cids != null && options.cids.length > 0) query.set('cids', options.cids.join(','))
    return this.http.ndjson({ method: 'GET', path: '/pins', query, signal: options.signal })
  }

  async recover (cid: string, options: LocalOptions = {}): Promise<GlobalPinInfo> {
    return await this.http.json({ method: 'POST', path: `/pins/${encodeURIComponent(cid)}/recover`, query: localQuery(options), signal: options.signal })
  }

  recoverAll (options: LocalOptions = {}): AsyncIterable<GlobalPinInfo> {
    return this.http.ndjson({ method: 'POST', path: '/pins/recover', query: localQuery(options), signal: options.signal })
  }

  async repoGC (options: LocalOptions = {}): Promise<GlobalRepoGC> {
    return await this.http.json({ method: 'POST', path: '/ipfs/gc', query: localQuery(options), signal: options.signal })
  }

  async repoStat (options: AbortOptions = {}): Promise<RepoStat> {
    return await this.http.json({ method: 'GET', path: '/ipfs/repo/stat', signal: options.signal })
  }

  async repoVerify (options: AbortOptions = {}): Promise<RepoVerify> {
    return await this.http.json({ method: 'POST', path: '/ipfs/repo/verify', signal: options.signal })
  }

  async * add (paths: string[], options: AddOptions = {}): AsyncGenerator<AddedOutput> {
    const walkOptions = { recursive: options.recursive, hidden: options.hidden, dereferenceSymlinks: options.dereferenceSymlinks, dereferenceArgs: options.dereferenceArgs }
    await checkPaths(paths, walkOptions)
    if (options.upload === 'blocks') {
      // loaded here: the importer and the query parser are not needed by any other call
      const [{ parseAddQuery }, { addAsBlocks }] = await Promise.all([import('../api/rest/pin-options.js'), import('./add-blocks.js')])
      // the parameters as the peer would read them from this query: the same import, and bad values refused before any work
      const { params } = parseAddQuery(addQuery(options))
      if (params.format !== 'car' && (params.shard_size ?? 0) === 0) {
        yield * addAsBlocks(paths, walkOptions, params, options, this)
        return
      }
    }
    const { onProgress } = options
    const total = onProgress != null ? await totalBytes(paths, walkOptions) : 0
    let sent = 0
    onProgress?.(0, total)
    const boundary = `cairn-${randomBytes(16).toString('hex')}`
    const body = multipartBody(walk(paths, walkOptions), boundary, onProgress == null ? undefined : n => { sent += n; onProgress(sent, total) })
    yield * this.http.ndjson<AddedOutput>({
      method: 'POST',
      path: '/add',
      query: addQuery(options),
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      body,
      signal: options.signal
    })
  }

  async * addCar (car: AsyncIterable<Uint8Array>, options: AddCarOptions = {}): AsyncGenerator<AddedOutput> {
    const boundary = `cairn-${randomBytes(16).toString('hex')}`
    const body = async function * (): AsyncGenerator<Uint8Array> {
      yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="upload.car"\r\nContent-Type: application/vnd.ipld.car\r\n\r\n`)
      yield * car
      yield Buffer.from(`\r\n--${boundary}--\r\n`)
    }
    yield * this.http.ndjson<AddedOutput>({
      method: 'POST',
      path: '/add',
      query: addQuery({ ...options, format: 'car', noPin: options.noPin }),
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
      body: body(),
      signal: options.signal
    })
  }

  async metrics (options: AbortOptions = {}): Promise<string[]> {
    return await this.http.json<string[] | undefined>({ method: 'GET', path: '/monitor/metrics', signal: options.signal }) ?? []
  }

  /** GET /monitor/metrics/{name}: the latest valid metric of each peer. */
  async latestMetrics (name: string, options: AbortOptions = {}): Promise<MetricInfo[]> {
    return await this.http.json<MetricInfo[] | undefined>({ method: 'GET', path: `/monitor/metrics/${encodeURIComponent(name)}`, signal: options.signal }) ?? []
  }

  /** GET /health/alerts: expired metrics (a `ping` one: a peer lost), newest first. */
  async alerts (options: AbortOptions = {}): Promise<AlertInfo[]> {
    return await this.http.json<AlertInfo[] | undefined>({ method: 'GET', path: '/health/alerts', signal: options.signal }) ?? []
  }

  async graph (options: AbortOptions = {}): Promise<ConnectGraph> {
    return await this.http.json<ConnectGraph>({ method: 'GET', path: '/health/graph', signal: options.signal })
  }

  /** DELETE /peers/{id}: moves the peer's pins to other peers; resolves with how many moved. */
  async peerRemove (peer: string, options: AbortOptions = {}): Promise<{ peer: string, reallocated: number }> {
    return await this.http.json({ method: 'DELETE', path: `/peers/${encodeURIComponent(peer)}`, signal: options.signal })
  }

  async health (options: AbortOptions = {}): Promise<void> {
    await this.http.json({ method: 'GET', path: '/health', signal: options.signal })
  }

  /** Where the newest version of a mirror is: bytes per peer, copies per part, what is moving. */
  async mirrorStatus (name: string, options: AbortOptions = {}): Promise<MirrorStatus> {
    return await this.http.json({ method: 'GET', path: `/mirrors/${encodeURIComponent(name)}/status`, signal: options.signal })
  }

  async reprovideStatus (options: AbortOptions = {}): Promise<ReprovideStatus> {
    return await this.http.json({ method: 'GET', path: '/reprovide/status', signal: options.signal })
  }

  async reprovideNow (options: AbortOptions & { onProgress?: (status: ReprovideStatus) => void } = {}): Promise<ReprovideStatus> {
    let last: ReprovideStatus | undefined
    for await (const status of this.http.ndjson<ReprovideStatus>({ method: 'POST', path: '/reprovide/now', signal: options.signal })) {
      last = status
      options.onProgress?.(status)
    }
    if (last == null) throw new ClientError('POST /reprovide/now answered no status')
    return last
  }
}

/** POST/DELETE /pins/{ipfs|ipns|ipld}/{path}: the form ipfs-cluster-ctl uses, which honours `mode`. */
function pinPath (arg: string): string {
  const m = /^\/(ipfs|ipns|ipld)\/(.+)$/.exec(arg)
  const [ns, rest] = m != null ? [m[1], m[2]] : ['ipfs', arg]
  // No trailing slash: the API answers those with a 307.
  return `/pins/${ns}/${rest.replace(/\/+$/, '').split('/').map(encodeURIComponent).join('/')}`
}

function localQuery (options: LocalOptions): URLSearchParams {
  return new URLSearchParams(options.local === true ? { local: 'true' } : {})
}

/** IPFS Cluster's query names (PinOptions.ToQuery); unset options are left to the server's defaults. */
function pinQuery (o: ClientPinOptions): URLSearchParams {
  const q = new URLSearchParams()
  const set = (key: string, value: string | number | undefined): void => { if (value != null) q.set(key, String(value)) }
  set('name', o.name)
  set('mode', o.mode)
  set('replication-min', o.replication_factor_min)
  set('replication-max', o.replication_factor_max)
  set('shard-size', o.shard_size)
  set('user-allocations', o.user_allocations?.join(','))
  set('expire-at', o.expire_at)
  set('expire-in', o.expire_in)
  for (const [k, v] of Object.entries(o.metadata ?? {})) set(`meta-${k}`, v)
  if (o.origins != null && o.origins.length > 0) set('origins', o.origins.join(','))
  set('pin-update', o.pin_update)
  if (o.spread === true) set('spread', 'true')
  return q
}

function addQuery (o: AddOptions): URLSearchParams {
  const q = pinQuery(o)
  const flag = (key: string, value: boolean | undefined): void => { if (value != null) q.set(key, String(value)) }
  flag('recursive', o.recursive)
  flag('hidden', o.hidden)
  flag('wrap-with-directory', o.wrapWithDirectory)
  flag('raw-leaves', o.rawLeaves)
  flag('local', o.local)
  flag('no-pin', o.noPin)
  flag('shard', o.shard)
  if (o.cidVersion != null) q.set('cid-version', String(o.cidVersion))
  if (o.format != null) q.set('format', o.format)
  if (o.chunker != null) q.set('chunker', o.chunker)
  q.set('stream-channels', 'true')
  return q
}
