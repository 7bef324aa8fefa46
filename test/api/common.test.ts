import assert from 'node:assert/strict'
import { Agent, request } from 'node:http'
import { describe, it } from 'node:test'
import express from 'express'
import { CID } from 'multiformats/cid'
import { base64 } from 'multiformats/bases/base64'
import { base36 } from 'multiformats/bases/base36'
import { errorHandler, listen, requestSignals } from '../../src/api/common.js'
import { parseCid } from '../../src/utils/cid.js'
import { pinKey } from '../../src/utils/keys.js'
import { HTTP_STATUS_BY_NAME, pinsvcErrorBody, restErrorBody, toHttpError } from '../../src/api/errors.js'
import { decodePartPath } from '../../src/api/rest/multipart.js'
import { parseAddQuery, parseGoDuration, parsePinOptions, parseRfc3339 } from '../../src/api/rest/pin-options.js'
import * as errors from '../../src/errors.js'

const V0 = 'QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG'
const q = (s: string): URLSearchParams => new URLSearchParams(s)

describe('error status map', () => {
  it('maps every error class by name, unknown errors to 500', () => {
    const expected: Record<string, number> = {
      InvalidCIDError: 400, InvalidParameterError: 400, InvalidBodyError: 400, UnknownPeerError: 400,
      NotInPinsetError: 404, NotFoundError: 404, UnauthorizedError: 401, FollowerModeError: 403,
      QueueFullError: 429, TooManyRequestsError: 429, QuotaExceededError: 507, InsufficientStorageError: 507, RetrievalTimeoutError: 504, NotEnoughPeersError: 500, NotEnoughSpaceError: 507,
      ShuttingDownError: 503, RepoBusyError: 503, InvalidBlockError: 502, InvalidContentError: 502,
      NotAcceptableError: 406, NotCachedError: 412
    }
    for (const [name, status] of Object.entries(expected)) {
      const Cls = (errors as unknown as Record<string, new () => Error>)[name]
      assert.equal(toHttpError(new Cls()).status, status, name)
    }
    // other libraries' errors, by name: a block in a codec or hash function this peer does not know
    const foreign = { UnknownCodecError: 502, UnknownHashAlgorithmError: 502, NoResolverError: 502 }
    for (const [name, status] of Object.entries(foreign)) {
      assert.equal(toHttpError(Object.assign(new Error('x'), { name })).status, status, name)
    }
    assert.deepEqual(HTTP_STATUS_BY_NAME, { ...expected, ...foreign })
    assert.deepEqual(toHttpError(new TypeError('boom')), { status: 500, message: 'boom' })
  })

  it('a full disk is a 507 whichever library reported it, never a 500', () => {
    const leveldb = Object.assign(new Error('IO error: /p/blocks/000003.log: No space left on device'), { code: 'LEVEL_IO_ERROR' })
    assert.deepEqual(toHttpError(leveldb), { status: 507, message: 'insufficient storage: IO error: /p/blocks/000003.log: No space left on device' })
    const fs = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
    assert.equal(toHttpError(fs).status, 507)
    // datastore-level keeps only String(err) of what it wraps
    const ours = new errors.InsufficientStorageError('insufficient storage: a write to /p/datastore failed for lack of space on the disk holding /p/datastore (0 B free)')
    const wrapped = Object.assign(new Error(String(ours)), { name: 'PutFailedError' })
    assert.deepEqual(toHttpError(wrapped), { status: 507, message: ours.message })
    assert.deepEqual(pinsvcErrorBody(507, ours.message), { error: { reason: 'INSUFFICIENT_STORAGE', details: ours.message } })
  })

  it('turns express.json() failures into 400 (malformed) and 413 (too large)', async () => {
    const app = express()
    app.post('/', express.json({ limit: 10 }), (_req, res) => { res.end() })
    app.use(errorHandler(restErrorBody))
    const server = await listen(app, '127.0.0.1', 0)
    try {
      const post = async (body: string): Promise<Response> => await fetch(`http://127.0.0.1:${server.address.port}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      const bad = await post('{nope')
      assert.equal(bad.status, 400)
      assert.match((await bad.json() as { message: string }).message, /^malformed JSON body: /)
      assert.equal((await post('{"a":"0123456789"}')).status, 413)
    } finally {
      await server.close()
    }
  })

  it('a request whose client went away is not logged as a server error', async () => {
    const errorsLogged: string[] = []
    const log = Object.assign(() => {}, { error: (f: string, ...a: unknown[]) => { errorsLogged.push(`${f} ${a.map(String).join(' ')}`) }, trace: () => {}, enabled: false }) as never
    const signals = requestSignals()
    let failed!: () => void
    const handled = new Promise<void>(resolve => { failed = resolve })
    const app = express()
    // a handler still waiting (say, for a block nobody has) when its client leaves: it fails with the signal's reason
    app.get('/slow', (_req, res, next) => {
      const signal = signals(res)
      signal.addEventListener('abort', () => { next(signal.reason); setImmediate(failed) }, { once: true })
    })
    app.get('/boom', () => { throw new TypeError('boom') })
    app.use(errorHandler(restErrorBody, log))
    const server = await listen(app, '127.0.0.1', 0)
    try {
      const base = `http://127.0.0.1:${server.address.port}`
      await assert.rejects(fetch(`${base}/slow`, { signal: AbortSignal.timeout(200) }))
      await handled
      assert.deepEqual(errorsLogged, [])
      // a failure of ours still is
      assert.equal((await fetch(`${base}/boom`)).status, 500)
      assert.equal(errorsLogged.length, 1)
      assert.match(errorsLogged[0], /boom/)
    } finally {
      await server.close()
    }
  })

  it('close() lets an in-flight request finish, then ends its keep-alive socket and the idle ones at once', async () => {
    const app = express()
    app.get('/fast', (_req, res) => { res.end('fast') })
    app.get('/slow', (_req, res) => { setTimeout(() => { res.end('slow done') }, 400) })
    const server = await listen(app, '127.0.0.1', 0)
    const agent = new Agent({ keepAlive: true })
    try {
      const get = async (path: string): Promise<string> => await new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: server.address.port, path, agent }, res => {
          let body = ''
          res.on('data', (d: Buffer) => { body += d.toString() })
          res.on('end', () => { resolve(body) })
        })
        req.on('error', reject)
        req.end()
      })
      assert.equal(await get('/fast'), 'fast') // leaves an idle keep-alive socket
      const slow = get('/slow')
      await new Promise(resolve => setTimeout(resolve, 100))
      const started = Date.now()
      await server.close()
      const took = Date.now() - started
      assert.equal(await slow, 'slow done')
      // the keep-alive socket of /slow would otherwise hold close() for Node's 5 s keep-alive timeout
      assert.ok(took < 2500, `close() took ${took} ms`)
    } finally {
      agent.destroy()
    }
  })

  it('says which address is taken when a port is in use', async () => {
    const first = await listen(express(), '127.0.0.1', 0)
    try {
      await assert.rejects(listen(express(), '127.0.0.1', first.address.port),
        { name: 'ConfigError', message: new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first.address.port}: the address is already in use`) })
    } finally {
      await first.close()
    }
  })
})

describe('parseCid', () => {
  it('keys every form of a CID as CIDv1 base32', () => {
    const v1 = CID.parse(V0).toV1()
    assert.equal(pinKey(parseCid(V0)), v1.toString())
    assert.equal(pinKey(parseCid(v1.toString(base64))), v1.toString())
    assert.equal(parseCid(V0).version, 0)
  })

  it('names the bad input', () => {
    assert.throws(() => parseCid('xyz'), { name: 'InvalidCIDError', message: /^invalid CID "xyz": "x" is not a multibase prefix/ })
    assert.throws(() => parseCid(''), { name: 'InvalidCIDError', message: 'invalid CID "": it is empty' })
  })
})

describe('query parsing', () => {
  it('parses Go durations', () => {
    assert.equal(parseGoDuration('1h30m'), 5_400_000)
    assert.equal(parseGoDuration('90s'), 90_000)
    assert.equal(parseGoDuration('1.5h'), 5_400_000)
    assert.equal(parseGoDuration('250ms'), 250)
    assert.equal(parseGoDuration('-1s'), -1000)
    assert.equal(parseGoDuration('1d'), undefined)
    assert.equal(parseGoDuration('h'), undefined)
  })

  it('parses RFC3339 timestamps to UTC and refuses impossible dates', () => {
    assert.equal(parseRfc3339('2030-01-02T03:04:05+01:00'), '2030-01-02T02:04:05.000Z')
    assert.equal(parseRfc3339('2030-01-02'), undefined)
    assert.equal(parseRfc3339('2023-02-29T00:00:00Z'), undefined)
    assert.equal(parseRfc3339('2024-02-29T00:00:00Z'), '2024-02-29T00:00:00.000Z')
  })

  it('reads pin options the way IPFS Cluster does', () => {
    assert.deepEqual(parsePinOptions(q('')), {})
    assert.deepEqual(parsePinOptions(q('replication=2&replication-min=5')), { replication_factor_min: 2, replication_factor_max: 2 })
    assert.deepEqual(parsePinOptions(q('expire-in=24h'), 0), { expire_at: '1970-01-02T00:00:00.000Z' })
    assert.deepEqual(parsePinOptions(q('meta-=x&meta-a=1&meta-a=2')), { metadata: { a: '1' } })
    // as given: a CIDv0 stays v0 (IPFS Cluster writes the Cid back in its own version)
    assert.equal(parsePinOptions(q(`pin-update=${V0}`)).pin_update, V0)
    assert.equal(parsePinOptions(q(`pin-update=${CID.parse(V0).toV1().toString(base36)}`)).pin_update, CID.parse(V0).toV1().toString())
    assert.throws(() => parsePinOptions(q('pin-update=zzz')), { name: 'InvalidParameterError', message: /^invalid value for "pin-update": invalid CID "zzz"/ })
  })

  it('reads add parameters: defaults, CIDv1 raw leaves, shard as a shard size', () => {
    assert.deepEqual(parseAddQuery(q('')), { params: {}, streamChannels: true, local: false })
    assert.deepEqual(parseAddQuery(q('cid-version=1')).params, { cid_version: 1, raw_leaves: true })
    assert.deepEqual(parseAddQuery(q('cid-version=1&raw-leaves=false')).params, { cid_version: 1, raw_leaves: false })
    assert.deepEqual(parseAddQuery(q('shard-size=5&pin-update=' + V0)).params, {})
    assert.deepEqual(parseAddQuery(q('shard=true&shard-size=1048576')).params, { shard_size: 1048576 })
    // refused before the upload is read; 0 would otherwise read as "not sharded" and the add go on unsharded
    for (const size of ['5', '0']) {
      assert.throws(() => parseAddQuery(q(`shard=true&shard-size=${size}`)), { name: 'InvalidParameterError', message: `shard-size must be at least 65536 bytes, got ${size}` })
    }
    assert.deepEqual(parseAddQuery(q('shard=true')).params, { shard_size: 104857600 })
    assert.deepEqual(parseAddQuery(q('stream-channels=false&local=true&no-pin=1&progress=t')), {
      params: { no_pin: true, progress: true }, streamChannels: false, local: true
    })
    assert.throws(() => parseAddQuery(q('cid-version=2')), { message: 'invalid value for "cid-version": "2" must be 0 or 1' })
    assert.throws(() => parseAddQuery(q('chunker=size-0')), { message: /^invalid value for "chunker": "size-0"/ })
    assert.throws(() => parseAddQuery(q('layout=trickle')), { message: /^invalid value for "layout": "trickle" is not supported/ })
    assert.throws(() => parseAddQuery(q('format=tar')), { message: 'invalid value for "format": "tar" must be "unixfs" or "car"' })
  })

  it('decodes Kubo part paths and refuses to leave the tree', () => {
    assert.equal(decodePartPath('dir%2Fsub%2Fa+b.txt'), 'dir/sub/a b.txt')
    assert.equal(decodePartPath('./dir//x/'), 'dir/x')
    assert.equal(decodePartPath('100%.txt'), '100%.txt')
    assert.throws(() => decodePartPath('dir%2F..%2F..%2Fetc'), { name: 'InvalidBodyError', message: /leaves its directory/ })
  })
})
