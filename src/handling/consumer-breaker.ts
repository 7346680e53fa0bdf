/**
 * The consumer circuit breaker policy: consecutive transient (downstream) failures
 * open it, and then the worker stops instead of burning through its backlog: nothing new is
 * dispatched, nothing is dead-lettered, nothing is committed. After the cool-down one attempt probes
 * the downstream; its success closes the breaker and everything resumes, its failure re-opens it.
 *
 * It wraps the shared `CircuitBreaker` (src/resilience) and adds what a consumer needs: a
 * non-consuming `mayDispatch()` for the runtime's dispatch loop, an abortable `acquire()` that the
 * executor awaits before every attempt (one probe at a time when half-open, everyone else waits), and
 * verdicts that distinguish "the downstream failed" from "this outcome says nothing about it".
 *
 * Integration contract for the consumer runtime:
 * - subscribe to `state`: on `open` pause fetching of the assigned partitions; on `closed` resume;
 * - before dispatching a new message check `mayDispatch()`; when false keep it buffered and wait with
 *   `whenDispatchable(signal)` (true again when closed, or when a probe is due and none is running);
 * - hand the breaker to the `HandlerExecutor`: it gates each attempt, records verdicts, and never
 *   returns a dead-letter outcome for a transient failure while the breaker is not closed, so a message
 *   in flight during an outage simply stays unfinished (uncommitted) until the downstream is back;
 * - messages that fail to deserialize are not dispatched while `mayDispatch()` is false either.
 */
import { EventEmitter } from 'node:events'
import { CircuitBreaker, type BreakerState, type BreakerStateChange } from '../resilience/circuit-breaker.ts'
import { consumerBreakerOptions, type ConsumerBreakerConfig } from './options.ts'

export interface ConsumerBreakerInit extends ConsumerBreakerConfig {
  /** Clock for tests. */
  now?: () => number
}

/** Permission for one attempt; `probe` is true for the single half-open probe. */
export interface BreakerPermit {
  readonly probe: boolean
}

const CLOSED_PERMIT: BreakerPermit = Object.freeze({ probe: false })
const PROBE_PERMIT: BreakerPermit = Object.freeze({ probe: true })

export class ConsumerCircuitBreaker extends EventEmitter<{ state: [BreakerStateChange] }> {
  readonly #breaker: CircuitBreaker
  readonly #waiters = new Set<() => void>()
  #probeHeld = false

  constructor(init: ConsumerBreakerInit = {}) {
    super()
    const { now, ...options } = init
    const { threshold, cooldownMs } = consumerBreakerOptions.resolve(options)
    this.#breaker = new CircuitBreaker({ threshold, cooldownMs, ...(now ? { now } : {}) })
    this.#breaker.on('state', change => {
      this.emit('state', change)
      this.#wake()
    })
  }

  get state(): BreakerState {
    return this.#breaker.state
  }

  /** How many times it opened. */
  get trips(): number {
    return this.#breaker.trips
  }

  /** Milliseconds until a probe is due (0 when closed or due). */
  get retryInMs(): number {
    return this.#breaker.retryInMs
  }

  /** May the runtime dispatch a new message now? Does not take the probe slot. */
  mayDispatch(): boolean {
    const state = this.#breaker.state
    if (state === 'closed') return true
    if (state === 'open') return this.#breaker.retryInMs === 0
    return !this.#probeHeld
  }

  /** A permit if one is available now (closed, or the probe slot), else undefined. */
  tryAcquire(): BreakerPermit | undefined {
    if (this.#breaker.state === 'closed') return CLOSED_PERMIT
    if (!this.#breaker.canPass()) return undefined
    this.#probeHeld = true
    return PROBE_PERMIT
  }

  /** Waits for a permit; rejects with the signal's reason when it aborts first. */
  async acquire(signal?: AbortSignal): Promise<BreakerPermit> {
    for (;;) {
      const permit = this.tryAcquire()
      if (permit) return permit
      await this.#waitForChange(signal)
    }
  }

  /** Resolves when `mayDispatch()` is true. */
  async whenDispatchable(signal?: AbortSignal): Promise<void> {
    while (!this.mayDispatch()) await this.#waitForChange(signal)
  }

  /** The attempt reached the downstream and it answered (done, or a business refusal). */
  recordSuccess(permit: BreakerPermit): void {
    if (permit.probe) this.#probeHeld = false
    this.#breaker.success()
  }

  /** The attempt failed transiently: the downstream looks unavailable. */
  recordFailure(permit: BreakerPermit, error: unknown): void {
    if (permit.probe) this.#probeHeld = false
    this.#breaker.failure(error)
  }

  /** The attempt says nothing about the downstream (permanent error, aborted): frees the probe slot. */
  recordNeutral(permit: BreakerPermit): void {
    if (!permit.probe) return
    this.#probeHeld = false
    this.#breaker.release()
    this.#wake()
  }

  #wake(): void {
    const waiters = [...this.#waiters]
    this.#waiters.clear()
    for (const wake of waiters) wake()
  }

  #waitForChange(signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason as Error)
        return
      }
      const cleanup = () => {
        if (timer) clearTimeout(timer)
        this.#waiters.delete(done)
        signal?.removeEventListener('abort', onAbort)
      }
      const done = () => {
        cleanup()
        resolve()
      }
      const onAbort = () => {
        cleanup()
        reject(signal?.reason as Error)
      }
      // While open, the cool-down's end is a change nobody announces: wake up for it.
      const timer = this.#breaker.state === 'open' ? setTimeout(done, Math.max(1, this.#breaker.retryInMs)) : undefined
      this.#waiters.add(done)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }
}
