// Pieced pinset states: a document written as many small Yjs updates comes back equal, also when several
// writers overwrote and deleted each other's entries, and a damaged state is refused with the byte it broke at.
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import * as Y from 'yjs'
import { applyState, encodeState, isPieced, statePieces } from '../../src/pinset/state.js'
import { tempDir } from '../util.js'

/** Three writers that set, overwrite and delete each other's keys, merged into one document. */
function multiWriterDoc (): Y.Doc {
  const docs = [new Y.Doc(), new Y.Doc(), new Y.Doc()]
  const sync = (): void => {
    for (const a of docs) for (const b of docs) if (a !== b) Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)))
  }
  for (let round = 0; round < 20; round++) {
    docs.forEach((doc, w) => {
      doc.transact(() => {
        const map = doc.getMap<string>('pins')
        for (let i = 0; i < 50; i++) map.set(`k${(round * 37 + i * 7 + w) % 400}`, `w${w}-r${round}-${i}`)
        if (round % 3 === w) for (let i = 0; i < 10; i++) map.delete(`k${(round * 11 + i) % 400}`)
      })
    })
    sync()
  }
  return docs[0]
}

describe('pieced pinset states', () => {
  it('a multi-writer document comes back equal from small pieces, with nothing left pending', async () => {
    const doc = multiWriterDoc()
    assert.ok(doc.store.clients.size === 3)
    const pieces = [...statePieces(doc, 16)]
    assert.ok(pieces.length > 50, `${pieces.length} pieces`)
    const bytes = encodeState(doc, 16)
    assert.ok(isPieced(bytes))
    const copy = new Y.Doc()
    await applyState(copy, { bytes })
    assert.deepEqual(copy.getMap('pins').toJSON(), doc.getMap('pins').toJSON())
    assert.deepEqual(Y.encodeStateVector(copy), Y.encodeStateVector(doc))
    assert.equal(copy.store.pendingStructs, null)
    assert.equal(copy.store.pendingDs, null)
    // and the copy merges with the original as one: nothing differs
    assert.deepEqual(Y.encodeStateAsUpdate(copy, Y.encodeStateVector(doc)).length, Y.encodeStateAsUpdate(doc, Y.encodeStateVector(doc)).length)
  })

  it('applies from a file piece by piece, and a plain Yjs update as before', async () => {
    const tmp = await tempDir('cairn-state-')
    try {
      const doc = multiWriterDoc()
      const pieced = join(tmp.path, 'pieced')
      await writeFile(pieced, encodeState(doc, 7))
      const plain = join(tmp.path, 'plain')
      await writeFile(plain, Y.encodeStateAsUpdate(doc))
      for (const path of [pieced, plain]) {
        const copy = new Y.Doc()
        await applyState(copy, { path })
        assert.deepEqual(copy.getMap('pins').toJSON(), doc.getMap('pins').toJSON(), path)
      }
    } finally {
      await tmp.cleanup()
    }
  })

  it('refuses a cut-short or corrupt state, naming where', async () => {
    const doc = multiWriterDoc()
    const bytes = encodeState(doc, 64)
    await assert.rejects(applyState(new Y.Doc(), { bytes: bytes.subarray(0, bytes.length - 3) }), { name: 'MalformedStateError', message: /runs past the end/ })
    const corrupt = Uint8Array.from(bytes)
    // the first piece claims 127 clients: its update ends long before them
    assert.equal(corrupt[4 + 2], 1)
    corrupt[4 + 2] = 0x7f
    await assert.rejects(applyState(new Y.Doc(), { bytes: corrupt }), { name: 'MalformedStateError', message: /piece at byte 4 / })
  })
})
