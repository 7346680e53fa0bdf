/**
 * The failure policy the consumer runtime runs every message (or batch) through. It calls the handler,
 * classifies a failure into an error kind, retries transient failures in place with exponential
 * backoff and jitter, honours the consumer circuit breaker, and returns an outcome saying what the
 * runtime must do next; it never commits or produces anything itself:
 *
 * - `done`: processed; the offset may be committed.
 * - `business`: refused by a business rule (BusinessError); already logged; commit, do not retry or
 *   dead-letter.
 * - `dead-letter`: permanent failure, or transient retries exhausted; write the dead-letter record
 *   (DeadLetterWriter), and commit only once the write is acknowledged.
 * - `aborted`: the context's signal aborted (stop, revoke) before a verdict; neither commit nor
 *   dead-letter: the message is redelivered to whoever owns the partition next.
 *
 * While a consumer circuit breaker is open, a transient failure does not count towards dead-lettering:
 * the message waits for the breaker (so an outage never floods the DLQ) and is retried as a probe or
 * once the breaker closes. A message that keeps failing transiently while nothing else succeeds is
 * indistinguishable from an outage and stays unfinished; throw PermanentError for failures that are
 * about the message.
 *
 * Batches: the whole batch is retried in place like one message. If it still fails (or fails
 * permanently) then with `batchFailure: 'split'` (the default) each message is run alone, in order,
 * through the batch handler and gets its own outcome (`split`), so only the bad messages are
 * dead-lettered; with `batchFailure: 'dead-letter'` the outcome is `dead-letter` for every message.
 * While splitting, the runtime acts on each message's outcome (its dead-letter record acknowledged)
 * before the next message runs: a handler that stores offsets itself never stores one past a failed
 * message whose dead-letter record is not yet durable.
 */
/**
 * How the consumer runtime drives message handling: what happens to a message once the consumer runtime has fetched it. Routing by
 * event type, middleware, error kinds, in-place retries, the consumer circuit breaker and
 * dead-lettering. The runtime (src/consumer) owns fetching, ordering, offsets and commits; this part
 * never commits and never fetches. The contract types are in ./types.ts; user-facing guide in
 * docs/handling.md.
 *
 * How the runtime calls this:
 *
 * 1. Once per worker:
 *      breaker  = new ConsumerCircuitBreaker({ threshold, cooldownMs })          // optional
 *      executor = new HandlerExecutor({ handler, middleware, batchHandler, maxRetries, retryBackoff,
 *                                       batchFailure, classify, breaker, logger })
 *      dlq      = new DeadLetterWriter({ producer, topic: dlqTopic, groupId, logger })
 *    `handler` is the user's MessageHandler or `router.handler()`. The producer is a
 *    Kafka client Producer with Buffer serializers; the writer does not close it.
 * 2. Per record, build a ConsumedMessage: `raw` = the undecoded key/value bytes, `headers` = a
 *    Map<string, Buffer>, `meta` = readStandardHeaders(headers), `key`/`value` decoded. If decoding
 *    throws, call `executor.rejectUndeserializable(message /* value undefined *\/, error, ctx)`;
 *    otherwise `await executor.execute(message, { signal, groupId })`. Both never reject. `signal`
 *    must abort on stop and when the message's partition is revoked. A runtime that wants no promise
 *    of its own per message may make the first attempt itself: `executor.directHandler(ctx)` (undefined:
 *    use `execute`), then exactly one of `firstAttemptDone` or `afterFirstFailure` (src/consumer does).
 * 3. Act on `outcome.kind`:
 *      done, business → the offset may be committed (business was logged already);
 *      dead-letter    → `await dlq.write(message, outcome, { signal })`, and only after it resolves
 *                       mark the offset committable; if it rejects (abort, DeadLetterWriteError),
 *                       do not mark it: the message is redelivered;
 *      aborted        → neither commit nor dead-letter (redelivered to the next owner).
 * 4. Batches: `await executor.executeBatch(messages, ctx)`: done/business → all committable;
 *    dead-letter → one DLQ record per message (same outcome), then all committable; split →
 *    `outcomes[i]` belongs to `messages[i]`, act on each as in 3, in order (once one is aborted, the
 *    rest are too); aborted → none.
 * 5. Retries happen inside `execute`, so the runtime's ordering (partition or key) holds as long as it
 *    starts the next message of the same partition/key only after `execute` resolved.
 * 6. Circuit breaker: on `breaker.on('state')` → `open` pause fetching the assigned partitions,
 *    `closed` resume; dispatch a buffered message only while `breaker.mayDispatch()` (or after
 *    `await breaker.whenDispatchable(signal)`). While it is not closed the executor keeps failing
 *    messages in flight (no dead-letter outcome for transient failures), so nothing is committed or
 *    dead-lettered during an outage.
 * 7. Everything is published on the `kafkit:handler` diagnostics channel; `HandlerMetrics`
 *    aggregates it, so the runtime's own metrics may subscribe instead of instrumenting.
 */
import { ConfigError } from '../errors/kafkit-error.ts'
import { backoffDelay, sleep, type BackoffOptions } from '../resilience/backoff.ts'
import type { ConsumerCircuitBreaker, BreakerPermit } from './consumer-breaker.ts'
import { handlerChannel, positionOf, publishHandlerEvent } from './diagnostics.ts'
import { classifyError, DeserializationError, explicitKind, type ErrorKind } from './errors.ts'
import { defaultLogger, type HandlingLogger } from './logger.ts'
import { handlerExecutorOptions, type HandlerExecutorOptions } from './options.ts'
import {
  compose,
  type BatchContext,
  type BatchHandler,
  type ConsumedMessage,
  type HandlerContext,
  type MessageHandler,
  type Middleware
} from './types.ts'

/** Why and since when a message failed; what a dead-letter record reports. */
export interface FailureRecord {
  /** The kind that decided the dead-lettering: permanent, or transient with retries exhausted. */
  readonly reason: 'transient' | 'permanent'
  readonly error: unknown
  /** Handler attempts made (0 when the handler never ran, e.g. the record could not be deserialized). */
  readonly attempts: number
  readonly firstFailureAt: Date
  readonly lastFailureAt: Date
}

export interface DeadLetterOutcome extends FailureRecord {
  readonly kind: 'dead-letter'
}

export type HandlingOutcome =
  | { readonly kind: 'done'; readonly attempts: number }
  | { readonly kind: 'business'; readonly error: unknown; readonly attempts: number }
  | DeadLetterOutcome
  | { readonly kind: 'aborted'; readonly reason: unknown; readonly attempts: number }

export type BatchOutcome =
  | HandlingOutcome
  /** The batch failed as a whole; `outcomes[i]` is the outcome of `messages[i]` run alone (fewer when `each` ended the split). */
  | { readonly kind: 'split'; readonly failure: FailureRecord; readonly outcomes: readonly HandlingOutcome[] }

/**
 * What the executor passes on to the handler; the executor numbers the attempts itself. A context that
 * already says `attempt: 1` is handed to the first attempt as it is (no copy per message).
 */
export type ExecutionContext = Omit<HandlerContext, 'attempt'> & { attempt?: number }

/** The same for a batch handler, whose context also lets it dead-letter single messages itself. */
export type BatchExecutionContext<V = unknown> = Omit<BatchContext<V>, 'attempt'> & { attempt?: number }

/**
 * Called with each message's outcome while a failed batch is split, before the next message runs;
 * resolves false to end the split there (the rest get no outcome: they stay unsettled).
 */
export type SplitOutcomeSink = (index: number, outcome: HandlingOutcome) => Promise<boolean>

export interface HandlerExecutorInit<V = unknown> extends HandlerExecutorOptions {
  /** The per-message handler (an EventRouter's `handler()` fits). */
  handler?: MessageHandler<V>
  /** Composed around `handler` once, the first outermost. */
  middleware?: readonly Middleware<V>[]
  /** The batch handler for `executeBatch`. */
  batchHandler?: BatchHandler<V>
  /**
   * Overrides the classification of a failure; return undefined to fall back to the default rules
   * (explicit kinds, network codes, the built-in message lists, unknown → transient).
   */
  classify?: (error: unknown) => ErrorKind | undefined
  breaker?: ConsumerCircuitBreaker
  logger?: HandlingLogger
  /** Clock and randomness for tests. */
  now?: () => number
  random?: () => number
}

const DONE_FIRST_TRY: HandlingOutcome = Object.freeze({ kind: 'done', attempts: 1 })

/** The context of an attempt: the caller's own object when it already says that attempt. */
function attemptContext(context: ExecutionContext, attempt: number): HandlerContext {
  return context.attempt === attempt ? (context as HandlerContext) : { ...context, attempt }
}

function describe(error: unknown): { code?: unknown; name?: unknown; message: string } {
  if (error instanceof Error) {
    return { code: (error as { code?: unknown }).code, name: error.name, message: error.message }
  }
  return { message: String(error) }
}

/** The dead-letter outcome of a record that could not be deserialized (the handler never ran). */
export function undeserializableOutcome(error: unknown, now: number = Date.now()): DeadLetterOutcome {
  const wrapped =
    error instanceof DeserializationError || explicitKind(error) === 'permanent'
      ? error
      : new DeserializationError(`deserialization failed: ${describe(error).message}`, { cause: error })
  return {
    kind: 'dead-letter',
    reason: 'permanent',
    error: wrapped,
    attempts: 0,
    firstFailureAt: new Date(now),
    lastFailureAt: new Date(now)
  }
}

/** A dead-letter verdict reached while attempting (not one of an undeserializable record). */
function deadLetterOutcome(
  reason: 'transient' | 'permanent',
  error: unknown,
  attempts: number,
  firstFailureAt: Date,
  lastFailureAt: Date
): DeadLetterOutcome {
  return { kind: 'dead-letter', reason, error, attempts, firstFailureAt, lastFailureAt }
}

export class HandlerExecutor<V = unknown> {
  readonly #handler: MessageHandler<V> | undefined
  readonly #batchHandler: BatchHandler<V> | undefined
  readonly #classify: (error: unknown) => ErrorKind
  readonly #breaker: ConsumerCircuitBreaker | undefined
  readonly #logger: HandlingLogger
  readonly #now: () => number
  readonly #maxRetries: number
  readonly #backoff: BackoffOptions
  readonly #batchFailure: 'split' | 'dead-letter'

  constructor(init: HandlerExecutorInit<V>) {
    const { handler, middleware, batchHandler, classify, breaker, logger, now, random, ...options } = init
    const config = handlerExecutorOptions.resolve(options)
    if (!handler && !batchHandler) {
      throw new ConfigError('handler executor: give `handler` (per message) or `batchHandler` (or both)', {
        details: { component: 'handler executor', key: 'handler' }
      })
    }
    this.#handler = handler && (middleware?.length ? compose(handler, middleware) : handler)
    this.#batchHandler = batchHandler
    this.#classify = classify ? error => classify(error) ?? classifyError(error) : classifyError
    this.#breaker = breaker
    this.#logger = logger ?? defaultLogger()
    this.#now = now ?? Date.now
    this.#maxRetries = config.maxRetries
    this.#backoff = { ...config.retryBackoff, ...(random ? { random } : {}) }
    this.#batchFailure = config.batchFailure
  }

  /** Runs one message to a verdict. Never rejects (a handler failure is an outcome, not an exception). */
  execute(message: ConsumedMessage<V>, context: ExecutionContext): Promise<HandlingOutcome> {
    const handler = this.directHandler(context)
    if (handler === undefined) {
      if (!this.#handler) return Promise.reject(new ConfigError('handler executor: execute() needs `handler`'))
      return this.#attempts(message, 1, context, this.#runner(message, context))
    }
    // Most first attempts succeed, and without a breaker to ask they need none of the retry loop's
    // machinery (an async frame and its awaits per message, measurable with a no-op handler); a failed
    // first attempt goes on in the loop, as if it had run there.
    let first: Promise<void>
    try {
      first = Promise.resolve(handler(message, attemptContext(context, 1)))
    } catch (error) {
      // A handler that throws before returning a promise (not an async function).
      return this.afterFirstFailure(message, context, error)
    }
    return first.then(
      () => this.firstAttemptDone(message, context),
      (error: unknown) => this.afterFirstFailure(message, context, error)
    )
  }

  /**
   * For a runtime that makes first attempts itself, without a promise of its own per message (the
   * consumer's per-record path): the composed handler to call with an `attempt: 1` context, or
   * undefined when the attempt must go through `execute()` (a circuit breaker to ask first, or the
   * signal already aborted). The runtime then reports the attempt with `firstAttemptDone` or
   * `afterFirstFailure`, exactly once.
   */
  directHandler(context: ExecutionContext): MessageHandler<V> | undefined {
    return this.#breaker || context.signal.aborted ? undefined : this.#handler
  }

  /** The first attempt resolved: the `done` verdict, reported like `execute()` reports it. */
  firstAttemptDone(message: ConsumedMessage<V>, context: ExecutionContext): HandlingOutcome {
    return this.#report(message, 1, context, DONE_FIRST_TRY)
  }

  /** The first attempt failed with `error`: retries and the verdict, as `execute()` would go on. */
  afterFirstFailure(message: ConsumedMessage<V>, context: ExecutionContext, error: unknown): Promise<HandlingOutcome> {
    return this.#attempts(message, 1, context, this.#runner(message, context), false, { error })
  }

  #runner(message: ConsumedMessage<V>, context: ExecutionContext): (attempt: number) => Promise<void> {
    const handler = this.#handler
    if (!handler) throw new ConfigError('handler executor: execute() needs `handler`')
    return attempt => handler(message, attemptContext(context, attempt))
  }

  /**
   * Runs consecutive messages of one partition through the batch handler. Never rejects either. When
   * the batch is split, `each` (if given) gets every message's outcome before the next message runs.
   */
  async executeBatch(
    messages: readonly ConsumedMessage<V>[],
    context: BatchExecutionContext<V>,
    each?: SplitOutcomeSink
  ): Promise<BatchOutcome> {
    const batchHandler = this.#batchHandler
    if (!batchHandler) throw new ConfigError('handler executor: executeBatch() needs `batchHandler`')
    const first = messages[0]
    if (!first) return DONE_FIRST_TRY
    const batch = [...messages]
    const split = this.#batchFailure === 'split' && batch.length > 1
    const outcome = await this.#attempts(
      first,
      batch.length,
      context,
      attempt => batchHandler(batch, { ...context, attempt }),
      split
    )
    if (outcome.kind !== 'dead-letter' || !split) return outcome
    const { kind: _kind, ...failure } = outcome
    this.#logger.warn(
      { ...this.#fields(first, batch.length, context), reason: failure.reason, err: describe(failure.error) },
      'batch failed: running its messages one at a time so only the failing ones are dead-lettered'
    )
    const outcomes: HandlingOutcome[] = []
    for (const [index, message] of batch.entries()) {
      const single = await this.#attempts(message, 1, context, attempt =>
        batchHandler([message], { ...context, attempt })
      )
      // The DLQ record of a message should count every attempt it went through, batch ones included.
      const outcome: HandlingOutcome =
        single.kind === 'dead-letter'
          ? { ...single, attempts: failure.attempts + single.attempts, firstFailureAt: failure.firstFailureAt }
          : single
      outcomes.push(outcome)
      if (each && !(await each(index, outcome))) break
    }
    publishHandlerEvent(() => ({
      type: 'outcome',
      ...positionOf(first, context.groupId),
      outcome: 'split',
      count: batch.length,
      attempts: failure.attempts,
      reason: failure.reason,
      error: failure.error
    }))
    return { kind: 'split', failure, outcomes }
  }

  /** The verdict for a record that could not be deserialized: dead-letter at once, raw bytes kept. */
  rejectUndeserializable(
    message: ConsumedMessage<unknown>,
    error: unknown,
    context: ExecutionContext
  ): DeadLetterOutcome {
    const outcome = undeserializableOutcome(error, this.#now())
    this.#report(message, 1, context, outcome)
    return outcome
  }

  async #attempts(
    message: ConsumedMessage<V>,
    count: number,
    context: ExecutionContext,
    run: (attempt: number) => Promise<void>,
    /** A failed batch about to be split: its messages report their own outcomes. */
    splitting = false,
    /** The first attempt already ran (execute's fast path) and failed with this. */
    firstFailure?: { error: unknown }
  ): Promise<HandlingOutcome> {
    const { signal } = context
    const breaker = this.#breaker
    let firstFailureAt: Date | undefined
    for (let attempt = 1; ; attempt++) {
      let permit: BreakerPermit | undefined
      if (breaker) {
        permit = breaker.tryAcquire()
        if (!permit) {
          try {
            permit = await breaker.acquire(signal)
          } catch (reason) {
            return this.#aborted(message, count, context, (signal.reason as unknown) ?? reason, attempt - 1)
          }
        }
      }
      let failure = attempt === 1 ? firstFailure : undefined
      if (signal.aborted && failure === undefined) {
        if (permit) breaker?.recordNeutral(permit)
        return this.#aborted(message, count, context, signal.reason, attempt - 1)
      }
      if (failure === undefined) {
        try {
          await run(attempt)
        } catch (error) {
          failure = { error }
        }
      }
      if (failure !== undefined) {
        const failedAt = new Date(this.#now())
        firstFailureAt ??= failedAt
        const next = this.#afterFailure(
          message,
          count,
          context,
          splitting,
          failure.error,
          attempt,
          permit,
          firstFailureAt,
          failedAt
        )
        if (typeof next === 'object') return next
        if (next === undefined) continue
        try {
          await sleep(next, signal)
        } catch {
          return this.#aborted(message, count, context, signal.reason, attempt)
        }
        continue
      }
      if (permit) breaker?.recordSuccess(permit)
      return this.#report(message, count, context, attempt === 1 ? DONE_FIRST_TRY : { kind: 'done', attempts: attempt })
    }
  }

  /**
   * What follows failed attempt `attempt`: a verdict (reported, except a dead-letter one while
   * `splitting`), the delay in ms to retry after, or undefined to retry at once (the breaker is open).
   */
  #afterFailure(
    message: ConsumedMessage<V>,
    count: number,
    context: ExecutionContext,
    splitting: boolean,
    error: unknown,
    attempt: number,
    permit: BreakerPermit | undefined,
    firstFailureAt: Date,
    failedAt: Date
  ): HandlingOutcome | number | undefined {
    const breaker = this.#breaker
    if (context.signal.aborted) {
      if (permit) breaker?.recordNeutral(permit)
      return this.#aborted(message, count, context, context.signal.reason, attempt)
    }
    const kind = this.#classify(error)
    if (kind === 'business') {
      if (permit) breaker?.recordSuccess(permit)
      return this.#report(message, count, context, { kind: 'business', error, attempts: attempt })
    }
    if (kind === 'permanent') {
      if (permit) breaker?.recordNeutral(permit)
      const outcome = deadLetterOutcome('permanent', error, attempt, firstFailureAt, failedAt)
      return splitting ? outcome : this.#report(message, count, context, outcome)
    }
    if (permit) breaker?.recordFailure(permit, error)
    if (breaker && breaker.state !== 'closed') {
      publishHandlerEvent(() => ({ type: 'suspended', ...positionOf(message, context.groupId), attempt, error }))
      if (attempt === 1 || permit?.probe) {
        this.#logger.warn(
          { ...this.#fields(message, count, context), attempt, breaker: breaker.state, err: describe(error) },
          'consumer circuit breaker is open: the message waits for the downstream instead of being retried'
        )
      }
      return undefined
    }
    if (attempt > this.#maxRetries) {
      const outcome = deadLetterOutcome('transient', error, attempt, firstFailureAt, failedAt)
      return splitting ? outcome : this.#report(message, count, context, outcome)
    }
    const delayMs = this.#retryDelay(error, attempt)
    publishHandlerEvent(() => ({ type: 'retry', ...positionOf(message, context.groupId), attempt, delayMs, error }))
    this.#logger.debug(
      { ...this.#fields(message, count, context), attempt, delayMs, err: describe(error) },
      'transient failure: retrying in place'
    )
    return delayMs
  }

  /** How long to wait after failed attempt `attempt`: the backoff, or a transient error's own `retryAfterMs` if longer. */
  #retryDelay(error: unknown, attempt: number): number {
    const retryAfter = (error as { retryAfterMs?: unknown } | null)?.retryAfterMs
    return Math.max(
      backoffDelay(attempt, this.#backoff),
      typeof retryAfter === 'number' && explicitKind(error) === 'transient' ? retryAfter : 0
    )
  }

  /** Reports the `aborted` verdict after `attempts` attempts. */
  #aborted(
    message: ConsumedMessage<V>,
    count: number,
    context: ExecutionContext,
    reason: unknown,
    attempts: number
  ): HandlingOutcome {
    return this.#report(message, count, context, { kind: 'aborted', reason, attempts })
  }

  #fields(message: ConsumedMessage<unknown>, count: number, context: ExecutionContext): Record<string, unknown> {
    return {
      groupId: context.groupId,
      topic: message.topic,
      partition: message.partition,
      offset: String(message.offset),
      ...(count > 1 ? { count } : {}),
      eventType: message.meta.eventType,
      eventId: message.meta.eventId
    }
  }

  #report<O extends HandlingOutcome>(
    message: ConsumedMessage<unknown>,
    count: number,
    context: ExecutionContext,
    outcome: O
  ): O {
    // The common case, without building the event's closure when nobody listens.
    if (outcome.kind === 'done' && !handlerChannel.hasSubscribers) return outcome
    if (outcome.kind === 'business') {
      this.#logger.warn(
        { ...this.#fields(message, count, context), attempts: outcome.attempts, err: describe(outcome.error) },
        'business rule refused the message: committed without retry or dead-letter'
      )
    }
    // A dead-letter verdict is logged where the record goes (the dead-letter writer, or a retry tier),
    // once it is there: only that place knows which it is.
    publishHandlerEvent(() => ({
      type: 'outcome',
      ...positionOf(message, context.groupId),
      outcome: outcome.kind,
      count,
      attempts: outcome.attempts,
      ...(outcome.kind === 'dead-letter' ? { reason: outcome.reason, error: outcome.error } : {}),
      ...(outcome.kind === 'business' ? { reason: 'business' as const, error: outcome.error } : {})
    }))
    return outcome
  }
}
