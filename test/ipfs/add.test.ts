// The add import's own leaf builder against ipfs-unixfs-importer's default: the same bytes and CIDs.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import * as dagPb from '@ipld/dag-pb'
import { UnixFS } from 'ipfs-unixfs'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { encodeFileLeaf, importEntries } from '../../src/ipfs/add.js'
import type { AddEntry, AddParams } from '../../src/components.js'
import type { CID } from 'multiformats/cid'

describe('add import', () => {
  it('encodes a file leaf as dag-pb over UnixFS does, at every varint length', () => {
    for (const n of [0, 1, 2, 100, 127, 128, 129, 16_383, 16_384, 16_385, 262_144, 1_048_576, 2_097_152]) {
      const data = randomBytes(n)
      const expected = dagPb.encode({ Data: new UnixFS({ type: 'file', data }).marshal(), Links: [] })
      assert.deepEqual(encodeFileLeaf(data), expected, `${n} bytes`)
    }
  })

  for (const params of [{}, { cid_version: 1 }, { raw_leaves: false, cid_version: 1 }, { chunk_size: 1000 }] as AddParams[]) {
    it(`stores the blocks of the importer's own leaf builder: ${JSON.stringify(params)}`, async () => {
      const files: Array<[string, Uint8Array]> = [['t/empty', new Uint8Array()], ['t/small', randomBytes(300)], ['t/big', randomBytes(700_000)]]
      const ours = new Map<string, Uint8Array>()
      let root = ''
      const entries = async function * (): AsyncGenerator<AddEntry> {
        for (const [path, bytes] of files) yield { path, content: (async function * () { yield bytes })() }
      }
      for await (const out of importEntries(entries(), params, { put: (cid: CID, bytes: Uint8Array) => { ours.set(cid.toString(), bytes) } })) root = out.cid

      const theirs = new Map<string, Uint8Array>()
      let theirRoot = ''
      const store = { put: async (cid: CID, bytes: Uint8Array) => { theirs.set(cid.toString(), bytes); return cid } }
      const cidVersion = params.cid_version ?? 0
      for await (const out of importer(files.map(([path, content]) => ({ path, content })), store, {
        profile: 'unixfs-v0-2015',
        cidVersion,
        rawLeaves: params.raw_leaves ?? cidVersion === 1,
        chunker: fixedSize({ chunkSize: params.chunk_size ?? 262_144 })
      })) theirRoot = out.cid.toString()
      assert.equal(root, theirRoot)
      assert.deepEqual(new Map([...ours].sort()), new Map([...theirs].sort()))
    })
  }

  // Kubo's own test of symlinks (test/sharness/t0044-add-symlink.sh): its tree, and the CIDs Kubo gives for it
  const KUBO_T0044: AddEntry[] = [
    { path: 'files' },
    { path: 'files/bad', link: 'files/does/not/exist' },
    { path: 'files/bar' },
    { path: 'files/bar/baz', link: 'files/foo/baz' },
    { path: 'files/foo' },
    { path: 'files/foo/baz', content: [new TextEncoder().encode('some text\n')] as unknown as AsyncIterable<Uint8Array> }
  ]
  const add = async (entries: AddEntry[], params: AddParams): Promise<Array<{ name: string, cid: string }>> => {
    const out: Array<{ name: string, cid: string }> = []
    const source = async function * (): AsyncGenerator<AddEntry> {
      for (const e of entries) yield e.content !== undefined ? { ...e, content: (async function * () { yield * (e.content as unknown as Uint8Array[]) })() } : e
    }
    for await (const line of importEntries(source(), params, { put: () => {} })) out.push({ name: line.name, cid: line.cid })
    return out
  }

  it('stores symlinks as UnixFS symlinks, dangling ones too: the CIDs Kubo gives its own symlink test tree', async () => {
    const v0 = await add(KUBO_T0044, {})
    assert.deepEqual(v0.map(l => l.name), ['files/bad', 'files/bar/baz', 'files/foo/baz', 'files/bar', 'files/foo', 'files'])
    assert.equal(v0.at(-1)?.cid, 'QmWdiHKoeSW8G1u7ATCgpx4yMoUhYaJBQGkyPLkS9goYZ8')
    assert.equal((await add(KUBO_T0044, { cid_version: 1 })).at(-1)?.cid, 'bafybeibyhlx64cklod6isy3h7tsmr4qvam3ae3b74n3hfes5bythjrwyua')
    // `ipfs add files/bar/baz` and `ipfs add files/bad`: a symlink alone is the root
    assert.deepEqual(await add([{ path: 'baz', link: 'files/foo/baz' }], {}), [{ name: 'baz', cid: 'QmdocmZeF7qwPT9Z8SiVhMSyKA2KKoA2J7jToW6z6WBmxR' }])
    assert.deepEqual(await add([{ path: 'bad', link: 'files/does/not/exist' }], {}), [{ name: 'bad', cid: 'QmWYN8SEXCgNT2PSjB6BnxAx6NJQtazWoBkTRH9GRfPFFQ' }])
    await assert.rejects(add([{ path: 'l', link: 'x' }, { path: 'l/a', link: 'y' }], {}), { name: 'InvalidParameterError', message: 'invalid path "l/a": "l" was already given as a symlink' })
  })

  it('refuses a path given twice, or as both a file and a directory, instead of keeping only the last entry', async () => {
    const cases: Array<[Array<[string, string | undefined]>, string]> = [
      [[['d/a', 'x'], ['d/a', 'y']], 'invalid path "d/a": "d/a" was already given as a file'],
      [[['a.txt', 'x'], ['./a.txt', 'y']], 'invalid path "./a.txt": "a.txt" was already given as a file'],
      [[['d', 'x'], ['d/a', 'y']], 'invalid path "d/a": "d" was already given as a file'],
      [[['d/a', 'x'], ['d', 'y']], 'invalid path "d": "d" was already given as a directory'],
      [[['e', undefined], ['e', 'y']], 'invalid path "e": "e" was already given as a directory'],
      [[['f', 'x'], ['f', undefined]], 'invalid path "f": "f" was already given as a file']
    ]
    for (const [given, message] of cases) {
      const entries = async function * (): AsyncGenerator<AddEntry> {
        for (const [path, text] of given) yield text === undefined ? { path } : { path, content: (async function * () { yield new TextEncoder().encode(text) })() }
      }
      await assert.rejects(async () => {
        for await (const _ of importEntries(entries(), { wrap_with_directory: true }, { put: () => {} })) { /* drain */ }
      }, (err: Error) => err.name === 'InvalidParameterError' && err.message === message, JSON.stringify(given))
    }
    // a directory given again after its files is still fine: it is already implied
    const outs: string[] = []
    const ok = async function * (): AsyncGenerator<AddEntry> {
      yield { path: 'd/a', content: (async function * () { yield new Uint8Array([1]) })() }
      yield { path: 'd' }
    }
    for await (const out of importEntries(ok(), {}, { put: () => {} })) outs.push(out.name)
    assert.deepEqual(outs, ['d/a', 'd'])
  })
})
