/**
 * Kafkit: reliable Kafka pipelines and event-driven services for Node.js.
 * Integrations live behind their own subpath exports (`kafkit/testing`, ...); this entry point never
 * imports one of them.
 */
export {
  KafkitError,
  ConfigError,
  LocalKafkaError,
  isKafkitError,
  type KafkitErrorOptions
} from './errors/kafkit-error.ts'
export { errorCodes, type ErrorCode } from './errors/codes.ts'
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
  formatDelay,
  delayMs,
  RetryTopicMisfitError,
  TopicNotFoundError,
  DEFAULT_RETRY_TIERS,
  DEFAULT_RETRY_TOPIC_TEMPLATE,
  DEFAULT_DLQ_TOPIC_TEMPLATE,
  type RetryDelay,
  type RetryTier,
  type RetryTopicNames,
  type RetryTopicNaming,
  type RetryTopicNamer,
  type DeadLetterTopicNamer,
  type RetryTopicOptions,
  type RetryTopicPlan,
  type RetryTopicStatus,
  type RetryTopicRole
} from './topology/retry-topics.ts'
export {
  readTopicSnapshot,
  snapshotRanges,
  type TopicSnapshotOptions,
  type PartitionRange,
  type RawRecord
} from './operations/topic-snapshot.ts'
// Message handling: error kinds, executor (in-place retries), router, middleware, DLQ records, breaker.
export * from './handling/index.ts'
// Consumer runtime: groups, offsets, per-key concurrency, backpressure, lifecycle, metrics.
export * from './consumer/index.ts'
// Retry tiers: delayed retries on their own topics, per-key ordered retries.
export * from './retry/index.ts'
// Sinks: the runner and the writer contract (database writers: kafkit/postgres, kafkit/clickhouse).
export * from './sink/index.ts'
// Producer: batching, backpressure, Java-compatible partitioning, retries, breaker, DLQ, transactions.
export * from './producer/index.ts'
// Messages: the fluent builder with the standard headers, UUIDv7 event ids, serdes.
export { message, MessageBuilder, type OutgoingMessage, type MessageHeaders } from './message/builder.ts'
export { newEventId } from './message/uuid.ts'
export {
  StandardHeader,
  readStandardHeaders,
  type StandardHeaders,
  type StandardHeaderName,
  type HeaderValue
} from './message/headers.ts'
export { jsonSerde, stringSerde, bytesSerde, utf8Strict, type Serde } from './message/serde.ts'
export {
  listDeadLetters,
  showDeadLetter,
  matchesFilter,
  type DeadLetterFilter,
  type DeadLetterEntry,
  type DeadLetterListing
} from './operations/dead-letter-inspector.ts'
export {
  replayDeadLetters,
  readReplayLedger,
  replayLedgerTopic,
  replayOfValue,
  ReplayHeader,
  REPLAY_HEADER_PREFIX,
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
