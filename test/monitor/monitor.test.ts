// The monitor over real libp2p nodes on 127.0.0.1: metrics gossip, the peerset, expiry alerts, forged
// messages, the cluster secret. Short TTLs (1-2 s) and check intervals (200 ms) keep it quick.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { Libp2p } from 'libp2p'
import type { CairnServices } from '../../src/libp2p/index.js'
import {
  createMonitor, freespaceInformer, metricsTopic, pingInformer, pinqueueInformer, tagInformers,
  type Alert, type Informer, type Metric, type Monitor, type MonitorInit
} from '../../src/monitor/index.js'
import { encodeMetricsBody, encodeMetricsMessage, metricsSigningPayload } from '../../src/monitor/protocol.js'
import { clusterSecret } from '../../src/secret.js'
import { loopbackHost, quietLogger, waitFor } from '../util.js'
import type { PrivateKey } from '@libp2p/interface'

const CLUSTER = 'mon'
const TTL = 1000
/** The expiry tests: a busy machine can stall a test process for a few hundred ms, which must not look like a lost peer. */
const PEER_TTL = 2000
const CHECK = 200
const STORAGE_MAX = 10_000

interface Node {
  name: string
  id: string
  key: PrivateKey
  libp2p: Libp2p<CairnServices>
  monitor: Monitor
  used: number
  queued: number
  /** A fresh monitor on the same host and options (a restart). */
  newMonitor: () => Monitor
  init: MonitorInit
}

function harness (): { node: (name: string, opts?: NodeOptions) => Promise<Node> } {
  const cleanups: Array<() => Promise<void>> = []
  after(async () => { for (const c of cleanups.reverse()) await c() })

  async function node (name: string, opts: NodeOptions = {}): Promise<Node> {
    const key = await generateKeyPair('Ed25519')
    const id = peerIdFromPrivateKey(key).toString()
    const logger = quietLogger(name)
    const libp2p = await loopbackHost({ privateKey: key, logger })
    const n = { name, id, key, libp2p, used: 1000, queued: 0 } as Node
    const ttl = opts.ttlMs ?? TTL
    n.init = {
      cluster: opts.cluster ?? CLUSTER,
      peername: name,
      secret: clusterSecret(opts.secret ?? ''),
      isMember: opts.isMember,
      isTrusted: opts.isTrusted,
      maxPeers: opts.maxPeers,
      maxNamesPerPeer: opts.maxNamesPerPeer,
      retainExpiredMs: opts.retainExpiredMs,
      checkIntervalMs: CHECK,
      informers: opts.informers ?? [
        pingInformer({ peername: name, addresses: () => libp2p.getMultiaddrs().map(String), ttlMs: ttl }),
        freespaceInformer({ storageMax: STORAGE_MAX, used: async () => n.used, diskFree: async () => Number.MAX_SAFE_INTEGER, ttlMs: ttl }),
        pinqueueInformer({ queueLength: () => n.queued, ttlMs: ttl }),
        ...tagInformers({ group: `group-${name}` }, ttl)
      ]
    }
    n.newMonitor = () => createMonitor(n.init, { libp2p, privateKey: key, logger })
    n.monitor = n.newMonitor()
    await n.monitor.start()
    cleanups.push(async () => { await n.monitor.stop(); await libp2p.stop() })
    return n
  }
  return { node }
}

interface NodeOptions {
  secret?: string
  cluster?: string
  isMember?: (peerId: string) => boolean
  isTrusted?: (peerId: string) => boolean
  informers?: Informer[]
  /** TTL of the default informers (default TTL). */
  ttlMs?: number
  maxPeers?: number
  maxNamesPerPeer?: number
  retainExpiredMs?: number
}

async function connect (from: Node, to: Node): Promise<void> {
  await from.libp2p.dial(to.libp2p.getMultiaddrs()[0])
}

function metricOf (monitor: Monitor, name: string, peer: string): Metric | undefined {
  return monitor.latest(name).find(m => m.peer === peer)
}

const sorted = (ids: string[]): string[] => [...ids].sort()

describe('monitor: three peers', () => {
  const { node } = harness()
  let a: Node, b: Node, c: Node
  const alertsOnA: Alert[] = []

  it('each peer sees the others\' metrics in IPFS Cluster\'s shape, and the peerset has 3', async () => {
    a = await node('a', { ttlMs: PEER_TTL })
    b = await node('b', { ttlMs: PEER_TTL })
    c = await node('c', { ttlMs: PEER_TTL })
    a.monitor.onAlert(alert => alertsOnA.push(alert))
    b.used = 2500
    b.queued = 7
    await connect(b, a)
    await connect(c, a)
    await connect(c, b)
    const all = sorted([a.id, b.id, c.id])
    for (const n of [a, b, c]) {
      await waitFor(() => n.monitor.peerset().length === 3, { message: `${n.name} sees 3 peers` })
      assert.deepEqual(n.monitor.peerset(), all)
    }
    await waitFor(() => metricOf(a.monitor, 'freespace', b.id)?.weight === STORAGE_MAX - 2500, { message: 'b\'s new freespace reaches a' })
    await waitFor(() => metricOf(a.monitor, 'pinqueue', b.id)?.weight === -7, { message: 'b\'s queue reaches a' })

    const now = Date.now()
    const free = metricOf(a.monitor, 'freespace', b.id)!
    assert.deepEqual(Object.keys(free).sort(), ['expire', 'name', 'partitionable', 'peer', 'received_at', 'valid', 'value', 'weight'])
    assert.equal(free.value, String(STORAGE_MAX - 2500))
    assert.equal(free.valid, true)
    assert.equal(free.partitionable, false)
    // unix nanoseconds: now < expire <= now + TTL (plus a little for scheduling)
    assert.ok(free.expire > now * 1e6 && free.expire <= (now + PEER_TTL + 100) * 1e6, `expire ${free.expire} is not in ns within the TTL`)
    assert.ok(free.received_at > (now - PEER_TTL) * 1e6 && free.received_at <= (now + 10) * 1e6, `received_at ${free.received_at} is not a recent ns time`)
    assert.match(JSON.stringify(free), /"expire":\d{19},/)

    const queue = metricOf(a.monitor, 'pinqueue', b.id)!
    assert.equal(queue.value, '7')

    const tag = metricOf(c.monitor, 'tag:group', a.id)!
    assert.equal(tag.value, 'group-a')
    assert.equal(tag.weight, 0)
    assert.equal(tag.partitionable, true)

    const ping = metricOf(b.monitor, 'ping', c.id)!
    const value = JSON.parse(ping.value) as Record<string, unknown>
    assert.deepEqual(Object.keys(value).sort(), ['ipfs_addresses', 'ipfs_id', 'peer_name'])
    assert.equal(value.peer_name, 'c')
    assert.equal(value.ipfs_id, c.id)
    assert.deepEqual(value.ipfs_addresses, c.libp2p.getMultiaddrs().map(String))
    assert.deepEqual(b.monitor.peerInfo(c.id), { peer_name: 'c', addresses: c.libp2p.getMultiaddrs().map(String) })

    // every peer holds its own metrics too, and knows every name
    assert.equal(metricOf(a.monitor, 'freespace', a.id)?.weight, STORAGE_MAX - 1000)
    assert.deepEqual(a.monitor.names(), ['freespace', 'ping', 'pinqueue', 'tag:group'])
    for (const name of a.monitor.names()) assert.equal(a.monitor.latest(name).length, 3, `a has 3 ${name} metrics`)
    assert.deepEqual(a.monitor.alerts(), [], 'no alert while every peer publishes')
  })

  it('a stopped peer leaves the peerset within ttl + check interval, with exactly one ping alert', async () => {
    await c.monitor.stop()
    const stoppedAt = Date.now()
    await waitFor(() => !a.monitor.peerset().includes(c.id) && !b.monitor.peerset().includes(c.id), { message: 'c leaves the peerset' })
    await waitFor(() => a.monitor.alerts().some(x => x.name === 'ping' && x.peer === c.id), { message: 'a raises a ping alert for c' })
    assert.ok(Date.now() - stoppedAt <= PEER_TTL + CHECK + 500, `took ${Date.now() - stoppedAt} ms`)
    await waitFor(() => b.monitor.alerts().some(x => x.name === 'ping' && x.peer === c.id), { message: 'b raises a ping alert for c' })

    // Let several check intervals pass (b keeps publishing meanwhile): still one alert per expired metric.
    const t0 = Date.now()
    await waitFor(() => (metricOf(a.monitor, 'ping', b.id)?.received_at ?? 0) > (t0 + 5 * CHECK) * 1e6, { message: 'b keeps publishing' })
    const pingAlerts = a.monitor.alerts().filter(x => x.name === 'ping' && x.peer === c.id)
    assert.equal(pingAlerts.length, 1)
    assert.deepEqual(alertsOnA.filter(x => x.name === 'ping' && x.peer === c.id), pingAlerts, 'listeners got the same single alert')
    const alert = pingAlerts[0]
    assert.equal(alert.valid, false)
    assert.ok(alert.expire <= Date.parse(alert.triggered_at) * 1e6, 'the alert comes after the expiry')
    assert.match(alert.triggered_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/)
    // c's other metrics expired too, each alerted once; the live peers raised none
    assert.deepEqual(a.monitor.alerts().filter(x => x.peer === c.id).map(x => x.name).sort(), ['freespace', 'ping', 'pinqueue', 'tag:group'])
    assert.deepEqual(a.monitor.alerts().filter(x => x.peer !== c.id), [])
    assert.deepEqual(a.monitor.latest('freespace').map(m => m.peer), sorted([a.id, b.id]))
    // the lost peer's name stays known (status displays name lost peers)
    assert.equal(a.monitor.peerInfo(c.id)?.peer_name, 'c')
    // and it is listed as lost, since its ping alert, with what it was last seen as
    assert.deepEqual(a.monitor.lost(), [{ peer: c.id, since: alert.triggered_at, peer_name: 'c', addresses: c.libp2p.getMultiaddrs().map(String) }])
  })

  it('a peer that publishes again is back, and its next expiry raises one new alert', async () => {
    c.monitor = c.newMonitor()
    await c.monitor.start()
    await waitFor(() => a.monitor.peerset().includes(c.id), { message: 'c is back in a\'s peerset' })
    assert.equal(a.monitor.alerts().filter(x => x.name === 'ping' && x.peer === c.id).length, 1)
    assert.deepEqual(a.monitor.lost(), [], 'back: no longer lost')
    await c.monitor.stop()
    await waitFor(() => a.monitor.alerts().filter(x => x.name === 'ping' && x.peer === c.id).length === 2, { message: 'a second ping alert for c' })
    assert.equal(a.monitor.alerts()[0].peer, c.id, 'newest first')
    assert.equal(a.monitor.peerset().includes(c.id), false)
    const second = a.monitor.alerts().find(x => x.name === 'ping' && x.peer === c.id)!
    assert.deepEqual(a.monitor.lost().map(l => [l.peer, l.since]), [[c.id, second.triggered_at]], 'lost again, since the new alert')
  })
})

describe('monitor: a lost peer', () => {
  const { node } = harness()

  it('stays lost past the retention of its other metrics, until it is forgotten (peers rm); a live peer is not forgotten', async () => {
    // expired metrics are kept 300 ms here (1 h by default)
    const a = await node('a', { retainExpiredMs: 300 })
    const b = await node('b')
    const only = 'only-c'
    const c = await node('c', {
      informers: [
        pingInformer({ peername: 'c', addresses: () => [], ttlMs: PEER_TTL }),
        { name: only, ttlMs: PEER_TTL, get: async () => ({ value: 'x', weight: 1 }) }
      ]
    })
    await connect(b, a)
    await connect(c, a)
    await waitFor(() => a.monitor.peerset().length === 3 && a.monitor.names().includes(only), { message: 'a sees b and c' })
    await c.monitor.stop()
    await waitFor(() => a.monitor.lost().some(l => l.peer === c.id), { message: 'c is lost' })
    // c's own metric is forgotten once kept 300 ms past its expiry; c is still lost, with its name
    await waitFor(() => !a.monitor.names().includes(only), { timeoutMs: 10_000, message: 'a forgets c\'s other metric' })
    assert.deepEqual(a.monitor.lost().map(l => [l.peer, l.peer_name]), [[c.id, 'c']])
    assert.equal(a.monitor.peerInfo(c.id)?.peer_name, 'c')

    assert.equal(a.monitor.forgetLost(b.id), false, 'b is alive')
    assert.ok(a.monitor.peerset().includes(b.id))
    assert.equal(a.monitor.forgetLost(c.id), true)
    assert.deepEqual(a.monitor.lost(), [])
    assert.equal(a.monitor.peerInfo(c.id), undefined)
    assert.equal(a.monitor.forgetLost(c.id), false, 'already forgotten')
    assert.equal(a.monitor.forgetLost(a.id), false, 'never itself')
  })
})

describe('monitor: a peer that joins', () => {
  const { node } = harness()

  it('is sent the others\' metrics when it subscribes, not at their next round (TTL/2 = 30 s here)', async () => {
    const a = await node('a', { ttlMs: 60_000 })
    const b = await node('b', { ttlMs: 60_000 })
    // both published their first round at start, to nobody
    const t0 = Date.now()
    await connect(b, a)
    await waitFor(() => a.monitor.peerset().length === 2 && b.monitor.peerset().length === 2, { timeoutMs: 5000, message: 'a and b see each other' })
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`)
    // a third peer joining a moment later is welcomed too (one round per 2 s at most, however many subscribe)
    const c = await node('c', { ttlMs: 60_000 })
    await connect(c, a)
    await connect(c, b)
    await waitFor(() => [a, b, c].every(n => n.monitor.peerset().length === 3), { timeoutMs: 8000, message: 'all three see each other' })
  })
})

describe('monitor: forged metrics', () => {
  const { node } = harness()

  it('rejects and counts forged, eternal, replayed and garbage messages, and does not forward them', async () => {
    const a = await node('a')
    const b = await node('b')
    const m = await node('mallory')
    await connect(b, a)
    await connect(m, a)
    await waitFor(() => a.monitor.peerset().length === 3, { message: 'a sees b and mallory' })
    await waitFor(() => m.libp2p.services.pubsub.getSubscribers(metricsTopic(CLUSTER)).some(p => p.toString() === a.id), { message: 'mallory knows a subscribes' })

    const metric = (peer: string, name: string, ttlMs: number): Metric => ({
      name, peer, value: 'x', expire: (Date.now() + ttlMs) * 1e6, valid: true, weight: 1, partitionable: false, received_at: 0
    })
    const signed = async (key: PrivateKey, body: { cluster?: string, peer: string, metrics: Metric[] }): Promise<Uint8Array> => {
      const bytes = encodeMetricsBody({ cluster: body.cluster ?? CLUSTER, peer: body.peer, metrics: body.metrics })
      return encodeMetricsMessage(bytes, await key.sign(metricsSigningPayload(bytes)))
    }
    const publish = async (data: Uint8Array): Promise<void> => {
      await m.libp2p.services.pubsub.publish(metricsTopic(CLUSTER), data)
    }

    // mallory signs with her key a message claiming to be b
    await publish(await signed(m.key, { peer: b.id, metrics: [metric(b.id, 'forged-signature', TTL)] }))
    // mallory signs as herself, but carries a metric of b
    await publish(await signed(m.key, { peer: m.id, metrics: [metric(b.id, 'forged-peer', TTL)] }))
    // mallory claims to be alive for a year
    await publish(await signed(m.key, { peer: m.id, metrics: [metric(m.id, 'eternal', 365 * 24 * 3600_000)] }))
    // a message b really signed, published by mallory (a replay keeping b "alive")
    await publish(await signed(b.key, { peer: b.id, metrics: [metric(b.id, 'replayed', TTL)] }))
    // properly signed, for another cluster
    await publish(await signed(m.key, { cluster: 'other', peer: m.id, metrics: [metric(m.id, 'other-cluster', TTL)] }))
    await publish(randomBytes(200))

    const want = { signature: 1, peer: 1, ttl: 1, sender: 1, cluster: 1, malformed: 1 }
    await waitFor(() => Object.entries(want).every(([reason, n]) => (a.monitor.rejected()[reason] ?? 0) >= n) || undefined, {
      message: 'a counts every rejection'
    }).catch(err => { throw new Error(`${(err as Error).message}; counted ${JSON.stringify(a.monitor.rejected())}`) })
    assert.deepEqual(a.monitor.rejected(), want)
    for (const n of [a, b]) {
      assert.deepEqual(n.monitor.names(), ['freespace', 'ping', 'pinqueue', 'tag:group'], `${n.name} stored nothing forged`)
    }
    // mallory's honest metrics still count: rejection is per message
    assert.ok(a.monitor.peerset().includes(m.id))
  })
})

describe('monitor: bounded by peers and names', () => {
  const { node } = harness()

  it('keeps at most maxNamesPerPeer names per peer and maxPeers peers (trusted ones past it), making room when a peer\'s metrics expire', async () => {
    const trusted = new Set<string>()
    const a = await node('a', { maxPeers: 3, maxNamesPerPeer: 5, isTrusted: id => trusted.has(id) })
    // b publishes its 4 informers and then 6 more names: a keeps 5 of them
    const b = await node('b')
    await connect(b, a)
    await waitFor(() => a.monitor.peerset().includes(b.id) || undefined, { message: 'a sees b' })
    await waitFor(() => b.libp2p.services.pubsub.getSubscribers(metricsTopic(CLUSTER)).some(p => p.toString() === a.id), { message: 'b knows a subscribes' })
    const metric = (peer: string, name: string): Metric => ({
      name, peer, value: 'x', expire: (Date.now() + 60_000) * 1e6, valid: true, weight: 1, partitionable: false, received_at: 0
    })
    const bytes = encodeMetricsBody({ cluster: CLUSTER, peer: b.id, metrics: Array.from({ length: 6 }, (_, i) => metric(b.id, `extra-${i}`)) })
    await b.libp2p.services.pubsub.publish(metricsTopic(CLUSTER), encodeMetricsMessage(bytes, await b.key.sign(metricsSigningPayload(bytes))))
    await waitFor(() => (a.monitor.rejected().names ?? 0) >= 1 || undefined, { message: 'a refuses names past the bound' })
    const namesOfB = a.monitor.names().filter(n => metricOf(a.monitor, n, b.id) != null)
    assert.equal(namesOfB.length, 5, `a keeps 5 names of b: ${namesOfB.join(', ')}`)
    assert.ok(a.monitor.peerset().includes(b.id), 'b still counts')

    // a holds itself and b; c fits, d does not
    const c = await node('c', { ttlMs: PEER_TTL })
    await connect(c, a)
    await waitFor(() => a.monitor.peerset().includes(c.id) || undefined, { message: 'a sees c' })
    const d = await node('d')
    await connect(d, a)
    await waitFor(() => (a.monitor.rejected().full ?? 0) >= 1 || undefined, { message: 'a turns d away' })
    assert.ok(!a.monitor.peerset().includes(d.id), 'd is not in a\'s peerset')
    assert.deepEqual(sorted(a.monitor.peerset()), sorted([a.id, b.id, c.id]))

    // a peer the config trusts is let in all the same
    const e = await node('e', { ttlMs: PEER_TTL })
    trusted.add(e.id)
    await connect(e, a)
    await waitFor(() => a.monitor.peerset().includes(e.id) || undefined, { message: 'a lets trusted e in past the bound' })
    assert.ok(!a.monitor.peerset().includes(d.id), 'd is still turned away')

    // once c and e stop and all their metrics expired, d's next metrics take a place
    await c.monitor.stop()
    await e.monitor.stop()
    await waitFor(() => a.monitor.peerset().includes(d.id) || undefined, { timeoutMs: 15_000, message: 'd is let in once c and e expired' })
    assert.ok(!a.monitor.peerset().includes(c.id))
    assert.throws(() => createMonitor({ ...a.init, maxPeers: 0 }, { libp2p: a.libp2p, privateKey: a.key, logger: quietLogger('x') }), /maxPeers must be a positive integer, got 0/)
  })
})

describe('monitor: cluster secret and membership', () => {
  const { node } = harness()

  it('peers with another secret, or none, are not seen', async () => {
    const S = randomBytes(32).toString('hex')
    const a = await node('a', { secret: S })
    const b = await node('b', { secret: S })
    const wrong = await node('wrong', { secret: randomBytes(32).toString('hex') })
    const none = await node('none')
    for (const x of [b, wrong, none]) await connect(x, a)
    await connect(wrong, b)
    await waitFor(() => a.monitor.peerset().length === 2 && b.monitor.peerset().length === 2, { message: 'a and b see each other' })
    await waitFor(() => (a.monitor.rejected().secret ?? 0) >= 2 && (b.monitor.rejected().secret ?? 0) >= 1, { message: 'a and b reject sealed-with-another-key and unsealed gossip' })
    // unsealed metrics from the secret-less peer do not open under the secret; sealed ones are noise to it
    await waitFor(() => (none.monitor.rejected().malformed ?? 0) >= 1, { message: 'the secret-less peer cannot read sealed metrics' })
    assert.deepEqual(a.monitor.peerset(), sorted([a.id, b.id]))
    assert.deepEqual(b.monitor.peerset(), sorted([a.id, b.id]))
    assert.deepEqual(wrong.monitor.peerset(), [wrong.id])
    assert.deepEqual(none.monitor.peerset(), [none.id])
    assert.equal(a.monitor.peerInfo(wrong.id), undefined)
  })

  it('metrics of peers that are not members are ignored', async () => {
    let outsider = ''
    const a = await node('a', { isMember: p => p !== outsider })
    const x = await node('x')
    outsider = x.id
    await connect(x, a)
    await waitFor(() => x.monitor.peerset().length === 2, { message: 'x sees a' })
    await waitFor(() => (a.monitor.rejected().member ?? 0) >= 1, { message: 'a ignores x' })
    assert.deepEqual(a.monitor.peerset(), [a.id])
    assert.equal(metricOf(a.monitor, 'ping', x.id), undefined)
  })
})

describe('monitor: informers', () => {
  const { node } = harness()

  it('retries a failing informer at ttl/4 and never publishes an invalid metric', async () => {
    const calls: number[] = []
    const failing: Informer = { name: 'flaky', ttlMs: TTL, async get () { calls.push(Date.now()); throw new Error('disk on fire') } }
    const a = await node('a', {
      informers: [failing, { name: 'freespace', ttlMs: TTL, async get () { return { value: '0', weight: 0, valid: false } } }]
    })
    await waitFor(() => calls.length >= 4, { message: 'the failing informer is retried' })
    // at ttl/2 the 4th call would come 1.5 s after the first; at ttl/4, 0.75 s
    assert.ok(calls[3] - calls[0] < 1.4 * TTL, `retries took ${calls[3] - calls[0]} ms`)
    // a built-in ping is added when none is configured; an invalid metric is not published
    assert.deepEqual(a.monitor.names(), ['ping'])
    assert.equal(a.monitor.peerInfo(a.id)?.peer_name, 'a')
    assert.deepEqual(a.monitor.peerset(), [a.id])
  })

  it('computes freespace, pinqueue and tag values', async () => {
    const disk = (bytes: number) => async () => bytes
    assert.deepEqual(await freespaceInformer({ storageMax: 100, used: async () => 250, diskFree: disk(1000) }).get(), { value: '0', weight: 0 })
    assert.deepEqual(await freespaceInformer({ storageMax: 100, used: async () => 40, diskFree: disk(1000) }).get(), { value: '60', weight: 60 })
    // never more than the disk has free; without a storage max, whatever it has
    assert.deepEqual(await freespaceInformer({ storageMax: 100, used: async () => 40, diskFree: disk(10) }).get(), { value: '10', weight: 10 })
    assert.deepEqual(await freespaceInformer({ storageMax: 0, used: async () => 40, diskFree: disk(500) }).get(), { value: '500', weight: 500 })
    assert.deepEqual(await pinqueueInformer({ queueLength: () => 0 }).get(), { value: '0', weight: 0 })
    assert.deepEqual(await pinqueueInformer({ queueLength: () => 250, weightBucketSize: 100 }).get(), { value: '250', weight: -2 })
    const tags = tagInformers({ group: 'eu', rack: 'r1' })
    assert.deepEqual(tags.map(t => [t.name, t.partitionable, t.ttlMs]), [['tag:group', true, 30_000], ['tag:rack', true, 30_000]])
    assert.deepEqual(await tags[1].get(), { value: 'r1', weight: 0 })
  })

  it('refuses an informer TTL beyond the cap and duplicate names, naming them', async () => {
    const n = await node('cfg')
    const make = (informers: Informer[]): Monitor => createMonitor({ ...n.init, informers }, { libp2p: n.libp2p, privateKey: n.key, logger: quietLogger() })
    assert.throws(() => make(tagInformers({ group: 'g' }, 3_600_000)), { name: 'ConfigError', message: /"tag:group" ttl/ })
    assert.throws(() => make([...tagInformers({ group: 'g' }), ...tagInformers({ group: 'h' })]), { name: 'ConfigError', message: /two informers are named "tag:group"/ })
  })
})
