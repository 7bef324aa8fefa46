// A peer that goes away in the middle of a `mirror sync` upload: the sync must fail with an error that says so,
// never wait forever. The build waits for room in the upload queue while the HTTP body is stuck; once the
// connection is cut nothing else would wake it (and the CLI process would end with code 13, saying nothing).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createClient } from '../../src/client/index.js'
import { syncMirror, type MirrorSyncEvent } from '../../src/mirror/index.js'
import { sendNdjson, startFakeApi, type FakeApi } from '../client/fake-api.js'
import { tempDir, waitFor } from '../util.js'

describe('mirror sync when the peer breaks off the upload', () => {
  let tmp: { path: string, cleanup: () => Promise<void> }
  let api: FakeApi
  let stalled: Promise<void>
  let cut: () => void = () => {}

  before(async () => {
    tmp = await tempDir('cairn-upload-broken-')
    const tree = join(tmp.path, 'tree')
    await mkdir(tree)
    // more than the upload queue (8 MiB) and the socket buffers can hold: the build has to wait for room
    for (let i = 0; i < 24; i++) await writeFile(join(tree, `f${i}.bin`), randomBytes(2 * 1024 * 1024))
    let uploading: () => void = () => {}
    stalled = new Promise(resolve => { uploading = resolve })
    api = await startFakeApi({
      'GET /allocations': (_req, res) => { sendNdjson(res, []) },
      // read nothing of the body; the test cuts the connection once the build is stuck
      'POST /add': req => {
        req.pause()
        cut = () => { req.socket.destroy() }
        uploading()
      }
    })
  })

  after(async () => {
    await api?.close()
    await tmp?.cleanup()
  })

  it('fails with "broke off POST /add" instead of waiting forever', { timeout: 60_000 }, async () => {
    let last: MirrorSyncEvent | undefined
    let lastAt = Date.now()
    const sync = syncMirror(createClient({ api: api.url }), {
      dir: join(tmp.path, 'tree'),
      name: 'broken',
      cacheFile: join(tmp.path, 'cache.json'),
      onProgress: e => { last = e; lastAt = Date.now() }
    })
    let settled = false
    const outcome = sync.then(() => 'resolved', (err: Error) => err).finally(() => { settled = true })
    await stalled
    // the build is stuck once it has stopped reporting progress (it reports each file it has read)
    await waitFor(() => Date.now() - lastAt > 500, { timeoutMs: 30_000, message: 'the build stops for want of room' })
    assert.equal(settled, false, 'the sync ended before the connection was cut')
    assert.ok(last?.phase === 'scan' || (last?.phase === 'hash' && last.files_done < 24), `the build went through every file (${JSON.stringify(last)})`)
    cut()
    const deadline = new Promise(resolve => setTimeout(resolve, 10_000, 'still waiting').unref())
    const result = await Promise.race([outcome, deadline])
    assert.ok(result instanceof Error, `syncMirror: ${String(result)}`)
    assert.match(result.message, new RegExp(`the cairn API at ${api.url} broke off POST /add: .* \\(did the daemon stop\\?\\)`))
  })
})
