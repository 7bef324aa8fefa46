// Entry point of the `cairn` command (bin/cairn.js loads the polyfill first).
import { untilSettled } from './exit-guard.js'
import { runCli } from './program.js'

// `cairn pin ls | head` closes stdout early: that is not an error.
process.stdout.on('error', err => { if ((err as NodeJS.ErrnoException).code === 'EPIPE') process.exit(0) })

const err = (s: string): void => { process.stderr.write(s) }
process.exitCode = await untilSettled(runCli(process.argv.slice(2), {
  out: s => { process.stdout.write(s) },
  err,
  env: process.env,
  progress: process.stderr.isTTY ? process.stderr : undefined
}), err)
