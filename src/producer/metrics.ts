/**
 * The producer's counters (sent, failed, bytes, retries, breaker trips, last error, average
 * and max latency) plus p50/p99 latency. Latency is send() to acknowledgement per message,
 * recorded into a log-linear histogram (16 buckets per power of two: percentiles within ~4%, fixed
 * memory however long the producer runs), so recording costs a few operations on the hot path.
 */

/** A copy of the counters at one moment (`producer.metrics()`). */
export interface ProducerMetrics {
  /** Messages acknowledged by the broker (with acks 0: handed to the socket). */
  messagesSent: number
  /** Messages whose send failed (rejected, timed out, refused by the breaker or buffer, ...). */
  messagesFailed: number
  /** Failed messages written to the producer DLQ instead. */
  messagesDeadLettered: number
  /** Key + value + header bytes of the acknowledged messages (before compression). */
  bytesSent: number
  /** Produce requests sent again after a retriable error. */
  retries: number
  /** Produce requests (batches) acknowledged. */
  batchesSent: number
  /** Times the breaker opened. */
  breakerTrips: number
  breakerState: 'closed' | 'open' | 'half-open'
  lastError: { code: string; message: string; at: Date } | undefined
  /** send() to acknowledgement, milliseconds. Zero before the first acknowledgement. */
  latencyMs: { avg: number; max: number; p50: number; p99: number }
  /** Messages and bytes held now (waiting, batched or in flight). */
  buffered: { messages: number; bytes: number }
  /** Produce requests outstanding now. */
  inFlight: number
}

const SUB_BUCKETS = 16
const MAX_EXPONENT = 40

/** Log-linear histogram of non-negative values (microseconds here). */
export class LatencyHistogram {
  readonly #counts = new Float64Array((MAX_EXPONENT + 1) * SUB_BUCKETS)
  #total = 0
  #sum = 0
  #max = 0

  record(value: number, count = 1): void {
    this.#total += count
    this.#sum += value * count
    if (value > this.#max) this.#max = value
    const bucket = LatencyHistogram.bucketOf(value)
    this.#counts[bucket] = (this.#counts[bucket] as number) + count
  }

  static bucketOf(value: number): number {
    if (value < SUB_BUCKETS) return value > 0 ? Math.floor(value) : 0
    // value in [2^k, 2^(k+1)) with k >= 4: 16 linear buckets of width 2^(k-4) each. clz32 gives k for
    // values below 2^32 (µs: 71 minutes); larger ones go to the last bucket.
    if (value >= 2 ** 32) return (MAX_EXPONENT + 1) * SUB_BUCKETS - 1
    const whole = value >>> 0
    const exponent = 31 - Math.clz32(whole) - 4
    const sub = (whole >>> exponent) - SUB_BUCKETS
    return SUB_BUCKETS + exponent * SUB_BUCKETS + sub
  }

  /** The upper edge of a bucket (a value reported for a percentile is never below the true one). */
  static bucketUpper(bucket: number): number {
    if (bucket < SUB_BUCKETS) return bucket + 1
    const exponent = Math.floor((bucket - SUB_BUCKETS) / SUB_BUCKETS)
    const sub = (bucket - SUB_BUCKETS) % SUB_BUCKETS
    return (SUB_BUCKETS + sub + 1) * 2 ** exponent
  }

  get count(): number {
    return this.#total
  }

  get mean(): number {
    return this.#total === 0 ? 0 : this.#sum / this.#total
  }

  get max(): number {
    return this.#max
  }

  percentile(p: number): number {
    if (this.#total === 0) return 0
    const rank = Math.ceil((p / 100) * this.#total)
    let seen = 0
    for (let bucket = 0; bucket < this.#counts.length; bucket++) {
      seen += this.#counts[bucket] as number
      if (seen >= rank) return Math.min(this.#max, LatencyHistogram.bucketUpper(bucket))
    }
    return this.#max
  }
}

/** The mutable counters the producer updates; `snapshot()` copies them out. */
export class ProducerCounters {
  messagesSent = 0
  messagesFailed = 0
  messagesDeadLettered = 0
  bytesSent = 0
  retries = 0
  batchesSent = 0
  lastError: { code: string; message: string; at: Date } | undefined
  readonly latency = new LatencyHistogram()

  failed(error: unknown, count = 1): void {
    this.messagesFailed += count
    const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
    this.lastError = {
      code: typeof code === 'string' ? code : 'UNKNOWN',
      message: error instanceof Error ? error.message : String(error),
      at: new Date()
    }
  }

  snapshot(extra: Pick<ProducerMetrics, 'breakerTrips' | 'breakerState' | 'buffered' | 'inFlight'>): ProducerMetrics {
    const toMs = (us: number) => Math.round(us) / 1000
    return {
      messagesSent: this.messagesSent,
      messagesFailed: this.messagesFailed,
      messagesDeadLettered: this.messagesDeadLettered,
      bytesSent: this.bytesSent,
      retries: this.retries,
      batchesSent: this.batchesSent,
      lastError: this.lastError,
      latencyMs: {
        avg: toMs(this.latency.mean),
        max: toMs(this.latency.max),
        p50: toMs(this.latency.percentile(50)),
        p99: toMs(this.latency.percentile(99))
      },
      ...extra
    }
  }
}
