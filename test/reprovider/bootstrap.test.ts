// What a peer says at start about its DHT bootstrap peers: an empty dht.bootstrap is reported naming the key, and
// a bootstrap address that cannot be dialled (a /dnsaddr that does not resolve, as offline) is a warning, not a
// crash. Real peers on 127.0.0.1; nothing here dials the public bootstrap list.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { after, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { initPeer, loadConfig } from '../../src/config/index.js'
import { createLogger } from '../../src/logger.js'
import { createPeer, type CairnPeer } from '../../src/peer.js'
import { bootstrapNotice } from '../../src/reprovider/index.js'
import { freePorts, tempDir, waitFor } from '../util.js'

const PEER_A = '12D3KooWHFrmLWTTDD4NodngtRMEVYgxrsDMp4F9wUtShFzp7sBq'
const PEER_B = '12D3KooWB3jiddYCxhjjS8awH77o3zCK8rwz6GTiL9yYCee4mtG6'

describe('DHT bootstrap notice', () => {
  const notice = (profile: 'public' | 'lan', dht: string[], cluster: string[], self = PEER_A): string | undefined =>
    bootstrapNotice({ profile, dhtBootstrap: dht, clusterBootstrap: cluster, self })

  it('names dht.bootstrap when the peer knows no DHT peer, under either profile', () => {
    for (const profile of ['public', 'lan'] as const) {
      const line = notice(profile, [], [])
      assert.match(line ?? '', /^dht\.bootstrap is empty \(and so is bootstrap\): this peer knows no DHT peer/, profile)
    }
    assert.match(notice('public', [], []) ?? '', /remove dht\.bootstrap from the cluster config to use the IPFS public bootstrap peers/)
    // itself in the lists is no DHT peer to start from
    assert.match(notice('lan', [`/ip4/127.0.0.1/tcp/1/p2p/${PEER_A}`], [`/ip4/127.0.0.1/tcp/1/p2p/${PEER_A}`]) ?? '', /knows no DHT peer/)
  })

  it('says nothing when dht.bootstrap names another peer, or a lan cluster has its own peers', () => {
    assert.equal(notice('public', [`/dnsaddr/bootstrap.libp2p.io/p2p/${PEER_B}`], []), undefined)
    assert.equal(notice('lan', [], [`/ip4/127.0.0.1/tcp/1/p2p/${PEER_B}`]), undefined)
    // public with an emptied list: only the cluster's peers lead to the DHT
    assert.match(notice('public', [], [`/ip4/127.0.0.1/tcp/1/p2p/${PEER_B}`]) ?? '', /^dht\.bootstrap is empty: this peer reaches the public DHT only through the cluster's bootstrap peers/)
  })
})

describe('a peer starting with its DHT bootstrap list', { timeout: 120_000 }, () => {
  const peers: CairnPeer[] = []
  const dirs: Array<{ cleanup: () => Promise<void> }> = []
  after(async () => {
    for (const p of peers) await p.stop()
    for (const d of dirs) await d.cleanup()
  })

  /** A one-peer cluster on the public profile with this dht.bootstrap; resolves with the peer and its warn+ log. */
  async function start (bootstrap: string[]): Promise<{ peer: CairnPeer, lines: () => string[] }> {
    const root = await tempDir('cairn-bootstrap-')
    dirs.push(root)
    const [swarm, rest] = await freePorts(2)
    const { path } = await initPeer(join(root.path, 'p'), {
      env: {},
      cluster: { name: 'boot', dht: { profile: 'public', protocol: '/cairn-boot/kad/1.0.0', bootstrap } },
      swarm_listen: [`/ip4/127.0.0.1/tcp/${swarm}`],
      rest_listen: `127.0.0.1:${rest}`,
      pinsvc_listen: '127.0.0.1:0',
      gateway_listen: '127.0.0.1:0',
      metrics_listen: '127.0.0.1:0'
    })
    const config = await loadConfig(path, { env: {} })
    config.peer.disk.reserve_bytes = 0
    assert.deepEqual(config.cluster.dht.bootstrap, bootstrap, 'the explicit list is kept as given')
    const out: string[] = []
    const destination = new Writable({ write (chunk, _enc, done) { out.push(...String(chunk).trim().split('\n')); done() } })
    const peer = createPeer({ config, logger: createLogger({ level: 'warn', peer: 'p', destination }) })
    await peer.start()
    peers.push(peer)
    return { peer, lines: () => out.map(l => (JSON.parse(l) as { msg: string }).msg) }
  }

  it('reports an empty dht.bootstrap at start (as after `ipfs bootstrap rm --all`)', async () => {
    const { lines } = await start([])
    await waitFor(() => lines().some(l => l.startsWith('dht.bootstrap is empty')), { timeoutMs: 5000, message: 'the start-up notice', describe: () => lines().join('\n') })
    const line = lines().find(l => l.startsWith('dht.bootstrap is empty'))
    assert.match(line!, /this peer knows no DHT peer, so the CIDs it holds are not findable through the DHT/)
  })

  it('starts when a /dnsaddr bootstrap does not resolve, and warns naming dht.bootstrap', async () => {
    const id = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    // .invalid never resolves (RFC 2606): what every /dnsaddr is to a peer without the internet
    const addr = `/dnsaddr/bootstrap.invalid/p2p/${id}`
    const { peer, lines } = await start([addr])
    assert.ok(!lines().some(l => l.startsWith('dht.bootstrap is empty')), 'a non-empty list is no empty list')
    await waitFor(() => lines().some(l => l.includes('(dht.bootstrap)')), { timeoutMs: 30_000, message: 'the dial warning', describe: () => lines().join('\n') })
    const line = lines().find(l => l.includes('(dht.bootstrap)'))!
    assert.match(line, /^could not reach any of the 1 DHT bootstrap peers \(dht\.bootstrap\), e\.g\. \/dnsaddr\/bootstrap\.invalid\/p2p\//)
    // still up, its reprovider running
    assert.equal(peer.reprovider.status().strategy, 'pinned')
  })
})
