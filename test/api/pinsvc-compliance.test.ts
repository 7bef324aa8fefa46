// The IPFS pinning-service compliance suite (npm @ipfs-shipyard/pinning-service-compliance 1.8.1, a devDependency)
// run as its own CLI (scripts/pinsvc-compliance.ts) against a real cairn peer with basic auth, by a Bearer token
// from POST /token. Offline: its schemas come from the spec copy in specs/, not from GitHub. It paces itself
// at one request per second, so the run takes about a minute. Every check must run and every expectation pass.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { CHECKS, findSpec, runComplianceSuite } from '../../scripts/pinsvc-compliance.js'
import { createTestCluster, type TestCluster } from '../cluster-harness.js'

const RUN_MS = 180_000

describe('pinning service compliance suite', () => {
  let tc: TestCluster
  let spec: string
  before(async () => {
    const found = findSpec()
    if (found === undefined) throw new Error('no specs/ipfs-pinning-service.yaml in the repository (or CAIRN_PINSVC_SPEC): the suite validates every response against it')
    spec = found
    tc = await createTestCluster(1, { basicAuth: { compliance: 'compliance-secret' }, name: 'pinsvc-compliance' })
  })
  after(async () => { await tc?.close() })

  it('passes every check the suite makes', { timeout: RUN_MS + 30_000 }, async t => {
    const res = await fetch(`${tc.url(0)}/token`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from('compliance:compliance-secret').toString('base64')}` } })
    assert.equal(res.status, 200)
    const { token } = await res.json() as { token: string }
    const { host, port } = tc.peer(0).pinsvcAddress()

    const run = await runComplianceSuite({ endpoint: `http://${host}:${port}`, token, spec, timeoutMs: RUN_MS })
    const log = `--- suite stdout\n${run.stdout}\n--- suite stderr\n${run.stderr}`
    assert.equal(run.signal, null, `the suite did not finish within ${RUN_MS} ms\n${log}`)
    assert.equal(run.code, 0, log)
    assert.equal(run.checks.length, CHECKS.length, `every check ran once\n${log}`)
    CHECKS.forEach((re, i) => { assert.match(run.checks[i], re) })
    assert.deepEqual(run.expectations.filter(e => !e.ok).map(e => `${e.check}: ${e.title}`), [], log)
    // the suite's own summary, and enough expectations to be the full run (89 in 1.8.1 against a fresh peer)
    assert.match(run.stdout, new RegExp(`Summary \\(${CHECKS.length}/${CHECKS.length} successful\\)`), log)
    assert.ok(run.expectations.length >= 60, `${run.expectations.length} expectations\n${log}`)
    assert.equal(run.expectations.filter(e => e.title === 'Response object matches api spec schema').length, 4, 'four responses checked against the spec\'s schemas')
    assert.equal(run.passed, true, `nothing crashed\n${log}`)
    t.diagnostic(`compliance suite: ${run.checks.length} checks, ${run.expectations.length} expectations, all passed`)
  })
})
