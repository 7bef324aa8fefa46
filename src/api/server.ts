// The lifecycle the REST API, the Pinning Service API and the gateway share: build the app with a signal that
// aborts at stop, listen on host:port, close the listener (in-flight requests finish) and undo what was opened.
import { NotStartedError, ShuttingDownError } from '../errors.js'
import { listen, type Listener } from './common.js'
import type { Startable } from '../components.js'
import type { RequestListener } from 'node:http'

export interface AppServerInit {
  host: string
  port: number
  /** Names the server in NotStartedError ("the REST API"). */
  name: string
}

export interface AppServerComponents {
  /**
   * Opens what the app needs and builds it; `signal` aborts when the server stops (handlers end their streams).
   * Returns the app and what undoes the opening (run after the listener closed, or when listening failed).
   */
  open: (signal: AbortSignal) => Promise<{ app: RequestListener, close?: () => void | Promise<void> }>
  log?: (format: string, ...args: unknown[]) => void
}

export interface AppServer extends Startable {
  /** The bound address (the real port when 0 was asked); NotStartedError before start. */
  address(): { host: string, port: number }
}

export function createAppServer (init: AppServerInit, components: AppServerComponents): AppServer {
  let listener: Listener | undefined
  let stopping: AbortController | undefined
  let close: (() => void | Promise<void>) | undefined

  return {
    async start () {
      if (listener !== undefined) return
      stopping = new AbortController()
      const opened = await components.open(stopping.signal)
      try {
        listener = await listen(opened.app, init.host, init.port)
      } catch (err) {
        await opened.close?.()
        throw err
      }
      close = opened.close
      components.log?.('listening on %s:%d', listener.address.host, listener.address.port)
    },
    async stop () {
      stopping?.abort(new ShuttingDownError())
      await listener?.close()
      listener = undefined
      const undo = close
      close = undefined
      await undo?.()
    },
    address () {
      if (listener === undefined) throw new NotStartedError(`${init.name} is not listening`)
      return { ...listener.address }
    }
  }
}
