// Child process of startDhtProcess (./dht-network.ts): a loopback DHT of plain libp2p nodes and an outside
// node, driven over IPC. `npm run bench -- reprovide --dht process` puts them here so that the 20 DHT nodes and
// the lookups of the outside node run on their own core, as they would on other machines, instead of sharing
// the benchmarked peer's thread.
import { CID } from 'multiformats/cid'
import { createDhtNetwork, createFinder, type DhtNetwork, type DhtProcessReply, type DhtProcessRequest, type Finder } from './dht-network.js'

let net: DhtNetwork | undefined
let finder: Finder | undefined
const lookups = new Map<number, AbortController>()

function reply (msg: DhtProcessReply): void {
  process.send?.(msg)
}

async function handle (msg: DhtProcessRequest): Promise<void> {
  switch (msg.op) {
    case 'start': {
      try {
        net = await createDhtNetwork(msg.nodes, msg.init)
        finder = await createFinder(msg.init.protocol, net.addr(msg.finderBootstrap))
        reply({ op: 'ready', addrs: net.nodes.map((_, i) => net!.addr(i)) })
      } catch (err) {
        reply({ op: 'failed', message: (err as Error).stack ?? String(err) })
      }
      return
    }
    case 'find': {
      const controller = new AbortController()
      lookups.set(msg.id, controller)
      const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(msg.timeoutMs)])
      let at: number | undefined
      try {
        at = await finder!.findProvider(CID.parse(msg.cid), msg.provider, { signal })
      } catch {}
      lookups.delete(msg.id)
      reply({ op: 'found', id: msg.id, at: at ?? null })
      return
    }
    case 'cancel':
      lookups.get(msg.id)?.abort()
      return
    case 'cpu':
      reply({ op: 'cpu', id: msg.id, usage: process.cpuUsage() })
      return
    case 'stop':
      for (const c of lookups.values()) c.abort()
      await finder?.stop()
      await net?.stop()
      process.disconnect?.()
      process.exit(0)
  }
}

process.on('message', (msg: DhtProcessRequest) => {
  handle(msg).catch(err => { reply({ op: 'failed', message: (err as Error).stack ?? String(err) }) })
})
// the parent went away without saying stop
process.on('disconnect', () => { process.exit(0) })
