// `cairn mirror npm-index`: packuments written from the tarballs of an npm mirror tree. Tarballs here are made by
// hand (gzipped ustar), so that entry order and bad input can be chosen; the real `npm pack` + `npm install`
// round trip is in test/gateway/mirror-clients.test.ts.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { gzipSync } from 'node:zlib'
import { compareVersions, readManifest, writePackuments } from '../../src/mirror/npm.js'
import { sleep, tempDir } from '../util.js'

/** One ustar header + data, padded to 512-byte blocks. */
function tarEntry (path: string, data: Buffer): Buffer {
  const header = Buffer.alloc(512)
  header.write(path, 0, 100, 'utf8')
  header.write('0000644\0', 100)
  header.write('0000000\0', 108)
  header.write('0000000\0', 116)
  header.write(data.byteLength.toString(8).padStart(11, '0') + '\0', 124)
  header.write('00000000000\0', 136)
  header.write('0', 156)
  header.write('ustar\0' + '00', 257, 'latin1')
  header.fill(' ', 148, 156)
  const sum = header.reduce((n, b) => n + b, 0)
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1')
  return Buffer.concat([header, data, Buffer.alloc((512 - data.byteLength % 512) % 512)])
}

function tgz (entries: Array<[string, string | Buffer]>): Buffer {
  return gzipSync(Buffer.concat([...entries.map(([p, d]) => tarEntry(p, Buffer.from(d))), Buffer.alloc(1024)]))
}

const manifest = (name: string, version: string, extra: Record<string, unknown> = {}): string => JSON.stringify({ name, version, ...extra })

describe('cairn mirror npm-index', () => {
  let tmp: { path: string, cleanup: () => Promise<void> }
  before(async () => { tmp = await tempDir('cairn-npm-index-') })
  after(async () => { await tmp?.cleanup() })

  const put = async (root: string, path: string, bytes: Buffer | string): Promise<string> => {
    const file = join(root, path)
    await mkdir(join(file, '..'), { recursive: true })
    await writeFile(file, bytes)
    return file
  }

  it('writes a packument per package, scoped ones included, with integrity, shasum and latest', async () => {
    const root = join(tmp.path, 'good')
    // package.json after other entries, and under a top folder not named "package" (older tarballs have those)
    const big = Buffer.alloc(70_000, 7)
    const a1 = tgz([['package/README.md', 'readme'], ['package/lib/big.bin', big], ['package/package.json', manifest('a', '1.0.0', { dependencies: { b: '^1' } })]])
    await put(root, 'a/-/a-1.0.0.tgz', a1)
    await put(root, 'a/-/a-1.10.0.tgz', tgz([['a/package.json', manifest('a', '1.10.0')]]))
    await put(root, 'a/-/a-1.2.0.tgz', tgz([['package/package.json', manifest('a', '1.2.0')]]))
    await put(root, 'a/-/a-2.0.0-rc.1.tgz', tgz([['package/package.json', manifest('a', '2.0.0-rc.1')]]))
    await put(root, '@s/b/-/b-0.1.0-alpha.tgz', tgz([['package/package.json', manifest('@s/b', '0.1.0-alpha')]]))
    // not packages: no "-" folder, a dot folder, a file
    await put(root, 'docs/readme.txt', 'x')
    await put(root, '.git/-/x-1.0.0.tgz', 'not read')
    await put(root, 'top.txt', 'x')

    const out = await writePackuments(root)
    assert.ok(out.every(p => p.written))
    assert.deepEqual(out.map(p => [p.name, p.versions, p.latest]), [
      ['@s/b', ['0.1.0-alpha'], '0.1.0-alpha'],
      ['a', ['1.0.0', '1.2.0', '1.10.0', '2.0.0-rc.1'], '1.10.0']
    ])
    const doc = JSON.parse(await readFile(join(root, 'a', 'index.json'), 'utf8')) as { name: string, 'dist-tags': Record<string, string>, versions: Record<string, Record<string, unknown> & { dist: Record<string, string> }> }
    assert.equal(doc.name, 'a')
    assert.deepEqual(doc['dist-tags'], { latest: '1.10.0' })
    assert.deepEqual(Object.keys(doc.versions), ['1.0.0', '1.2.0', '1.10.0', '2.0.0-rc.1'])
    const v1 = doc.versions['1.0.0']
    assert.deepEqual(v1.dependencies, { b: '^1' })
    assert.equal(v1._id, 'a@1.0.0')
    assert.deepEqual(v1.dist, {
      tarball: 'a/-/a-1.0.0.tgz',
      shasum: createHash('sha1').update(a1).digest('hex'),
      integrity: `sha512-${createHash('sha512').update(a1).digest('base64')}`
    })
    const scoped = JSON.parse(await readFile(join(root, '@s', 'b', 'index.json'), 'utf8')) as { versions: Record<string, { dist: { tarball: string } }> }
    assert.equal(scoped.versions['0.1.0-alpha'].dist.tarball, '@s/b/-/b-0.1.0-alpha.tgz')

    // run again with nothing new: the packuments are left as they are (their mtime too, so a sync sees no change)
    const mtime = (await stat(join(root, 'a', 'index.json'))).mtimeMs
    // proves a NOT: a rewrite 20 ms later would show in the mtime, and there is none
    await sleep(20)
    const again = await writePackuments(root)
    assert.deepEqual(again.map(p => p.written), [false, false])
    assert.equal((await stat(join(root, 'a', 'index.json'))).mtimeMs, mtime)
    await put(root, 'a/-/a-1.10.1.tgz', tgz([['package/package.json', manifest('a', '1.10.1')]]))
    assert.deepEqual((await writePackuments(root)).map(p => [p.name, p.written, p.latest]), [['@s/b', false, '0.1.0-alpha'], ['a', true, '1.10.1']])
  })

  it('refuses bad tarballs with errors naming the file', async () => {
    const cases: Array<[string, Buffer | string, RegExp]> = [
      ['x/-/x-1.0.0.tgz', tgz([['package/package.json', manifest('y', '1.0.0')]]), /x-1\.0\.0\.tgz: its package.json names the package "y", but it lies in "x\/-\/"/],
      ['x/-/x-1.0.0.tgz', tgz([['package/package.json', manifest('x', 'one')]]), /x-1\.0\.0\.tgz: its package.json has no valid semver version \("one"\)/],
      ['x/-/x-1.0.0.tgz', tgz([['package/package.json', '{"name":']]), /x-1\.0\.0\.tgz: its package.json is not valid JSON/],
      ['x/-/x-1.0.0.tgz', tgz([['package/index.js', '1']]), /x-1\.0\.0\.tgz holds no package.json/],
      ['x/-/x-1.0.0.tgz', 'not gzip at all', /x-1\.0\.0\.tgz is not a gzipped tarball/]
    ]
    for (const [i, [path, bytes, message]] of cases.entries()) {
      const root = join(tmp.path, `bad-${i}`)
      await put(root, path, bytes)
      await assert.rejects(writePackuments(root), { name: 'InvalidParameterError', message }, String(message))
    }
    const twice = join(tmp.path, 'twice')
    await put(twice, 'x/-/x-1.0.0.tgz', tgz([['package/package.json', manifest('x', '1.0.0')]]))
    await put(twice, 'x/-/x-copy.tgz', tgz([['package/package.json', manifest('x', '1.0.0')]]))
    await assert.rejects(writePackuments(twice), { message: /x-copy\.tgz: version 1\.0\.0 of x is also in x\/-\/x-1\.0\.0\.tgz/ })
    await assert.rejects(writePackuments(join(tmp.path, 'no-such-dir')), { name: 'InvalidParameterError', message: /cannot read the mirror tree/ })
    // reading stops at package.json: the rest of the archive may be anything
    const early = await put(tmp.path, 'early.tgz', gzipSync(Buffer.concat([tarEntry('package/package.json', Buffer.from(manifest('e', '1.0.0'))), Buffer.alloc(2048, 0xff)])))
    assert.deepEqual(await readManifest(early), { name: 'e', version: '1.0.0' })
  })

  it('orders versions by semver precedence', () => {
    const sorted = ['1.0.0', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '0.9.9', '10.0.0', '2.0.0', '1.0.0+build']
      .sort(compareVersions)
    assert.deepEqual(sorted, ['0.9.9', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.0+build', '2.0.0', '10.0.0'])
  })
})
