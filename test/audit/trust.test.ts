import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MemoryDatastore } from 'datastore-core'
import { TrustBook } from '../../src/audit/trust.js'

const POLICY = { provenAfter: 3, provenPins: 2, cooldownMs: 1000 }

describe('trust book', () => {
  it('proves a peer after 3 passes over 2 distinct pins, not 3 passes of one pin', async () => {
    const book = new TrustBook(POLICY, new MemoryDatastore())
    assert.equal(book.state('p'), 'probation')
    for (let i = 0; i < 5; i++) assert.equal(await book.pass('p', 'pin-a'), false)
    assert.equal(book.state('p'), 'probation', 'one pin over and over proves little')
    assert.equal(await book.pass('p', 'pin-b'), true)
    assert.equal(book.state('p'), 'proven')
  })

  it('fails a proven peer at once, keeps it failed for the cool-down, then puts it on probation from scratch', async () => {
    const book = new TrustBook(POLICY, new MemoryDatastore())
    await book.pass('p', 'a'); await book.pass('p', 'b'); await book.pass('p', 'c')
    assert.equal(book.state('p'), 'proven')
    const t = Date.now()
    await book.fail('p', 'block x not held', t)
    assert.equal(book.state('p', t + 999), 'failed')
    assert.equal(book.get('p', t + 999)?.last_error, 'block x not held')
    assert.equal(book.state('p', t + 1000), 'probation')
    const r = book.get('p', t + 1000)!
    assert.deepEqual([r.passed, r.pins, r.failed], [0, [], 1])
  })

  it('survives a restart (a new book on the same datastore) and forgets what prune says to', async () => {
    const ds = new MemoryDatastore()
    const book = new TrustBook(POLICY, ds)
    await book.pass('good', 'a'); await book.pass('good', 'b'); await book.pass('good', 'c')
    await book.fail('bad', 'nothing held')
    await book.pass('gone', 'a')
    const again = new TrustBook(POLICY, ds)
    await again.load()
    assert.equal(again.state('good'), 'proven')
    assert.equal(again.state('bad'), 'failed')
    await again.prune(peer => peer !== 'gone')
    const third = new TrustBook(POLICY, ds)
    await third.load()
    assert.deepEqual(third.peers().sort(), ['bad', 'good'])
  })
})
