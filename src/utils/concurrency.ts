// Bounded concurrency over a list: p-map. Kept only for src/cluster.ts until it imports p-map itself; new code
// calls `pMap(items, fn, { concurrency })` directly.
import pMap from 'p-map'

/** Runs `fn` over `items` with at most `limit` calls in flight; results keep the input order. */
export async function mapLimit<T, R> (items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  return await pMap(items, async item => await fn(item), { concurrency: limit })
}
