// The metrics wire format: pure encode/decode, no network.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  decodeMetricsMessage, encodeMetricsBody, encodeMetricsMessage, MAX_MESSAGE_BYTES, MAX_METRICS_PER_MESSAGE, metricsTopic
} from '../../src/monitor/protocol.js'
import type { Metric } from '../../src/monitor/index.js'

const PEER = '12D3KooWAqFPhzFpGYPeoHfqCyRAvwufoH9iNEnygafccD184KYL'
const SIG = new Uint8Array(64).fill(7)

function metric (over: Partial<Metric> = {}): Metric {
  return { name: 'freespace', peer: PEER, value: '42', expire: 1_795_477_892_243_000_000, valid: true, weight: 42, partitionable: false, received_at: 123, ...over }
}

function message (body: unknown): Uint8Array {
  return encodeMetricsMessage(new TextEncoder().encode(JSON.stringify(body)), SIG)
}

describe('monitor protocol', () => {
  it('round-trips a message, leaving received_at to the receiver', () => {
    const body = encodeMetricsBody({ cluster: 'c', peer: PEER, metrics: [metric(), metric({ name: 'tag:group', value: 'eu', weight: 0, partitionable: true })] })
    assert.equal(new TextDecoder().decode(body).includes('received_at'), false)
    const decoded = decodeMetricsMessage(encodeMetricsMessage(body, SIG))
    assert.equal(decoded.cluster, 'c')
    assert.equal(decoded.peer, PEER)
    assert.deepEqual(decoded.signature, SIG)
    assert.deepEqual(decoded.body, body)
    assert.deepEqual(decoded.metrics, [metric({ received_at: 0 }), metric({ name: 'tag:group', value: 'eu', weight: 0, partitionable: true, received_at: 0 })])
    assert.equal(metricsTopic('mirror'), 'cairn/mirror/metrics')
  })

  it('refuses malformed messages, saying what is wrong', () => {
    const ok = { cluster: 'c', peer: PEER, metrics: [metric()] }
    const cases: Array<[Uint8Array, RegExp]> = [
      [new Uint8Array(0), /truncated/],
      [Uint8Array.of(2, 0, 0, 0, 0, 1), /version/],
      [Uint8Array.of(1, 0, 0, 1, 0, 1), /body length/],
      [encodeMetricsMessage(new TextEncoder().encode(JSON.stringify(ok)), new Uint8Array(0)), /no signature/],
      [encodeMetricsMessage(Uint8Array.of(0xff, 0xfe), SIG), /UTF-8 JSON/],
      [message([ok]), /not a JSON object/],
      [message({ ...ok, peer: '' }), /"peer"/],
      [message({ ...ok, metrics: [] }), /non-empty array/],
      [message({ ...ok, metrics: Array.from({ length: MAX_METRICS_PER_MESSAGE + 1 }, (_, i) => metric({ name: `m${i}` })) }), /at most 256/],
      [message({ ...ok, metrics: [metric(), metric()] }), /appears twice/],
      [message({ ...ok, metrics: [{ ...metric(), weight: 1.5 }] }), /metrics\[0\]: "weight"/],
      [message({ ...ok, metrics: [{ ...metric(), weight: '1' }] }), /"weight"/],
      [message({ ...ok, metrics: [{ ...metric(), expire: -1 }] }), /"expire"/],
      [message({ ...ok, metrics: [{ ...metric(), value: 5 }] }), /"value"/],
      [message({ ...ok, metrics: [{ ...metric(), valid: 'yes' }] }), /"valid"/],
      [message({ ...ok, metrics: [{ ...metric(), name: '' }] }), /"name"/],
      [message({ ...ok, metrics: [{ ...metric(), partitionable: 1 }] }), /"partitionable"/],
      [new Uint8Array(MAX_MESSAGE_BYTES + 1), /at most/]
    ]
    for (const [bytes, why] of cases) {
      assert.throws(() => decodeMetricsMessage(bytes), { name: 'MalformedMetricsError', message: why })
    }
  })
})
