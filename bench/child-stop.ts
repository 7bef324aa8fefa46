// How a benchmark's child process (a peer, a follower) stops: once, on SIGTERM, SIGINT or the benchmark going
// away, with a 15 s watchdog. Its own module, not bench/lib.ts: the children import nothing else of the bench, so
// their RSS (which the follower-sync benchmark reports) holds only what they measure.

/** Installs the stop handlers; returns `stop(why)` for the child's own reasons. */
export function stopOnSignals (what: string, stopAll: () => Promise<void>): (why: string) => Promise<void> {
  let stopping = false
  const stop = async (why: string): Promise<void> => {
    if (stopping) return
    stopping = true
    process.stdout.write(`stopping (${why})\n`)
    // a stop that hangs must not keep the benchmark waiting: the parent SIGKILLs after its own timeout too
    setTimeout(() => { process.stderr.write('stop took over 15 s, exiting anyway\n'); process.exit(1) }, 15_000).unref()
    try {
      await stopAll()
    } catch (err) {
      process.stderr.write(`stopping ${what} failed: ${(err as Error).stack ?? String(err)}\n`)
      process.exit(1)
    }
    // process.exit (not a signal death) so that --cpu-prof still writes its profile
    process.exit(0)
  }
  process.once('SIGTERM', () => { void stop('SIGTERM') })
  process.once('SIGINT', () => { void stop('SIGINT') })
  process.once('disconnect', () => { void stop('the benchmark went away') })
  return stop
}
