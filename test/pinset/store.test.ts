// The pinset store keeps whole-document states (snapshot, checkpoint) in files named in level: written once,
// served in chunks, replaced without leaving old files, and still read from level in an older data dir.
import * as Y from 'yjs'
import assert from 'node:assert/strict'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { Level } from 'level'
import { applyState, type StateSource } from '../../src/pinset/state.js'
import { PinsetStore } from '../../src/pinset/store.js'
import { tempDir } from '../util.js'

/** A document of n map entries; `seed` makes the values differ between documents. */
function docOf (n: number, seed: string): Y.Doc {
  const doc = new Y.Doc()
  doc.transact(() => { for (let i = 0; i < n; i++) doc.getMap('pins').set(`k${i}`, `${seed}-${i}`) })
  return doc
}

async function write (store: PinsetStore, kind: 'snapshot' | 'checkpoint', doc: Y.Doc): Promise<Awaited<ReturnType<PinsetStore['createState']>>> {
  const state = await store.createState(kind)
  state.writeDoc(doc, 100)
  await state.finish()
  return state
}

/** The map's content after applying the stored state to a fresh document. */
async function contentOf (source: StateSource | undefined): Promise<unknown> {
  assert.ok(source != null, 'a stored state')
  const doc = new Y.Doc()
  await applyState(doc, source)
  return doc.getMap('pins').toJSON()
}

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
      await store.adoptSnapshot(await write(store, 'snapshot', docOf(10, 'one')), { a: 1 })
      const snap2 = docOf(20_000, 'two')
      await store.adoptSnapshot(await write(store, 'snapshot', snap2), { a: 2 })
      const cp = docOf(15_000, 'cp')
      const cpState = await write(store, 'checkpoint', cp)
      const cpBytes = await readFile(cpState.path)
      await store.adoptCheckpoint(cpState, Uint8Array.of(1, 2, 3))
      // an abandoned write leaves nothing
      const dropped = await store.createState('snapshot')
      await dropped.write(Uint8Array.of(1))
      await store.discard(dropped)
      assert.deepEqual((await readdir(join(path, 'state'))).map(n => n.split('-')[0]).sort(), ['checkpoint', 'snapshot'], 'the replaced snapshot file is gone')
      await store.close()

      // a file left by a write that crashed before level named it is removed at open
      await writeFile(join(path, 'state', 'snapshot-1-deadbeef.state'), 'half written')
      store = new PinsetStore(path)
      await store.open()
      assert.equal((await readdir(join(path, 'state'))).length, 2)
      const snapshot = await store.getSnapshot()
      assert.deepEqual(await contentOf(snapshot?.source), snap2.getMap('pins').toJSON())
      assert.deepEqual(snapshot!.vv, { a: 2 })
      const opened = await store.openCheckpoint()
      assert.deepEqual(Buffer.from(opened!.header), Buffer.from([1, 2, 3]))
      assert.equal(opened!.length, cpBytes.length)
      assert.deepEqual(await collect(opened!.chunks), cpBytes)
      assert.deepEqual(await contentOf((await store.getCheckpoint())?.source), cp.getMap('pins').toJSON())
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
      const doc = docOf(50, 'old')
      // an older version's state: one plain Yjs update
      const state = Y.encodeStateAsUpdate(doc)
      await old.batch([
        { type: 'put', key: 's!state', value: state },
        { type: 'put', key: 's!vv', value: new TextEncoder().encode('{"a":7}') },
        { type: 'put', key: 'c!header', value: Uint8Array.of(9) },
        { type: 'put', key: 'c!state', value: state }
      ])
      await old.close()
      const store = new PinsetStore(path)
      await store.open()
      assert.deepEqual(await contentOf((await store.getSnapshot())?.source), doc.getMap('pins').toJSON())
      assert.deepEqual(await contentOf((await store.getCheckpoint())?.source), doc.getMap('pins').toJSON())
      const opened = await store.openCheckpoint()
      assert.deepEqual(await collect(opened!.chunks), Buffer.from(state))
      const next = docOf(5, 'next')
      await store.adoptSnapshot(await write(store, 'snapshot', next), { a: 8 })
      assert.deepEqual(await contentOf((await store.getSnapshot())?.source), next.getMap('pins').toJSON())
      await store.close()
      const reopened = new Level<string, Uint8Array>(path, { valueEncoding: 'view' })
      await reopened.open()
      assert.equal(await reopened.get('s!state'), undefined, 'the old level value is gone once the snapshot is a file')
      await reopened.close()
    } finally {
      await tmp.cleanup()
    }
  })
})
