// Issue 17 item 2 at the API: lists of the whole pinset are capped per peer (429 with Retry-After past the cap,
// shared by the REST and pinning service APIs; /health, /id and pin writes are never capped), and a long list
// gives the event loop back every few ms instead of holding it until the socket buffer is full.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { heavyRequests, listen, type Listener } from '../../src/api/common.js'
import { createPinningApp } from '../../src/api/pinsvc/index.js'
import { RequestIndex } from '../../src/api/pinsvc/request-index.js'
import { PinService } from '../../src/api/pinsvc/service.js'
import { createRestApp } from '../../src/api/rest/index.js'
import { pinKey } from '../../src/utils/keys.js'
import { tempDir, waitFor } from '../util.js'
import { FakeCluster, PEER } from './fake-cluster.js'
import type { PinsetChange } from '../../src/components.js'

const CID_A = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'

describe('heavy requests', () => {
  const cluster = new FakeCluster()
  const heavy = heavyRequests(2)
  let rest: Listener
  let pinsvc: Listener
  let index: RequestIndex
  let dir: Awaited<ReturnType<typeof tempDir>>
  let restBase: string
  let pinsvcBase: string

  before(async () => {
    dir = await tempDir('cairn-heavy-')
    const pinset = {
      get: (cid: string) => cluster.pins.get(pinKey(cid)),
      list: () => cluster.pins.values(),
      onChange: (_listener: (change: PinsetChange) => void) => () => {}
    }
    index = new RequestIndex(join(dir.path, 'pinsvc'), pinset)
    await index.start()
    const service = new PinService({ cluster, pinset, index, peerId: PEER, addressesOf: async () => [] })
    rest = await listen(createRestApp({}, { cluster, heavy }), '127.0.0.1', 0)
    pinsvc = await listen(createPinningApp({}, { service, heavy }), '127.0.0.1', 0)
    restBase = `http://127.0.0.1:${rest.address.port}`
    pinsvcBase = `http://127.0.0.1:${pinsvc.address.port}`
  })
  after(async () => {
    await rest?.close()
    await pinsvc?.close()
    await index?.stop()
    await dir?.cleanup()
  })

  it('past the cap, lists are 429 with Retry-After on both APIs; health, id and pin writes are not; a client that leaves frees its slot', async () => {
    // two GET /pins that never end hold both slots
    cluster.endless = true
    const holders = [new AbortController(), new AbortController()]
    try {
      for (const h of holders) {
        const res = await fetch(`${restBase}/pins`, { signal: h.signal })
        assert.equal(res.status, 200)
        await res.body!.getReader().read()
      }
      assert.equal(heavy.inFlight(), 2)

      for (const [method, path] of [['GET', '/allocations'], ['GET', '/pins?local=true'], ['POST', '/pins/recover']]) {
        const res = await fetch(restBase + path, { method })
        assert.equal(res.status, 429, `${method} ${path}`)
        assert.match(res.headers.get('retry-after') ?? '', /^[1-9]\d*$/, `${method} ${path}: Retry-After in whole seconds`)
        const body = await res.json() as { code: number, message: string }
        assert.equal(body.code, 429)
        assert.match(body.message, /already serving 2 lists of the whole pinset \(rest\.max_heavy_requests\): try again in \d+ s/)
      }
      const list = await fetch(`${pinsvcBase}/pins`)
      assert.equal(list.status, 429, 'the pinning service shares the cap')
      assert.match(list.headers.get('retry-after') ?? '', /^[1-9]\d*$/)
      assert.deepEqual(Object.keys((await list.json() as { error: Record<string, string> }).error), ['reason', 'details'])

      assert.equal((await fetch(`${restBase}/health`)).status, 204)
      assert.equal((await fetch(`${restBase}/id`)).status, 200)
      assert.equal((await fetch(`${restBase}/pins/${CID_A}`, { method: 'POST' })).status, 200)
      assert.equal((await fetch(`${restBase}/allocations/${CID_A}`)).status, 200)
      assert.equal((await fetch(`${restBase}/pins/${CID_A}`)).status, 200)

      holders[0].abort()
      await waitFor(() => heavy.inFlight() === 1, { timeoutMs: 5000, message: 'the slot of the client that left is freed' })
      const again = await fetch(`${restBase}/allocations`)
      assert.equal(again.status, 200)
      assert.equal((await again.text()).split('\n').filter(l => l !== '').length, 1)
      assert.equal(heavy.inFlight(), 1, 'a list that ended gave its slot back')
      assert.equal((await fetch(`${pinsvcBase}/pins`)).status, 200)
    } finally {
      for (const h of holders) h.abort()
      cluster.endless = false
      cluster.pins.clear()
    }
    await waitFor(() => heavy.inFlight() === 0, { timeoutMs: 5000, message: 'every slot free' })
  })

  it('rejects a cap that is not a positive integer, naming the setting', () => {
    assert.throws(() => heavyRequests(0), /rest\.max_heavy_requests must be a positive integer, got 0/)
  })
})

describe('a long list', () => {
  it('gives the event loop back every few ms while it streams', async () => {
    const cluster = new FakeCluster()
    for (let i = 0; i < 60_000; i++) {
      const pin = cluster.makePin(`bafkreipin${String(i).padStart(50, '0')}`, { name: `mirror/pkg-${i}/pkg-${i}-1.0.0.tgz` })
      cluster.pins.set(pin.cid, { ...pin, allocations: [PEER, PEER] })
    }
    const server = await listen(createRestApp({}, { cluster }), '127.0.0.1', 0)
    try {
      // a timer due every ms: how late it runs is how long the event loop was held (by the list, or now and
      // then by the machine: hence the 90th percentile, not the maximum)
      const intervals: number[] = []
      let last = performance.now()
      const timer = setInterval(() => {
        const now = performance.now()
        intervals.push(now - last)
        last = now
      }, 1)
      let lines = 0
      try {
        const res = await fetch(`http://127.0.0.1:${server.address.port}/allocations`)
        assert.equal(res.status, 200)
        const decoder = new TextDecoder()
        for await (const chunk of res.body!) lines += decoder.decode(chunk, { stream: true }).split('\n').length - 1
      } finally {
        clearInterval(timer)
      }
      assert.equal(lines, 60_000)
      intervals.sort((a, b) => a - b)
      const p90 = intervals[Math.floor(intervals.length * 0.9)]
      assert.ok(p90 < 20, `the event loop was given back every few ms (90% of ${intervals.length} turns under 20 ms; p90 ${p90.toFixed(1)} ms, longest ${intervals.at(-1)!.toFixed(1)} ms)`)
    } finally {
      await server.close()
    }
  })
})
