// Progress bars (cli-progress) on a TTY only; the caller decides whether it has one.
import cliProgress from 'cli-progress'

export interface Progress {
  update(value: number, total: number): void
  /** Wipes the bar's line so a line can be printed above it; the bar redraws itself on its next tick. */
  clear(): void
  stop(): void
}

export function createProgress (stream: NodeJS.WritableStream, label: string, format: (n: number) => string): Progress {
  const bar = new cliProgress.SingleBar({
    stream,
    format: `${label} {bar} {percentage}% | {done}/{all}`,
    // Redraw every tick even when unchanged, so the bar comes back after clear().
    forceRedraw: true,
    clearOnComplete: true,
    hideCursor: true,
    barsize: 30
  }, cliProgress.Presets.shades_classic)
  let started = false
  return {
    update (value, total) {
      const payload = { done: format(value), all: format(total) }
      if (!started) {
        bar.start(total, value, payload)
        started = true
      } else {
        bar.setTotal(total)
        bar.update(value, payload)
      }
    },
    clear () {
      if (started) stream.write('\r\x1b[2K')
    },
    stop () {
      if (started) bar.stop()
      started = false
    }
  }
}
