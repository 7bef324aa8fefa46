// Long loops share the event loop: each works for about a millisecond, then lets timers, sockets and other
// requests run. A chain of awaits on values already there (an async generator over memory) never leaves the microtask
// queue, so it holds the event loop as long as a plain loop would: 20 lists of 300k pins stalled a peer for
// minutes, its metrics went out late and the other peers declared it dead.
import { setImmediate as nextTurn } from 'node:timers/promises'

/**
 * How long one loop may hold the event loop before it yields. Loops that yield run one after another in the
 * same event-loop phase, so N of them hold it for about N times this: 1 ms keeps 20 lists under ~30 ms, and a
 * yield (one setImmediate) costs a few microseconds.
 */
export const TURN_BUDGET_MS = 1

export interface TurnBudget {
  /** Whether this turn has used its budget: the loop should `await yield()` at its next safe point. */
  spent(): boolean
  /** Lets the event loop run everything that is due (setImmediate), then starts a new budget. */
  yield(): Promise<void>
}

/** A budget for one loop; `ms` is how long it may work between yields. */
export function turnBudget (ms = TURN_BUDGET_MS): TurnBudget {
  let since = performance.now()
  return {
    spent: () => performance.now() - since >= ms,
    async yield () {
      await nextTurn()
      since = performance.now()
    }
  }
}
