import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { prefixLogger } from '@libp2p/logger'
import { BaseDatastore } from 'datastore-core/base'
import { Key } from 'interface-datastore'
import { NotFoundError } from '../../src/errors.js'
import { HostDatastore } from '../../src/ipfs/host-datastore.js'
import { collect } from './helpers.js'
import type { Pair } from 'interface-datastore'

/** A store whose writes wait for `gate`, as level writes take their time. */
class SlowDatastore extends BaseDatastore {
  readonly data = new Map<string, Uint8Array>()
  gate: Promise<void> = Promise.resolve()

  override async put (key: Key, value: Uint8Array): Promise<Key> {
    await this.gate
    this.data.set(key.toString(), value)
    return key
  }

  override async get (key: Key): Promise<Uint8Array> {
    const value = this.data.get(key.toString())
    if (value == null) throw new NotFoundError(key.toString())
    return value
  }

  override async has (key: Key): Promise<boolean> { return this.data.has(key.toString()) }
  override async delete (key: Key): Promise<void> { this.data.delete(key.toString()) }

  override async * _all (): AsyncGenerator<Pair> {
    for (const [key, value] of this.data) yield { key: new Key(key), value }
  }
}

const turn = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

describe('host datastore', () => {
  it('close() waits for the writes in flight, then keeps the stopped host away from the store', async () => {
    const inner = new SlowDatastore()
    const host = new HostDatastore(inner, prefixLogger('host').forComponent('test'))
    const bytes = new TextEncoder().encode('peer record')
    let release!: () => void
    inner.gate = new Promise(resolve => { release = resolve })

    const write = host.put(new Key('/peers/a'), bytes)
    let closed = false
    const closing = host.close().then(() => { closed = true })
    for (let i = 0; i < 5; i++) await turn()
    assert.equal(closed, false, 'close() resolved with a write in flight')
    release()
    await closing
    await write
    assert.deepEqual(inner.data.get('/peers/a'), bytes)

    // what a stopped libp2p does later (its address manager's debounced patch) never reaches the store
    await host.put(new Key('/peers/b'), bytes)
    await host.delete(new Key('/peers/a'))
    assert.deepEqual([...inner.data.keys()], ['/peers/a'])
    await assert.rejects(async () => await host.get(new Key('/peers/a')), { name: 'NotFoundError' })
    assert.equal(await host.has(new Key('/peers/a')), false)
    assert.deepEqual(await collect(host.query({})), [])
  })

  it('passes everything through while open', async () => {
    const inner = new SlowDatastore()
    const host = new HostDatastore(inner, prefixLogger('host').forComponent('test'))
    const bytes = new TextEncoder().encode('x')
    await host.put(new Key('/a'), bytes)
    assert.deepEqual(await host.get(new Key('/a')), bytes)
    assert.equal(await host.has(new Key('/a')), true)
    assert.deepEqual((await collect(host.query({}))).map(p => p.key.toString()), ['/a'])
    await host.delete(new Key('/a'))
    assert.equal(await host.has(new Key('/a')), false)
  })
})
