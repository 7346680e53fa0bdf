/**
 * Every error Kafkit raises carries one of these stable codes. The map's values are the one-line
 * meanings published in docs/errors.md; a unit test keeps that page and this list in step, so a code
 * added here without documentation (or documented but gone) fails the build.
 */
export const errorCodes = {
  KAFKIT_CONFIG_INVALID: 'A configuration value is missing, of the wrong type, out of range or not a known key.',
  KAFKIT_LOCAL_KAFKA_JAVA_MISSING: 'The local Kafka launcher needs `java` (JDK 17+) on the PATH and found none.',
  KAFKIT_LOCAL_KAFKA_MAVEN_MISSING:
    'The local Kafka launcher needs `mvn` on the PATH to assemble Kafka and found none.',
  KAFKIT_LOCAL_KAFKA_DOWNLOAD_FAILED: 'Assembling Apache Kafka from Maven Central failed (network, proxy or disk).',
  KAFKIT_LOCAL_KAFKA_PORT_TAKEN: 'A port the local Kafka needs is already used by another process.',
  KAFKIT_LOCAL_KAFKA_START_FAILED: 'A local Kafka node exited or did not become ready in time; its log file says why.',
  KAFKIT_TOPIC_CONFLICT:
    'A topic exists in a form its spec cannot be applied to (fewer partitions, other replication factor, illegal name).',
  KAFKIT_LOCAL_KAFKA_NOT_RUNNING: 'An operation needs a running local Kafka node and there is none.',
  KAFKIT_HANDLER_TRANSIENT:
    'A handler failed in a way a retry may fix (downstream down, timeout): retried in place, then dead-lettered.',
  KAFKIT_HANDLER_PERMANENT:
    'A handler failed in a way no retry can fix (invalid message, schema mismatch): dead-lettered at once.',
  KAFKIT_HANDLER_BUSINESS:
    'A handler refused a message by a business rule (e.g. a conflict): logged and committed, not retried, not dead-lettered.',
  KAFKIT_HANDLER_TIMEOUT:
    "A handler outran the timeout middleware's limit: its signal was aborted and the attempt failed as transient.",
  KAFKIT_DESERIALIZATION_FAILED:
    "A record's key or value could not be deserialized: dead-lettered at once with its raw bytes (permanent).",
  KAFKIT_SCHEMA_MISMATCH: "A message's value does not match the schema of its route (permanent).",
  KAFKIT_EVENT_UNROUTABLE:
    "A message has no event type, or one the router has no handler for, and the router's fallback rejects it.",
  KAFKIT_EVENT_IN_PROGRESS:
    'The idempotent consumer found the event claimed by another worker whose lease has not expired (transient).',
  KAFKIT_DLQ_RECORD_INVALID:
    'A record read as a dead-letter record lacks a Kafkit DLQ header or has one that does not parse.',
  KAFKIT_DLQ_WRITE_FAILED: 'Producing a dead-letter record was not acknowledged within the allowed attempts.',
  KAFKIT_SINK_WRITE_FAILED:
    'A sink could not store a batch in its database; nothing of the batch was stored or committed (retryable when the database was unreachable).',
  KAFKIT_SINK_MAPPING_FAILED:
    "A sink's mapping from record to row threw or a row was rejected by the database: dead-lettered (errorsTolerance all) or the sink stops (none).",
  KAFKIT_SINK_STOPPED:
    'A sink stopped on a bad record because errorsTolerance is none; the record and everything after it stay uncommitted.',
  KAFKIT_SINK_FEATURE_UNSUPPORTED:
    'The database server lacks a feature the sink was asked to use (e.g. an old ClickHouse without DateTime64 or insert deduplication tokens).'
} as const

export type ErrorCode = keyof typeof errorCodes
