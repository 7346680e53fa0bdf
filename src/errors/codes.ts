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
  KAFKIT_MESSAGE_INVALID:
    'A message being built is incomplete or has an invalid field (no value, a negative partition or retry count); nothing was sent.',
  KAFKIT_COORDINATOR_UNKNOWN:
    "The consumer group's coordinator is not known or not in the cluster's metadata (a broker moving or down); the commit is retried.",
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
  KAFKIT_STORE_UNAVAILABLE:
    'A processed-id store (Postgres, Redis) could not answer a claim, complete or release: unreachable, timed out or failed (retryable: the message fails as transient, and after a failed claim its handler did not run), or not set up, e.g. its table is missing (not retryable; the message says what to do).',
  KAFKIT_DLQ_RECORD_INVALID:
    'A record read as a dead-letter record lacks a Kafkit DLQ header or has one that does not parse.',
  KAFKIT_DLQ_WRITE_FAILED: 'Producing a dead-letter record was not acknowledged within the allowed attempts.',
  KAFKIT_CONSUMER_STATE:
    'A consumer lifecycle call does not fit its state (e.g. start() on a consumer already started).',
  KAFKIT_PARTITION_REVOKED:
    'A handler was aborted because its partition was revoked; the record is redelivered to the next owner.',
  KAFKIT_CONSUMER_STOPPED:
    'A handler was aborted because the consumer stopped past shutdownTimeoutMs; the record stays uncommitted.',
  KAFKIT_CONSUMER_STREAM_CLOSED:
    "The client's record stream closed by itself while the consumer was running: the consumer fetches again on a new stream (up to 10 times in a row), then fails with this error instead of going quiet.",
  KAFKIT_SINK_WRITE_FAILED:
    'A sink could not store a batch in its database; nothing of the batch was stored or committed (retryable when the database was unreachable).',
  KAFKIT_SINK_MAPPING_FAILED:
    "A sink's mapping from record to row threw or a row was rejected by the database: dead-lettered (errorsTolerance all) or the sink stops (none).",
  KAFKIT_SINK_STOPPED:
    'A sink stopped on a bad record because errorsTolerance is none; the record and everything after it stay uncommitted.',
  KAFKIT_SINK_FEATURE_UNSUPPORTED:
    'The database server lacks a feature the sink was asked to use (e.g. an old ClickHouse without DateTime64 or insert deduplication tokens).',
  KAFKIT_CIRCUIT_OPEN:
    "The producer's circuit breaker is open after repeated delivery failures: the send failed fast without trying (retryable after the cool-down).",
  KAFKIT_PRODUCE_FAILED:
    'The broker rejected a message, or did not acknowledge it within the retries; after a lost connection or timeout it may still have been written.',
  KAFKIT_MESSAGE_TOO_LARGE:
    'A message is larger than maxMessageBytes or than its topic accepts; only that message failed, the rest of its batch was sent.',
  KAFKIT_SERIALIZATION_FAILED: "A message's key, value or headers could not be turned into bytes; it was not sent.",
  KAFKIT_INVALID_PARTITION:
    'A message names a partition its topic does not have (explicitly or through a custom partitioner); it was not sent.',
  KAFKIT_PRODUCER_BUFFER_FULL:
    "The producer's buffer memory is full and bufferFullBehavior is fail, or waiting for room outran maxBlockMs; the message was not accepted.",
  KAFKIT_SEND_TIMEOUT:
    'A message was not acknowledged within deliveryTimeoutMs (retries included); when it was already in flight it may still be written.',
  KAFKIT_PRODUCER_CLOSED:
    'The producer is closed or closing: a new message was refused, or close() gave up on a pending one at its deadline.',
  KAFKIT_OFFSETS_UNSTABLE:
    'A stage could not read a stable committed offset for a partition it took over: a transaction of its former owner stayed pending past the wait (retryable: the batch is tried again).',
  KAFKIT_TRANSACTION_FAILED:
    'A transaction could not commit (one of its messages failed, or the coordinator refused): it was aborted, read_committed consumers see none of it.',
  KAFKIT_TRANSACTION_ABORTED:
    'A message belonged to a transaction that was aborted before the message was sent; it will never be visible to read_committed consumers.',
  KAFKIT_TRANSACTION_STATE:
    'A transaction call came in the wrong state (begin while one is open, commit or abort without one, send on a finished one).',
  KAFKIT_TOPIC_NOT_FOUND:
    'A topic an operation needs does not exist (the origin of retry topics, a DLQ to replay or purge, a replay target).',
  KAFKIT_RETRY_TOPIC_MISFIT:
    'An existing retry or dead-letter topic does not fit its origin (fewer partitions, compacted, retention not longer than its delay, smaller max.message.bytes); nothing was created.',
  KAFKIT_DLQ_REPLAY_FAILED:
    'A DLQ replay batch was not committed (fenced by another replay of the same DLQ, or refused by the broker): its records and ledger entries were aborted together; earlier batches stay replayed.',
  KAFKIT_DLQ_PURGE_FAILED:
    'Deleting DLQ records was refused (an offset past the end, a partition that does not exist, or the broker refused); the message names the partition.',
  KAFKIT_CONFIRMATION_REQUIRED:
    'A command that publishes or deletes records (dlq replay, dlq purge) needs confirmation: answer its prompt on a terminal, or pass --yes in scripts.'
} as const

export type ErrorCode = keyof typeof errorCodes
