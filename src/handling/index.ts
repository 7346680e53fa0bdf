/**
 * Message handling: what happens to a message once the consumer runtime has fetched it. Routing by
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
export type {
  ConsumedMessage,
  HandlerContext,
  MessageHandler,
  BatchHandler,
  BatchContext,
  Middleware
} from './types.ts'
export { compose } from './types.ts'
export {
  ErrorKind,
  HandlerError,
  TransientError,
  PermanentError,
  BusinessError,
  DeserializationError,
  SchemaMismatchError,
  HandlerTimeoutError,
  explicitKind,
  classifyError,
  createErrorClassifier,
  transientMessagePatterns,
  permanentMessagePatterns,
  type TransientErrorOptions,
  type ErrorClassifier,
  type ErrorClassifierOptions
} from './errors.ts'
export {
  HandlerExecutor,
  undeserializableOutcome,
  type HandlerExecutorInit,
  type HandlingOutcome,
  type BatchOutcome,
  type DeadLetterOutcome,
  type FailureRecord,
  type ExecutionContext
} from './handler-executor.ts'
export { ConsumerCircuitBreaker, type ConsumerBreakerInit, type BreakerPermit } from './consumer-breaker.ts'
export {
  DeadLetterHeader,
  DEAD_LETTER_HEADER_PREFIX,
  DEAD_LETTER_FORMAT_VERSION,
  DeadLetterRecordError,
  buildDeadLetterRecord,
  parseDeadLetterHeaders,
  isDeadLetterRecord,
  originalHeaders,
  originalHeaderEntries,
  type DeadLetterInfo,
  type DeadLetterRecord,
  type DeadLetterBuildOptions
} from './dead-letter.ts'
export {
  DeadLetterWriter,
  DeadLetterWriteError,
  type DeadLetterProducer,
  type DeadLetterWriterInit,
  type DeadLetterReceipt
} from './dead-letter-writer.ts'
export {
  EventRouter,
  defaultEventType,
  CLOUDEVENTS_TYPE_HEADER,
  type EventRouterOptions,
  type EventTypeExtractor,
  type RouteFallback,
  type RouteOptions,
  type RouteSchema
} from './event-router.ts'
export {
  InMemoryProcessedIdStore,
  type ProcessedIdStore,
  type ClaimResult,
  type InMemoryProcessedIdStoreOptions
} from './processed-id-store.ts'
export { loggingMiddleware, type LoggingMiddlewareOptions } from './middleware/logging.ts'
export {
  metricsMiddleware,
  HandlerMetrics,
  DURATION_BUCKETS_MS,
  type HandlerMetricsSnapshot,
  type HandlerMetricsOptions
} from './middleware/metrics.ts'
export { timeoutMiddleware, type TimeoutMiddlewareOptions } from './middleware/timeout.ts'
export { tracingMiddleware, type TracingHooks, type TraceContext, type TraceResult } from './middleware/tracing.ts'
export { idempotentConsumer, type IdempotentConsumerOptions } from './middleware/idempotent-consumer.ts'
export { HANDLER_CHANNEL, handlerChannel, type HandlerEvent, type MessagePosition } from './diagnostics.ts'
export { defaultLogger, type HandlingLogger } from './logger.ts'
export {
  handlerExecutorOptions,
  consumerBreakerOptions,
  deadLetterOptions,
  type HandlerExecutorOptions,
  type ConsumerBreakerConfig,
  type DeadLetterWriterOptions
} from './options.ts'
