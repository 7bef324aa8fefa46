// A level database that takes no more writes once one failed on the disk (no space, or any I/O error), until
// it is opened again: a restart of the peer.
//
// Why: LevelDB (1.20, as classic-level builds it) appends each write to its log through a stdio buffer. When the
// disk fills in the middle of an append, part of the record reaches the file, the rest is dropped, and the log
// writer carries on as if all of it had: the writes that succeed afterwards (once anything freed space) land
// misaligned, and the next open drops them as corrupt. Measured on a full 8 MiB ext4 (test/storage): of 100
// writes acknowledged after space was freed, 35-43 were there after a reopen. So the first failed write makes
// the database refuse every later one until it is opened again, which replays the log up to the torn record and
// starts a new one. Writes go one at a time, so that none is already on its way to LevelDB when one fails.
import { Level } from 'level'
import { describeDisk, isNoSpaceError } from './disk.js'
import { InsufficientStorageError } from '../errors.js'

/** classic-level's implementation hooks, which abstract-level's public methods call (not in level's types). */
interface Hooks {
  _open: (options: unknown) => Promise<void>
  _put: (key: unknown, value: unknown, options: unknown) => Promise<void>
  _del: (key: unknown, options: unknown) => Promise<void>
  _batch: (operations: unknown[], options: unknown) => Promise<void>
  _clear: (options: unknown) => Promise<void>
  _chainedBatch: () => { _write: (options: unknown) => Promise<void> }
}

export interface WriteGuard {
  /** False once a write failed on the disk, until the database is opened again. */
  readonly writable: boolean
  /** What a refused write is told, or undefined while writes are taken. */
  refusal: () => Error | undefined
}

/** A level database whose writes go through a WriteGuard. */
export type GuardedLevel<K = string, V = string> = Level<K, V> & { readonly guard: WriteGuard }

/** A failure of the write itself (LevelDB's IO error, a full disk), not of its arguments or the database's state. */
function failedOnDisk (err: unknown): boolean {
  return (err as { code?: unknown }).code === 'LEVEL_IO_ERROR' || isNoSpaceError(err)
}

/** `new Level(location, options)`, its writes run one at a time and refused after one failed on the disk. */
export function guardedLevel<K = string, V = string> (location: string, options?: ConstructorParameters<typeof Level<K, V>>[1]): GuardedLevel<K, V> {
  const db = new Level<K, V>(location, options)
  let failure: { error: Error, at: Date } | undefined
  let tail: Promise<unknown> = Promise.resolve()

  const guard: WriteGuard = {
    get writable () { return failure == null },
    refusal () {
      if (failure == null) return undefined
      const since = `since ${failure.at.toISOString()}, when a write failed`
      if (isNoSpaceError(failure.error)) {
        return new InsufficientStorageError(`insufficient storage: writes to ${location} are refused ${since} for lack of space on ${describeDisk(location)}; restart the peer once space is free`)
      }
      return new Error(`writes to ${location} are refused ${since}: ${failure.error.message}; restart the peer`)
    }
  }

  /** Runs a write after the ones before it; the first that fails on the disk closes the database to writes. */
  const guarded = async <T>(write: () => Promise<T>): Promise<T> => {
    const run = async (): Promise<T> => {
      const refused = guard.refusal()
      if (refused != null) throw refused
      try {
        return await write()
      } catch (err) {
        if (!failedOnDisk(err)) throw err
        failure = { error: err as Error, at: new Date() }
        if (!isNoSpaceError(err)) throw err
        throw new InsufficientStorageError(`insufficient storage: a write to ${location} failed for lack of space on ${describeDisk(location)}; this database takes no more writes until the peer is restarted with space free`)
      }
    }
    const result = tail.then(run, run)
    tail = result.catch(() => {})
    return await result
  }

  const base = Level.prototype as unknown as Hooks
  const hooks = db as unknown as Hooks
  // own properties: abstract-level calls this._put(...), which finds these before the prototype's
  Object.assign(hooks, {
    _open: async (options: unknown) => {
      await base._open.call(db, options)
      // a fresh log: what failed before is behind it
      failure = undefined
    },
    _put: async (key: unknown, value: unknown, options: unknown) => { await guarded(async () => { await base._put.call(db, key, value, options) }) },
    _del: async (key: unknown, options: unknown) => { await guarded(async () => { await base._del.call(db, key, options) }) },
    _batch: async (operations: unknown[], options: unknown) => { await guarded(async () => { await base._batch.call(db, operations, options) }) },
    _clear: async (options: unknown) => { await guarded(async () => { await base._clear.call(db, options) }) },
    _chainedBatch: () => {
      const batch = base._chainedBatch.call(db)
      const write = batch._write.bind(batch)
      batch._write = async (options: unknown) => { await guarded(async () => { await write(options) }) }
      return batch
    }
  })
  return Object.assign(db, { guard })
}
