// `cairn state export|import`: the pinset as NDJSON of Pin (IPFS Cluster's `ipfs-cluster-service state`).
// Export reads a stopped peer's stores directly, as IPFS Cluster does; when the daemon holds them it streams
// GET /allocations instead. Import checks the whole file first, then writes through the REST API.
// Heavy modules load lazily: the other commands must not pay for them.
import { rename, readFile, rm, open, type FileHandle } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { ConfigError } from '../../errors.js'
import { Session, type CliIO, type GlobalOptions } from '../session.js'
import type { Client } from '../../client/index.js'
import type { Pin } from '../../types/wire.js'
import type { ImportSummary } from '../../state/index.js'

interface StateFlags { path?: string }

/** Where the pinset is: a peer folder (read offline when its daemon is stopped) and/or a REST API. */
interface Located {
  dir?: string
  /** The REST API to use: the one given with --api/CAIRN_API, else the peer folder's rest.listen. */
  api: { url: string, basicAuth?: string, token?: string }
  /** --api or CAIRN_API was given: never read the stores. */
  explicitApi: boolean
}

async function locate (io: CliIO, cmd: Command, flags: StateFlags): Promise<Located> {
  const globals = cmd.optsWithGlobals<GlobalOptions>()
  const explicitApi = cmd.getOptionValueSourceWithGlobals('api') === 'cli' || (io.env.CAIRN_API ?? '') !== ''
  const cfg = await import('../../config/index.js')
  const dir = flags.path != null ? resolve(flags.path) : cfg.defaultPeerPath(io.env)
  const given = { url: globals.api, basicAuth: globals.basicAuth, token: globals.token }
  if (!(await cfg.peerExists(dir))) {
    if (flags.path != null) throw new ConfigError(`no peer at ${dir}: --path must be a peer folder (made by "cairn init")`)
    return { api: given, explicitApi }
  }
  if (explicitApi) return { dir, api: given, explicitApi }
  const { peer } = await cfg.readFollowerFolder(dir, io.env)
  return { dir, api: { url: reachable(peer.rest.listen), basicAuth: globals.basicAuth ?? firstCredentials(peer.rest.basic_auth_credentials), token: globals.token }, explicitApi }
}

/** A listen address as a URL to connect to: a wildcard host means this machine. */
function reachable (listen: string): string {
  const m = /^(\[[^\]]*\]|[^:]*):(\d+)$/.exec(listen)
  if (m == null) return listen
  const host = m[1] === '0.0.0.0' || m[1] === '' ? '127.0.0.1' : m[1] === '[::]' ? '[::1]' : m[1]
  return `http://${host}:${m[2]}`
}

function firstCredentials (credentials: Record<string, string> | null): string | undefined {
  const [user] = Object.keys(credentials ?? {})
  return user != null ? `${user}:${credentials![user]}` : undefined
}

async function clientFor (located: Located, cmd: Command, io: CliIO): Promise<Client> {
  const { createClient } = await import('../../client/index.js')
  const g = cmd.optsWithGlobals<GlobalOptions>()
  return createClient({
    api: located.api.url,
    basicAuth: located.api.basicAuth,
    token: located.api.token,
    timeoutMs: g.timeout,
    log: g.debug === true ? line => { io.err(`debug: ${line}\n`) } : undefined
  })
}

/** Lines go to the file (through a temp file renamed at the end, so a failed export leaves no partial file) or to stdout. */
interface Sink { write(line: string): Promise<void>, commit(): Promise<void>, abort(): Promise<void> }

async function sinkFor (io: CliIO, file?: string): Promise<Sink> {
  if (file == null) return { write: async line => { io.out(line) }, commit: async () => {}, abort: async () => {} }
  const target = resolve(file)
  const temp = `${target}.${process.pid}.tmp`
  const handle: FileHandle = await open(temp, 'w')
  let buffer: string[] = []
  let size = 0
  const flush = async (): Promise<void> => {
    if (buffer.length === 0) return
    await handle.write(buffer.join(''))
    buffer = []
    size = 0
  }
  return {
    async write (line) {
      buffer.push(line)
      size += line.length
      if (size >= 1 << 20) await flush()
    },
    async commit () {
      await flush()
      await handle.sync()
      await handle.close()
      await rename(temp, target)
    },
    async abort () {
      await handle.close().catch(() => {})
      await rm(temp, { force: true })
    }
  }
}

export interface ExportSummary {
  pins: number
  file: string | null
  /** 'stores' (read offline from the peer folder) or 'api'. */
  source: 'stores' | 'api'
  /** The peer folder or the API URL. */
  from: string
}

export function registerState (program: Command, io: CliIO): void {
  const state = program.command('state')
    .description('export or import the pinset as NDJSON of Pin (one JSON object per line, as IPFS Cluster)')

  state.command('export')
    .description('write the pinset as NDJSON: read from the peer folder\'s stores when its daemon is stopped, else from its REST API ' +
      '(--api reads from that API only)')
    .option('--file <file>', 'write to this file instead of standard output')
    .option('--path <dir>', 'peer folder (default: $CAIRN_PATH or ~/.cairn)')
    .action(async (o: StateFlags & { file?: string }, cmd: Command) => {
      const s = new Session(io, cmd)
      const located = await locate(io, cmd, o)
      const sink = await sinkFor(io, o.file)
      let summary: ExportSummary
      try {
        summary = await exportPins(located, sink, async () => await clientFor(located, cmd, io), o.file)
        await sink.commit()
      } catch (err) {
        await sink.abort()
        throw err
      }
      const text = (r: ExportSummary): string => `exported ${r.pins} pins${r.file != null ? ` to ${r.file}` : ''} from ${r.source === 'stores' ? `the stores of the stopped peer in ${r.from}` : `the REST API at ${r.from}`}`
      // stdout carries the NDJSON itself when there is no --file
      if (o.file != null) s.one(summary, text)
      else s.note(text(summary))
    })

  state.command('import <file>')
    .description('add the pins of an NDJSON export through the REST API; every line is checked first and nothing is ' +
      'written if one is wrong; pins already present with the same options are left alone')
    .option('--path <dir>', 'peer folder whose REST API to use (default: $CAIRN_PATH or ~/.cairn; --api wins)')
    .action(async (file: string, o: StateFlags, cmd: Command) => {
      const s = new Session(io, cmd)
      const { parseExport, problemsError, importPins } = await import('../../state/index.js')
      let text: string
      try {
        text = await readFile(resolve(file), 'utf8')
      } catch (err) {
        throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`)
      }
      const parsed = parseExport(text)
      if (parsed.problems.length > 0) throw problemsError(file, parsed.problems)
      const located = await locate(io, cmd, o)
      const client = await clientFor(located, cmd, io)
      const bar = s.progress('importing', n => String(n))
      let summary: ImportSummary
      try {
        summary = await importPins(parsed.pins, client, { onProgress: (done, total) => { bar?.update(done, total) } })
      } finally {
        bar?.stop()
      }
      s.one({ ...summary, api: client.url }, r => formatImport(r, file))
      if (summary.failed.length > 0) throw new Error(`${summary.failed.length} of ${summary.total} pins could not be imported (listed above)`)
    })
}

async function exportPins (located: Located, sink: Sink, makeClient: () => Promise<Client>, file?: string): Promise<ExportSummary> {
  const out = file != null ? resolve(file) : null
  if (located.dir != null && !located.explicitApi) {
    const { listPinsetOffline, isStoreLockedError } = await import('../../pinset/offline.js')
    const { pinLine } = await import('../../state/index.js')
    const pins = listPinsetOffline(located.dir)[Symbol.asyncIterator]()
    let first: IteratorResult<Pin> | undefined
    try {
      first = await pins.next()
    } catch (err) {
      // the daemon holds the stores: ask it instead
      if (!isStoreLockedError(err)) throw err
    }
    if (first != null) {
      let n = 0
      for (let r = first; r.done !== true; r = await pins.next()) {
        await sink.write(pinLine(r.value))
        n++
      }
      return { pins: n, file: out, source: 'stores', from: located.dir }
    }
  }
  const { pinLine } = await import('../../state/index.js')
  const client = await makeClient()
  let n = 0
  for await (const pin of client.allocations()) {
    await sink.write(pinLine(pin))
    n++
  }
  return { pins: n, file: out, source: 'api', from: client.url }
}

function formatImport (r: ImportSummary & { api: string }, file: string): string {
  const lines = [`imported ${r.imported} of ${r.total} pins from ${file} through ${r.api}: ${r.unchanged} already there with the same options`]
  if (r.skipped_sharded > 0) lines.push(`  skipped ${r.skipped_sharded} pins of sharded content (meta-pin, clusterdag-pin, shard-pin): add that content again with "cairn add --shard"`)
  if (r.skipped_expired > 0) lines.push(`  skipped ${r.skipped_expired} pins that have already expired`)
  if (r.allocations_dropped > 0) lines.push(`  ${r.allocations_dropped} pins named user allocations that are not peers of this cluster: those peers were left out`)
  for (const f of r.failed) lines.push(`  ${file}:${f.line}: ${f.cid}: ${f.error}`)
  if (r.failed.length > 0) lines.push('  fix the cause and run the import again: pins already imported are left alone')
  return lines.join('\n')
}
