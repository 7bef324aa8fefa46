// The `cairn` command, constructible in-process: tests run it with captured output and their own env.
import { Command, CommanderError } from 'commander'
import { registerAdd } from './commands/add.js'
import { registerFollow } from './commands/follow.js'
import { registerIpfs } from './commands/ipfs.js'
import { registerRepo } from './commands/repo.js'
import { registerMirror } from './commands/mirror.js'
import { registerNode } from './commands/node.js'
import { registerPeers } from './commands/peers.js'
import { registerPin } from './commands/pin.js'
import { registerReprovide } from './commands/reprovide.js'
import { registerStatus } from './commands/status.js'
import { registerState } from './commands/state.js'
import { parseSeconds } from './parse.js'
import type { CliIO } from './session.js'
import { VERSION } from '../version.js'

export type { CliIO } from './session.js'

export function buildProgram (io: CliIO): Command {
  const program = new Command('cairn')
    .description('collaborative pinning cluster: run a peer, pin and add content, inspect the cluster')
    // Settings first: subcommands copy them when created.
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError('(run with --help for usage)')
    .version(VERSION, '-V, --version', 'print the version of this cairn command')
    .option('--api <addr>', 'REST API: host:port, http(s)://host:port or /ip4/<ip>/tcp/<port>', io.env.CAIRN_API ?? '127.0.0.1:9094')
    .option('--basic-auth <user:pw>', 'HTTP basic auth credentials')
    .option('--token <jwt>', 'bearer token from POST /token')
    .option('--json', 'machine-readable output: one JSON document, or NDJSON (one object per line) for lists')
    .option('--timeout <s>', 'abandon a request after this many seconds (default: never)', parseSeconds)
    .option('--debug', 'print each HTTP exchange and stack traces')
  registerNode(program, io)
  registerPin(program, io)
  registerAdd(program, io)
  registerStatus(program, io)
  registerPeers(program, io)
  registerFollow(program, io)
  registerState(program, io)
  registerReprovide(program, io)
  registerMirror(program, io)
  registerIpfs(program, io)
  registerRepo(program, io)
  return program
}

/** Runs one command line (without node and script); resolves with the exit code: 0, 1 (failure) or 2 (usage). */
export async function runCli (argv: string[], io: CliIO): Promise<number> {
  const program = buildProgram(io)
  try {
    await program.parseAsync(argv, { from: 'user' })
    return 0
  } catch (err) {
    // Commander has already printed its message (or the help).
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2
    io.err(`error: ${err instanceof Error ? err.message : String(err)}\n`)
    if (program.opts().debug === true && err instanceof Error && err.stack != null) io.err(`${err.stack}\n`)
    return 1
  }
}
