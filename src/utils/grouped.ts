// Calls grouped while one is in flight (one level read or batch for many callers).

/**
 * Calls grouped while one is in flight: a call made with none in flight runs at once; those made meanwhile wait
 * and run together, as the next one, when it returns.
 */
export class Grouped<I, O> {
  private queue: Array<{ input: I, resolve: (output: O) => void, reject: (err: unknown) => void }> = []
  private running = false

  constructor (private readonly run: (inputs: I[]) => Promise<O[]>) {}

  async call (input: I): Promise<O> {
    return await new Promise<O>((resolve, reject) => {
      this.queue.push({ input, resolve, reject })
      if (!this.running) this.flush()
    })
  }

  private flush (): void {
    const group = this.queue
    this.queue = []
    this.running = true
    this.run(group.map(q => q.input)).then(outputs => {
      group.forEach((q, i) => { q.resolve(outputs[i]) })
    }, err => {
      for (const q of group) q.reject(err)
    }).finally(() => {
      this.running = false
      if (this.queue.length > 0) this.flush()
    })
  }
}
