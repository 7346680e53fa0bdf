/**
 * `kafkit/clickhouse`: the ClickHouse database writer of Kafkit's sink (peer dependency
 * `@clickhouse/client`), the log pipeline's ReplacingMergeTree `logs` table helper, and run-time
 * detection of what the connected server supports. Guide: docs/sinks.md.
 */
export {
  ClickHouseWriter,
  isTransientClickHouseError,
  clickHouseErrorCode,
  type ClickHouseWriterInit
} from './clickhouse-writer.ts'
export { detectCapabilities, missingFeatures, type ClickHouseCapabilities } from './capabilities.ts'
export { createLogsTable, logsTableDdl, type LogsTable, type LogsTableOptions } from './logs-table.ts'
export { clickHouseWriterOptions, type ClickHouseWriterOptions, type ClickHouseWriterConfig } from './options.ts'
export { quoteClickHouseIdent, quoteClickHouseName } from './names.ts'
export type { SinkRecord, SinkWriter, SinkWriteContext, SinkWriteResult } from '../sink/types.ts'
export { SinkWriteError, SinkFeatureUnsupportedError } from '../sink/errors.ts'
