/**
 * The sink runner (Kafka to a database) and the contract its database writers implement. The writers
 * live behind their own entry points (`kafkit/postgres`, `kafkit/clickhouse`); this part never imports
 * them. Guide: docs/sinks.md.
 */
export { Sink, type SinkInit, type SinkMapping, type SinkBatchReport, type SinkStats } from './sink.ts'
export { sinkOptions, type SinkOptions, type SinkConfig } from './options.ts'
export { SinkWriteError, SinkMappingError, SinkStoppedError, SinkFeatureUnsupportedError } from './errors.ts'
export type { SinkRecord, SinkWriter, SinkWriteContext, SinkWriteResult, StoredOffset } from './types.ts'
