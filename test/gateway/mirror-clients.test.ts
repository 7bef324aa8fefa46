// Issue 16, items 1 and 3: mirrors synced with `cairn mirror sync`, read through a peer's gateway the way their
// package managers read them. Symlinks are followed inside a mirror (Debian's dists/stable -> bookworm, Arch's
// core.db -> core.db.tar.gz), and apt (the real client, with its own isolated config) reads a repository through
// a suite that is a symlink. An npm registry tree built from `npm pack` tarballs (packuments written by
// `cairn mirror npm-index`) is installed from by the real npm CLI.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { access, mkdir, readFile, readdir, rename, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { gzipSync } from 'node:zlib'
import { runCli } from '../../src/cli/program.js'
import { createClient, type Client } from '../../src/client/index.js'
import { MAX_SYMLINK_HOPS } from '../../src/gateway/path.js'
import { syncMirror } from '../../src/mirror/index.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { rawRequest, runProgram, tempDir, waitFor, type Run, sha256Hex } from '../util.js'

/** Where a program is on PATH, if anywhere. */
async function which (name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir === '') continue
    const file = join(dir, name)
    try {
      await access(file, constants.X_OK)
      return file
    } catch {}
  }
  return undefined
}

/** The environment for a client program: no proxies, no npm settings inherited from `npm test`, a home of its own. */
function isolatedEnv (home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    const key = k.toLowerCase()
    if (key.startsWith('npm_') || key.endsWith('_proxy') || key === 'apt_config') continue
    env[k] = v
  }
  return { ...env, HOME: home, LANG: 'C', LC_ALL: 'C', ...extra }
}

describe('mirrors through the gateway: symlinks, apt, pacman, npm', () => {
  let tc: TestCluster
  let tmp: { path: string, cleanup: () => Promise<void> }
  let client: Client
  let port: number
  let gw: string

  /** Syncs `dir` as mirror `name` and waits until the gateway serves it; returns the root. */
  const publish = async (dir: string, name: string): Promise<string> => {
    const result = await syncMirror(client, { dir, name, keep: 1, cacheFile: join(tmp.path, 'cache', `${name}.json`), pollMs: 200, pinTimeoutMs: 60_000 })
    await waitFor(async () => {
      const mirrors = await (await fetch(`${gw}/mirror/`)).json() as Array<{ name: string, cid: string }>
      return mirrors.some(m => m.name === name && m.cid === result.root)
    }, { message: `the gateway serves mirror ${name}` })
    return result.root
  }

  before(async () => {
    tmp = await tempDir('cairn-mirror-clients-')
    tc = await createTestCluster(1, { name: 'mirror-clients' })
    client = createClient({ api: tc.url(0) })
    port = tc.peer(0).gatewayAddress().port
    gw = `http://127.0.0.1:${port}`
  })
  after(async () => {
    await tc?.close()
    await tmp?.cleanup()
  })

  describe('symlinks in a mirror', () => {
    let root: string
    const release = 'Origin: test\nSuite: stable\nCodename: bookworm\n'

    before(async () => {
      const t = join(tmp.path, 'links')
      await mkdir(join(t, 'dists', 'bookworm', 'main'), { recursive: true })
      await writeFile(join(t, 'dists', 'bookworm', 'Release'), release)
      await writeFile(join(t, 'dists', 'bookworm', 'main', 'Packages'), 'Package: x\n')
      await symlink('bookworm', join(t, 'dists', 'stable'))
      // a chain, and a target written with "./" and a trailing slash
      await symlink('stable', join(t, 'dists', 'latest'))
      await symlink('./latest/', join(t, 'dists', 'current'))
      // a target that itself goes through a link, and one that climbs with ".." and comes back down
      await symlink('dists/stable/Release', join(t, 'top-release'))
      await mkdir(join(t, 'up'))
      await symlink('../dists/stable/Release', join(t, 'up', 'rel'))
      // what is never followed
      await symlink('../outside', join(t, 'escape'))
      await symlink('up/../../outside', join(t, 'escape-deeper'))
      await symlink('/etc/passwd', join(t, 'absolute'))
      await symlink('nowhere', join(t, 'dangling'))
      await symlink('dists/stable/nope', join(t, 'dangling-deeper'))
      await symlink('loop-b', join(t, 'dists', 'loop-a'))
      await symlink('loop-a', join(t, 'dists', 'loop-b'))
      // chains of exactly MAX_SYMLINK_HOPS links and of one more
      await mkdir(join(t, 'chain'))
      await writeFile(join(t, 'chain', 'end'), 'end of the chain\n')
      for (const [prefix, n] of [['ok', MAX_SYMLINK_HOPS], ['long', MAX_SYMLINK_HOPS + 1]] as const) {
        for (let i = 0; i < n; i++) await symlink(i === n - 1 ? 'end' : `${prefix}${i + 1}`, join(t, 'chain', `${prefix}${i}`))
      }
      root = await publish(t, 'links')
    })

    it('follows relative links inside the mirror, through chains and path segments, with truthful headers', async () => {
      const direct = await rawRequest(port, '/mirror/links/dists/bookworm/Release')
      assert.equal(direct.status, 200)
      assert.equal(direct.body.toString(), release)
      assert.equal(direct.headers['x-ipfs-path'], `/ipfs/${root}/dists/bookworm/Release`)
      for (const path of ['dists/stable/Release', 'dists/latest/Release', 'dists/current/Release', 'top-release', 'up/rel']) {
        const res = await rawRequest(port, `/mirror/links/${path}`)
        assert.equal(res.status, 200, `${path}: ${res.body.toString()}`)
        assert.equal(res.body.toString(), release, path)
        // the immutable path and CIDs of what was served: the target's
        for (const h of ['etag', 'x-ipfs-path', 'x-ipfs-roots', 'content-type', 'content-length']) assert.equal(res.headers[h], direct.headers[h], `${path}: ${h}`)
        assert.equal(res.headers['cache-control'], 'public, max-age=60')
      }
      const chained = await rawRequest(port, '/mirror/links/chain/ok0')
      assert.equal(chained.status, 200, chained.body.toString())
      assert.equal(chained.body.toString(), 'end of the chain\n')
      assert.equal(chained.headers['x-ipfs-path'], `/ipfs/${root}/chain/end`)
      // a directory reached through a link: browsers get the slash form of the path they asked for, then a listing
      const redirect = await rawRequest(port, '/mirror/links/dists/stable')
      assert.equal(redirect.status, 302)
      assert.equal(redirect.headers.location, '/mirror/links/dists/stable/')
      const html = await rawRequest(port, '/mirror/links/dists/stable/')
      assert.equal(html.status, 200)
      assert.match(html.body.toString(), /href="Release">Release<\/a>/)
      const listing = JSON.parse((await rawRequest(port, '/mirror/links/dists/stable', { accept: 'application/json' })).body.toString()) as { path: string, entries: Array<{ name: string }> }
      assert.equal(listing.path, '/mirror/links/dists/stable/')
      assert.deepEqual(listing.entries.map(e => e.name), ['Release', 'main'])
      // a missing file below a good link names how far the path went
      const missing = await rawRequest(port, '/mirror/links/dists/stable/main/nope')
      assert.equal(missing.status, 404)
      assert.match(missing.body.toString(), /no link named "nope".*resolved as far as "dists\/bookworm\/main"/)
    })

    it('answers a link that escapes the mirror, is absolute, dangles or loops with a 404 naming it', async () => {
      const cases: Array<[string, RegExp]> = [
        ['escape', /symlink "escape" -> "\.\.\/outside" leads outside the root/],
        ['escape-deeper', /symlink "escape-deeper" -> "up\/\.\.\/\.\.\/outside" leads outside the root/],
        ['absolute', /symlink "absolute" -> "\/etc\/passwd" is absolute/],
        ['dangling', /symlink "dangling" -> "nowhere" dangles/],
        ['dangling-deeper', /symlink "dangling-deeper" -> "dists\/stable\/nope" dangles: no link named "nope"/],
        ['dists/loop-a/Release', /symlink "dists\/loop-[ab]" -> "loop-[ab]": more than 16 symlinks on the way/],
        ['chain/long0', /symlink "chain\/long16" -> "end": more than 16 symlinks on the way/]
      ]
      for (const [path, message] of cases) {
        for (const accept of ['text/html', 'application/json']) {
          const res = await rawRequest(port, `/mirror/links/${path}`, { accept })
          assert.equal(res.status, 404, `${path}: ${res.body.toString()}`)
          const text = accept === 'text/html' ? res.body.toString() : (JSON.parse(res.body.toString()) as { message: string }).message
          assert.match(text, message, path)
          assert.match(text, new RegExp(`^/mirror/links/${path} not found: `), path)
        }
      }
    })

    it('serves a link itself under /ipfs/, and names it when a path goes through it', async () => {
      const link = await rawRequest(port, `/ipfs/${root}/dists/stable`)
      assert.equal(link.status, 200)
      assert.equal(link.body.toString(), 'bookworm')
      assert.equal(link.headers['content-type'], 'text/plain; charset=utf-8')
      const through = await rawRequest(port, `/ipfs/${root}/dists/stable/Release`)
      assert.equal(through.status, 404)
      assert.match(through.body.toString(), /"dists\/stable" is a symlink \(to "bookworm"\): \/ipfs\/ paths do not follow symlinks/)
    })
  })

  it('serves a pacman-style core.db link with the bytes of its target, HEAD and Range included', async () => {
    const t = join(tmp.path, 'archlinux')
    const dir = join(t, 'core', 'os', 'x86_64')
    await mkdir(dir, { recursive: true })
    const db = gzipSync(randomBytes(300_000))
    await writeFile(join(dir, 'core.db.tar.gz'), db)
    await symlink('core.db.tar.gz', join(dir, 'core.db'))
    await publish(t, 'archlinux')
    // the README's mirrorlist line: Server = http://127.0.0.1:8080/mirror/archlinux/$repo/os/$arch
    const url = `${gw}/mirror/archlinux/core/os/x86_64/core.db`
    const target = await fetch(`${gw}/mirror/archlinux/core/os/x86_64/core.db.tar.gz`)
    await target.arrayBuffer()
    const res = await fetch(url)
    assert.equal(res.status, 200)
    assert.equal(sha256Hex(new Uint8Array(await res.arrayBuffer())), sha256Hex(db))
    assert.equal(res.headers.get('content-type'), 'application/gzip')
    assert.equal(res.headers.get('etag'), target.headers.get('etag'))
    const head = await fetch(url, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('content-length'), String(db.byteLength))
    assert.equal(head.headers.get('accept-ranges'), 'bytes')
    const range = await fetch(url, { headers: { Range: 'bytes=262100-262299' } })
    assert.equal(range.status, 206)
    assert.equal(range.headers.get('content-range'), `bytes 262100-262299/${db.byteLength}`)
    assert.deepEqual(new Uint8Array(await range.arrayBuffer()), new Uint8Array(db.subarray(262100, 262300)))
  })

  it('apt reads a repository through a suite that is a symlink (dists/stable -> bookworm)', async t => {
    const aptGet = await which('apt-get')
    const dpkgDeb = await which('dpkg-deb')
    if (aptGet == null || dpkgDeb == null) {
      t.skip(`apt-get or dpkg-deb is not installed (apt-get: ${aptGet ?? 'missing'}, dpkg-deb: ${dpkgDeb ?? 'missing'}): the apt client check needs a Debian system`)
      return
    }
    const work = join(tmp.path, 'apt')
    const repo = join(work, 'debian')
    // a real .deb, built by dpkg-deb from a minimal package
    const pkg = join(work, 'pkg')
    await mkdir(join(pkg, 'DEBIAN'), { recursive: true })
    await mkdir(join(pkg, 'usr', 'share', 'doc', 'hello-cairn'), { recursive: true })
    await writeFile(join(pkg, 'usr', 'share', 'doc', 'hello-cairn', 'README'), 'served by a cairn gateway\n')
    await writeFile(join(pkg, 'DEBIAN', 'control'), 'Package: hello-cairn\nVersion: 1.0\nArchitecture: all\nMaintainer: cairn tests <tests@example.org>\nDescription: a package read through a cairn gateway\n')
    const poolDir = join(repo, 'pool', 'main', 'h', 'hello-cairn')
    await mkdir(poolDir, { recursive: true })
    const built = await runProgram(dpkgDeb, ['--root-owner-group', '--build', pkg, join(poolDir, 'hello-cairn_1.0_all.deb')], { cwd: work, env: isolatedEnv(work) })
    assert.equal(built.code, 0, built.stderr)
    const deb = await readFile(join(poolDir, 'hello-cairn_1.0_all.deb'))
    // the indexes, as a mirror has them: Packages (plain and gzipped) and a Release listing their SHA256
    const packages = Buffer.from(['Package: hello-cairn', 'Version: 1.0', 'Architecture: all', 'Maintainer: cairn tests <tests@example.org>',
      'Installed-Size: 1', 'Filename: pool/main/h/hello-cairn/hello-cairn_1.0_all.deb', `Size: ${deb.byteLength}`, `SHA256: ${sha256Hex(deb)}`,
      'Description: a package read through a cairn gateway', ''].join('\n') + '\n')
    const suite = join(repo, 'dists', 'bookworm')
    await mkdir(join(suite, 'main', 'binary-amd64'), { recursive: true })
    const indexes: Array<[string, Buffer]> = [['main/binary-amd64/Packages', packages], ['main/binary-amd64/Packages.gz', gzipSync(packages)]]
    for (const [path, bytes] of indexes) await writeFile(join(suite, path), bytes)
    await writeFile(join(suite, 'Release'), ['Origin: cairn-test', 'Label: cairn-test', 'Suite: stable', 'Codename: bookworm',
      `Date: ${new Date().toUTCString()}`, 'Architectures: amd64', 'Components: main', 'Description: a repository served by a cairn gateway', 'SHA256:',
      ...indexes.map(([path, bytes]) => ` ${sha256Hex(bytes)} ${bytes.byteLength} ${path}`), ''].join('\n'))
    await symlink('bookworm', join(repo, 'dists', 'stable'))
    await publish(repo, 'debian')

    // apt with every directory and config file of its own: the system's apt state is never read or written
    const apt = join(work, 'apt-root')
    for (const d of ['state/lists/partial', 'cache/archives/partial', 'etc/apt.conf.d', 'etc/sources.list.d', 'etc/preferences.d', 'etc/trusted.gpg.d', 'log', 'download']) {
      await mkdir(join(apt, d), { recursive: true })
    }
    await writeFile(join(apt, 'status'), '')
    await writeFile(join(apt, 'etc', 'apt.conf'), '')
    // the README's sources lines: the suite's own name, and the symlink to it
    await writeFile(join(apt, 'etc', 'sources.list'), ['bookworm', 'stable'].map(suite => `deb [trusted=yes] ${gw}/mirror/debian/ ${suite} main\n`).join(''))
    const conf = [
      `Dir::State "${apt}/state";`, 'Dir::State::lists "lists/";', `Dir::State::status "${apt}/status";`, `Dir::Cache "${apt}/cache";`,
      `Dir::Etc "${apt}/etc";`, 'Dir::Etc::main "apt.conf";', 'Dir::Etc::parts "apt.conf.d";', 'Dir::Etc::sourcelist "sources.list";',
      'Dir::Etc::sourceparts "sources.list.d";', 'Dir::Etc::preferences "preferences";', 'Dir::Etc::preferencesparts "preferences.d";',
      'Dir::Etc::trusted "trusted.gpg";', 'Dir::Etc::trustedparts "trusted.gpg.d";', `Dir::Log "${apt}/log";`,
      'APT::Architecture "amd64";', 'APT::Architectures { "amd64"; };', 'Acquire::Languages "none";', 'Acquire::PDiffs "false";',
      'Acquire::Retries "0";', 'Acquire::http::Proxy "DIRECT";', 'Debug::NoLocking "true";', 'APT::Sandbox::User "root";',
      'APT::Get::List-Cleanup "false";'
    ].join('\n') + '\n'
    await writeFile(join(apt, 'apt.conf'), conf)
    const env = isolatedEnv(work, { APT_CONFIG: join(apt, 'apt.conf') })

    const update = await runProgram(aptGet, ['update'], { cwd: apt, env })
    assert.equal(update.code, 0, `apt-get update failed:\n${update.stdout}\n${update.stderr}`)
    assert.doesNotMatch(update.stderr, /^(E|W):/m, update.stderr)
    const lists = await readdir(join(apt, 'state', 'lists'))
    for (const suite of ['bookworm', 'stable']) {
      assert.ok(lists.some(f => f.endsWith(`_mirror_debian_dists_${suite}_Release`)), `apt stored ${suite}'s Release: ${lists.join(', ')}`)
      assert.ok(lists.some(f => f.endsWith(`_mirror_debian_dists_${suite}_main_binary-amd64_Packages`)), `apt stored ${suite}'s Packages index: ${lists.join(', ')}`)
    }

    const download = await runProgram(aptGet, ['download', 'hello-cairn'], { cwd: join(apt, 'download'), env })
    assert.equal(download.code, 0, `apt-get download failed:\n${download.stdout}\n${download.stderr}`)
    const got = await readFile(join(apt, 'download', 'hello-cairn_1.0_all.deb'))
    assert.equal(sha256Hex(got), sha256Hex(deb))
  })

  describe('npm registry mode', () => {
    let work: string
    let npmrc: string
    let npmEnv: NodeJS.ProcessEnv
    let npm: string | undefined
    let registry: string

    /** Runs the real npm CLI with its own config, cache and home, talking to nothing but the gateway. */
    const npmRun = async (cwd: string, ...args: string[]): Promise<Run> =>
      await runProgram(npm!, [...args, '--userconfig', npmrc, '--globalconfig', join(work, 'global-npmrc'), '--cache', join(work, 'npm-cache'),
        '--no-audit', '--no-fund', '--no-update-notifier', '--fetch-retries', '0'], { cwd, env: npmEnv })

    /** `npm pack` of a package made of a package.json and an index.js; returns the tarball's path. */
    const pack = async (manifest: Record<string, unknown>, main: string): Promise<string> => {
      const dir = join(work, 'src', `${String(manifest.name).replace('/', '+')}-${String(manifest.version)}`)
      await mkdir(dir, { recursive: true })
      await writeFile(join(dir, 'package.json'), JSON.stringify({ main: 'index.js', license: 'MIT', ...manifest }, null, 2))
      await writeFile(join(dir, 'index.js'), main)
      const out = await npmRun(dir, 'pack', '--json', '--pack-destination', join(work, 'packed'))
      assert.equal(out.code, 0, out.stderr)
      return join(work, 'packed', (JSON.parse(out.stdout) as Array<{ filename: string }>)[0].filename)
    }

    before(async () => {
      work = join(tmp.path, 'npm')
      await mkdir(join(work, 'packed'), { recursive: true })
      await writeFile(join(work, 'global-npmrc'), '')
      npmrc = join(work, 'npmrc')
      await writeFile(npmrc, '')
      npmEnv = isolatedEnv(work)
      npm = await which('npm')
      registry = `${gw}/mirror/npm/`
      if (npm == null) return
      // three packages: two versions of a plain one, and a scoped one that depends on it
      const tree = join(work, 'tree')
      const place = async (tarball: string, name: string, file: string): Promise<void> => {
        await mkdir(join(tree, name, '-'), { recursive: true })
        await rename(tarball, join(tree, name, '-', file))
      }
      await place(await pack({ name: 'cairn-leaf', version: '1.0.0' }, "module.exports = 'leaf 1.0.0'\n"), 'cairn-leaf', 'cairn-leaf-1.0.0.tgz')
      await place(await pack({ name: 'cairn-leaf', version: '1.1.0' }, "module.exports = 'leaf 1.1.0'\n"), 'cairn-leaf', 'cairn-leaf-1.1.0.tgz')
      await place(await pack({ name: 'cairn-leaf', version: '2.0.0-beta.1' }, "module.exports = 'leaf 2 beta'\n"), 'cairn-leaf', 'cairn-leaf-2.0.0-beta.1.tgz')
      await place(await pack({ name: '@cairn-test/app', version: '2.0.0', dependencies: { 'cairn-leaf': '^1.0.0' } },
        "module.exports = 'app 2.0.0 with ' + require('cairn-leaf')\n"), '@cairn-test/app', 'app-2.0.0.tgz')
      // what a mirror of registry.npmjs.org holds: a packument as upstream serves it, tarball URLs on its host
      await mkdir(join(tree, 'upstream'), { recursive: true })
      await writeFile(join(tree, 'upstream', 'index.json'), JSON.stringify({
        name: 'upstream',
        'dist-tags': { latest: '1.0.0' },
        versions: {
          '1.0.0': { name: 'upstream', version: '1.0.0', dist: { tarball: 'https://registry.npmjs.org/upstream/-/upstream-1.0.0.tgz' } },
          '0.9.0': { name: 'upstream', version: '0.9.0', dist: { tarball: 'https://elsewhere.example/upstream-0.9.0.tgz' } }
        }
      }))
      await mkdir(join(tree, 'broken'), { recursive: true })
      await writeFile(join(tree, 'broken', 'index.json'), '{"name": "broken", "versions": {')
      // the maintainer's step: cairn mirror npm-index writes the packuments, cairn mirror sync publishes the tree
      let out = ''
      let err = ''
      const code = await runCli(['mirror', 'npm-index', tree], { out: s => { out += s }, err: s => { err += s }, env: {} })
      assert.equal(code, 0, err)
      assert.equal(out, '@cairn-test/app: 1 version, latest 2.0.0\ncairn-leaf: 3 versions, latest 1.1.0\n')
      await publish(tree, 'npm')
    })

    it('npm install installs a scoped package and its dependency from the mirror', async t => {
      if (npm == null) { t.skip('the npm CLI is not on PATH'); return }
      // the README's line, into npm's own (isolated) config
      const set = await npmRun(work, 'config', 'set', 'registry', registry)
      assert.equal(set.code, 0, set.stderr)
      assert.match(await readFile(npmrc, 'utf8'), new RegExp(`registry=${registry.replace(/[.]/g, '\\.')}`))
      const project = join(work, 'project')
      await mkdir(project, { recursive: true })
      await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
      const install = await npmRun(project, 'install', '@cairn-test/app')
      assert.equal(install.code, 0, `npm install failed:\n${install.stdout}\n${install.stderr}`)
      const installed = async (name: string): Promise<string> => (JSON.parse(await readFile(join(project, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
      assert.equal(await installed('@cairn-test/app'), '2.0.0')
      // the newest 1.x, not the prerelease
      assert.equal(await installed('cairn-leaf'), '1.1.0')
      const result = await runProgram(process.execPath, ['-e', "console.log(require('@cairn-test/app'))"], { cwd: project, env: npmEnv })
      assert.equal(result.stdout, 'app 2.0.0 with leaf 1.1.0\n')
      const lock = JSON.parse(await readFile(join(project, 'package-lock.json'), 'utf8')) as { packages: Record<string, { resolved: string, integrity: string }> }
      assert.equal(lock.packages['node_modules/cairn-leaf'].resolved, `${registry}cairn-leaf/-/cairn-leaf-1.1.0.tgz`)
      assert.equal(lock.packages['node_modules/@cairn-test/app'].resolved, `${registry}@cairn-test/app/-/app-2.0.0.tgz`)

      // an exact older version, and a dist-tag
      const older = await npmRun(project, 'install', 'cairn-leaf@1.0.0')
      assert.equal(older.code, 0, older.stderr)
      assert.equal(await installed('cairn-leaf'), '1.0.0')
      // npm view asks with Accept: application/json
      const view = await npmRun(project, 'view', 'cairn-leaf', 'versions', '--json')
      assert.equal(view.code, 0, view.stderr)
      assert.deepEqual(JSON.parse(view.stdout), ['1.0.0', '1.1.0', '2.0.0-beta.1'])
      const none = await npmRun(project, 'install', 'cairn-missing')
      assert.notEqual(none.code, 0)
      assert.match(none.stderr, /404/)
    })

    it('serves packuments with tarball URLs for the host asked, and leaves browsers their listing', async t => {
      if (npm == null) { t.skip('the npm CLI is not on PATH'); return }
      const npmAccept = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*'
      const scoped = await rawRequest(port, '/mirror/npm/@cairn-test%2fapp', { accept: npmAccept, host: 'mirror.example:8080' })
      assert.equal(scoped.status, 200, scoped.body.toString())
      assert.equal(scoped.headers['content-type'], 'application/json; charset=utf-8')
      const doc = JSON.parse(scoped.body.toString()) as { name: string, versions: Record<string, { dist: { tarball: string, integrity: string } }> }
      assert.equal(doc.name, '@cairn-test/app')
      assert.equal(doc.versions['2.0.0'].dist.tarball, 'http://mirror.example:8080/mirror/npm/@cairn-test/app/-/app-2.0.0.tgz')
      assert.match(doc.versions['2.0.0'].dist.integrity, /^sha512-/)
      assert.match(String(scoped.headers['x-ipfs-path']), /^\/ipfs\/\w+\/%40cairn-test\/app\/index\.json$/)
      // the same packument for the unencoded name, a 304 for its ETag
      const plain = await rawRequest(port, '/mirror/npm/@cairn-test/app', { accept: npmAccept, host: 'mirror.example:8080' })
      assert.deepEqual(plain.body, scoped.body)
      const etag = String(scoped.headers.etag)
      assert.match(etag, /^"Packument_CID-/)
      assert.equal((await rawRequest(port, '/mirror/npm/@cairn-test%2Fapp', { accept: npmAccept, 'if-none-match': etag })).status, 304)

      // an upstream packument: registry.npmjs.org URLs move onto the mirror, other hosts stay
      const upstream = JSON.parse((await rawRequest(port, '/mirror/npm/upstream', { accept: 'application/json' })).body.toString()) as { versions: Record<string, { dist: { tarball: string } }> }
      assert.equal(upstream.versions['1.0.0'].dist.tarball, `${registry}upstream/-/upstream-1.0.0.tgz`)
      assert.equal(upstream.versions['0.9.0'].dist.tarball, 'https://elsewhere.example/upstream-0.9.0.tgz')

      // a browser gets the directory, as on any mirror
      const browser = await rawRequest(port, '/mirror/npm/cairn-leaf', { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' })
      assert.equal(browser.status, 302)
      const page = await rawRequest(port, '/mirror/npm/cairn-leaf/', { accept: 'text/html' })
      assert.match(page.body.toString(), /href="index\.json"/)

      const broken = await rawRequest(port, '/mirror/npm/broken', { accept: npmAccept })
      assert.equal(broken.status, 502)
      assert.match(broken.body.toString(), /\/broken\/index\.json is not a packument: not valid JSON/)
      const badHost = await rawRequest(port, '/mirror/npm/cairn-leaf', { accept: npmAccept, host: 'bad host"' })
      assert.equal(badHost.status, 400)
      assert.match(badHost.body.toString(), /Host header "bad host"" is not host\[:port\]/)
    })
  })
})
