// Issue 17 item 6: connected peers that are not cluster peers. A whole status (statusAll) is answered to cluster
// members only, and a stranger is identified again a few times after it connects, not every 5 s for ever (on the
// public DHT most connections are strangers).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { noise } from '@chainsafe/libp2p-noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { createLibp2p, type Libp2p } from 'libp2p'
import { createRpc, type Rpc } from '../../src/rpc/index.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { quietLogger, sleep, waitFor } from '../util.js'

const IDENTIFY = '/ipfs/id/1.0.0'

describe('strangers connected to a cluster peer', () => {
  let tc: TestCluster
  let stranger: Libp2p
  let rpc: Rpc
  let identifies = 0
  before(async () => {
    tc = await createTestCluster(2, { name: 'strangers', strangerRetryMs: 100 })
    await waitFor(() => tc.peer(0).monitor.peerset().length === 2, { timeoutMs: 30_000, message: 'both peers in peer 0\'s peerset' })
    // no identify service of its own: it counts (and refuses) every identify it is asked for
    stranger = await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    await stranger.handle(IDENTIFY, (stream) => { identifies++; stream.abort(new Error('not telling')) })
    rpc = createRpc({ cluster: 'strangers', methods: {}, isTrusted: () => false }, { libp2p: stranger, logger: quietLogger('stranger') })
    await rpc.start()
  })
  after(async () => {
    await rpc?.stop()
    await stranger?.stop()
    await tc?.close()
  })

  it('is identified again five times after it connects, then no more', async () => {
    await stranger.dial(tc.peer(0).ipfs.libp2p.getMultiaddrs()[0])
    // libp2p's own identify on connect, then the retries 0, 100, 200, 400 and 800 ms apart
    await waitFor(() => identifies >= 6, { timeoutMs: 10_000, message: 'the stranger asked again' })
    // proves a NOT: the retries (1.5 s in all) are over, and they were no more than five
    await sleep(2000)
    const settled = identifies
    assert.ok(settled <= 7, `${settled} identifies`)
    // proves a NOT: no identify while the connection lasts
    await sleep(1500)
    assert.equal(identifies, settled, 'no more identifies while the connection lasts')
  })

  it('gets no whole status over RPC, which a member of the cluster gets', async () => {
    const peer0 = tc.peer(0).id
    await assert.rejects(async () => { for await (const _ of rpc.call(peer0, 'statusAll')) void _ }, /not a member of the cluster/)
    // peer 1's global status asks peer 0 for its whole status over the same RPC
    const statuses = []
    for await (const s of tc.peer(1).cluster.statusAll()) statuses.push(s)
    assert.ok(statuses.every(s => s.peer_map[peer0]?.status !== 'cluster_error'), 'peer 1 is answered')
  })
})
