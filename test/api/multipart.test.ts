// The add body parser (src/api/rest/multipart.ts) against bodies cut into chunks at every place: a boundary, a
// header or a symlink's target split between two reads must read the same as in one piece.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { describe, it } from 'node:test'
import { parseHeaderValue, parseMultipart } from '../../src/api/rest/multipart.js'
import type { AddEntry } from '../../src/components.js'
import type { IncomingMessage } from 'node:http'

const BOUNDARY = 'xYz-boundary'

/** A request whose body arrives in exactly these chunks. */
function request (chunks: Buffer[], contentType = `multipart/form-data; boundary=${BOUNDARY}`): IncomingMessage {
  const req = Readable.from(chunks, { objectMode: false }) as unknown as IncomingMessage & { complete: boolean }
  req.headers = { 'content-type': contentType }
  req.once('end', () => { req.complete = true })
  return req
}

interface Read { path: string, content?: Buffer, link?: string }

async function readAll (entries: AsyncIterable<AddEntry>, { skipContent = false } = {}): Promise<Read[]> {
  const out: Read[] = []
  for await (const e of entries) {
    if (e.link !== undefined) {
      out.push({ path: e.path, link: e.link })
    } else if (e.content !== undefined) {
      const chunks: Uint8Array[] = []
      if (!skipContent) for await (const c of e.content) chunks.push(c)
      out.push({ path: e.path, content: Buffer.concat(chunks) })
    } else {
      out.push({ path: e.path })
    }
  }
  return out
}

function part (headers: string[], body: string | Buffer): Buffer {
  return Buffer.concat([Buffer.from(`--${BOUNDARY}\r\n${headers.join('\r\n')}\r\n\r\n`), Buffer.from(body), Buffer.from('\r\n')])
}

const BIG = randomBytes(20_000)
const BODY = Buffer.concat([
  Buffer.from('preamble\r\n'),
  part(['Content-Disposition: form-data; name="file"; filename="d"', 'Content-Type: application/x-directory'], ''),
  // content that looks like the start of a delimiter, and the boundary followed by other text
  part(['Content-Disposition: file; filename="d%2Fa.txt"', 'Content-Type: application/octet-stream'], `x\r\n--xYz-bou\r\n-\r\n--${BOUNDARY}Q\r\r`),
  part(['Content-Disposition: attachment; filename="d%2Flink"', 'Content-Type: application/symlink'], '../t\u00e9st/target'),
  part(['Content-Disposition: form-data; name="file"; filename="d%2Fempty"'], ''),
  part(['Content-Disposition: form-data; name="file"; filename*=utf-8\'\'d%2Fcaf%C3%A9'], 'coffee'),
  part(['Content-Disposition: form-data; name="file"; filename="d%2Fbig.bin"', 'Content-Type: application/octet-stream'], BIG),
  Buffer.from(`--${BOUNDARY}--\r\nepilogue`)
])
const EXPECTED: Read[] = [
  { path: 'd' },
  { path: 'd/a.txt', content: Buffer.from(`x\r\n--xYz-bou\r\n-\r\n--${BOUNDARY}Q\r\r`) },
  { path: 'd/link', link: '../t\u00e9st/target' },
  { path: 'd/empty', content: Buffer.alloc(0) },
  { path: 'd/café', content: Buffer.from('coffee') },
  { path: 'd/big.bin', content: BIG }
]

describe('multipart add body', () => {
  it('reads the same entries however the body is cut into chunks', async () => {
    // the first 2,000 bytes hold every part but the big file's: cut there at every place, in two and in three
    for (let i = 0; i <= 2000; i++) {
      const cuts = [BODY.subarray(0, i), BODY.subarray(i, i + 37), BODY.subarray(i + 37)]
      assert.deepEqual(await readAll(parseMultipart(request(cuts))), EXPECTED, `cut at ${i}`)
    }
    for (const size of [1, 2, 3, 64, 1000, 65536]) {
      const chunks: Buffer[] = []
      for (let at = 0; at < BODY.length; at += size) chunks.push(BODY.subarray(at, at + size))
      assert.deepEqual(await readAll(parseMultipart(request(chunks))), EXPECTED, `chunks of ${size}`)
    }
  })

  it('skips the content a consumer leaves unread', async () => {
    const read = await readAll(parseMultipart(request([BODY])), { skipContent: true })
    assert.deepEqual(read, EXPECTED.map(e => e.content !== undefined ? { ...e, content: Buffer.alloc(0) } : e))
  })

  it('refuses what is not multipart, or has no boundary', () => {
    assert.throws(() => parseMultipart(request([], 'application/json')), { name: 'InvalidBodyError', message: 'request body must be multipart/form-data, not "application/json"' })
    assert.throws(() => parseMultipart(request([], 'multipart/form-data')), { name: 'InvalidBodyError', message: 'malformed multipart body: the Content-Type header has no boundary' })
  })

  it('reads header values as Go\'s mime.ParseMediaType: type, then parameters, quoted or not', () => {
    const { type, params } = parseHeaderValue('File;  filename="a \\"b\\".txt"; name=file;X=1')
    assert.equal(type, 'file')
    assert.deepEqual([...params], [['filename', 'a "b".txt'], ['name', 'file'], ['x', '1']])
    assert.deepEqual([...parseHeaderValue('form-data; filename="unterminated').params], [])
  })
})
