// A strict parser of the Prometheus text exposition format 0.0.4, for tests: it throws on anything a
// Prometheus server would reject or that breaks the format's rules (sample outside a declared family, a
// family split in two, a bad number or escape, repeated series, non-cumulative histogram buckets).

export interface ParsedSample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface ParsedFamily {
  name: string
  help: string
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'
  samples: ParsedSample[]
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

function parseNumber (text: string, where: string): number {
  if (text === 'NaN') return NaN
  if (text === '+Inf' || text === 'Inf') return Infinity
  if (text === '-Inf') return -Infinity
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw new Error(`${where}: bad number ${JSON.stringify(text)}`)
  return Number(text)
}

function unescapeHelp (text: string, where: string): string {
  return text.replace(/\\(.?)/g, (_m, c: string) => {
    if (c === '\\') return '\\'
    if (c === 'n') return '\n'
    throw new Error(`${where}: bad escape in HELP`)
  })
}

/** Parses `{a="x",b="y"}` starting at text[i] === '{'; returns the labels and the index after '}'. */
function parseLabels (text: string, i: number, where: string): [Record<string, string>, number] {
  const labels: Record<string, string> = {}
  i++
  for (;;) {
    if (text[i] === '}') return [labels, i + 1]
    const eq = text.indexOf('=', i)
    if (eq < 0) throw new Error(`${where}: label without =`)
    const name = text.slice(i, eq)
    if (!LABEL.test(name) || name.startsWith('__')) throw new Error(`${where}: bad label name ${JSON.stringify(name)}`)
    if (Object.hasOwn(labels, name)) throw new Error(`${where}: label ${name} repeated`)
    if (text[eq + 1] !== '"') throw new Error(`${where}: label value not quoted`)
    let value = ''
    let j = eq + 2
    for (;;) {
      const c = text[j]
      if (c === undefined) throw new Error(`${where}: unterminated label value`)
      if (c === '"') break
      if (c === '\\') {
        const n = text[j + 1]
        if (n === '\\') value += '\\'
        else if (n === '"') value += '"'
        else if (n === 'n') value += '\n'
        else throw new Error(`${where}: bad escape \\${n ?? ''} in a label value`)
        j += 2
        continue
      }
      if (c === '\n') throw new Error(`${where}: raw newline in a label value`)
      value += c
      j++
    }
    labels[name] = value
    i = j + 1
    if (text[i] === ',') { i++; continue }
    if (text[i] !== '}') throw new Error(`${where}: expected , or } after a label`)
  }
}

/** The family a sample name belongs to, given the declared types. */
function familyOf (name: string, families: Map<string, ParsedFamily>): ParsedFamily | undefined {
  const direct = families.get(name)
  if (direct != null && direct.type !== 'histogram' && direct.type !== 'summary') return direct
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue
    const f = families.get(name.slice(0, -suffix.length))
    if (f?.type === 'histogram' || (f?.type === 'summary' && suffix !== '_bucket')) return f
  }
  return undefined
}

export function parsePrometheus (text: string): Map<string, ParsedFamily> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline')
  const families = new Map<string, ParsedFamily>()
  const helps = new Map<string, string>()
  const closed = new Set<string>()
  let current: ParsedFamily | undefined
  const seriesSeen = new Set<string>()
  const lines = text.slice(0, -1).split('\n')
  lines.forEach((line, index) => {
    const where = `line ${index + 1}`
    if (line === '') throw new Error(`${where}: empty line`)
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
    if (meta != null) {
      const [, kind, name, rest] = meta
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name ${name}`)
      if (closed.has(name) || families.get(name)?.samples.length) throw new Error(`${where}: ${kind} for ${name} after its samples`)
      if (kind === 'HELP') {
        if (helps.has(name)) throw new Error(`${where}: second HELP for ${name}`)
        helps.set(name, unescapeHelp(rest, where))
      } else {
        if (families.has(name)) throw new Error(`${where}: second TYPE for ${name}`)
        if (!TYPES.has(rest)) throw new Error(`${where}: bad type ${rest}`)
        if (current != null) closed.add(current.name)
        current = { name, help: helps.get(name) ?? '', type: rest as ParsedFamily['type'], samples: [] }
        families.set(name, current)
      }
      return
    }
    if (line.startsWith('#')) return // a comment
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)
    if (nameMatch == null) throw new Error(`${where}: no metric name`)
    const name = nameMatch[0]
    let i = name.length
    let labels: Record<string, string> = {}
    if (line[i] === '{') [labels, i] = parseLabels(line, i, where)
    if (line[i] !== ' ') throw new Error(`${where}: expected a space before the value`)
    const [valueText, timestamp, extra] = line.slice(i + 1).split(' ')
    if (extra !== undefined || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) throw new Error(`${where}: junk after the value`)
    const value = parseNumber(valueText, where)
    const family = familyOf(name, families)
    if (family == null) throw new Error(`${where}: sample ${name} belongs to no declared family`)
    if (family !== current) throw new Error(`${where}: sample ${name} is not next to the rest of family ${family.name}`)
    if (family.type === 'counter' && !(value >= 0)) throw new Error(`${where}: counter ${name} is ${value}`)
    if (family.type === 'histogram' && name.endsWith('_bucket') && labels.le === undefined) throw new Error(`${where}: bucket without le`)
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`
    if (seriesSeen.has(key)) throw new Error(`${where}: series repeated: ${key}`)
    seriesSeen.add(key)
    family.samples.push({ name, labels, value })
  })
  for (const name of helps.keys()) if (!families.has(name)) throw new Error(`HELP for ${name} without TYPE`)
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f)
  return families
}

/** Per series: le ascending, counts cumulative (monotone), a +Inf bucket equal to _count, and a _sum. */
function checkHistogram (f: ParsedFamily): void {
  const series = new Map<string, { buckets: Array<[number, number]>, count?: number, sum?: number }>()
  for (const s of f.samples) {
    const { le, ...rest } = s.labels
    const key = JSON.stringify(Object.entries(rest).sort())
    const entry = series.get(key) ?? { buckets: [] }
    series.set(key, entry)
    if (s.name.endsWith('_bucket')) entry.buckets.push([parseNumber(le, `${f.name} le`), s.value])
    else if (s.name.endsWith('_count')) entry.count = s.value
    else entry.sum = s.value
  }
  for (const [key, e] of series) {
    const where = `${f.name}${key}`
    if (e.count === undefined || e.sum === undefined) throw new Error(`${where}: no _count or _sum`)
    if (e.buckets.length === 0 || e.buckets.at(-1)![0] !== Infinity) throw new Error(`${where}: no le="+Inf" bucket last`)
    for (let i = 1; i < e.buckets.length; i++) {
      if (!(e.buckets[i][0] > e.buckets[i - 1][0])) throw new Error(`${where}: le not ascending`)
      if (e.buckets[i][1] < e.buckets[i - 1][1]) throw new Error(`${where}: bucket counts not cumulative`)
    }
    if (e.buckets.at(-1)![1] !== e.count) throw new Error(`${where}: +Inf bucket ${e.buckets.at(-1)![1]} != _count ${e.count}`)
  }
}

/** The value of the one sample of `family` (sample name `name`, default the family's) whose labels include `labels`. */
export function sampleValue (families: Map<string, ParsedFamily>, family: string, labels: Record<string, string> = {}, name = family): number | undefined {
  const f = families.get(family)
  const matches = f?.samples.filter(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) ?? []
  if (matches.length > 1) throw new Error(`${family}${JSON.stringify(labels)} matches ${matches.length} samples`)
  return matches[0]?.value
}

/** Sum of the matching samples (0 when none). */
export function sampleSum (families: Map<string, ParsedFamily>, family: string, labels: Record<string, string> = {}, name = family): number {
  const f = families.get(family)
  return (f?.samples ?? []).filter(s => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0)
}
