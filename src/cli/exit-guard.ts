// A command never ends without a word. When the event loop empties while a command is still pending (a promise
// nothing can settle any more, such as a request whose socket closed without an error reaching it), Node exits
// with code 13 and prints nothing; this says so and exits 1 instead.
export const UNFINISHED_MESSAGE = 'error: the command stopped unfinished: it was waiting for something that can no longer happen ' +
  '(a bug in cairn: please report it with the output of --debug)\n'

/** Resolves with the command's exit code; should the process run out of work first, prints the error and exits 1. */
export async function untilSettled (command: Promise<number>, err: (s: string) => void): Promise<number> {
  const onIdle = (): void => {
    err(UNFINISHED_MESSAGE)
    process.exit(1)
  }
  process.once('beforeExit', onIdle)
  try {
    return await command
  } finally {
    process.off('beforeExit', onIdle)
  }
}
