/**
 * `PostgresSink`: the database writer of the Postgres sink. One `write` is one transaction, so a batch
 * is stored whole or not at all, and the runner commits Kafka offsets only after it resolved.
 *
 * - `idempotent` (seed 000's pattern 5): `INSERT ... ON CONFLICT (key) DO NOTHING`, or an upsert that
 *   keeps the higher `version`; a redelivered batch finds its rows and skips them.
 * - `exactly-once`: the rows and the next offset of each partition go into one transaction, the offsets
 *   into a Kafkit table (`kafkit_offsets("group", topic, partition, next_offset)`). The offset rows are
 *   locked first; records below the stored offset were stored already (a redelivery, or a zombie
 *   worker that lost the partition) and are skipped. On assignment the runner resumes from
 *   `loadOffsets`. No unique key is needed.
 * - the bulk path: `COPY` into a temporary staging table, then one `INSERT ... SELECT ... ON CONFLICT`;
 *   taken from `copyMinRows` rows on (`bulk: 'auto'`), where bench/sink measured it faster.
 */
import type { Pool } from 'pg'
import type { SinkRecord, SinkWriteContext, SinkWriteResult, SinkWriter, StoredOffset } from '../sink/types.ts'
import { SinkWriteError } from '../sink/errors.ts'
import { isKafkitError } from '../errors/kafkit-error.ts'
import { postgresSinkOptions, type PostgresSinkConfig, type PostgresSinkOptions } from './options.ts'
import { pgPoolDatabase, type SqlDatabase, type SqlSession } from './sql-database.ts'
import { copyLine, quoteIdent, quoteQualified, toSqlText } from './sql-text.ts'

export interface PostgresSinkInit extends PostgresSinkOptions {
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

export class PostgresSink<Row extends Record<string, unknown> = Record<string, unknown>> implements SinkWriter<Row> {
  readonly config: Readonly<PostgresSinkConfig>
  readonly #db: SqlDatabase
  readonly #table: string
  readonly #columns: string
  readonly #offsets: string
  #offsetsReady: Promise<void> | undefined
  #closed = false

  constructor(init: PostgresSinkInit) {
    const { database, ...options } = init
    this.config = postgresSinkOptions.resolve(options)
    this.#db = isPool(database) ? pgPoolDatabase(database) : database
    this.#table = quoteQualified(this.config.table)
    this.#columns = this.config.columns.map(quoteIdent).join(', ')
    this.#offsets = quoteQualified(this.config.offsetsTable)
  }

  /** A sink on its own pool for `connectionString` (ended by `close()`). Needs the `pg` package. */
  static async connect<Row extends Record<string, unknown>>(
    connectionString: string,
    options: PostgresSinkOptions & { poolSize?: number }
  ): Promise<PostgresSink<Row>> {
    const { default: pg } = await import('pg')
    const { poolSize, ...rest } = options
    const pool = new pg.Pool({ connectionString, max: poolSize ?? 4, connectionTimeoutMillis: 5_000 })
    // An idle client whose server went away emits 'error' on the pool; the next checkout reconnects.
    pool.on('error', () => undefined)
    return new PostgresSink<Row>({ ...rest, database: pgPoolDatabase(pool, { owned: true }) })
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
    if (this.storesOffsets) await this.ensureOffsetsTable(context.signal)
    try {
      return await this.#db.withSession(async session => {
        await session.query('BEGIN')
        let result: SinkWriteResult
        if (this.storesOffsets) {
          result = await this.#writeWithOffsets(session, records, context)
        } else {
          const rows = records.flatMap(record => (record.row === null ? [] : [record.row]))
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
    const spans = new Map<string, PartitionSpan>()
    for (const record of records) {
      const id = `${record.partition}:${record.topic}`
      const span = spans.get(id)
      if (!span)
        spans.set(id, {
          topic: record.topic,
          partition: record.partition,
          first: record.offset,
          next: record.offset + 1n
        })
      else {
        if (record.offset < span.first) span.first = record.offset
        if (record.offset + 1n > span.next) span.next = record.offset + 1n
      }
    }
    const list = [...spans.values()]
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
    const lines = function* () {
      for (const row of rows) yield copyLine(row, columns)
    }
    if (key === undefined) {
      // Nothing to merge on: COPY straight into the table (still inside the batch's transaction).
      return copyFrom(`COPY ${this.#table} (${this.#columns}) FROM STDIN`, lines(), signal)
    }
    // A per-connection temporary table, emptied at every commit, so it is created once per connection.
    const stage = quoteIdent(`kafkit_stage_${this.config.table.replaceAll('.', '_')}`.slice(0, 63))
    await session.query(
      `CREATE TEMP TABLE IF NOT EXISTS ${stage} (LIKE ${this.#table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`
    )
    await copyFrom(`COPY ${stage} (${this.#columns}) FROM STDIN`, lines(), signal)
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
