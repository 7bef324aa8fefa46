// What every command action needs: the global options, a client built from them, and --json-aware printing.
import { type Command } from 'commander'
import { createClient, type Client } from '../client/index.js'
import { createProgress, type Progress } from './progress.js'

export interface CliIO {
  /** Standard output (strings end with '\n'). */
  out: (s: string) => void
  /** Standard error (strings end with '\n'). */
  err: (s: string) => void
  env: NodeJS.ProcessEnv
  /** The stream progress bars are drawn on: stderr when it is a TTY; no bars when absent. */
  progress?: NodeJS.WritableStream
}

export interface GlobalOptions {
  api: string
  basicAuth?: string
  token?: string
  json?: boolean
  /** Milliseconds (parsed from seconds). */
  timeout?: number
  debug?: boolean
}

export class Session {
  readonly io: CliIO
  readonly json: boolean
  private readonly globals: GlobalOptions
  private readonly cmd: Command
  private cachedClient?: Client
  private bar?: Progress

  constructor (io: CliIO, cmd: Command) {
    this.io = io
    this.cmd = cmd
    this.globals = cmd.optsWithGlobals<GlobalOptions>()
    this.json = this.globals.json === true
  }

  get client (): Client {
    const g = this.globals
    this.cachedClient ??= createClient({
      api: g.api,
      basicAuth: g.basicAuth,
      token: g.token,
      timeoutMs: g.timeout,
      log: g.debug === true ? line => { this.io.err(`debug: ${line}\n`) } : undefined
    })
    return this.cachedClient
  }

  /** A single object: indented JSON with --json, else its text form. */
  one<T> (value: T, text: (v: T) => string): void {
    this.write(this.json ? JSON.stringify(value, null, 2) : text(value))
  }

  /** One item of a list: a compact NDJSON line with --json, else its text form. */
  item<T> (value: T, text: (v: T) => string): void {
    this.write(this.json ? JSON.stringify(value) : text(value))
  }

  /** A message on stderr (never part of the machine-readable output). */
  note (text: string): void {
    this.bar?.clear()
    this.io.err(text + '\n')
  }

  /** A progress bar when stderr is a TTY, else undefined; lines printed while it runs go above it. */
  progress (label: string, format: (n: number) => string): Progress | undefined {
    if (this.io.progress == null) return undefined
    const bar = createProgress(this.io.progress, label, format)
    this.bar = bar
    return {
      update: (value, total) => { bar.update(value, total) },
      clear: () => { bar.clear() },
      stop: () => {
        bar.stop()
        if (this.bar === bar) this.bar = undefined
      }
    }
  }

  /** A usage error found after parsing: exit code 2, like commander's own. */
  usage (message: string): never {
    this.cmd.error(`error: ${message}`, { exitCode: 2, code: 'cairn.usage' })
  }

  private write (text: string): void {
    this.bar?.clear()
    this.io.out(text + '\n')
  }
}
