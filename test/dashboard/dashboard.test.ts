// Issue 22: the web dashboard at / of each peer's REST API, in a real headless Chromium (Debian's `chromium`,
// driven by playwright-core) against real peers: three trusted and a follower, plus a one-peer cluster with
// credentials. The run also takes the README's screenshot: into docs/dashboard.png with CAIRN_SCREENSHOT=1
// (`CAIRN_SCREENSHOT=1 npm test`), else into the temp folder (a plain run leaves the work tree clean).
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import * as raw from 'multiformats/codecs/raw'
import { create as createDigest } from 'multiformats/hashes/digest'
import { sha256 } from 'multiformats/hashes/sha2'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { runCli } from '../../src/cli/program.js'
import { ZERO_TIME, type Pin } from '../../src/types/wire.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'
import { tempDir, waitFor } from '../util.js'
import { findChromium, NO_CHROMIUM } from './browser.js'

const CHROMIUM = findChromium()
const SCREENSHOT = process.env.CAIRN_SCREENSHOT === '1'
  ? fileURLToPath(new URL('../../../docs/dashboard.png', import.meta.url))
  : join(tmpdir(), 'cairn-dashboard.png')
const XSS = '<img src=x onerror=alert(1)>'
const BULK = 10_000
/** Metrics live 3 s: a stopped peer is lost a few seconds later. */
const TTL_MS = 3000

/** Pins allocated to two peers outside the cluster: every member sees them `remote`, so no tracker fetches. */
async function bulkPins (count: number): Promise<Pin[]> {
  const ghosts = await Promise.all([0, 1].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
  const timestamp = new Date(Date.now() - 3_600_000).toISOString()
  return Array.from({ length: count }, (_, i) => ({
    cid: CID.createV1(raw.code, createDigest(sha256.code, createHash('sha256').update(`dashboard pin ${i}`).digest())).toString(),
    type: 'pin' as const, name: `bulk-${String(i).padStart(5, '0')}.tgz`, mode: 'recursive' as const,
    replication_factor_min: 2, replication_factor_max: 2, allocations: ghosts, shard_size: 0, max_depth: -1, reference: null,
    expire_at: ZERO_TIME, metadata: { batch: 'dashboard' }, origins: [], pin_update: null, user_allocations: null, timestamp
  }))
}

async function cli (api: string, args: string[]): Promise<string> {
  let out = ''
  let err = ''
  const code = await runCli(args, { out: s => { out += s }, err: s => { err += s }, env: { CAIRN_API: api } })
  assert.equal(code, 0, `cairn ${args.join(' ')} failed: ${err}`)
  return out
}

/** The peers table's rows as text: [peer, role, state, addresses, offered, used, free]. */
async function peerRows (page: Page): Promise<string[][]> {
  return await page.locator('#peers-body tbody tr').evaluateAll(trs => trs.map(tr => [...tr.children].slice(0, 7).map(td => td.textContent ?? '')))
}

function pinRow (page: Page, name: string): ReturnType<Page['locator']> {
  return page.locator('#pins-body tbody tr').filter({ has: page.locator('.pin-name', { hasText: name }) })
}

describe('dashboard', { skip: CHROMIUM == null ? NO_CHROMIUM : false, timeout: 180_000 }, () => {
  let tc: TestCluster
  let locked: TestCluster
  let browser: Browser
  let context: BrowserContext
  let page: Page
  let dir: Awaited<ReturnType<typeof tempDir>>
  const dialogs: string[] = []
  const pageErrors: string[] = []

  before(async () => {
    dir = await tempDir('cairn-dashboard-')
    // one cluster after the other: each picks free ports and binds them only when its peers start, so two made
    // at once could pick the same port (CI: "cannot listen on 127.0.0.1:39935: the address is already in use")
    const launching = chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
    tc = await createTestCluster(4, { untrusted: [3], name: 'dash', monitor: () => ({ metric_ttl_ms: TTL_MS }) })
    locked = await createTestCluster(1, { name: 'locked', basicAuth: { admin: 'correct horse' } })
    browser = await launching
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    page = await context.newPage()
    page.on('dialog', d => { dialogs.push(`${d.type()}: ${d.message()}`); void d.dismiss() })
    page.on('pageerror', e => { pageErrors.push(e.message) })
  })

  after(async () => {
    await browser?.close()
    await Promise.all([tc?.close(), locked?.close()])
    await dir?.cleanup()
  })

  it('lists the four peers with their roles', async () => {
    await page.goto(tc.url(0))
    await waitFor(async () => (await peerRows(page)).length === 4 && (await peerRows(page)).every(r => r[2] === 'online'),
      { message: 'four online peers in the table', describe: () => 'see the rows below' }).catch(async err => {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(await peerRows(page))}`)
    })
    const rows = await peerRows(page)
    const roleOf = (name: string): string | undefined => rows.find(r => r[0].startsWith(name))?.[1]
    assert.deepEqual(['peer-0', 'peer-1', 'peer-2', 'peer-3'].map(roleOf), ['trusted', 'trusted', 'trusted', 'follower'])
    assert.match(rows.find(r => r[0].startsWith('peer-0'))![0], /\(this peer\)/)
    // each peer's offered, used and free storage (its offer and freespace metrics)
    await waitFor(async () => (await peerRows(page)).every(r => r.slice(4, 7).every(c => /\d/.test(c))), { message: 'offered, used and free storage of every peer' })
      .catch(async err => { throw new Error(`${(err as Error).message}: ${JSON.stringify(await peerRows(page))}`) })
  })

  it('shows a pin added with the CLI within 2 s, with each peer\'s status', async (t) => {
    const file = join(dir.path, 'demo.txt')
    await writeFile(file, 'dashboard demo\n')
    await cli(tc.url(1), ['add', file, '--name', 'dash-demo', '--metadata', 'source=cli'])
    const added = Date.now()
    const row = pinRow(page, 'dash-demo')
    // each trusted peer's status (the pin goes everywhere: replication -1 by default)
    await row.locator('.statuses li').nth(2).waitFor({ timeout: 2000 })
    const elapsed = Date.now() - added
    assert.ok(elapsed <= 2000, `shown after ${elapsed} ms`)
    t.diagnostic(`dash-demo shown with 3 peer statuses ${elapsed} ms after \`cairn add\` returned`)
    assert.match(await row.textContent() ?? '', /source=cli/)
    await waitFor(async () => {
      const statuses = await row.locator('.statuses li').allTextContents()
      return statuses.length >= 3 && statuses.every(s => s.endsWith('pinned')) && ['peer-0', 'peer-1', 'peer-2'].every(p => statuses.some(s => s.startsWith(`${p}:`)))
    }, { message: 'every trusted peer pinned dash-demo' })
  })

  it('shows a mirror\'s versions, when each reached its peers, and its gateway URL', async () => {
    const tree = join(dir.path, 'tree')
    await mkdir(join(tree, 'pool'), { recursive: true })
    await writeFile(join(tree, 'index.txt'), 'one\n')
    await writeFile(join(tree, 'pool', 'a.deb'), 'package a\n')
    const cache = join(dir.path, 'mirror-cache.json')
    await cli(tc.url(0), ['mirror', 'sync', tree, '--name', 'demo', '--cache', cache])
    await writeFile(join(tree, 'index.txt'), 'two\n')
    await cli(tc.url(0), ['mirror', 'sync', tree, '--name', 'demo', '--cache', cache])
    const mirror = page.locator('#mirrors-body article', { has: page.locator('h3', { hasText: 'demo' }) })
    const versions = mirror.locator('tbody tr')
    await waitFor(async () => {
      const rows = await versions.evaluateAll(trs => trs.map(tr => [tr.children[0].textContent, tr.children[4].textContent]))
      return rows.length === 2 && rows[0][0] === '2' && rows[1][0] === '1' && rows.every(r => /^(\d) of \1 pinned, all by /.test(r[1] ?? ''))
    }, { message: 'both versions of demo, each pinned by all its peers' })
    const url = await mirror.locator('a').getAttribute('href')
    assert.equal(url, `http://127.0.0.1:${tc.peer(0).gatewayAddress().port}/mirror/demo/`)
    assert.equal(await (await fetch(`${url ?? ''}index.txt`)).text(), 'two\n')
    assert.match(await mirror.textContent() ?? '', /Pinned whole: 1 part with \d copies/)

    // a spread mirror: how many copies each partition has
    const spreadTree = join(dir.path, 'spread-tree')
    await mkdir(join(spreadTree, 'pool'), { recursive: true })
    for (let i = 0; i < 40; i++) await writeFile(join(spreadTree, 'pool', `p${i}.deb`), `package ${i}\n`.repeat(100 + i))
    await cli(tc.url(0), ['mirror', 'sync', spreadTree, '--name', 'spreaddemo', '--spread', '--replication', '2', '--cache', join(dir.path, 'spread-cache.json')])
    const spread = page.locator('#mirrors-body article', { has: page.locator('h3', { hasText: 'spreaddemo' }) })
    await waitFor(async () => /Spread in 64 partitions: 64 parts with 2 copies\./.test(await spread.textContent() ?? ''),
      { message: 'the spread mirror with two copies of each of its 64 partitions', describe: () => 'see the page' })
      .catch(async err => { throw new Error(`${(err as Error).message}: ${await spread.textContent() ?? ''}`) })
  })

  it('takes the README\'s screenshot and works at phone width', async () => {
    // the health cards and the graph have been read once
    await page.locator('#health-body .card').first().waitFor()
    await page.locator('#graph-body svg circle').nth(3).waitFor()
    await writeFile(SCREENSHOT, await page.screenshot({ fullPage: true }))
    await page.setViewportSize({ width: 375, height: 800 })
    try {
      const overflow = await page.evaluate('document.documentElement.scrollWidth - window.innerWidth') as number
      assert.ok(overflow <= 0, `the page is ${overflow} px wider than a 375 px screen`)
      assert.ok(await page.locator('#pin-search').isVisible())
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 })
    }
  })

  it('is usable with the keyboard, every control labelled', async () => {
    const unlabelled = await page.evaluate('[...document.querySelectorAll("input, select")].filter(e => e.labels.length === 0).map(e => e.id)')
    assert.deepEqual(unlabelled, [])
    // from the top of the page: Tab to the skip link, Enter, Tab into the search field
    await page.goto(tc.url(0))
    await pinRow(page, 'dash-demo').waitFor()
    await page.keyboard.press('Tab')
    assert.equal(await page.evaluate('document.activeElement.textContent'), 'Skip to pins')
    await page.keyboard.press('Enter')
    await page.keyboard.press('Tab')
    assert.equal(await page.evaluate('document.activeElement.id'), 'pin-search')
    await page.keyboard.type('dash-demo')
    await pinRow(page, 'dash-demo').waitFor()
    await page.locator('#pin-search').fill('')
  })

  it('renders a pin named like markup as text, and runs nothing from it', async () => {
    const file = join(dir.path, 'xss.txt')
    await writeFile(file, 'markup in a name\n')
    await cli(tc.url(0), ['add', file, '--name', XSS, '--metadata', 'note=<script>alert(2)</script>'])
    const row = pinRow(page, XSS)
    await row.waitFor({ timeout: 5000 })
    assert.equal(await row.locator('.pin-name').textContent(), XSS)
    assert.match(await row.textContent() ?? '', /note=<script>alert\(2\)<\/script>/)
    assert.equal(await page.locator('#main img, #main script').count(), 0, 'no element was made from the name')
    assert.deepEqual(dialogs, [])
  })

  it('survives anything typed in the search or the URL', async () => {
    const junk = ['%E0%A4%A', '\'"><svg onload=alert(3)>', '\\u0000\u0000', '(?<=x', '../../etc/passwd', 'é漢字🙂'.repeat(50)]
    for (const q of junk) {
      await page.locator('#pin-search').fill(q)
      await page.locator('#pins-body', { hasText: 'No pin matches' }).waitFor({ timeout: 5000 })
    }
    await page.goto(`${tc.url(0)}/?q=%E0%A4%A&page=-7&status=%3Cb%3E&x=%00`)
    await page.locator('#peers-body tbody tr').first().waitFor()
    // the browser reads the broken escape as U+FFFD: whatever it makes of it is only searched for
    assert.match(await page.locator('#pin-search').inputValue(), /%A$/)
    await page.locator('#pins-body', { hasText: 'No pin matches' }).waitFor({ timeout: 5000 })
    await page.goto(`${tc.url(0)}/?page=99999`)
    await pinRow(page, 'dash-demo').waitFor({ timeout: 5000 })
    assert.deepEqual(pageErrors, [])
    assert.deepEqual(dialogs, [])
    // the API behind it answers bad paths with a client error, never a 500
    for (const path of ['/dashboard/..%2F..%2Fpackage.json', '/dashboard/%E0%A4%A', '/%E0%A4%A', '/pins?filter=%3Cb%3E', '/pins?cids=%3Cimg%3E', '/mirrors/%3Cimg%3E/status']) {
      const res = await fetch(tc.url(0) + path)
      assert.ok(res.status >= 400 && res.status < 500, `${path}: ${res.status}`)
    }
  })

  it('finds a pin by name among 10,000', async (t) => {
    const total = tc.peer(0).pinset.size() + BULK
    await tc.peer(0).pinset.put(await bulkPins(BULK))
    await page.locator('#pins-body .pager', { hasText: `${total} pins` }).waitFor({ timeout: 30_000 }).catch(async err => {
      throw new Error(`${(err as Error).message}\npager: ${await page.locator('#pins-body .pager').textContent()}; ${await page.locator('#pins-error').textContent()}`)
    })
    const started = Date.now()
    await page.locator('#pin-search').fill('bulk-07777')
    const row = pinRow(page, 'bulk-07777.tgz')
    await row.waitFor({ timeout: 5000 })
    const searchMs = Date.now() - started
    assert.equal(await page.locator('#pins-body tbody tr').count(), 1)
    assert.match(await page.locator('#pins-body .pager').textContent() ?? '', new RegExp(`1 of ${total} pins match`))
    // its peers are outside the cluster: every member holds it `remote`, so no member lists a status
    await row.locator('.muted', { hasText: 'no peer holds it' }).waitFor({ timeout: 5000 })
    assert.ok(searchMs < 5000, `search took ${searchMs} ms`)
    t.diagnostic(`search among ${total} pins: the one row shown ${searchMs} ms after typing`)
    await page.locator('#pin-search').fill('')
  })

  it('shows a stopped peer as lost', async () => {
    await tc.stop(2)
    await waitFor(async () => (await peerRows(page)).find(r => r[0].startsWith('peer-2'))?.[2].startsWith('lost since'),
      { timeoutMs: 30_000, message: 'peer-2 shown as lost' })
    const rows = await peerRows(page)
    assert.deepEqual(rows.filter(r => !r[0].startsWith('peer-2')).map(r => r[2]), ['online', 'online', 'online'])
  })

  it('asks for credentials when the API has them, and refuses a wrong password', async () => {
    const authPage = await (await browser.newContext()).newPage()
    authPage.on('pageerror', e => { pageErrors.push(e.message) })
    await authPage.goto(locked.url(0))
    await authPage.locator('#login').waitFor()
    assert.equal(await authPage.locator('#main').isVisible(), false)
    await authPage.getByLabel('User name').fill('admin')
    await authPage.getByLabel('Password').fill('wrong')
    await authPage.getByRole('button', { name: 'Sign in' }).click()
    await authPage.locator('#login-message', { hasText: 'Wrong user name or password' }).waitFor()
    assert.equal(await authPage.locator('#main').isVisible(), false)
    assert.equal(await authPage.locator('#peers-body tbody tr').count(), 0)

    await authPage.getByLabel('Password').fill('correct horse')
    await authPage.getByLabel('Password').press('Enter')
    await authPage.locator('#peers-body tbody tr').first().waitFor()
    assert.equal(await authPage.locator('#login').isVisible(), false)
    // the token lasts as long as the tab: a reload stays signed in, signing out asks again
    await authPage.reload()
    await authPage.locator('#peers-body tbody tr').first().waitFor()
    await authPage.getByRole('button', { name: 'Sign out' }).click()
    await authPage.locator('#login').waitFor()
    assert.deepEqual(pageErrors, [])
  })
})
