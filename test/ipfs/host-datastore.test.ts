import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { prefixLogger } from '@libp2p/logger'
import { BaseDatastore } from 'datastore-core/base'
import { Key } from 'interface-datastore'
import { InsufficientStorageError, NotFoundError } from '../../src/errors.js'
import { HostDatastore } from '../../src/ipfs/host-datastore.js'
import { collect } from './helpers.js'
import type { Pair } from 'interface-datastore'

/** A store whose writes wait for `gate`, as level writes take their time (and fail when it rejects). */
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
  override async delete (key: Key): Promise<void> {
    await this.gate
    this.data.delete(key.toString())
  }

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

  it('keeps in memory what the store refuses for lack of space, and reads it back from there', async () => {
    const inner = new SlowDatastore()
    const host = new HostDatastore(inner, prefixLogger('host').forComponent('test'))
    const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
    await host.put(new Key('/peers/stored'), enc('stored'))
    await host.put(new Key('/peers/gone'), enc('gone'))
    // the disk fills: the store refuses every write from now on
    const full = new InsufficientStorageError('insufficient storage: writes to /p/datastore are refused')
    inner.gate = Promise.reject(full)
    inner.gate.catch(() => {})

    await host.put(new Key('/peers/new'), enc('new'))
    await host.put(new Key('/peers/stored'), enc('changed'))
    await host.delete(new Key('/peers/gone'))
    const batch = host.batch()
    batch.put(new Key('/peers/batched'), enc('batched'))
    batch.put(new Key('/other/x'), enc('x'))
    await batch.commit()
    assert.deepEqual([...inner.data.keys()].sort(), ['/peers/gone', '/peers/stored'], 'the store took a write')

    assert.deepEqual(await host.get(new Key('/peers/new')), enc('new'))
    assert.deepEqual(await host.get(new Key('/peers/stored')), enc('changed'))
    await assert.rejects(async () => await host.get(new Key('/peers/gone')), { name: 'NotFoundError' })
    assert.equal(await host.has(new Key('/peers/gone')), false)
    assert.equal(await host.has(new Key('/peers/batched')), true)
    const listed = async (q: Parameters<HostDatastore['query']>[0]): Promise<string[]> =>
      (await collect(host.query(q))).map(p => `${p.key.toString()}=${new TextDecoder().decode(p.value)}`).sort()
    assert.deepEqual(await listed({ prefix: '/peers' }), ['/peers/batched=batched', '/peers/new=new', '/peers/stored=changed'])
    assert.deepEqual(await listed({ prefix: '/peers', filters: [p => p.key.toString() !== '/peers/new'] }), ['/peers/batched=batched', '/peers/stored=changed'])
    assert.deepEqual((await collect(host.queryKeys({ prefix: '/other' }))).map(String), ['/other/x'])

    // any other failure is the caller's to see
    inner.gate = Promise.reject(new Error('EIO'))
    inner.gate.catch(() => {})
    await assert.rejects(host.put(new Key('/peers/eio'), enc('eio')) as Promise<Key>, /EIO/)
  })
})
