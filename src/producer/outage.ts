/**
 * When the producer's circuit breaker opens: when the cluster as a whole takes no writes, not when one
 * request fails. Precisely: it opens once requests have kept failing with retriable errors for
 * `openAfterMs` without a single acknowledgement in between (any acknowledged request, of any
 * partition, starts the span again). One node of several going down does not open it: its
 * partitions get new leaders within the brokers' session timeout and requests hung on it end within
 * requestTimeoutMs, both well inside the default span. Half-open, the first failure opens it again.
 */
import { isUnknownTopic } from '../kafka/errors.ts'
import type { CircuitBreaker } from '../resilience/circuit-breaker.ts'

export class OutageDetector {
  readonly #breaker: CircuitBreaker
  readonly #openAfterMs: number
  readonly #now: () => number
  /** When the first failure since the last acknowledgement happened (undefined: none since). */
  #failingSince: number | undefined

  constructor(breaker: CircuitBreaker, openAfterMs: number, now: () => number = () => performance.now()) {
    this.#breaker = breaker
    this.#openAfterMs = openAfterMs
    this.#now = now
  }

  /** A request (or one attempt of it) failed with a retriable error. */
  failed(error: unknown): void {
    // A topic that does not exist says nothing about whether the cluster takes writes.
    if (isUnknownTopic(error)) return
    const now = this.#now()
    this.#failingSince ??= now
    if (this.#breaker.state === 'half-open' || now - this.#failingSince >= this.#openAfterMs) {
      this.#breaker.failure(error)
    }
  }

  /** The cluster acknowledged a request (or answered it for good: the failure was about the data). */
  acknowledged(): void {
    this.#failingSince = undefined
    this.#breaker.success()
  }
}
