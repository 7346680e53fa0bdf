/**
 * The consumer's public types: what it is given (handler, middleware, serde, failure route, a shared
 * producer), its health states, its events and how a record settles.
 */
import type { ErrorKind } from '../handling/errors.ts'
import type { DeadLetterOutcome } from '../handling/handler-executor.ts'
import type { HandlingLogger } from '../handling/logger.ts'
import type { BatchHandler, ConsumedMessage, MessageHandler, Middleware } from '../handling/types.ts'
import type { Serde } from '../message/serde.ts'
import type { Producer } from '../producer/producer.ts'
import type { RetryOptions } from '../retry/options.ts'
import type { DeadLetterBlock } from './metrics.ts'
import type { ConsumerOptions } from './options.ts'

export type ConsumerHealth = 'idle' | 'starting' | 'running' | 'paused' | 'stopping' | 'stopped' | 'failed'

/** Anything with a `handler()` (an EventRouter) works where a handler is expected. */
export interface HandlerSource<V> {
  handler(): MessageHandler<V>
}

export interface ConsumerInit<V = unknown> extends Partial<ConsumerOptions> {
  /** The per-message handler, or an EventRouter. One of handler and batchHandler is required. */
  handler?: MessageHandler<V> | HandlerSource<V>
  /** Consecutive records of one partition at a time (partition ordering only). */
  batchHandler?: BatchHandler<V>
  /** Wrapped around `handler`, the first outermost. */
  middleware?: readonly Middleware<V>[]
  /** Decodes record values; default JSON (strict UTF-8). */
  valueSerde?: Serde<V>
  /** Overrides the error classification; undefined falls back to the defaults (built-in message lists). */
  classify?: (error: unknown) => ErrorKind | undefined
  logger?: HandlingLogger
  /** Environment to read `KAFKA_*` from (default process.env). */
  env?: NodeJS.ProcessEnv
  /**
   * Delayed retry tiers: a record that failed transiently goes to a retry topic and is handled again
   * after a delay, without holding its partition up; after the last tier, the dead-letter topic.
   * Optional per-key ordering. See docs/retries.md.
   */
  retry?: RetryOptions
  /** Reroutes failed records before the dead-letter topic (what the retry tiers use). */
  failureRoute?: FailureRoute<V>
  /**
   * A Kafkit producer to write dead-letter records with (through its client), instead of a producer of
   * the consumer's own. It is borrowed: stop() leaves it open.
   */
  producer?: Producer
}

/**
 * An extension point for what happens to failed records before the dead-letter topic (retry tiers use
 * it, src/retry). `route` runs for every dead-letter verdict; it resolves `rerouted` once the record is
 * durably elsewhere (e.g. produced to a retry topic and acknowledged: the origin offset may then be
 * committed), or `dead-letter` to let the runtime dead-letter it; a rejection leaves the record
 * unsettled (redelivered). `intercept` runs before the handler and may take a record away
 * (`rerouted`), e.g. to park it behind an earlier record of the same key that is waiting in retry.
 */
export interface FailureRoute<V = unknown> {
  route(
    message: ConsumedMessage<V>,
    outcome: DeadLetterOutcome,
    context: { signal: AbortSignal; groupId: string }
  ): Promise<'rerouted' | 'dead-letter'>
  intercept?(
    message: ConsumedMessage<V>,
    context: { signal: AbortSignal; groupId: string }
  ): Promise<'handle' | 'rerouted'>
  /**
   * A record refused by a business rule (committed, neither retried nor dead-lettered): told before it
   * is settled. When it rejects, the record stays uncommitted and is redelivered.
   */
  business?(message: ConsumedMessage<V>, context: { signal: AbortSignal; groupId: string }): Promise<void>
}

export interface ConsumerEvents {
  health: [{ from: ConsumerHealth; to: ConsumerHealth }]
  assigned: [{ topic: string; partition: number }[]]
  /** Partitions let go of (after their drain and last commit); no commit for them follows until assigned again. */
  revoked: [{ topic: string; partition: number }[]]
  commit: [{ offsets: { topic: string; partition: number; offset: bigint }[]; latencyMs: number }]
  /** One record reached a verdict (done, business, dead-letter after the DLQ acknowledged, skipped). */
  settled: [{ topic: string; partition: number; offset: bigint; outcome: SettledOutcome }]
  /** A dead-letter write failed and is being retried; the partition commits nothing past the record meanwhile. */
  blocked: [{ topic: string; partition: number } & DeadLetterBlock]
}

export type SettledOutcome = 'done' | 'business' | 'dead-letter' | 'skipped' | 'rerouted'
