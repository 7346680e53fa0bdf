/**
 * A circuit breaker shared by producer and consumer: `threshold` consecutive failures open it; while
 * open, `canPass()` is false until `cooldownMs` passed; then one caller is let through as the half-open
 * probe (others still wait). The probe's success closes the breaker, its failure opens it again.
 * State changes are emitted as `state` events and counted in `trips`.
 */
import { EventEmitter } from 'node:events'

export type BreakerState = 'closed' | 'open' | 'half-open'

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the breaker. */
  threshold: number
  /** How long it stays open before one probe is allowed. */
  cooldownMs: number
  now?: () => number
}

export interface BreakerStateChange {
  from: BreakerState
  to: BreakerState
  /** The failure that opened it, when it opened. */
  error?: unknown
}

export class CircuitBreaker extends EventEmitter<{ state: [BreakerStateChange] }> {
  #state: BreakerState = 'closed'
  #failures = 0
  #openedAt = 0
  #probing = false
  #trips = 0
  readonly #options: Required<CircuitBreakerOptions>

  constructor(options: CircuitBreakerOptions) {
    super()
    this.#options = { now: Date.now, ...options }
  }

  get state(): BreakerState {
    return this.#state
  }

  /** How many times the breaker opened. */
  get trips(): number {
    return this.#trips
  }

  /** Milliseconds until a probe is allowed (0 when closed or already due). */
  get retryInMs(): number {
    if (this.#state !== 'open') return 0
    return Math.max(0, this.#openedAt + this.#options.cooldownMs - this.#options.now())
  }

  /**
   * True when a call may go ahead. In the open state past the cool-down, the first caller becomes the
   * half-open probe and gets true; everyone else gets false until the probe reports.
   */
  canPass(): boolean {
    if (this.#state === 'closed') return true
    if (this.#state === 'open' && this.retryInMs === 0) {
      this.#transition('half-open')
      this.#probing = true
      return true
    }
    if (this.#state === 'half-open' && !this.#probing) {
      this.#probing = true
      return true
    }
    return false
  }

  success(): void {
    this.#failures = 0
    this.#probing = false
    if (this.#state !== 'closed') this.#transition('closed')
  }

  /**
   * Ends a half-open probe without a verdict (the probe was cancelled, or its outcome says nothing about
   * the downstream): the state stays as it is and the next caller may probe. No-op otherwise.
   */
  release(): void {
    this.#probing = false
  }

  failure(error?: unknown): void {
    this.#failures++
    this.#probing = false
    if (this.#state === 'half-open' || (this.#state === 'closed' && this.#failures >= this.#options.threshold)) {
      this.#openedAt = this.#options.now()
      this.#trips++
      this.#transition('open', error)
    }
  }

  #transition(to: BreakerState, error?: unknown): void {
    const from = this.#state
    this.#state = to
    this.emit('state', error === undefined ? { from, to } : { from, to, error })
  }
}
