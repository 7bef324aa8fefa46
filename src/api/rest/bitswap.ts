// cairn's bitswap route (not in IPFS Cluster; Kubo's `ipfs bitswap stat` counters), on the peer the API belongs to:
//   GET /ipfs/bitswap/stat  {blocks_received, data_received, blocks_sent, data_sent} since the peer started
// 404 when the API has no IPFS node behind it or the node's traffic is not counted.
import { NotFoundError } from '../../errors.js'
import { sendJson } from '../common.js'
import type { BitswapTraffic } from '../../ipfs/index.js'
import type { Express } from 'express'

export interface BitswapStat {
  blocks_received: number
  data_received: number
  blocks_sent: number
  data_sent: number
}

export function registerBitswapRoutes (app: Express, traffic: (() => BitswapTraffic | undefined) | undefined): void {
  app.get('/ipfs/bitswap/stat', (_req, res) => {
    const t = traffic?.()
    if (t == null) throw new NotFoundError('this peer does not count its bitswap traffic')
    const stat: BitswapStat = { blocks_received: t.blocksIn, data_received: t.bytesIn, blocks_sent: t.blocksOut, data_sent: t.bytesOut }
    sendJson(res, 200, stat)
  })
}
