/**
 * How every producer inside Kafkit retries a request: bounded by time, not by a count, so a send rides
 * through a broker failover (a leader election takes up to the brokers' session timeout, a request
 * hung on a paused node up to requestTimeoutMs) instead of failing after a few quick retries.
 *
 * The client's own retry loop does the retrying: it re-sends a batch with the same producer id and
 * sequence numbers, so with idempotence the broker drops a batch it already has, and nothing is written
 * twice. A retry started by Kafkit after the client gave up would need a new producer id and could
 * duplicate; so Kafkit gives the client's loop what it needs to go on long enough:
 * - a retry count that spans at least `deliveryTimeoutMs` even when every attempt fails at once (each
 *   delay is at least half its cap: equal jitter), unless `maxRetries` sets a count;
 * - the delay of each retry;
 * - fresh cluster metadata before the next try after a leader or connection error (the client keeps
 *   its cached metadata on a second "not leader" answer, and would ask the old leader again).
 * The caller bounds each message by `deliveryTimeoutMs` itself; a loop still retrying then ends by the
 * count, at most about twice the delivery timeout later.
 */
import { leaderMovedOrUnreachable } from '../kafka/errors.ts'
import { backoffDelay, type BackoffOptions } from '../resilience/backoff.ts'

export interface DeliveryRetryOptions {
  deliveryTimeoutMs: number
  /** A count instead of the time bound (undefined: retries span deliveryTimeoutMs). */
  maxRetries?: number | undefined
  backoff: { baseMs: number; maxMs: number }
  /** Told of every failed attempt of any request (produce, metadata, ...) before it is retried. */
  onRetry?: (operation: string, error: Error) => void
  random?: () => number
}

/** What the client's constructor takes for its retry loop. */
export interface ClientRetryOptions {
  retries: number | false
  retryDelay: (client: object, operationId: string, attempt: number, retries: number, error: Error) => number
}

/** No count beyond this (a loop with zero delays still ends). */
const MOST_RETRIES = 100_000

/** Retries whose least delays (half of each cap) add up to `ms`; at least 2 (see producer options). */
export function retriesWithin(ms: number, backoff: { baseMs: number; maxMs: number }): number {
  let total = 0
  let retries = 0
  while (total < ms && retries < MOST_RETRIES) {
    retries++
    total += Math.max(1, Math.min(backoff.maxMs, backoff.baseMs * 2 ** (retries - 1)) / 2)
  }
  return Math.max(2, retries)
}

export function deliveryRetries(options: DeliveryRetryOptions): ClientRetryOptions {
  const backoff: BackoffOptions = {
    ...options.backoff,
    jitter: 'equal',
    ...(options.random ? { random: options.random } : {})
  }
  const retries = options.maxRetries ?? retriesWithin(options.deliveryTimeoutMs, backoff)
  return {
    // `false` is the client's "no retries".
    retries: retries === 0 ? false : retries,
    retryDelay: (client, operationId, attempt, _retries, error) => {
      // Every client of the Kafka client library has clearMetadata(); the type only says `object`.
      if (leaderMovedOrUnreachable(error)) (client as { clearMetadata?: () => void }).clearMetadata?.()
      options.onRetry?.(operationId, error)
      return backoffDelay(attempt, backoff)
    }
  }
}

/**
 * The retry loop of the producers Kafkit runs for itself (dead-letter writes, retry tiers, DLQ replay):
 * the producer's defaults. Their callers retry on top until acknowledged, so this only spares them a
 * new producer id (and a possible duplicate) for every failover.
 */
export function internalProducerRetries(): ClientRetryOptions {
  return deliveryRetries({ deliveryTimeoutMs: 120_000, backoff: { baseMs: 100, maxMs: 1000 } })
}
