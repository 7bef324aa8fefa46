// One peer's Prometheus metrics on prom-client: one prom-client `Registry` per peer (several peers share a
// process in tests; never prom-client's global registry, no default metrics). Values read from components at
// scrape time come from prom-client `collect()` functions, so nothing polls in between.
//
// The exposition text is written here from prom-client's values rather than by prom-client's own
// `registry.metrics()`, to keep what /metrics showed before the move (docs/decisions/0019): a family whose
// source is absent (no reprovider on this peer) or whose collect failed is left out, not shown empty or failing
// the scrape; histogram buckets carry `le` after the other labels; NaN is written `NaN` (prom-client: `Nan`);
// no blank line between families.
import { Counter, Gauge, Histogram, Registry } from 'prom-client'

export type Labels = Readonly<Record<string, string>>

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
  collect: Collect
}

export interface HistogramOptions {
  name: string
  help: string
  labelNames: readonly string[]
  /** Upper bounds, ascending; +Inf is added. */
  buckets: readonly number[]
}

/** Prometheus' default buckets plus two below 5 ms: a local API often answers in a millisecond. */
export const LATENCY_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** The content type of the text format. */
export const CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE

/** The metrics of one peer: a prom-client registry, and its text written as /metrics always showed it. */
export class PeerRegistry {
  /** The prom-client registry of this peer (js-libp2p components take one as their metrics). */
  readonly registry = new Registry()
  /** Families whose collect found their source absent at the last scrape. */
  private readonly absent = new WeakSet<object>()

  gauge (options: FamilyOptions): void {
    const fill = this.filler(options, (g: Gauge, labels, value) => { g.set(labels, value) })
    // eslint-disable-next-line no-new
    new Gauge({ name: options.name, help: options.help, labelNames: [...options.labelNames ?? []], registers: [this.registry], async collect () { await fill(this) } })
  }

  counter (options: FamilyOptions): void {
    if (!options.name.endsWith('_total')) throw new Error(`counter ${options.name} must end in _total`)
    const fill = this.filler(options, (c: Counter, labels, value) => { c.inc(labels, value) })
    // eslint-disable-next-line no-new
    new Counter({ name: options.name, help: options.help, labelNames: [...options.labelNames ?? []], registers: [this.registry], async collect () { await fill(this) } })
  }

  /** A histogram recorded as things happen (observe with the labels in `labelNames` order). */
  histogram (options: HistogramOptions): Histogram {
    return new Histogram({ name: options.name, help: options.help, labelNames: [...options.labelNames], buckets: [...options.buckets], registers: [this.registry] })
  }

  /** The collect body of a family: reset it, then set what `options.collect` reports, or mark it absent. */
  private filler<M extends Gauge | Counter> (options: FamilyOptions, put: (metric: M, labels: Record<string, string>, value: number) => void): (metric: M) => Promise<void> {
    const names = options.labelNames ?? []
    return async (metric) => {
      const got = await options.collect()
      metric.reset()
      if (got === undefined) {
        this.absent.add(metric)
        return
      }
      this.absent.delete(metric)
      for (const s of typeof got === 'number' ? [{ value: got }] : got) {
        const given = s.labels ?? {}
        if (Object.keys(given).length !== names.length || names.some(l => typeof given[l] !== 'string')) {
          throw new Error(`${options.name}: expected labels [${names.join(', ')}], got [${Object.keys(given).join(', ')}]`)
        }
        // labels in the family's order, which is the order they are written in
        put(metric, Object.fromEntries(names.map(l => [l, given[l]])), s.value)
      }
    }
  }

  /**
   * The exposition text. Collects run concurrently; one that throws leaves its family out of this scrape
   * (reported through `onError`) rather than failing the others.
   */
  async render (onError?: (name: string, err: unknown) => void): Promise<string> {
    // the registry's entries are the Counter, Gauge and Histogram objects registered above
    const metrics = this.registry.getMetricsAsArray() as unknown as RegisteredMetric[]
    const texts = await Promise.all(metrics.map(async metric => {
      let data: MetricData
      try {
        data = await metric.get()
      } catch (err) {
        onError?.(metric.name, err)
        return undefined
      }
      if (this.absent.has(metric)) return undefined
      const names = metric.labelNames ?? []
      const lines = [`# HELP ${data.name} ${escapeHelp(data.help)}`, `# TYPE ${data.name} ${data.type}`]
      for (const v of data.values) {
        lines.push(`${v.metricName ?? data.name}${labelText(v.labels, names)} ${formatValue(v.value)}`)
      }
      return lines.join('\n')
    }))
    return texts.filter(t => t != null).join('\n') + '\n'
  }
}

interface RegisteredMetric {
  name: string
  labelNames?: string[]
  get: () => Promise<MetricData>
}

interface MetricData {
  name: string
  help: string
  type: string
  values: Array<{ metricName?: string, labels: Record<string, string | number>, value: number }>
}

function escapeHelp (text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

function escapeLabelValue (value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

/** The family's labels in its order, then `le` on histogram buckets. */
function labelText (labels: Record<string, string | number>, names: readonly string[]): string {
  const parts = names.filter(n => labels[n] !== undefined).map(n => `${n}="${escapeLabelValue(String(labels[n]))}"`)
  if (labels.le !== undefined) parts.push(`le="${labels.le === Infinity ? '+Inf' : escapeLabelValue(String(labels.le))}"`)
  return parts.length === 0 ? '' : `{${parts.join(',')}}`
}

/** Go's strconv-style floats as Prometheus reads them: NaN, +Inf, -Inf, else the shortest round-trip form. */
function formatValue (value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Infinity) return '+Inf'
  if (value === -Infinity) return '-Inf'
  return String(value)
}
