/**
 * `PostgresWriter`: the database writer of the Postgres sink. One `write` is one transaction, so a batch
 * is stored whole or not at all, and the runner commits Kafka offsets only after it resolved.
 *
 * - `idempotent` (idempotent writes): `INSERT ... ON CONFLICT (key) DO NOTHING`, or an upsert that
 *   keeps the higher `version`; a redelivered batch finds its rows and skips them.
 * - `exactly-once`: the rows and the next offset of each partition go into one transaction, the offsets
 *   into a Kafkit table (`kafkit_offsets("group", topic, partition, next_offset)`). The offset rows are
 *   locked first; records below the stored offset were stored already (a redelivery, or a zombie
 *   worker that lost the partition) and are skipped. On assignment the runner resumes from
 *   `loadOffsets`. No unique key is needed.
 * - the bulk path: the batch as one script in one round trip (an exactly-once offsets guard, then
 *   `COPY` straight into the table; after a unique violation, through a staging table and
 *   `INSERT ... SELECT ... ON CONFLICT`); taken from `copyMinRows` rows on (`bulk: 'auto'`).
 */
import type { Pool } from 'pg'
import type { SinkRecord, SinkWriteContext, SinkWriteResult, SinkWriter, StoredOffset } from '../sink/types.ts'
import { SinkWriteError } from '../sink/errors.ts'
import { isKafkitError } from '../errors/kafkit-error.ts'
import { postgresWriterOptions, type PostgresWriterConfig, type PostgresWriterOptions } from './options.ts'
import { pgPoolDatabase, type SqlDatabase, type SqlSession } from './sql-database.ts'
import { copyChunks, quoteIdent, quoteQualified, toSqlText } from './sql-text.ts'

export interface PostgresWriterInit extends PostgresWriterOptions {
  /** A `pg` Pool (borrowed: not ended by `close()`) or a SqlDatabase adapter (e.g. `pgliteDatabase`). */
  database: Pool | SqlDatabase
}

// SQLSTATE classes and codes that mean "the database is unavailable or busy", not "the data is bad":
// 08 connection exception, 53 insufficient resources, 57P01-57P05 shutdown / cannot connect now,
// 40001 serialization failure, 40P01 deadlock, 55P03 lock not available, 57014 statement cancelled.
const transientSqlState = /^(08|53|57P0|40001|40P01|55P03|57014|58)/
const transientNetworkCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED'
])
const transientMessages = [
  /connection terminated/i,
  /connection error/i,
  /timeout exceeded when trying to connect/i,
  /the database system is (starting up|shutting down|in recovery mode)/i,
  /not queryable/i,
  /Connection refused/i
]

/** True when a `pg` (or PGlite, or network) error means the database is unavailable rather than the rows bad. */
export function isTransientPostgresError(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    if (isKafkitError(current) && current.code === 'KAFKIT_SINK_WRITE_FAILED') return current.retryable
    const { code, message } = current as { code?: unknown; message?: unknown }
    if (typeof code === 'string' && (transientNetworkCodes.has(code) || transientSqlState.test(code))) return true
    if (typeof message === 'string' && transientMessages.some(pattern => pattern.test(message))) return true
    if (current instanceof AggregateError && current.errors.some(e => isTransientPostgresError(e))) return true
    current = (current as { cause?: unknown }).cause
  }
  return false
}

function isPool(value: Pool | SqlDatabase): value is Pool {
  return typeof (value as Pool).connect === 'function' && typeof (value as SqlDatabase).withSession !== 'function'
}

interface PartitionSpan {
  topic: string
  partition: number
  first: bigint
  next: bigint
}

/** SQLSTATE the exactly-once guard raises when a partition's stored offset is past the batch. */
const OFFSETS_MOVED = 'KF001'
/** Batches merged through the staging table after a straight COPY met a stored row. */
const MERGE_AFTER_CONFLICT = 16

/** The rows of a batch (records that map to no row left out). */
function rowsOf<Row>(records: readonly SinkRecord<Row>[]): Row[] {
  const rows: Row[] = []
  for (const record of records) if (record.row !== null) rows.push(record.row)
  return rows
}

/** A string literal whatever `standard_conforming_strings` says (E'...': quotes and backslashes escaped). */
function escapedLiteral(value: string): string {
  return `E'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`
}

/** The offset span of each partition in `records`, sorted by topic and partition (the lock order). */
function spansOf(records: readonly SinkRecord<unknown>[]): { spans: PartitionSpan[]; ordered: boolean } {
  const spans = new Map<string, PartitionSpan>()
  let ordered = true
  for (const record of records) {
    const id = `${record.partition}:${record.topic}`
    const span = spans.get(id)
    if (!span) {
      spans.set(id, {
        topic: record.topic,
        partition: record.partition,
        first: record.offset,
        next: record.offset + 1n
      })
    } else {
      if (record.offset < span.next) ordered = false
      if (record.offset < span.first) span.first = record.offset
      if (record.offset + 1n > span.next) span.next = record.offset + 1n
    }
  }
  const list = [...spans.values()].sort((a, b) =>
    a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1
  )
  return { spans: list, ordered }
}

export class PostgresWriter<Row extends Record<string, unknown> = Record<string, unknown>> implements SinkWriter<Row> {
  readonly config: Readonly<PostgresWriterConfig>
  readonly #db: SqlDatabase
  readonly #table: string
  readonly #columns: string
  readonly #offsets: string
  #offsetsReady: Promise<void> | undefined
  #closed = false
  /** Batches still to merge through the staging table (after a straight COPY met a stored row). */
  #mergeFor = 0

  constructor(init: PostgresWriterInit) {
    const { database, ...options } = init
    this.config = postgresWriterOptions.resolve(options)
    this.#db = isPool(database) ? pgPoolDatabase(database) : database
    this.#table = quoteQualified(this.config.table)
    this.#columns = this.config.columns.map(quoteIdent).join(', ')
    this.#offsets = quoteQualified(this.config.offsetsTable)
  }

  /** A sink on its own pool for `connectionString` (ended by `close()`). Needs the `pg` package. */
  static async connect<Row extends Record<string, unknown>>(
    connectionString: string,
    options: PostgresWriterOptions & { poolSize?: number }
  ): Promise<PostgresWriter<Row>> {
    const { default: pg } = await import('pg')
    const { poolSize, ...rest } = options
    const pool = new pg.Pool({ connectionString, max: poolSize ?? 4, connectionTimeoutMillis: 5_000 })
    // An idle client whose server went away emits 'error' on the pool; the next checkout reconnects.
    pool.on('error', () => undefined)
    return new PostgresWriter<Row>({ ...rest, database: pgPoolDatabase(pool, { owned: true }) })
  }

  get name(): string {
    return `postgres:${this.config.table}`
  }

  get storesOffsets(): boolean {
    return this.config.delivery === 'exactly-once'
  }

  isTransient(error: unknown): boolean {
    return isTransientPostgresError(error)
  }

  /** Creates the offsets table when missing (done on first use by `exactly-once` sinks). */
  ensureOffsetsTable(signal?: AbortSignal): Promise<void> {
    this.#offsetsReady ??= this.#db
      .withSession(async session => {
        try {
          await session.query(
            `CREATE TABLE IF NOT EXISTS ${this.#offsets} ("group" text NOT NULL, topic text NOT NULL, partition integer NOT NULL, next_offset bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY ("group", topic, partition))`
          )
        } catch (error) {
          // Two workers creating it at once: the loser fails on the catalog (23505 unique_violation on
          // pg_type, 42710 duplicate_object for the table's row type, or 42P07 duplicate_table); the
          // table exists either way.
          if (!['23505', '42710', '42P07'].includes((error as { code?: string }).code ?? '')) throw error
        }
      }, signal)
      .catch((error: unknown) => {
        this.#offsetsReady = undefined
        throw this.#wrap(error, 'creating the offsets table')
      })
    return this.#offsetsReady
  }

  /** The next offsets stored for `groupId` on `topics`; the runner seeks assigned partitions there. */
  async loadOffsets(groupId: string, topics: readonly string[], signal?: AbortSignal): Promise<StoredOffset[]> {
    await this.ensureOffsetsTable(signal)
    try {
      return await this.#db.withSession(async session => {
        const result = await session.query<{ topic: string; partition: number; next_offset: string }>(
          `SELECT topic, partition, next_offset::text AS next_offset FROM ${this.#offsets} WHERE "group" = $1 AND topic = ANY($2::text[]) ORDER BY topic, partition`,
          [groupId, [...topics]]
        )
        return result.rows.map(row => ({
          topic: row.topic,
          partition: Number(row.partition),
          nextOffset: BigInt(row.next_offset)
        }))
      }, signal)
    } catch (error) {
      throw this.#wrap(error, 'loading stored offsets')
    }
  }

  async write(records: readonly SinkRecord<Row>[], context: SinkWriteContext): Promise<SinkWriteResult> {
    if (this.#closed) throw new SinkWriteError(`${this.name} is closed`)
    if (records.length === 0) return { written: 0, skipped: 0, path: 'none' }
    const rows = rowsOf(records)
    // Without stored offsets a batch of records that map to no row stores nothing.
    if (rows.length === 0 && !this.storesOffsets) return { written: 0, skipped: 0, path: 'none' }
    if (this.storesOffsets) await this.ensureOffsetsTable(context.signal)
    try {
      return await this.#db.withSession(async session => {
        if (this.#takesCopy(session, rows.length)) {
          const done = await this.#copyScript(session, records, rows, context)
          if (done) return done
        }
        await session.query('BEGIN')
        let result: SinkWriteResult
        if (this.storesOffsets) {
          result = await this.#writeWithOffsets(session, records, context)
        } else {
          result = await this.#insertRows(session, rows, context.signal)
        }
        await session.query('COMMIT')
        return result
      }, context.signal)
    } catch (error) {
      throw this.#wrap(error, `writing ${records.length} record(s)`)
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#db.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  async #writeWithOffsets(
    session: SqlSession,
    records: readonly SinkRecord<Row>[],
    context: SinkWriteContext
  ): Promise<SinkWriteResult> {
    const list = spansOf(records).spans
    // Insert-or-lock every partition's offset row. A new row starts at the batch's first offset; an
    // existing one is locked (the no-op update) and returned as stored, so a concurrent writer of the
    // same partition waits here and then sees what this transaction stored.
    const locked = await session.query<{ topic: string; partition: number; next_offset: string }>(
      `INSERT INTO ${this.#offsets} AS o ("group", topic, partition, next_offset)
       SELECT $1, t, p, f FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(t, p, f)
       ON CONFLICT ("group", topic, partition) DO UPDATE SET next_offset = o.next_offset
       RETURNING topic, partition, next_offset::text AS next_offset`,
      [context.groupId, list.map(s => s.topic), list.map(s => s.partition), list.map(s => s.first.toString())]
    )
    const stored = new Map(locked.rows.map(row => [`${Number(row.partition)}:${row.topic}`, BigInt(row.next_offset)]))
    const rows: Row[] = []
    let already = 0
    for (const record of records) {
      const id = `${record.partition}:${record.topic}`
      const from = stored.get(id) ?? 0n
      if (record.offset < from) {
        if (record.row !== null) already++
        continue
      }
      // A record offered twice in one batch (a consumer that fetched a range again) counts once.
      stored.set(id, record.offset + 1n)
      if (record.row !== null) rows.push(record.row)
    }
    const result = await this.#insertRows(session, rows, context.signal)
    const lockedBefore = new Map(
      locked.rows.map(row => [`${Number(row.partition)}:${row.topic}`, BigInt(row.next_offset)])
    )
    const advance = list.filter(span => span.next > (lockedBefore.get(`${span.partition}:${span.topic}`) ?? 0n))
    if (advance.length > 0) {
      await session.query(
        `UPDATE ${this.#offsets} AS o SET next_offset = u.n, updated_at = now()
         FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(t, p, n)
         WHERE o."group" = $1 AND o.topic = u.t AND o.partition = u.p AND o.next_offset < u.n`,
        [context.groupId, advance.map(s => s.topic), advance.map(s => s.partition), advance.map(s => s.next.toString())]
      )
    }
    return { ...result, skipped: result.skipped + already }
  }

  #takesCopy(session: SqlSession, rows: number): boolean {
    const { bulk, copyMinRows } = this.config
    return session.copyFrom !== undefined && (bulk === 'copy' || (bulk === 'auto' && rows >= copyMinRows))
  }

  /**
   * The fast COPY path: the whole batch as one script, sent in one round trip and run as one implicit
   * transaction. Exactly-once prefixes it with a guard that advances each partition's stored offset
   * only if it is not past the batch (else KF001 and nothing is stored). With a key, the rows are first
   * copied straight into the table (the common case: none of them is stored yet); a unique violation
   * rolls that back and the batch goes through the staging table and ON CONFLICT instead, as do the
   * next batches for a while. Resolves undefined when the careful path must decide: the stored offsets
   * moved (a redelivery, or another writer of the partition), or records are not in offset order.
   */
  async #copyScript(
    session: SqlSession,
    records: readonly SinkRecord<Row>[],
    input: readonly Row[],
    context: SinkWriteContext
  ): Promise<SinkWriteResult | undefined> {
    const copyFrom = session.copyFrom
    if (!copyFrom) return undefined
    const statements: string[] = []
    if (this.storesOffsets) {
      const { spans, ordered } = spansOf(records)
      const guard = ordered ? this.#offsetsGuard(context.groupId, spans) : undefined
      if (guard === undefined) return undefined
      statements.push(guard)
    }
    const rows = this.config.version === undefined ? input : this.#latestPerKey(input)
    const { columns, key } = this.config
    const direct = key === undefined || this.#mergeFor === 0
    const script = [...statements, ...(direct ? [`COPY ${this.#table} (${this.#columns}) FROM STDIN`] : this.#merge())]
    try {
      const written =
        rows.length === 0
          ? await this.#runScript(session, statements)
          : await copyFrom(script.join('; '), copyChunks(rows, columns), context.signal)
      if (!direct) {
        // Staged: keep merging while batches still meet stored rows; try straight COPY again after that.
        this.#mergeFor = written < rows.length ? MERGE_AFTER_CONFLICT : this.#mergeFor - 1
      }
      return { written, skipped: input.length - written, path: 'copy' }
    } catch (error) {
      const code = (error as { code?: unknown }).code
      if (code === OFFSETS_MOVED) return undefined
      if (code === '23505' && direct && key !== undefined) {
        this.#mergeFor = MERGE_AFTER_CONFLICT
        return this.#copyScript(session, records, input, context)
      }
      throw error
    }
  }

  /** Runs statements without a COPY (exactly-once offsets of a batch without rows) in one round trip. */
  async #runScript(session: SqlSession, statements: readonly string[]): Promise<number> {
    if (statements.length > 0) await session.query(statements.join('; '))
    return 0
  }

  /** The staging statements: COPY into a per-connection temporary table, then one INSERT ... SELECT. */
  #merge(): string[] {
    const stage = quoteIdent(`kafkit_stage_${this.config.table.replaceAll('.', '_')}`.slice(0, 63))
    return [
      `CREATE TEMP TABLE IF NOT EXISTS ${stage} (LIKE ${this.#table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`,
      `COPY ${stage} (${this.#columns}) FROM STDIN`,
      `INSERT INTO ${this.#table} AS target (${this.#columns}) SELECT ${this.#columns} FROM ${stage}${this.#conflictClause('target')}`
    ]
  }

  /**
   * A DO block that advances the stored offset of every span in partition order, and fails with
   * KF001 when one is stored past the span's first offset (those records were stored already). The
   * offset rows are locked by the upsert, so a concurrent writer of the same partition waits here.
   */
  #offsetsGuard(groupId: string, spans: readonly PartitionSpan[]): string | undefined {
    const group = escapedLiteral(groupId)
    const body = spans
      .map(
        span =>
          `INSERT INTO ${this.#offsets} AS o ("group", topic, partition, next_offset) VALUES (${group}, ${escapedLiteral(span.topic)}, ${span.partition}, ${span.next}) ON CONFLICT ("group", topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now() WHERE o.next_offset <= ${span.first}; IF NOT FOUND THEN RAISE EXCEPTION 'kafkit: stored offsets moved' USING ERRCODE = '${OFFSETS_MOVED}'; END IF;`
      )
      .join(' ')
    // The body is dollar-quoted: a name that contains the quote falls back to the careful path.
    if (body.includes('$kafkit$')) return undefined
    return `DO $kafkit$BEGIN ${body} END$kafkit$`
  }

  /** Inserts rows inside the open transaction; returns stored vs. skipped (conflicts). */
  async #insertRows(session: SqlSession, input: readonly Row[], signal?: AbortSignal): Promise<SinkWriteResult> {
    if (input.length === 0) return { written: 0, skipped: 0, path: 'none' }
    // An upsert may touch a key once per statement: keep the latest row of each key.
    const rows = this.config.version === undefined ? input : this.#latestPerKey(input)
    const { bulk, copyMinRows } = this.config
    const useCopy =
      session.copyFrom !== undefined && (bulk === 'copy' || (bulk === 'auto' && rows.length >= copyMinRows))
    const written = useCopy
      ? await this.#copyRows(session, rows, signal)
      : await this.#insertStatements(session, rows, signal)
    return { written, skipped: input.length - written, path: useCopy ? 'copy' : 'insert' }
  }

  #conflictClause(target: string): string {
    const { key, version, columns } = this.config
    if (key === undefined) return ''
    const keyList = key.map(quoteIdent).join(', ')
    if (version === undefined) return ` ON CONFLICT (${keyList}) DO NOTHING`
    const updates = columns
      .filter(column => !key.includes(column))
      .map(column => `${quoteIdent(column)} = EXCLUDED.${quoteIdent(column)}`)
      .join(', ')
    return ` ON CONFLICT (${keyList}) DO UPDATE SET ${updates} WHERE ${target}.${quoteIdent(version)} < EXCLUDED.${quoteIdent(version)}`
  }

  async #insertStatements(session: SqlSession, rows: readonly Row[], signal?: AbortSignal): Promise<number> {
    const { columns, maxParameters } = this.config
    const perStatement = Math.max(1, Math.floor(maxParameters / columns.length))
    const conflict = this.#conflictClause(this.#table)
    let written = 0
    for (let start = 0; start < rows.length; start += perStatement) {
      signal?.throwIfAborted()
      const chunk = rows.slice(start, start + perStatement)
      const values: unknown[] = []
      const tuples: string[] = []
      for (const row of chunk) {
        const placeholders: string[] = []
        for (const column of columns) {
          values.push(toSqlText(row[column]))
          placeholders.push(`$${values.length}`)
        }
        tuples.push(`(${placeholders.join(', ')})`)
      }
      const result = await session.query(
        `INSERT INTO ${this.#table} (${this.#columns}) VALUES ${tuples.join(', ')}${conflict}`,
        values
      )
      written += result.rowCount
    }
    return written
  }

  async #copyRows(session: SqlSession, rows: readonly Row[], signal?: AbortSignal): Promise<number> {
    const copyFrom = session.copyFrom
    if (!copyFrom) throw new SinkWriteError('this database adapter has no COPY')
    const { columns, key } = this.config
    if (key === undefined) {
      // Nothing to merge on: COPY straight into the table (still inside the batch's transaction).
      return copyFrom(`COPY ${this.#table} (${this.#columns}) FROM STDIN`, copyChunks(rows, columns), signal)
    }
    // A per-connection temporary table, emptied at every commit, so it is created once per connection.
    const stage = quoteIdent(`kafkit_stage_${this.config.table.replaceAll('.', '_')}`.slice(0, 63))
    await session.query(
      `CREATE TEMP TABLE IF NOT EXISTS ${stage} (LIKE ${this.#table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`
    )
    await copyFrom(`COPY ${stage} (${this.#columns}) FROM STDIN`, copyChunks(rows, columns), signal)
    const result = await session.query(
      `INSERT INTO ${this.#table} AS target (${this.#columns}) SELECT ${this.#columns} FROM ${stage}${this.#conflictClause('target')}`
    )
    return result.rowCount
  }

  /** Keeps one row per key, the one with the highest version (the later one on a tie). */
  #latestPerKey(rows: readonly Row[]): Row[] {
    const { key = [], version } = this.config
    if (version === undefined) return [...rows]
    const latest = new Map<string, Row>()
    for (const row of rows) {
      const id = JSON.stringify(key.map(column => toSqlText(row[column])?.toString()))
      const current = latest.get(id)
      if (current === undefined || compareVersions(row[version], current[version]) >= 0) latest.set(id, row)
    }
    return [...latest.values()]
  }

  #wrap(error: unknown, doing: string): SinkWriteError {
    if (isKafkitError(error) && error.code === 'KAFKIT_SINK_WRITE_FAILED') return error
    const { code, message } = error as { code?: unknown; message?: unknown }
    const sqlState = typeof code === 'string' ? code : undefined
    return new SinkWriteError(
      `${this.name}: ${doing} failed: ${typeof message === 'string' ? message : String(error)}`,
      {
        cause: error,
        retryable: isTransientPostgresError(error),
        details: { table: this.config.table, ...(sqlState ? { code: sqlState } : {}) }
      }
    )
  }
}

function compareVersions(a: unknown, b: unknown): number {
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime()
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) {
    return a > b ? 1 : a < b ? -1 : 0
  }
  const left = String(toSqlText(a))
  const right = String(toSqlText(b))
  return left > right ? 1 : left < right ? -1 : 0
}
