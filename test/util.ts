// Shared test helpers: temp dirs, polling with a deadline (never a bare sleep), quiet loggers, running programs,
// raw HTTP requests.
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { request } from 'node:http'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger, type CairnLogger } from '../src/logger.js'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { identity } from 'multiformats/hashes/identity'

export async function tempDir (prefix = 'cairn-test-'): Promise<{ path: string, cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return { path, cleanup: async () => { await rm(path, { recursive: true, force: true }) } }
}

/** Polls check() until it returns a truthy value, or fails after timeoutMs with the message and the last value. */
export async function waitFor<T> (check: () => T | Promise<T>, options: { timeoutMs?: number, intervalMs?: number, message?: string } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000)
  let last: T | undefined
  let lastErr: unknown
  for (;;) {
    try {
      last = await check()
      if (last != null && last !== false) return last as NonNullable<T>
    } catch (err) {
      lastErr = err
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out: ${options.message ?? 'condition not met'} (last value: ${JSON.stringify(last)}${lastErr != null ? `, last error: ${(lastErr as Error).message}` : ''})`)
    }
    await new Promise(resolve => setTimeout(resolve, options.intervalMs ?? 50))
  }
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
 * ones, and CAIRN_PATH or CAIRN_API would point elsewhere), but the test knobs.
 */
export function childEnv (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('CAIRN_') || k.startsWith('CAIRN_TEST_')) env[k] = v
  }
  return { ...env, ...extra }
}

/** Distinct free loopback ports: all bound to port 0 at once, then released. */
export async function freePorts (n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, async () => {
    const server = createServer()
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return server
  }))
  const ports = servers.map(s => (s.address() as AddressInfo).port)
  await Promise.all(servers.map(async s => { await new Promise(resolve => s.close(resolve)) }))
  return ports
}
