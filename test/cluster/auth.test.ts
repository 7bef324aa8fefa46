// Issue 3: REST access control on a real peer, as IPFS Cluster does it (Basic, or a JWT from POST /token).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createClient } from '../../src/client/index.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'

describe('REST API access control', () => {
  let tc: TestCluster
  before(async () => { tc = await createTestCluster(1, { basicAuth: { admin: 's3cret' } }) })
  after(async () => { await tc?.close() })

  it('answers 401 without or with wrong credentials, and accepts Basic and a token from POST /token', async () => {
    const url = tc.url(0)
    const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`
    for (const headers of [{} as Record<string, string>, { authorization: basic('admin', 'wrong') }, { authorization: basic('nobody', 's3cret') }, { authorization: 'Bearer not.a.jwt' }]) {
      const res = await fetch(`${url}/id`, { headers })
      assert.equal(res.status, 401, JSON.stringify(headers))
      assert.ok(res.headers.get('www-authenticate') != null)
      const body = await res.json() as { code: number, message: string }
      assert.equal(body.code, 401)
      assert.match(body.message, /unauthorized/)
    }
    // Writes are refused too, and nothing is pinned.
    const denied = await fetch(`${url}/pins/bafkqaaa`, { method: 'POST' })
    assert.equal(denied.status, 401)
    assert.equal(tc.peer(0).pinset.size(), 0)
    // /health stays open.
    assert.equal((await fetch(`${url}/health`)).status, 204)

    const ok = await fetch(`${url}/id`, { headers: { authorization: basic('admin', 's3cret') } })
    assert.equal(ok.status, 200)
    const tokenRes = await fetch(`${url}/token`, { method: 'POST', headers: { authorization: basic('admin', 's3cret') } })
    assert.equal(tokenRes.status, 200)
    const { token } = await tokenRes.json() as { token: string }
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/)
    const client = createClient({ api: url, token })
    const pin = await client.pin('bafkqaaa', { name: 'with-token' })
    assert.equal(pin.name, 'with-token')
    assert.equal((await client.id()).id, tc.peer(0).id)
    // A token signed for another password does not work.
    const forged = token.slice(0, token.lastIndexOf('.') + 1) + 'AAAA'
    assert.equal((await fetch(`${url}/id`, { headers: { authorization: `Bearer ${forged}` } })).status, 401)
  })
})
