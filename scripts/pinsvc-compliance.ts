// `npm run pinsvc-compliance -- <endpoint> <token>`: the IPFS pinning-service compliance suite (the devDependency
// @ipfs-shipyard/pinning-service-compliance, run as its own CLI) against a Pinning Services API, offline: its
// spec-schema checks read specs/ipfs-pinning-service.yaml (the repository's copy, or $CAIRN_PINSVC_SPEC) instead of fetching the spec from GitHub (./pinsvc-compliance-hooks.ts). Prints the suite's
// output and exits 1 unless every expectation passed (the suite itself exits 0 whatever it found).
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

/** The repo root: this file runs as dist/scripts/pinsvc-compliance.js. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const SPEC_FILE = join('specs', 'ipfs-pinning-service.yaml')
const HOOKS = new URL('./pinsvc-compliance-hooks.js', import.meta.url).href

/** The suite's checks (1.8.1), in the order it runs them: each prints its title, then its expectations. */
export const CHECKS = [
  /^Request with no authentication token$/,
  /^Request with invalid token$/,
  /^Pins post of CID '[a-z0-9]+'$/,
  /^Can create and then delete a new pin$/,
  /^List pin objects \(GET \/pins\) in all states$/,
  /^Can create and replace a pin's CID$/,
  /^Can create a pin with name='[0-9a-f-]+'$/,
  /^Pagination: Get all pins, create new pins \(optional\), get first and second pages$/,
  /^Can delete all pins created during compliance checks$/
]
/** What the suite logs when a check crashed rather than failed (its exit code does not say). */
// eslint-disable-next-line no-control-regex -- the suite colours its log lines with ANSI escapes
const CRASHED = /Problem running compliance check|Could not get joi schema|could not validate pinning service|Caught exception| \[(?:\x1b\[\d+m)?error(?:\x1b\[\d+m)?\] : /

export interface Expectation { check: string, title: string, ok: boolean }

export interface SuiteRun {
  code: number | null
  signal: string | null
  stdout: string
  stderr: string
  /** The check titles seen, in order. */
  checks: string[]
  expectations: Expectation[]
  /** Every check ran, nothing crashed, and every expectation passed. */
  passed: boolean
}

/** $CAIRN_PINSVC_SPEC, else the repository's copy of the spec (specs/, as published in ipfs/pinning-services-api-spec). */
export function findSpec (): string | undefined {
  const env = process.env.CAIRN_PINSVC_SPEC
  if (env != null && env !== '') return env
  const own = join(ROOT, SPEC_FILE)
  return existsSync(own) ? own : undefined
}

export interface RunInit {
  /** The Pinning Services API, e.g. http://127.0.0.1:9097 */
  endpoint: string
  /** Sent as `Authorization: Bearer <token>`. */
  token: string
  /** The spec file its schemas are built from. */
  spec: string
  /** Kill the suite after this long (default 3 min; it paces itself at one request per second). */
  timeoutMs?: number
  /** Copy its output to this process's stdout/stderr as it comes. */
  echo?: boolean
}

export async function runComplianceSuite (init: RunInit): Promise<SuiteRun> {
  // Node 23+ dropped util's old type checks, which the suite's schema loader (enjoi) still calls
  const utilChecks = 'import util from \'node:util\'; for (const [k, f] of Object.entries({ isObject: v => v !== null && typeof v === \'object\', isNumber: v => typeof v === \'number\', isFunction: v => typeof v === \'function\', isUndefined: v => v === undefined, isString: v => typeof v === \'string\' })) util[k] ??= f;'
  const register = `${utilChecks} import { register } from 'node:module'; register(${JSON.stringify(HOOKS)}, { data: { spec: ${JSON.stringify(init.spec)} } })`
  const bin = fileURLToPath(import.meta.resolve('@ipfs-shipyard/pinning-service-compliance'))
  const child = spawn(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, bin, '-s', init.endpoint, init.token], {
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: init.timeoutMs ?? 180_000
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; if (init.echo === true) process.stdout.write(s) })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; if (init.echo === true) process.stderr.write(s) })
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => { resolve([code, signal]) })
  })
  const { checks, expectations } = parseOutput(stdout)
  const passed = code === 0 && signal === null && !CRASHED.test(stdout + stderr) && checks.length === CHECKS.length &&
    CHECKS.every((re, i) => re.test(checks[i])) && expectations.length > 0 && expectations.every(e => e.ok)
  return { code, signal, stdout, stderr, checks, expectations, passed }
}

/** Each check's title on a line of its own, then its expectations: tab(s), an icon (🟢, ❌ or ⚠️), the title. */
function parseOutput (stdout: string): { checks: string[], expectations: Expectation[] } {
  const checks: string[] = []
  const expectations: Expectation[] = []
  for (const line of stdout.split('\n')) {
    const m = /^\t+(🟢|❌|⚠️) (.*)$/u.exec(line)
    if (m !== null) expectations.push({ check: checks.at(-1) ?? '', title: m[2], ok: m[1] === '🟢' })
    else if (CHECKS.some(re => re.test(line))) checks.push(line)
  }
  return { checks, expectations }
}

async function main (): Promise<void> {
  const [endpoint, token] = process.argv.slice(2)
  if (endpoint === undefined || token === undefined) {
    process.stderr.write('usage: npm run pinsvc-compliance -- <pinning service URL> <bearer token>\n')
    process.exit(2)
  }
  const spec = findSpec()
  if (spec === undefined) {
    process.stderr.write(`no ${SPEC_FILE} in ${ROOT}: set CAIRN_PINSVC_SPEC to the spec file\n`)
    process.exit(2)
  }
  const run = await runComplianceSuite({ endpoint, token, spec, echo: true })
  const failed = run.expectations.filter(e => !e.ok)
  process.stdout.write(`\n${run.checks.length}/${CHECKS.length} checks ran, ${run.expectations.length - failed.length}/${run.expectations.length} expectations passed\n`)
  process.exit(run.passed ? 0 : 1)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main()
