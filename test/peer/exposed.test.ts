import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { exposedWithoutAuth } from '../../src/peer.js'
import type { LoadedConfig } from '../../src/config/index.js'

function cfg (listen: string, creds: Record<string, string> | null = null, pinsvc = '127.0.0.1:9097'): LoadedConfig {
  return { peer: { rest: { listen, basic_auth_credentials: creds }, pinsvc: { enabled: true, listen: pinsvc } } } as unknown as LoadedConfig
}

describe('REST exposure warning', () => {
  it('warns loudly for a non-loopback bind without credentials, and only then', () => {
    assert.match(exposedWithoutAuth(cfg('0.0.0.0:9094')) ?? '', /WARNING.*0\.0\.0\.0:9094.*basic_auth_credentials/)
    assert.match(exposedWithoutAuth(cfg('[::]:9094')) ?? '', /WARNING/)
    assert.match(exposedWithoutAuth(cfg('192.168.1.10:9094')) ?? '', /WARNING/)
    assert.equal(exposedWithoutAuth(cfg('127.0.0.1:9094')), undefined)
    assert.equal(exposedWithoutAuth(cfg('localhost:9094')), undefined)
    assert.equal(exposedWithoutAuth(cfg('[::1]:9094')), undefined)
    assert.equal(exposedWithoutAuth(cfg('0.0.0.0:9094', { admin: 'pw' })), undefined)
  })

  it('also warns for the pinning API, which writes too', () => {
    assert.match(exposedWithoutAuth(cfg('127.0.0.1:9094', null, '0.0.0.0:9097')) ?? '', /WARNING: the pinning API listens on 0\.0\.0\.0:9097/)
    assert.equal(exposedWithoutAuth(cfg('127.0.0.1:9094', { admin: 'pw' }, '0.0.0.0:9097')), undefined)
  })
})
