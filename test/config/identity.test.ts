import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { createIdentity, identityFromJSON, identityToJSON, initPeer, loadConfig } from '../../src/config/index.js'
import { assertConfigError, tempDir } from './helpers.js'

describe('identity.json', () => {
  it('round-trips a key that still signs for its peer ID', async () => {
    const identity = await createIdentity()
    const json = identityToJSON(identity)
    assert.equal(json.id, identity.peerId.toString())
    assert.match(json.id, /^12D3KooW/)
    const back = identityFromJSON(JSON.parse(JSON.stringify(json)))
    const data = new TextEncoder().encode('cairn')
    assert.ok(await identity.privateKey.publicKey.verify(data, await back.privateKey.sign(data)))
    assert.ok(back.peerId.equals(identity.peerId))
  })

  it('rejects an id that does not match the key', async () => {
    const dir = await tempDir()
    await initPeer(dir, { env: {} })
    const file = join(dir, 'identity.json')
    const other = (await createIdentity()).peerId.toString()
    const json = JSON.parse(await readFile(file, 'utf8'))
    await writeFile(file, JSON.stringify({ ...json, id: other }))
    await assertConfigError(async () => await loadConfig(dir, { env: {} }), `${file}: id: ${other} does not match private_key`)
  })

  it('rejects a damaged key, a missing field and an unknown field', async () => {
    const { id, private_key: key } = identityToJSON(await createIdentity())
    await assertConfigError(() => identityFromJSON({ id, private_key: key.slice(0, 20) }), 'identity.json: private_key:')
    await assertConfigError(() => identityFromJSON({ id }), 'identity.json: private_key:')
    await assertConfigError(() => identityFromJSON({ id, private_key: key, public_key: key }), 'public_key: unknown key')
  })
})
