// A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text exposition
// format 0.0.4. One registry per peer (several peers share a process in tests), nothing global.
// Values read from components at scrape time come from `collect` callbacks, so nothing polls in between.

export type Labels = Readonly<Record<string, string>>

export type MetricType = 'counter' | 'gauge' | 'histogram'

/** One sample a collect callback reports: its labels and value. */
export interface Sample {
  labels?: Labels
  value: number
}

/** Called at every scrape; returns the current samples of the family (undefined = the family is absent now). */
export type Collect = () => Sample[] | number | undefined | Promise<Sample[] | number | undefined>

export interface FamilyOptions {
  /** Full metric name, e.g. cairn_pinset_pins; counters must end in _total. */
  name: string
  help: string
  /** Label names every sample must carry, in this order. */
  labelNames?: readonly string[]
  collect?: Collect
}

export interface HistogramOptions extends FamilyOptions {
  /** Upper bounds, ascending; +Inf is added. */
  buckets: readonly number[]
}

/** Prometheus' default buckets plus two below 5 ms: a local API often answers in a millisecond. */
export const LATENCY_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

export class Counter {
  private readonly values = new Map<string, { labels: Labels, value: number }>()
  constructor (readonly family: Family) {}

  inc (labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new RangeError(`${this.family.name}: a counter only goes up (got ${by})`)
    const key = this.family.key(labels)
    const entry = this.values.get(key)
    if (entry != null) entry.value += by
    else this.values.set(key, { labels, value: by })
  }

  samples (): Sample[] { return [...this.values.values()] }
}

export class Gauge {
  private readonly values = new Map<string, { labels: Labels, value: number }>()
  constructor (readonly family: Family) {}

  set (labels: Labels, value: number): void {
    this.values.set(this.family.key(labels), { labels, value })
  }

  samples (): Sample[] { return [...this.values.values()] }
}

interface Buckets { labels: Labels, counts: number[], sum: number, count: number }

export class Histogram {
  private readonly series = new Map<string, Buckets>()
  constructor (readonly family: Family, readonly buckets: readonly number[]) {}

  observe (labels: Labels, value: number): void {
    const key = this.family.key(labels)
    let s = this.series.get(key)
    if (s == null) {
      s = { labels, counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 }
      this.series.set(key, s)
    }
    // counts are per bucket here and made cumulative when rendered
    const i = this.buckets.findIndex(le => value <= le)
    if (i >= 0) s.counts[i]++
    s.sum += value
    s.count++
  }

  render (out: string[]): void {
    const name = this.family.name
    for (const s of this.series.values()) {
      let cumulative = 0
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += s.counts[i]
        out.push(`${name}_bucket${labelText(s.labels, this.family.labelNames, ['le', formatValue(this.buckets[i])])} ${cumulative}`)
      }
      out.push(`${name}_bucket${labelText(s.labels, this.family.labelNames, ['le', '+Inf'])} ${s.count}`)
      out.push(`${name}_sum${labelText(s.labels, this.family.labelNames)} ${formatValue(s.sum)}`)
      out.push(`${name}_count${labelText(s.labels, this.family.labelNames)} ${s.count}`)
    }
  }
}

export class Family {
  readonly name: string
  readonly help: string
  readonly type: MetricType
  readonly labelNames: readonly string[]
  readonly collect?: Collect

  constructor (type: MetricType, options: FamilyOptions) {
    const { name, labelNames = [] } = options
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`)
    if (type === 'counter' && !name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`)
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith('__') || (type === 'histogram' && l === 'le')) {
        throw new Error(`${name}: invalid label name ${JSON.stringify(l)}`)
      }
    }
    this.type = type
    this.name = name
    this.help = options.help
    this.labelNames = labelNames
    this.collect = options.collect
  }

  /** The series key of a label set; throws when the labels are not exactly the family's. */
  key (labels: Labels): string {
    const names = Object.keys(labels)
    if (names.length !== this.labelNames.length || this.labelNames.some(l => typeof labels[l] !== 'string')) {
      throw new Error(`${this.name}: expected labels [${this.labelNames.join(', ')}], got [${names.join(', ')}]`)
    }
    return this.labelNames.map(l => labels[l]).join('\u0000')
  }
}

type Entry =
  | { family: Family, kind: 'counter', metric: Counter }
  | { family: Family, kind: 'gauge', metric: Gauge }
  | { family: Family, kind: 'histogram', metric: Histogram }

export class Registry {
  private readonly entries = new Map<string, Entry>()

  counter (options: FamilyOptions): Counter {
    const family = this.add(new Family('counter', options))
    const metric = new Counter(family)
    this.entries.set(family.name, { family, kind: 'counter', metric })
    return metric
  }

  gauge (options: FamilyOptions): Gauge {
    const family = this.add(new Family('gauge', options))
    const metric = new Gauge(family)
    this.entries.set(family.name, { family, kind: 'gauge', metric })
    return metric
  }

  histogram (options: HistogramOptions): Histogram {
    const family = this.add(new Family('histogram', options))
    const buckets = [...options.buckets]
    if (buckets.length === 0 || buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]))) {
      throw new Error(`${family.name}: buckets must be finite and strictly ascending`)
    }
    const metric = new Histogram(family, buckets)
    this.entries.set(family.name, { family, kind: 'histogram', metric })
    return metric
  }

  private add (family: Family): Family {
    if (this.entries.has(family.name)) throw new Error(`metric ${family.name} is registered twice`)
    return family
  }

  /**
   * The exposition text. Collect callbacks run concurrently; one that throws leaves its family out of this
   * scrape (reported through `onError`) rather than failing the others.
   */
  async render (onError?: (name: string, err: unknown) => void): Promise<string> {
    const entries = [...this.entries.values()]
    const collected = await Promise.all(entries.map(async ({ family }) => {
      if (family.collect == null) return undefined
      try {
        const got = await family.collect()
        return typeof got === 'number' ? [{ value: got }] : got
      } catch (err) {
        onError?.(family.name, err)
        return null
      }
    }))
    const out: string[] = []
    entries.forEach((entry, i) => {
      const fromCollect = collected[i]
      if (fromCollect === null) return
      const { family } = entry
      // a family whose source is absent (no reprovider on this peer) is left out rather than shown empty
      if (family.collect != null && fromCollect === undefined && (entry.kind === 'histogram' || entry.metric.samples().length === 0)) return
      out.push(`# HELP ${family.name} ${escapeHelp(family.help)}`)
      out.push(`# TYPE ${family.name} ${family.type}`)
      if (entry.kind === 'histogram') {
        entry.metric.render(out)
        return
      }
      const seen = new Set<string>()
      // recorded values first; a collected sample with the same labels replaces a recorded one
      const samples = [...(fromCollect ?? []), ...entry.metric.samples()]
      for (const s of samples) {
        const labels = s.labels ?? {}
        const key = family.key(labels)
        if (seen.has(key)) continue
        seen.add(key)
        out.push(`${family.name}${labelText(labels, family.labelNames)} ${formatValue(s.value)}`)
      }
    })
    return out.join('\n') + '\n'
  }
}

/** The content type of the text format. */
export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

function escapeHelp (text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

export function escapeLabelValue (value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

function labelText (labels: Labels, names: readonly string[], extra?: [string, string]): string {
  const parts = names.map(n => `${n}="${escapeLabelValue(labels[n])}"`)
  if (extra != null) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`)
  return parts.length === 0 ? '' : `{${parts.join(',')}}`
}

/** Go's strconv-style floats as Prometheus reads them: NaN, +Inf, -Inf, else the shortest round-trip form. */
export function formatValue (value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Infinity) return '+Inf'
  if (value === -Infinity) return '-Inf'
  return String(value)
}
