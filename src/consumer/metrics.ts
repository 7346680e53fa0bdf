/**
 * The consumer's counters (the usual client metrics plus what a worker needs): records consumed,
 * processed, failed, retried, dead-lettered, business-refused and skipped; in flight and buffered;
 * commits with their latency; rebalances; and the last measured lag per partition.
 */
import type { HandlingOutcome } from '../handling/handler-executor.ts'
import type { RetryMetrics } from '../retry/retry-flow.ts'

export interface PartitionLag {
  topic: string
  partition: number
  endOffset: bigint
  /** The group's committed offset, undefined when it never committed this partition. */
  committedOffset: bigint | undefined
  lag: bigint
}

export interface PartitionMetrics {
  topic: string
  partition: number
  queued: number
  inFlight: number
  /** Next offset to commit (everything below settled), once a record settled. */
  position: bigint | undefined
  committed: bigint | undefined
  /** Set while a record's dead-letter write keeps failing: the partition commits nothing past it meanwhile. */
  blocked?: DeadLetterBlock
}

/** A record of a partition whose dead-letter record the broker has not acknowledged yet (it is being retried). */
export interface DeadLetterBlock {
  offset: bigint
  dlqTopic: string
  /** Failed writes so far. */
  attempts: number
  since: Date
  /** The last write's error. */
  error: string
}

export interface ConsumerMetrics {
  health: string
  /** Records accepted from the broker (repeats after a rejoin excluded). */
  consumed: number
  /** Records handled successfully (done). */
  processed: number
  /** Handler attempts that failed (each retry counts). */
  failed: number
  /** In-place retries made. */
  retried: number
  deadLettered: number
  /** Records refused with a BusinessError: logged and committed. */
  business: number
  /** Replayed records meant for another consumer group. */
  skipped: number
  /** Records a failure route took over (e.g. sent to a retry tier, or parked behind their key). */
  rerouted: number
  inFlight: number
  buffered: number
  commits: number
  commitFailures: number
  commitLatencyMs: { last: number; avg: number; max: number }
  rebalances: number
  breaker: string
  partitions: PartitionMetrics[]
  /** From the last lag() call. */
  lag: PartitionLag[]
  lagTotal: bigint
  /** With retry tiers: each tier's consumer, what was routed where, per-key ordering's counts. */
  retry?: RetryMetrics
}

export class ConsumerMetricsRecorder {
  consumed = 0
  processed = 0
  failed = 0
  retried = 0
  deadLettered = 0
  business = 0
  skipped = 0
  rerouted = 0
  commits = 0
  commitFailures = 0
  rebalances = 0
  #commitLast = 0
  #commitTotal = 0
  #commitMax = 0
  #lag: PartitionLag[] = []

  recordAttempts(outcome: HandlingOutcome): void {
    if (outcome.kind === 'done') {
      this.failed += outcome.attempts - 1
      this.retried += outcome.attempts - 1
    } else if (outcome.kind === 'business' || outcome.kind === 'dead-letter') {
      this.failed += outcome.attempts
      this.retried += Math.max(0, outcome.attempts - 1)
    }
  }

  recordSettled(outcome: 'done' | 'business' | 'dead-letter' | 'skipped' | 'rerouted'): void {
    if (outcome === 'done') this.processed++
    else if (outcome === 'rerouted') this.rerouted++
    else if (outcome === 'business') this.business++
    else if (outcome === 'dead-letter') this.deadLettered++
    else this.skipped++
  }

  recordCommit(latencyMs: number): void {
    this.commits++
    this.#commitLast = latencyMs
    this.#commitTotal += latencyMs
    this.#commitMax = Math.max(this.#commitMax, latencyMs)
  }

  recordLag(lag: PartitionLag[]): void {
    this.#lag = lag
  }

  snapshot(
    live: Pick<ConsumerMetrics, 'health' | 'inFlight' | 'buffered' | 'breaker' | 'partitions'>
  ): ConsumerMetrics {
    return {
      ...live,
      consumed: this.consumed,
      processed: this.processed,
      failed: this.failed,
      retried: this.retried,
      deadLettered: this.deadLettered,
      business: this.business,
      skipped: this.skipped,
      rerouted: this.rerouted,
      commits: this.commits,
      commitFailures: this.commitFailures,
      commitLatencyMs: {
        last: this.#commitLast,
        avg: this.commits === 0 ? 0 : this.#commitTotal / this.commits,
        max: this.#commitMax
      },
      rebalances: this.rebalances,
      lag: this.#lag,
      lagTotal: this.#lag.reduce((sum, entry) => sum + entry.lag, 0n)
    }
  }
}
