// Per-component loggers (the libp2p ComponentLogger shape) written through pino, so a daemon prints
// structured, levelled lines: component debug lines at 'debug', .error at 'error', .trace at 'trace'.
import { format } from 'node:util'
import { pino, type Logger as Pino, type LevelWithSilent } from 'pino'
import type { ComponentLogger, Logger } from '@libp2p/interface'

export interface LoggerInit {
  level?: LevelWithSilent
  /** Added to every line, e.g. the peer name, so peers sharing a process stay apart. */
  peer?: string
  /** Destination stream (default stderr). */
  destination?: NodeJS.WritableStream
}

export interface CairnLogger extends ComponentLogger {
  /** The root pino logger, for lifecycle lines at info/warn level. */
  readonly pino: Pino
}

// libp2p's formatters: %p peer id, %c CID, %a multiaddr, %e error, %b/%t bytes.
function render (formatter: unknown, args: unknown[]): string {
  if (typeof formatter !== 'string') return format(formatter, ...args)
  let i = 0
  const out: unknown[] = []
  const fmt = formatter.replace(/%([a-zA-Z%])/g, (m, c: string) => {
    if (c === '%') return m
    const arg = args[i++]
    if (c === 'e') { out.push(arg instanceof Error ? arg.message : String(arg)); return '%s' }
    if ('pcabt'.includes(c)) { out.push(String(arg)); return '%s' }
    out.push(arg)
    return m
  })
  return format(fmt, ...out, ...args.slice(i))
}

export function createLogger (init: LoggerInit = {}): CairnLogger {
  const root = pino({
    level: init.level ?? 'info',
    base: init.peer != null ? { peer: init.peer } : {}
  }, (init.destination ?? process.stderr) as pino.DestinationStream)

  const forComponent = (name: string): Logger => {
    const child = root.child({ component: name })
    // libp2p and Helia report routine events (a refused dial, a peer gone) through .error: keep those at
    // debug so an operator's log shows cairn's own errors, not network weather.
    const ours = name.startsWith('cairn:')
    const log = ((formatter: unknown, ...args: unknown[]) => {
      if (child.isLevelEnabled('debug')) child.debug(render(formatter, args))
    }) as Logger
    log.error = (formatter: unknown, ...args: unknown[]) => {
      if (ours) child.error(render(formatter, args))
      else if (child.isLevelEnabled('debug')) child.debug(render(formatter, args))
    }
    log.trace = (formatter: unknown, ...args: unknown[]) => {
      if (child.isLevelEnabled('trace')) child.trace(render(formatter, args))
    }
    log.enabled = child.isLevelEnabled('debug')
    log.newScope = (scope: string) => forComponent(`${name}:${scope}`)
    return log
  }

  return { pino: root, forComponent }
}
