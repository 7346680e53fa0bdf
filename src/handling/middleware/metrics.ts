/**
 * Metrics, kept off the hot path: `metricsMiddleware()` only times each attempt and publishes it on
 * the `kafkit:handler` diagnostics channel (nothing is built while nobody listens). `HandlerMetrics`
 * subscribes to that channel and keeps counters and a duration histogram in memory, together with the
 * executor's decisions (retries, dead-letters, business refusals) and the router's and idempotent
 * consumer's events; `snapshot()` returns a plain copy for an exporter (Prometheus comes later).
 */
import diagnostics from 'node:diagnostics_channel'
import { HANDLER_CHANNEL, positionOf, publishHandlerEvent, type HandlerEvent } from '../diagnostics.ts'
import { explicitKind, type ErrorKind } from '../errors.ts'
import type { Middleware } from '../types.ts'

export function metricsMiddleware<V = unknown>(): Middleware<V> {
  return next => async (message, context) => {
    const started = performance.now()
    try {
      await next(message, context)
    } catch (error) {
      publishHandlerEvent(() => ({
        type: 'attempt',
        ...positionOf(message, context.groupId),
        attempt: context.attempt,
        durationMs: performance.now() - started,
        ok: false,
        kind: explicitKind(error),
        error
      }))
      throw error
    }
    publishHandlerEvent(() => ({
      type: 'attempt',
      ...positionOf(message, context.groupId),
      attempt: context.attempt,
      durationMs: performance.now() - started,
      ok: true
    }))
  }
}

/** Upper bounds (ms) of the duration histogram buckets; a last bucket catches the rest. */
export const DURATION_BUCKETS_MS: readonly number[] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000]

const MAX_EVENT_TYPES = 100

export interface HandlerMetricsSnapshot {
  attempts: { ok: number; failed: number; failedByKind: Record<ErrorKind | 'unclassified', number> }
  outcomes: Record<'done' | 'business' | 'dead-letter' | 'aborted' | 'split', number>
  /** Messages (not batches) per outcome. */
  messages: Record<'done' | 'business' | 'dead-letter' | 'aborted', number>
  retries: number
  suspended: number
  unrouted: number
  duplicates: number
  deadLettered: number
  deadLetterWriteFailures: number
  durationMs: {
    count: number
    sum: number
    min: number | undefined
    max: number | undefined
    /** Cumulative counts per upper bound (Prometheus style); `Infinity` is the total. */
    buckets: { le: number; count: number }[]
  }
  /** Attempts per event type (the first 100 types; later ones count as `other`). */
  byEventType: Record<string, { ok: number; failed: number }>
}

export interface HandlerMetricsOptions {
  /** Count only events of this consumer group. Default: all. */
  groupId?: string
}

function emptySnapshot(): HandlerMetricsSnapshot {
  return {
    attempts: { ok: 0, failed: 0, failedByKind: { transient: 0, permanent: 0, business: 0, unclassified: 0 } },
    outcomes: { done: 0, business: 0, 'dead-letter': 0, aborted: 0, split: 0 },
    messages: { done: 0, business: 0, 'dead-letter': 0, aborted: 0 },
    retries: 0,
    suspended: 0,
    unrouted: 0,
    duplicates: 0,
    deadLettered: 0,
    deadLetterWriteFailures: 0,
    durationMs: {
      count: 0,
      sum: 0,
      min: undefined,
      max: undefined,
      buckets: [...DURATION_BUCKETS_MS, Infinity].map(le => ({ le, count: 0 }))
    },
    byEventType: {}
  }
}

export class HandlerMetrics implements Disposable {
  #state = emptySnapshot()
  readonly #groupId: string | undefined
  readonly #listener = (event: unknown) => this.#record(event as HandlerEvent)
  #closed = false

  constructor(options: HandlerMetricsOptions = {}) {
    this.#groupId = options.groupId
    diagnostics.subscribe(HANDLER_CHANNEL, this.#listener)
  }

  /** A copy of the counters now. */
  snapshot(): HandlerMetricsSnapshot {
    return structuredClone(this.#state)
  }

  reset(): void {
    this.#state = emptySnapshot()
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    diagnostics.unsubscribe(HANDLER_CHANNEL, this.#listener)
  }

  [Symbol.dispose](): void {
    this.close()
  }

  #record(event: HandlerEvent): void {
    if (this.#groupId !== undefined && event.groupId !== this.#groupId) return
    const state = this.#state
    switch (event.type) {
      case 'attempt': {
        if (event.ok) state.attempts.ok++
        else {
          state.attempts.failed++
          state.attempts.failedByKind[event.kind ?? 'unclassified']++
        }
        const histogram = state.durationMs
        histogram.count++
        histogram.sum += event.durationMs
        histogram.min = histogram.min === undefined ? event.durationMs : Math.min(histogram.min, event.durationMs)
        histogram.max = histogram.max === undefined ? event.durationMs : Math.max(histogram.max, event.durationMs)
        for (const bucket of histogram.buckets) if (event.durationMs <= bucket.le) bucket.count++
        const known = Object.keys(state.byEventType).length
        let type = event.eventType ?? '(none)'
        if (!(type in state.byEventType) && known >= MAX_EVENT_TYPES) type = 'other'
        const counts = (state.byEventType[type] ??= { ok: 0, failed: 0 })
        if (event.ok) counts.ok++
        else counts.failed++
        break
      }
      case 'outcome':
        state.outcomes[event.outcome]++
        // A split batch reports its messages through their own outcomes.
        if (event.outcome !== 'split') state.messages[event.outcome] += event.count
        break
      case 'retry':
        state.retries++
        break
      case 'suspended':
        state.suspended++
        break
      case 'unrouted':
        state.unrouted++
        break
      case 'duplicate':
        state.duplicates++
        break
      case 'dead-lettered':
        state.deadLettered++
        break
      case 'dead-letter-write-failed':
        state.deadLetterWriteFailures++
        break
    }
  }
}
