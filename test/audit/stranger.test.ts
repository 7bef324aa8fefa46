// Issue 17 item 1: a stranger that reaches the swarm port and publishes `ping` and a huge `freespace` on the
// metrics topic must not be trusted with copies. Real cluster peers (2 trusted + 1 honest follower) and bare
// libp2p strangers: one that only publishes metrics, one that also answers audits with made-up bytes.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Libp2p } from 'libp2p'
import { CID } from 'multiformats/cid'
import { auditProtocol } from '../../src/audit/index.js'
import { decodeAuditRequest, encodeAuditAnswer } from '../../src/audit/protocol.js'
import { createClient } from '../../src/client/index.js'
import type { CairnServices } from '../../src/libp2p/index.js'
import { metricsTopic } from '../../src/monitor/index.js'
import { encodeMetricsBody, encodeMetricsMessage, metricsSigningPayload } from '../../src/monitor/protocol.js'
import { createRpc } from '../../src/rpc/index.js'
import { readOneFrame, sendFrame } from '../../src/utils/stream.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { loopbackHost, quietLogger, TEST_DHT, waitFor } from '../util.js'
import type { IDInfo, Pin } from '../../src/types/wire.js'
import type { Metric } from '../../src/monitor/index.js'

/** Short rounds; a grace long enough for the follower to fetch 1 KiB files on a loaded machine; no cool-down end in the test. */
const AUDIT = { interval_ms: 1000, grace_ms: 4000, timeout_ms: 5000, pins_per_round: 2, proven_after: 3, probation_pins: 16, cooldown_ms: 600_000 }
const HUGE = 10 ** 15

interface Stranger { id: string, libp2p: Libp2p<CairnServices>, stop: () => Promise<void> }

/**
 * A bare libp2p node that publishes correctly signed `ping` and `freespace` metrics of its own identity every
 * 500 ms and stores nothing. `forge`: it also answers audits, with random bytes for every block asked.
 */
async function stranger (cluster: string, tc: TestCluster, opts: { forge?: boolean } = {}): Promise<Stranger> {
  const key = await generateKeyPair('Ed25519')
  const id = peerIdFromPrivateKey(key).toString()
  const libp2p = await loopbackHost({ privateKey: key, logger: quietLogger('stranger'), dht: { ...TEST_DHT, protocol: `/cairn-${cluster}/kad/1.0.0` } })
  if (opts.forge === true) {
    await libp2p.handle(auditProtocol(cluster), async stream => {
      try {
        for (const _cid of decodeAuditRequest(await readOneFrame(stream))) await sendFrame(stream, encodeAuditAnswer({ status: 'held', bytes: randomBytes(256) }))
        await stream.close()
      } catch (err) { stream.abort(err as Error) }
    })
  }
  const topic = metricsTopic(cluster)
  libp2p.services.pubsub.subscribe(topic)
  const publish = async (): Promise<void> => {
    const expire = (Date.now() + 5000) * 1e6
    const metric = (name: string, value: string, weight: number): Metric => ({ name, peer: id, value, expire, valid: true, weight, partitionable: false, received_at: 0 })
    const body = encodeMetricsBody({
      cluster,
      peer: id,
      metrics: [
        metric('ping', JSON.stringify({ peer_name: 'free-storage', ipfs_id: id, ipfs_addresses: libp2p.getMultiaddrs().map(String) }), 0),
        metric('freespace', String(HUGE), HUGE)
      ]
    })
    await libp2p.services.pubsub.publish(topic, encodeMetricsMessage(body, await key.sign(metricsSigningPayload(body)))).catch(() => {})
  }
  const timer = setInterval(() => { void publish() }, 500)
  for (const [i] of tc.peers.entries()) await libp2p.dial(tc.peer(i).ipfs.libp2p.getMultiaddrs()[0])
  return { id, libp2p, stop: async () => { clearInterval(timer); await libp2p.stop() } }
}

/** Ten small UnixFS files (4 leaves under a dag-pb root each) held by peer 0 only. */
async function contentOnPeer0 (tc: TestCluster, n: number, tag: string): Promise<string[]> {
  const cids: string[] = []
  for (let i = 0; i < n; i++) {
    const bytes = randomBytes(1024)
    const entries = (async function * () { yield { path: `${tag}-${i}.bin`, content: (async function * () { yield bytes })() } })()
    let root = ''
    for await (const out of tc.peer(0).ipfs.addEntries(entries, { chunk_size: 256, raw_leaves: true, cid_version: 1 })) if (out.cid !== '') root = out.cid
    cids.push(root)
  }
  return cids
}

async function trustBy (tc: TestCluster, i: number): Promise<Map<string, IDInfo>> {
  return new Map((await createClient({ api: tc.url(i) }).peers()).map(p => [p.id, p]))
}

const counted = (pin: Pin, trust: Map<string, IDInfo>): string[] =>
  pin.allocations.filter(p => trust.get(p)?.trust === 'trusted' || trust.get(p)?.trust === 'proven')

describe('strangers on an open cluster', { timeout: 180_000 }, () => {
  let tc: TestCluster
  const strangers: Stranger[] = []
  before(async () => {
    tc = await createTestCluster(3, { untrusted: [2], name: 'trust', audit: AUDIT })
    await waitFor(async () => (await Promise.all([0, 1, 2].map(async i => (await tc.peer(i).cluster.peerset()).length))).every(n => n === 3),
      { timeoutMs: 30_000, message: 'the 3 peers see each other' })
  })
  after(async () => {
    for (const s of strangers) await s.stop()
    await tc?.close()
  })

  it('a stranger\'s metrics earn no copy that counts; strangers fail their audits and lose every pin; the honest follower is proven', async () => {
    strangers.push(await stranger('trust', tc), await stranger('trust', tc, { forge: true }))
    const [silent, liar] = strangers.map(s => s.id)
    const follower = tc.peer(2).id
    const trusted = [tc.peer(0).id, tc.peer(1).id]
    // what made 9 of 10 pins land on a stranger before: it is in the peerset, with the most free space
    await waitFor(() => [0, 1].every(i => tc.peer(i).monitor.peerset().includes(silent) && tc.peer(i).monitor.peerset().includes(liar)),
      { timeoutMs: 30_000, message: 'the strangers are in the trusted peers\' peerset' })
    const everyone = [...trusted, follower, silent, liar]
    await waitFor(() => everyone.every(p => tc.peer(0).monitor.latest('freespace').some(m => m.peer === p)), { timeoutMs: 30_000, message: 'peer 0 has every peer\'s freespace' })

    const client = createClient({ api: tc.url(0) })
    const cids = await contentOnPeer0(tc, 10, 'open')
    const pins: Pin[] = []
    for (const cid of cids) pins.push(await client.pin(cid, { replication_factor_min: 2, replication_factor_max: 2 }))
    let trust = await trustBy(tc, 0)
    for (const pin of pins) {
      assert.ok(counted(pin, trust).length >= 2, `${pin.cid}: allocations ${JSON.stringify(pin.allocations.map(p => trust.get(p)?.trust ?? p))} hold 2 counted copies`)
      assert.deepEqual(counted(pin, trust).sort(), [...trusted].sort(), 'the counted copies are on the trusted peers; probation peers only get extras')
    }
    const tried = pins.filter(p => p.allocations.some(a => a === silent || a === liar)).length
    assert.ok(tried > 0, 'strangers got extra (trial) copies, which is how they get audited')

    // an audit interval or two after the grace: both strangers failed, and no pin is allocated to them
    const onStranger = (i: number): number => [...tc.peer(i).pinset.list()].filter(p => p.allocations.includes(silent) || p.allocations.includes(liar)).length
    await waitFor(async () => {
      trust = await trustBy(tc, 0)
      return trust.get(silent)?.trust === 'failed' && trust.get(liar)?.trust === 'failed' && onStranger(0) === 0 && onStranger(1) === 0
    }, { timeoutMs: 60_000, intervalMs: 250, message: 'both strangers failed and hold no allocation' }).catch(err => {
      throw new Error(`${(err as Error).message}: silent ${JSON.stringify(trust.get(silent))}, liar ${JSON.stringify(trust.get(liar))}, pins on strangers ${onStranger(0)}/${onStranger(1)}`)
    })
    assert.match(trust.get(silent)!.audits!.error, /cannot open an audit stream|no full answer/)
    assert.match(trust.get(liar)!.audits!.error, /the bytes sent do not match the CID/)

    // the honest follower holds its trial copies, passes its audits and is proven: its copies count
    await waitFor(async () => {
      trust = await trustBy(tc, 0)
      return trust.get(follower)?.trust === 'proven'
    }, { timeoutMs: 60_000, intervalMs: 250, message: 'the follower is proven' }).catch(err => {
      throw new Error(`${(err as Error).message}: follower ${JSON.stringify(trust.get(follower))}`)
    })
    assert.ok(trust.get(follower)!.audits!.passed >= 3)
    for (const pin of tc.peer(0).pinset.list()) {
      if (!pin.allocations.includes(follower)) continue
      assert.equal(await tc.peer(2).ipfs.isPinned(CID.parse(pin.cid)), true, `the follower holds ${pin.cid}, allocated to it`)
    }
    for (const cid of cids) {
      const pin = tc.peer(0).pinset.get(cid)!
      assert.ok(counted(pin, trust).length >= 2, `${cid} still has 2 counted copies`)
      assert.ok(!pin.allocations.includes(silent) && !pin.allocations.includes(liar), `${cid} is on no stranger`)
    }

    // a replication-3 pin now counts the proven follower, and still never a stranger
    const [more] = await contentOnPeer0(tc, 1, 'more')
    const three = await client.pin(more, { replication_factor_min: 3, replication_factor_max: 3 })
    assert.deepEqual([...three.allocations].sort(), [...trusted, follower].sort())

    // what operators see: alerts, metrics
    const alerts = await (await fetch(`${tc.url(0)}/health/alerts`)).json() as Array<{ name: string, peer: string, value: string }>
    for (const s of [silent, liar]) assert.ok(alerts.some(a => a.name === 'audit' && a.peer === s), `an audit alert for ${s}`)
    const scrape = async (i: number): Promise<string> => await (await fetch(`http://127.0.0.1:${tc.peer(i).metricsAddress().port}/metrics`)).text()
    const value = (metrics: string, line: string): number => Number(new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN)
    const [m0, m1] = [await scrape(0), await scrape(1)]
    // each stranger failed an audit of one trusted peer at least (which told the other)
    assert.ok(value(m0, 'cairn_audit_total{result="fail"}') + value(m1, 'cairn_audit_total{result="fail"}') >= 2, `${m0}\n${m1}`)
    assert.ok(value(m0, 'cairn_audit_total{result="pass"}') >= 3, m0)
    assert.equal(value(m0, 'cairn_audit_peers{state="failed"}'), 2)
    assert.equal(value(m0, 'cairn_audit_peers{state="proven"}'), 1)
    assert.equal(value(m0, 'cairn_pins_under_replicated'), 0)
  })

  it('a restarted trusted peer remembers who failed and who is proven', async () => {
    const [silent, liar] = strangers.map(s => s.id)
    await tc.stop(0)
    await tc.start(0)
    const auditor = tc.peer(0).auditor
    assert.equal(auditor.trustOf(silent), 'failed')
    assert.equal(auditor.trustOf(liar), 'failed')
    assert.equal(auditor.trustOf(tc.peer(2).id), 'proven')
  })
})

describe('strangers on a closed cluster (followers allow-list)', { timeout: 120_000 }, () => {
  let tc: TestCluster
  let s: Stranger | undefined
  before(async () => {
    tc = await createTestCluster(3, { untrusted: [2], name: 'closed', cluster: ids => ({ followers: [ids[2]] }), audit: AUDIT })
    await waitFor(async () => (await Promise.all([0, 1, 2].map(async i => (await tc.peer(i).cluster.peerset()).length))).every(n => n === 3),
      { timeoutMs: 30_000, message: 'the 3 peers see each other' })
  })
  after(async () => {
    await s?.stop()
    await tc?.close()
  })

  it('a stranger never enters the peerset, is refused over RPC and gets no pin; the listed follower counts at once', async () => {
    s = await stranger('closed', tc)
    const outsider = s.id
    // its metrics arrive, and are dropped as from a non-member
    await waitFor(() => [0, 1].every(i => (tc.peer(i).monitor.rejected().member ?? 0) >= 2), { timeoutMs: 30_000, message: 'the trusted peers drop the stranger\'s metrics' })
    for (const i of [0, 1, 2]) {
      assert.ok(!tc.peer(i).monitor.peerset().includes(s.id), `peer ${i}'s monitor leaves the stranger out`)
      assert.ok(!(await tc.peer(i).cluster.peerset()).includes(s.id), `peer ${i}'s peerset leaves the stranger out`)
    }
    // the cluster's RPC answers members only
    const rpc = createRpc({ cluster: 'closed', methods: {}, isTrusted: () => false }, { libp2p: s.libp2p, logger: quietLogger('stranger') })
    await assert.rejects(rpc.callOne(tc.peer(0).id, 'id'), /not a member of this cluster/)

    const trust = await trustBy(tc, 0)
    assert.equal(trust.get(tc.peer(2).id)?.trust, 'proven', 'a listed follower was admitted by the config')
    assert.equal(trust.has(s.id), false)
    const client = createClient({ api: tc.url(0) })
    for (const cid of await contentOnPeer0(tc, 10, 'closed')) {
      const pin = await client.pin(cid, { replication_factor_min: 2, replication_factor_max: 2 })
      assert.equal(pin.allocations.length, 2)
      assert.ok(!pin.allocations.includes(s.id), `${cid} is not allocated to the stranger`)
    }

    // the maintainers open the cluster (empty the allow-list in the shared config): the stranger is let in, on probation
    const cfg = JSON.parse(await readFile(tc.clusterFile, 'utf8'))
    await writeFile(tc.clusterFile, JSON.stringify({ ...cfg, followers: [] }))
    await waitFor(() => tc.peer(0).monitor.peerset().includes(outsider), { timeoutMs: 20_000, message: 'the stranger enters the open cluster\'s peerset' })
    assert.equal((await trustBy(tc, 0)).get(outsider)?.trust, 'probation')
    assert.equal((await trustBy(tc, 0)).get(tc.peer(2).id)?.trust, 'probation', 'in an open cluster the follower earns its trust like anyone')
  })
})
