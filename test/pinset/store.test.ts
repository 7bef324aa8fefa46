// The pinset store keeps whole-document states (snapshot, checkpoint) in files named in level: written once,
// served in chunks, replaced without leaving old files, and still read from level in an older data dir.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { Level } from 'level'
import { PinsetStore } from '../../src/pinset/store.js'
import { tempDir } from '../util.js'

async function collect (chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Buffer> {
  const out: Uint8Array[] = []
  for await (const c of chunks) out.push(c)
  return Buffer.concat(out)
}

describe('pinset store', () => {
  it('keeps snapshot and checkpoint states in files, one of each, and serves the checkpoint in chunks', async () => {
    const tmp = await tempDir('cairn-store-')
    try {
      const path = join(tmp.path, 'pinset')
      let store = new PinsetStore(path)
      await store.open()
      const snap1 = randomBytes(1000)
      const snap2 = randomBytes(3_000_000)
      await store.putSnapshot(snap1, { a: 1 })
      await store.putSnapshot(snap2, { a: 2 })
      const cp = randomBytes(2_500_000)
      await store.putCheckpoint(Uint8Array.of(1, 2, 3), cp)
      assert.deepEqual((await readdir(join(path, 'state'))).map(n => n.split('-')[0]).sort(), ['checkpoint', 'snapshot'], 'the replaced snapshot file is gone')
      await store.close()

      // a file left by a write that crashed before level named it is removed at open
      await writeFile(join(path, 'state', 'snapshot-1-deadbeef.state'), 'half written')
      store = new PinsetStore(path)
      await store.open()
      assert.equal((await readdir(join(path, 'state'))).length, 2)
      const snapshot = await store.getSnapshot()
      assert.deepEqual(Buffer.from(snapshot!.state), snap2)
      assert.deepEqual(snapshot!.vv, { a: 2 })
      const opened = await store.openCheckpoint()
      assert.deepEqual(Buffer.from(opened!.header), Buffer.from([1, 2, 3]))
      assert.equal(opened!.length, cp.length)
      assert.deepEqual(await collect(opened!.chunks), cp)
      assert.deepEqual(Buffer.from((await store.getCheckpoint())!.state), cp)
      await store.close()
    } finally {
      await tmp.cleanup()
    }
  })

  it('reads states an older version kept in level, and moves them to files on the next write', async () => {
    const tmp = await tempDir('cairn-store-old-')
    try {
      const path = join(tmp.path, 'pinset')
      const old = new Level<string, Uint8Array>(path, { valueEncoding: 'view' })
      await old.open()
      const state = randomBytes(5000)
      await old.batch([
        { type: 'put', key: 's!state', value: state },
        { type: 'put', key: 's!vv', value: new TextEncoder().encode('{"a":7}') },
        { type: 'put', key: 'c!header', value: Uint8Array.of(9) },
        { type: 'put', key: 'c!state', value: state }
      ])
      await old.close()
      const store = new PinsetStore(path)
      await store.open()
      assert.deepEqual(Buffer.from((await store.getSnapshot())!.state), state)
      const opened = await store.openCheckpoint()
      assert.deepEqual(await collect(opened!.chunks), state)
      const next = randomBytes(100)
      await store.putSnapshot(next, { a: 8 })
      assert.deepEqual(Buffer.from((await store.getSnapshot())!.state), next)
      await store.close()
    } finally {
      await tmp.cleanup()
    }
  })
})
