/**
 * Dispatch scheduling: which buffered record (or batch) starts next. Each partition's queue says what
 * its ordering mode lets start (PartitionQueue); on top of that the concurrency limit, partitions being
 * let go or held behind an earlier state, the batch linger, and the gate (the consumer running, no eager
 * rebalance under way, the breaker letting work through). It counts the handler calls in flight and
 * wakes whoever waits for them to end (a revoke's drain, stop).
 */
import type { RawRecord } from './decode.ts'
import type { PartitionState } from './partition-state.ts'

/** What runs the work the dispatcher starts (the record runner); it reports each end with `ended()`. */
export interface DispatchTarget {
  runOne(state: PartitionState, record: RawRecord): void
  runBatch(state: PartitionState, records: RawRecord[]): void
}

export interface DispatchOptions {
  /** Handler calls in flight at most (a batch counts once). */
  limit: number
  /** Batches of consecutive records (batch handler) instead of one record per call. */
  batch: boolean
  /** How long a partition's batch may wait to fill up (batch only; 0: it starts at once). */
  lingerMs: number
  /** The largest batch. */
  maxPollRecords: number
}

export class Dispatcher {
  readonly #partitions: ReadonlyMap<string, PartitionState>
  readonly #options: DispatchOptions
  /** Whether new work may start now (the consumer running, no eager rebalance, the breaker). */
  readonly #mayDispatch: () => boolean
  /** Set once by runWith(): the runner refers to the dispatcher too, so it comes after it. */
  #target!: DispatchTarget
  /** Handler calls in flight (a batch counts once). */
  #inFlight = 0
  /** Set when the concurrency limit left eligible work waiting. */
  #starved = false
  #lingerTimer: NodeJS.Timeout | undefined
  #drainWaiters: (() => void)[] = []

  constructor(partitions: ReadonlyMap<string, PartitionState>, options: DispatchOptions, mayDispatch: () => boolean) {
    this.#partitions = partitions
    this.#options = options
    this.#mayDispatch = mayDispatch
  }

  /** Where the work started from now on runs. */
  runWith(target: DispatchTarget): void {
    this.#target = target
  }

  get inFlight(): number {
    return this.#inFlight
  }

  /**
   * A call started here ended, its queue released: wakes the drain waiters when none is left, then
   * starts what may start now. The fast path: the next record of the same partition, when it is the
   * only thing that can be waiting (no starved partitions), without scanning every partition.
   */
  ended(state: PartitionState): void {
    this.#inFlight--
    if (this.#inFlight === 0) {
      const waiters = this.#drainWaiters
      this.#drainWaiters = []
      for (const wake of waiters) wake()
    }
    if (this.#starved || this.#options.batch || !this.#mayDispatch()) {
      this.pump()
      return
    }
    if (state.revokedIn !== undefined || state.held || this.#inFlight >= this.#options.limit) return
    const record = state.queue.next()
    if (record) {
      this.#inFlight++
      this.#target.runOne(state, record)
    }
  }

  /** Resolves once no call is in flight, or after `budgetMs`. */
  waitForIdle(budgetMs: number): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve()
    return new Promise<void>(resolve => {
      const timer = setTimeout(resolve, budgetMs)
      this.#drainWaiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  stop(): void {
    clearTimeout(this.#lingerTimer)
  }

  /** Starts whatever may start now, partition after partition, up to the concurrency limit. */
  pump(): void {
    if (!this.#mayDispatch()) return
    const { limit, batch, maxPollRecords } = this.#options
    const linger = batch ? this.#options.lingerMs : 0
    const now = linger > 0 ? Date.now() : 0
    let wakeIn = Number.POSITIVE_INFINITY
    let progressed = true
    while (progressed && this.#inFlight < limit) {
      progressed = false
      for (const state of this.#partitions.values()) {
        if (this.#inFlight >= limit) break
        if (state.revokedIn !== undefined || state.held || !state.queue.eligible) continue
        if (batch) {
          const due = state.queuedSince + linger - now
          if (linger > 0 && state.queue.size < maxPollRecords && due > 0) {
            wakeIn = Math.min(wakeIn, due)
            continue
          }
          const records = state.queue.nextBatch(maxPollRecords)
          state.queuedSince = Date.now()
          if (records.length > 0) {
            this.#inFlight++
            this.#target.runBatch(state, records)
          }
        } else {
          const record = state.queue.next()
          if (record) {
            this.#inFlight++
            this.#target.runOne(state, record)
          }
        }
        progressed = true
      }
    }
    // Work left behind by the concurrency limit: the next call to end must look at every partition.
    let starved = false
    if (this.#inFlight >= limit) {
      for (const state of this.#partitions.values()) {
        if (state.queue.eligible) {
          starved = true
          break
        }
      }
    }
    this.#starved = starved
    if (Number.isFinite(wakeIn) && !this.#lingerTimer) {
      this.#lingerTimer = setTimeout(() => {
        this.#lingerTimer = undefined
        this.pump()
      }, wakeIn)
    }
  }
}
