// The test kit, shared by test/ and bench/: temp dirs, free ports, polling with a deadline (never a bare sleep),
// a loopback libp2p host, quiet loggers, running programs, raw HTTP requests.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { MemoryDatastore } from 'datastore-core'
import { createLibp2p, type Libp2p } from 'libp2p'
import { libp2pOptions, type CairnServices, type HostInit } from '../src/libp2p/index.js'
import { createLogger, type CairnLogger } from '../src/logger.js'
import type { AddEntry } from '../src/components.js'
import type { Blockstore } from 'interface-blockstore'
import * as dagPb from '@ipld/dag-pb'
import { concatChunks } from '../src/utils/bytes.js'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { identity } from 'multiformats/hashes/identity'

export async function tempDir (prefix = 'cairn-test-'): Promise<{ path: string, cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return { path, cleanup: async () => { await rm(path, { recursive: true, force: true, maxRetries: 3 }) } }
}

/** n distinct free TCP ports on 127.0.0.1 (all bound to port 0 at once, then released). */
export async function freePorts (n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, async () => {
    const server = createServer()
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return server
  }))
  const ports = servers.map(s => (s.address() as { port: number }).port)
  await Promise.all(servers.map(async s => { await new Promise(resolve => s.close(resolve)) }))
  return ports
}

export async function freePort (): Promise<number> {
  return (await freePorts(1))[0]
}

/**
 * Waits ms (rejects with the signal's reason when it aborts first). In a test, only to prove that something does
 * NOT happen within a window, and say so in a comment; to wait for something, use waitFor or an event.
 */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    signal?.throwIfAborted()
    const onAbort = (): void => { clearTimeout(timer); reject(signal?.reason) }
    const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

export interface WaitOptions<T> {
  /** Default 20 s. */
  timeoutMs?: number
  /** Default 50 ms. */
  intervalMs?: number
  /** What was awaited, for the error. */
  message?: string
  signal?: AbortSignal
  /** How the last value reads in the error (default JSON). */
  describe?: (last: T | undefined) => string
}

/**
 * Polls check() until it returns a truthy value; after timeoutMs fails with the message and the last value (or
 * the last error check() threw).
 */
export async function waitFor<T> (check: () => T | Promise<T>, options: WaitOptions<T> = {}): Promise<NonNullable<T>> {
  const timeoutMs = options.timeoutMs ?? 20_000
  const deadline = Date.now() + timeoutMs
  let last: T | undefined
  let lastErr: unknown
  for (;;) {
    options.signal?.throwIfAborted()
    try {
      last = await check()
      lastErr = undefined
      if (last != null && last !== false) return last as NonNullable<T>
    } catch (err) {
      lastErr = err
    }
    if (Date.now() > deadline) {
      const seen = lastErr !== undefined
        ? `last error: ${(lastErr as Error).message}`
        : `last value: ${options.describe?.(last) ?? JSON.stringify(last)}`
      throw new Error(`timed out after ${timeoutMs / 1000} s: ${options.message ?? 'condition not met'} (${seen})`)
    }
    await sleep(options.intervalMs ?? 50, options.signal)
  }
}

/** The DHT settings of test hosts: a protocol of their own, server mode, private (127.0.0.1) addresses kept. */
export const TEST_DHT = { protocol: '/cairn-test/kad/1.0.0', clientMode: false, keepPrivateAddresses: true }

/**
 * A started libp2p host built as a cairn peer's, listening on 127.0.0.1, with an in-memory datastore, a quiet
 * logger, TEST_DHT and a fresh key unless given.
 */
export async function loopbackHost (init: Partial<HostInit> = {}): Promise<Libp2p<CairnServices>> {
  return await createLibp2p(libp2pOptions({
    listen: ['/ip4/127.0.0.1/tcp/0'],
    datastore: new MemoryDatastore(),
    logger: quietLogger(),
    dht: TEST_DHT,
    ...init,
    privateKey: init.privateKey ?? await generateKeyPair('Ed25519')
  }))
}

export function quietLogger (peer?: string): CairnLogger {
  return createLogger({ level: (process.env.CAIRN_TEST_LOG_LEVEL as 'debug' | undefined) ?? 'silent', peer })
}

// CIDs no cairn peer can read, whose pins and gateway requests are refused
/** Codec 0x9999 (unknown), identity hash. */
export const UNKNOWN_CODEC = CID.createV1(0x9999, identity.digest(new Uint8Array([1, 2, 3]))).toString()
/** Raw, hash function 0x1234 (unknown). */
export const UNKNOWN_HASH = CID.createV1(raw.code, createDigest(0x1234, new Uint8Array([1, 2, 3]))).toString()
/** dag-cbor with inline bytes that are not CBOR (an indefinite-length item). */
export const BAD_INLINE_CBOR = CID.createV1(0x71, identity.digest(new Uint8Array([0xff, 0xff]))).toString()

export interface Run { code: number, stdout: string, stderr: string }

/** Runs a program to its end (never through a shell); a non-zero exit is a result, not a rejection. */
export async function runProgram (file: string, args: string[], options: { cwd: string, env: NodeJS.ProcessEnv, timeoutMs?: number }): Promise<Run> {
  return await new Promise(resolve => {
    execFile(file, args, { cwd: options.cwd, env: options.env, timeout: options.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err == null ? 0 : typeof err.code === 'number' ? err.code : -1
      resolve({ code, stdout, stderr: stderr + (err != null && code === -1 ? `\n${err.message}` : '') })
    })
  })
}

export interface RawReply { status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }

/** A request to 127.0.0.1 with the path and headers sent as they are (fetch normalises "..", "%2E%2E" and the like, and refuses a Host header). */
export async function rawRequest (port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawReply> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers }, res => {
      const chunks: Buffer[] = []
      res.on('data', c => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/**
 * The environment of every cairn process: no CAIRN_ variable from the caller's shell (config rejects unknown
 * ones, and CAIRN_PATH or CAIRN_API would point elsewhere), but the test knobs. And dht.profile "lan" unless
 * `extra` says otherwise: a peer made by a plain `cairn init` is on the public profile, whose default dht.bootstrap
 * is the IPFS public bootstrap peers, and tests run without the internet.
 */
export function childEnv (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { CAIRN_DHT_PROFILE: 'lan' }
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('CAIRN_') || k.startsWith('CAIRN_TEST_')) env[k] = v
  }
  return { ...env, ...extra }
}

/** One file as the entries of an add (`cluster.add`, `ipfs.addEntries`). */
export async function * oneFile (path: string, bytes: Uint8Array): AsyncIterable<AddEntry> {
  yield { path, content: (async function * () { yield bytes })() }
}

/** The hex SHA-256 of some bytes: what a test compares served bytes by. */
export const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** A deterministic generator of floats in [0, 1) (mulberry32): the same seed gives the same run. */
export function seededRandom (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** The distinct blocks `roots` reach through dag-pb links, and their bytes, read from `blockstore`. */
export async function distinctBlocks (blockstore: Pick<Blockstore, 'get'>, roots: string[], options: { timeoutMs?: number } = {}): Promise<{ blocks: number, bytes: number }> {
  const seen = new Set<string>()
  let bytes = 0
  const walk = roots.map(r => CID.parse(r))
  while (walk.length > 0) {
    const cid = walk.pop() as CID
    const key = Buffer.from(cid.multihash.bytes).toString('hex')
    if (seen.has(key)) continue
    seen.add(key)
    const signal = options.timeoutMs != null ? AbortSignal.timeout(options.timeoutMs) : undefined
    const block = await concatChunks(blockstore.get(cid, { signal }))
    bytes += block.byteLength
    if (cid.code === dagPb.code) walk.push(...dagPb.decode(block).Links.map(l => l.Hash))
  }
  return { blocks: seen.size, bytes }
}
