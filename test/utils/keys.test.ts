// The key module's strings are on disk (level, Helia's datastore) and compared across peers (the Yjs map):
// these are the exact strings the code wrote before the key helpers were gathered in src/utils/keys.ts.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import { pinnedBlockKey, pinnedBlockMultihash, pinRecordKey } from '../../src/ipfs/helia-internals.js'
import { datastoreCidName, datastoreMultihashName, fromDatastoreName, heldPinKey, pinKey, tryPinKey } from '../../src/utils/keys.js'

const V1_DAG_PB = 'bafybeicktee2sulnal6uy4u2iwjchgh3ihbzrqrvii5fgbailpeshkg3m4'
const V1_RAW = 'bafkreicktee2sulnal6uy4u2iwjchgh3ihbzrqrvii5fgbailpeshkg3m4'
const MULTIHASH_NAME = 'kmufhod9ni97ctwek9r13su3n3608hbaqs0g1geh6jue4bfzlltuv'

/** Each form: the CID, its pinset key, Helia's pin record key and its block record key. */
const FORMS = [
  { name: 'CIDv0', cid: 'QmTMrE6HQghijyiaihfJ8QmxX2gLfYpHGdyQQNqQ6ABbWE', key: V1_DAG_PB, pinRecord: '/pin/k2jmtxt81ld5ok9g4danl4vq1luxnz3pdgt8opdvfj18butazp4tjazr', block: `/pinned-block/${MULTIHASH_NAME}` },
  { name: 'CIDv1 dag-pb', cid: V1_DAG_PB, key: V1_DAG_PB, pinRecord: '/pin/k2jmtxt81ld5ok9g4danl4vq1luxnz3pdgt8opdvfj18butazp4tjazr', block: `/pinned-block/${MULTIHASH_NAME}` },
  { name: 'CIDv1 raw', cid: V1_RAW, key: V1_RAW, pinRecord: '/pin/k2cwueaic5zzjzoujxrv645pe2lshk1zduht38alw81bpxwvxbxvshnr', block: `/pinned-block/${MULTIHASH_NAME}` },
  { name: 'identity CID', cid: 'bafkqabldmfuxe3q', key: 'bafkqabldmfuxe3q', pinRecord: '/pin/k56om9dlaabi3y', block: '/pinned-block/k023lmnceb2' }
]

describe('storage keys', () => {
  it('builds the forms from the same content: sha2-256 and identity of "cairn"', async () => {
    const bytes = new TextEncoder().encode('cairn')
    const digest = await sha256.digest(bytes)
    assert.deepEqual(FORMS.map(f => f.cid), [
      CID.createV0(digest).toString(), CID.createV1(0x70, digest).toString(), CID.createV1(raw.code, digest).toString(),
      CID.createV1(raw.code, identity.digest(bytes)).toString()
    ])
  })

  for (const f of FORMS) {
    it(`pins the exact strings of a ${f.name}`, () => {
      const cid = CID.parse(f.cid)
      assert.equal(pinKey(cid), f.key)
      assert.equal(pinKey(f.cid), f.key)
      assert.equal(heldPinKey(f.cid), f.key)
      assert.equal(tryPinKey(f.cid), f.key)
      assert.equal(pinRecordKey(cid).toString(), f.pinRecord)
      assert.equal(`/pin/${datastoreCidName(cid)}`, f.pinRecord)
      assert.equal(pinnedBlockKey(cid).toString(), f.block)
      assert.equal(`/pinned-block/${datastoreMultihashName(cid.multihash.bytes)}`, f.block)
      assert.deepEqual(pinnedBlockMultihash(f.block), cid.multihash.bytes)
      assert.deepEqual(fromDatastoreName(f.block.slice('/pinned-block/'.length)), cid.multihash.bytes)
    })
  }

  it('refuses what is not a CID', () => {
    assert.equal(tryPinKey('Qm123'), undefined)
    assert.throws(() => pinKey('Qm123'))
    assert.equal(pinnedBlockMultihash('/pin/k2'), undefined)
    assert.equal(fromDatastoreName('not base36!'), undefined)
  })
})
