// Bitswap traffic counters for /metrics, read from @helia/bitswap 4 without changing how it runs.
//
// @helia/bitswap reports sent blocks to libp2p's `Metrics` (helia_bitswap_sent_*), and never calls its
// received-block stats; cairn's libp2p has no Metrics service. So: received blocks are counted from the
// network's public 'bitswap:message' event, and sent ones by filling the network's (empty) sent-counter slots.
// Both sit behind the broker's private fields: when a new @helia/bitswap changes that shape, attach() returns
// undefined and the bitswap series are left out, rather than failing the peer.

export interface BitswapTraffic {
  readonly bytesIn: number
  readonly blocksIn: number
  readonly bytesOut: number
  readonly blocksOut: number
  detach(): void
}

interface CounterLike { increment(value?: number): void }

interface NetworkLike {
  addEventListener(type: 'bitswap:message', listener: (evt: CustomEvent<{ message: { blocks?: Array<{ data?: Uint8Array }> } }>) => void): void
  removeEventListener(type: 'bitswap:message', listener: (evt: CustomEvent<any>) => void): void
  metrics?: { dataSent?: CounterLike, blocksSent?: CounterLike }
}

/** The Helia node's bitswap network, when it has the shape this code was written against. */
function bitswapNetwork (helia: unknown): NetworkLike | undefined {
  const brokers = (helia as { blockBrokers?: unknown }).blockBrokers
  if (!Array.isArray(brokers)) return undefined
  const broker = brokers.find(b => (b as { name?: unknown })?.name === 'bitswap') as { bitswap?: { network?: unknown } } | undefined
  const network = broker?.bitswap?.network as NetworkLike | undefined
  if (typeof network?.addEventListener !== 'function' || typeof network.metrics !== 'object' || network.metrics == null) return undefined
  return network
}

/** Starts counting the bitswap traffic of a started Helia node; undefined when its bitswap is not recognised. */
export function attachBitswapTraffic (helia: unknown): BitswapTraffic | undefined {
  const network = bitswapNetwork(helia)
  if (network == null) return undefined
  const slots = network.metrics!
  const traffic = { bytesIn: 0, blocksIn: 0, bytesOut: 0, blocksOut: 0 }

  const onMessage = (evt: CustomEvent<{ message: { blocks?: Array<{ data?: Uint8Array }> } }>): void => {
    for (const block of evt.detail?.message?.blocks ?? []) {
      traffic.blocksIn++
      traffic.bytesIn += block.data?.byteLength ?? 0
    }
  }
  // keep whatever counter was there (a libp2p Metrics service) working
  const previous = { dataSent: slots.dataSent, blocksSent: slots.blocksSent }
  const dataSent: CounterLike = { increment (n = 1) { traffic.bytesOut += n; previous.dataSent?.increment(n) } }
  const blocksSent: CounterLike = { increment (n = 1) { traffic.blocksOut += n; previous.blocksSent?.increment(n) } }
  network.addEventListener('bitswap:message', onMessage)
  slots.dataSent = dataSent
  slots.blocksSent = blocksSent

  return {
    get bytesIn () { return traffic.bytesIn },
    get blocksIn () { return traffic.blocksIn },
    get bytesOut () { return traffic.bytesOut },
    get blocksOut () { return traffic.blocksOut },
    detach () {
      network.removeEventListener('bitswap:message', onMessage)
      if (slots.dataSent === dataSent) slots.dataSent = previous.dataSent
      if (slots.blocksSent === blocksSent) slots.blocksSent = previous.blocksSent
    }
  }
}
