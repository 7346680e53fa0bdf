/**
 * The contract between the sink runner (which consumes, maps, batches, retries and commits) and a
 * database writer (`kafkit/postgres`, `kafkit/clickhouse`, or the user's own). The runner hands a
 * writer one batch of consecutive records per call; the writer stores the batch atomically or throws,
 * and the runner commits the Kafka offsets only after `write` resolved. A writer that stores offsets
 * itself (exactly-once) also answers `loadOffsets`, and the runner starts each assigned partition
 * from there instead of from the group's committed offset.
 */

/** One consumed record as the writer sees it: its position and the row it maps to (null: no row). */
export interface SinkRecord<Row> {
  topic: string
  partition: number
  offset: bigint
  row: Row | null
}

/** Where a partition resumes: the offset of the next record to consume. */
export interface StoredOffset {
  topic: string
  partition: number
  nextOffset: bigint
}

export interface SinkWriteContext {
  /** Aborted when the sink stops; a writer should cancel its query and throw. */
  signal?: AbortSignal | undefined
  /** The consumer group the batch was consumed by (exactly-once writers key their offsets by it). */
  groupId: string
}

export interface SinkWriteResult {
  /** Rows the database stored. */
  written: number
  /** Rows the database already had (idempotent skip) or that an exactly-once writer found already stored. */
  skipped: number
  /** Which write path was used (`insert`, `copy`, ...), for metrics and benchmarks. */
  path: string
}

export interface SinkWriter<Row> {
  /** A short name for logs and metrics (`postgres:public.logs`). */
  readonly name: string
  /** True when the writer stores the consumed offsets in the database, in the same transaction as the rows. */
  readonly storesOffsets: boolean
  /** Stores the rows of one batch atomically (all or nothing), or throws. */
  write(records: readonly SinkRecord<Row>[], context: SinkWriteContext): Promise<SinkWriteResult>
  /** The offsets stored for `groupId` (exactly-once writers); partitions never written are absent. */
  loadOffsets?(groupId: string, topics: readonly string[], signal?: AbortSignal): Promise<StoredOffset[]>
  /** True when `error` (thrown by `write`) means the database is unavailable rather than the data bad. */
  isTransient(error: unknown): boolean
  close(): Promise<void>
}
