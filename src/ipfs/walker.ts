// A DAG walker that loads up to `concurrency` blocks at once. Helia's walkers load one block at a time, which
// over bitswap means one round trip per block; pinning a large DAG needs many wants in flight.
import { setMaxListeners } from 'node:events'
import { createUnsafe } from 'multiformats/block'
import * as raw from 'multiformats/codecs/raw'
import { base64 } from 'multiformats/bases/base64'
import type { GraphNode, GraphWalker, WalkOptions } from '@helia/interface'
import type { BlockCodec } from 'multiformats/codecs/interface'
import type { CID } from 'multiformats/cid'

export interface LoadOptions {
  signal: AbortSignal
  /** 0 for the root. */
  depth: number
}

export interface ParallelWalkerInit {
  /**
   * Returns the bytes of a block (from the local store, or fetched), or undefined to leave the block out: it is
   * neither yielded nor gone below (the caller lists it another way, e.g. a block held here).
   */
  load(cid: CID, options: LoadOptions): Promise<Uint8Array | undefined>
  getCodec(code: number): BlockCodec<any, any> | Promise<BlockCodec<any, any>>
  /** Blocks loaded at once. Default 32. */
  concurrency?: number
  /**
   * Told of a block's children as soon as the block is loaded, before any of them is loaded (a store can check
   * which of them it holds in one lookup instead of one per child).
   */
  onChildren?(children: CID[], signal: AbortSignal): void
}

export const DEFAULT_WALK_CONCURRENCY = 32

export interface ParallelWalker extends GraphWalker {
  /**
   * Walks from several blocks at once (the parts of a DAG found missing locally), each at its depth in the DAG;
   * `options.depth` is the DAG's maximum depth.
   */
  walkFrom<T = any>(starts: Array<{ cid: CID, depth: number }>, options?: WalkOptions<T>): AsyncGenerator<GraphNode<T>>
}

interface Job { cid: CID, depth: number, path: CID[] }
type Outcome = { id: number, node?: GraphNode<any>, error?: undefined } | { id: number, error: Error }

/**
 * Yields every block of the DAG under `cid` down to `options.depth` (Infinity by default), in completion order.
 * Interior nodes reached twice are visited once; raw leaves are not remembered (keeping memory flat for huge
 * DAGs) and may be yielded again when the DAG links them twice, which Helia's pin counting tolerates.
 */
export function parallelWalker (init: ParallelWalkerInit): ParallelWalker {
  const concurrency = init.concurrency ?? DEFAULT_WALK_CONCURRENCY
  return {
    async * walk<T = any> (root: CID, options: WalkOptions<T> = {}): AsyncGenerator<GraphNode<T>> {
      yield * this.walkFrom([{ cid: root, depth: 0 }], options)
    },

    async * walkFrom<T = any> (starts: Array<{ cid: CID, depth: number }>, options: WalkOptions<T> = {}): AsyncGenerator<GraphNode<T>> {
      const maxDepth = options.depth ?? Infinity
      const controller = new AbortController()
      const signal = options.signal != null ? AbortSignal.any([controller.signal, options.signal]) : controller.signal
      // every load in flight listens to it
      setMaxListeners(Infinity, signal)
      // a stack: depth-first keeps the frontier (and memory) proportional to depth x fan-out
      const pending: Job[] = starts.map(s => ({ cid: s.cid, depth: s.depth, path: [s.cid] })).reverse()
      const seen = new Set<string>()
      const inflight = new Map<number, Promise<Outcome>>()
      let nextId = 0

      const run = async (id: number, job: Job): Promise<Outcome> => {
        try {
          const bytes = await init.load(job.cid, { signal, depth: job.depth })
          if (bytes === undefined) return { id }
          const block = createUnsafe({ cid: job.cid, bytes, codec: await init.getCodec(job.cid.code) })
          return { id, node: { block, depth: job.depth, path: job.path } }
        } catch (err) {
          return { id, error: err as Error }
        }
      }

      try {
        while (pending.length > 0 || inflight.size > 0) {
          while (pending.length > 0 && inflight.size < concurrency) {
            const job = pending.pop() as Job
            const id = nextId++
            inflight.set(id, run(id, job))
          }
          const outcome = await Promise.race(inflight.values())
          inflight.delete(outcome.id)
          if (outcome.error != null) {
            options.signal?.throwIfAborted()
            throw outcome.error
          }
          const node = outcome.node
          if (node == null) continue
          if (node.depth < maxDepth) {
            const children: Job[] = []
            for (const [, child] of node.block.links()) {
              if (options.includeChild?.(child, node.block) === false) {
                continue
              }
              if (child.code !== raw.code) {
                const key = base64.encode(child.multihash.bytes)
                if (seen.has(key)) {
                  continue
                }
                seen.add(key)
              }
              children.push({ cid: child, depth: node.depth + 1, path: [...node.path, child] })
            }
            if (children.length > 0) init.onChildren?.(children.map(c => c.cid), signal)
            // reversed onto the stack so the first link is loaded first
            for (let i = children.length - 1; i >= 0; i--) {
              pending.push(children[i])
            }
          }
          yield node
        }
      } finally {
        // stop loads still running when the consumer stops early or a load failed
        controller.abort()
        await Promise.allSettled(inflight.values())
      }
    }
  }
}
