/**
 * `kafkit/postgres`: the Postgres database writer of Kafkit's sink (peer dependency `pg`).
 * Idempotent (`ON CONFLICT` on a unique key, or an upsert by version), exactly-once (rows and consumed
 * offsets in one transaction), and a COPY bulk path. Use it with the sink runner (`createSink` in
 * `kafkit`) or on its own. Guide: docs/sinks.md.
 */
export { PostgresWriter, isTransientPostgresError, type PostgresWriterInit } from './postgres-writer.ts'
export { postgresWriterOptions, type PostgresWriterOptions, type PostgresWriterConfig } from './options.ts'
export {
  pgPoolDatabase,
  pgliteDatabase,
  type SqlDatabase,
  type SqlSession,
  type SqlResult,
  type PGliteLike
} from './sql-database.ts'
export { copyFromStdin } from './copy-from.ts'
export { quoteIdent, quoteQualified, toSqlText, copyLine } from './sql-text.ts'
export type { SinkRecord, SinkWriter, SinkWriteContext, SinkWriteResult, StoredOffset } from '../sink/types.ts'
export { SinkWriteError } from '../sink/errors.ts'
export { Outbox, type OutboxInit, type OutboxEvent, type OutboxEntry } from './outbox.ts'
export { createOutboxTable } from './outbox-schema.ts'
export {
  OutboxRelay,
  type OutboxRelayInit,
  type OutboxRelayHealth,
  type OutboxRelayState,
  type OutboxRelayEvents
} from './outbox-relay.ts'
export { outboxRelayOptions, type OutboxRelayOptions, type OutboxRelayConfig } from './outbox-options.ts'
export { Inbox, type InboxInit, type InboxHandler } from './inbox.ts'
export {
  PostgresProcessedIdStore,
  postgresProcessedIdStoreOptions,
  type PostgresProcessedIdStoreInit,
  type PostgresProcessedIdStoreOptions,
  type PostgresProcessedIdStoreConfig
} from './processed-id-store.ts'
