// The built-in informers (IPFS Cluster's ping, disk/freespace, pinqueue and tags). Each is handed the one
// capability it reads (addresses, bytes used, queue length), never a whole component.
import type { Informer, InformerOptions, InformerResult } from './index.js'

const DEFAULT_TTL_MS = 30_000

export interface PingInformerInit {
  peername: string
  /** The IPFS node's addresses (the embedded Helia shares the libp2p host). */
  addresses: () => string[]
  /** The IPFS node's peer id (default: the monitor's peer id, the same host). */
  ipfsId?: string
  /** Default 30 s (IPFS Cluster: 2 x monitor_ping_interval). */
  ttlMs?: number
}

/** Liveness; value = JSON {"peer_name","ipfs_id","ipfs_addresses"}, weight 0. */
export function pingInformer (init: PingInformerInit): Informer {
  return {
    name: 'ping',
    ttlMs: init.ttlMs ?? DEFAULT_TTL_MS,
    async get (options?: InformerOptions): Promise<InformerResult> {
      const value = JSON.stringify({ peer_name: init.peername, ipfs_id: init.ipfsId ?? options?.peer ?? '', ipfs_addresses: init.addresses() })
      return { value, weight: 0 }
    }
  }
}

export interface FreespaceInformerInit {
  /** Bytes this peer offers; 0: whatever the disk has free. */
  storageMax: number
  /** Bytes the repo holds now. */
  used: (options?: InformerOptions) => Promise<number>
  /** Bytes free on the repo's disk now. */
  diskFree: () => Promise<number>
  /** Default 30 s. */
  ttlMs?: number
}

/** weight = value = storageMax minus what the repo holds, never more than the disk has free (IPFS Cluster's disk informer). */
export function freespaceInformer (init: FreespaceInformerInit): Informer {
  return {
    name: 'freespace',
    ttlMs: init.ttlMs ?? DEFAULT_TTL_MS,
    async get (options?: InformerOptions): Promise<InformerResult> {
      const max = init.storageMax
      const [used, disk] = await Promise.all([init.used(options), init.diskFree()])
      const free = Math.max(0, Math.floor(max > 0 ? Math.min(max - used, disk) : disk))
      return { value: String(free), weight: free }
    }
  }
}

export interface OfferInformerInit {
  /** Bytes this peer offers; 0: its disk. */
  storageMax: number
  /** Bytes of the repo's disk in all. */
  diskSize: () => Promise<number>
  /** Default 30 s. */
  ttlMs?: number
}

/**
 * cairn's `offer`: weight = value = the bytes this peer offers in all (storage_max, or its disk's size), held or
 * free. With freespace it says what a peer holds; a spread pin's share must fit it (src/allocator/spread.ts), so a
 * peer that lowers its storage_max gives partitions away.
 */
export function offerInformer (init: OfferInformerInit): Informer {
  return {
    name: 'offer',
    ttlMs: init.ttlMs ?? DEFAULT_TTL_MS,
    async get (): Promise<InformerResult> {
      const offer = Math.max(0, Math.floor(init.storageMax > 0 ? init.storageMax : await init.diskSize()))
      return { value: String(offer), weight: offer }
    }
  }
}

export interface PinqueueInformerInit {
  queueLength: () => number
  /** Default 30 s. */
  ttlMs?: number
  /** Queue lengths in one bucket weigh the same (IPFS Cluster's weight_bucket_size; default 1). */
  weightBucketSize?: number
}

/** value = queued, weight = -queued / bucket (a short queue is preferred). */
export function pinqueueInformer (init: PinqueueInformerInit): Informer {
  const bucket = init.weightBucketSize ?? 1
  return {
    name: 'pinqueue',
    ttlMs: init.ttlMs ?? DEFAULT_TTL_MS,
    async get (): Promise<InformerResult> {
      const queued = init.queueLength()
      // `|| 0` turns -0 into 0
      return { value: String(queued), weight: -Math.floor(queued / bucket) || 0 }
    }
  }
}

/** One informer per tag, named `tag:<k>`, value = the tag, partitionable, weight 0. */
export function tagInformers (tags: Record<string, string>, ttlMs = DEFAULT_TTL_MS): Informer[] {
  return Object.entries(tags).map(([k, v]) => ({
    name: `tag:${k}`,
    ttlMs,
    partitionable: true,
    async get (): Promise<InformerResult> { return { value: v, weight: 0 } }
  }))
}
