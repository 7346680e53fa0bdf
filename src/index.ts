/**
 * Kafkit: reliable Kafka pipelines and event-driven services for Node.js.
 *
 * This entry point is what applications write code against: the producer, the consumer (with its
 * retry tiers and dead-letter topic), the sink runner, the event router and middleware, the message
 * builder and serdes, the error kinds, topology and dead-letter operations, and the connection and
 * option types. Everything else is internal and may change between versions. Integrations live behind
 * their own entry points (`kafkit/postgres`, `kafkit/clickhouse`, `kafkit/testing`); this one never
 * imports them.
 */

// Errors: every error Kafkit throws is a KafkitError with a stable code (docs/errors.md).
export { KafkitError, ConfigError, isKafkitError, type KafkitErrorOptions } from './errors/kafkit-error.ts'
export { errorCodes, type ErrorCode } from './errors/codes.ts'

// Connection and time: one set of connection options for every entry point, one duration grammar.
export type { ConnectionOptions } from './kafka/connection.ts'
export { parseDuration, formatDuration, type Duration } from './config/duration.ts'

// Messages: the builder with the standard headers, event ids, serdes.
export {
  message,
  MessageBuilder,
  InvalidMessageError,
  type OutgoingMessage,
  type MessageHeaders
} from './message/builder.ts'
export { newEventId } from './message/uuid.ts'
export {
  StandardHeader,
  readStandardHeaders,
  type StandardHeaders,
  type StandardHeaderName,
  type HeaderValue
} from './message/headers.ts'
export { jsonSerde, stringSerde, bytesSerde, type Serde } from './message/serde.ts'

// Producer.
export { Producer, type ProducerInit, type ProducerEvents } from './producer/producer.ts'
export { ProducerTransaction, type TransactionState } from './producer/transaction.ts'
export { producerProfiles, type ProducerOptions, type ProducerProfile } from './producer/options.ts'
export {
  CircuitOpenError,
  ProduceError,
  MessageTooLargeError,
  SerializationError,
  InvalidPartitionError,
  BufferFullError,
  SendTimeoutError,
  ProducerClosedError,
  TransactionError,
  TransactionAbortedError,
  TransactionStateError
} from './producer/errors.ts'
export type { PartitionerFunction, PartitionerName } from './producer/partitioners.ts'
export type { ProducerMetrics } from './producer/metrics.ts'
export type {
  SendResult,
  SendOutcome,
  SendOptions,
  CloseReport,
  CloseOptions,
  FailedMessage
} from './producer/types.ts'

// Consumer.
export {
  Consumer,
  type ConsumerInit,
  type ConsumerEvents,
  type ConsumerHealth,
  type SettledOutcome,
  type FailureRoute
} from './consumer/consumer.ts'
export type { ConsumerOptions } from './consumer/options.ts'
export type { OrderingMode } from './consumer/partition-queue.ts'
export { ConsumerStateError, PartitionRevokedError, ConsumerStoppedError } from './consumer/errors.ts'
export type { ConsumerMetrics, PartitionLag, PartitionMetrics } from './consumer/metrics.ts'

// Handling: what a handler receives and returns, error kinds, the router, middleware.
export type {
  ConsumedMessage,
  HandlerContext,
  MessageHandler,
  BatchHandler,
  BatchContext,
  Middleware
} from './handling/types.ts'
export { compose } from './handling/types.ts'
export {
  ErrorKind,
  HandlerError,
  TransientError,
  PermanentError,
  BusinessError,
  DeserializationError,
  SchemaMismatchError,
  HandlerTimeoutError,
  classifyError,
  createErrorClassifier,
  type TransientErrorOptions,
  type ErrorClassifier,
  type ErrorClassifierOptions
} from './handling/errors.ts'
export type { HandlingOutcome } from './handling/handler-executor.ts'
export { DeadLetterWriteError } from './handling/dead-letter-writer.ts'
export {
  EventRouter,
  type EventRouterOptions,
  type EventTypeExtractor,
  type RouteFallback,
  type RouteOptions,
  type RouteSchema
} from './handling/event-router.ts'
export {
  InMemoryProcessedIdStore,
  type ProcessedIdStore,
  type ClaimResult,
  type InMemoryProcessedIdStoreOptions
} from './handling/processed-id-store.ts'
export { loggingMiddleware, type LoggingMiddlewareOptions } from './handling/middleware/logging.ts'
export {
  metricsMiddleware,
  HandlerMetrics,
  type HandlerMetricsSnapshot,
  type HandlerMetricsOptions
} from './handling/middleware/metrics.ts'
export { timeoutMiddleware, type TimeoutMiddlewareOptions } from './handling/middleware/timeout.ts'
export {
  tracingMiddleware,
  type TracingHooks,
  type TraceContext,
  type TraceResult
} from './handling/middleware/tracing.ts'
export { idempotentConsumer, type IdempotentConsumerOptions } from './handling/middleware/idempotent-consumer.ts'
export { HANDLER_CHANNEL, type HandlerEvent, type MessagePosition } from './handling/diagnostics.ts'
export type { HandlingLogger } from './handling/logger.ts'

// Retry tiers: delayed retries on their own topics, per-key ordered retries.
export type { RetryMetrics } from './retry/retry-flow.ts'
export type { RetryOptions } from './retry/options.ts'
export { readRetryHeaders, type RetryInfo } from './retry/retry-headers.ts'

// Stages: consume, transform into output records, produce (pipelines of several stages).
export { Stage, type StageInit, type StageOutput, type StageTransform } from './stage/stage.ts'
export type { StageOptions } from './stage/options.ts'

// Sinks: the runner and the contract database writers implement (writers: kafkit/postgres, kafkit/clickhouse).
export { Sink, type SinkInit, type SinkMapping, type SinkBatchReport, type SinkStats } from './sink/sink.ts'
export type { SinkOptions } from './sink/options.ts'
export { SinkWriteError, SinkMappingError, SinkStoppedError, SinkFeatureUnsupportedError } from './sink/errors.ts'
export type { SinkRecord, SinkWriter, SinkWriteContext, SinkWriteResult, StoredOffset } from './sink/types.ts'

// Topology: declared topics, retry and dead-letter topics, topic naming.
export { checkTopicName, type TopicNameCheck } from './topology/topic-naming.ts'
export {
  planTopics,
  applyTopicPlan,
  ensureTopics,
  TopicConflictError,
  type TopicSpec,
  type TopicPlan,
  type TopicPlanEntry,
  type TopicChange
} from './topology/topic-plan.ts'
export {
  retryTopicNames,
  planRetryTopics,
  ensureRetryTopics,
  RetryTopicMisfitError,
  TopicNotFoundError,
  DEFAULT_RETRY_TIERS,
  type RetryDelay,
  type RetryTier,
  type RetryTopicNames,
  type RetryTopicNaming,
  type RetryTopicOptions,
  type RetryTopicPlan,
  type RetryTopicStatus,
  type RetryTopicRole
} from './topology/retry-topics.ts'

// Dead-letter operations: read, inspect, replay once, purge (also `kafkit dlq ...`).
export {
  DeadLetterHeader,
  parseDeadLetterHeaders,
  isDeadLetterRecord,
  originalHeaders,
  type DeadLetterInfo
} from './handling/dead-letter.ts'
export {
  listDeadLetters,
  showDeadLetter,
  type DeadLetterFilter,
  type DeadLetterEntry,
  type DeadLetterListing
} from './operations/dead-letter-inspector.ts'
export {
  replayDeadLetters,
  ReplayError,
  type ReplayOptions,
  type ReplayResult,
  type ReplayPlanSummary,
  type ReplayItem,
  type ReplayStatus,
  type ReplayProgress,
  type ReplayLedgerEntry
} from './operations/dead-letter-replay.ts'
export {
  purgeDeadLetters,
  PurgeError,
  type PurgeOptions,
  type PurgePlan,
  type PurgeResult,
  type PartitionPurge
} from './operations/dead-letter-purge.ts'
export { readTopicSnapshot, type TopicSnapshotOptions, type RawRecord } from './operations/topic-snapshot.ts'
