/**
 * `ClickHouseWriter`: the database writer of the ClickHouse sink. ClickHouse has no
 * multi-statement transactions, so exactly-once is not offered; the sink is at-least-once with
 * idempotent storage:
 *
 * - each batch is inserted as one block per topic-partition, whose identity is deterministic: the
 *   `insert_deduplication_token` `kafkit:<table>:<topic>:<partition>:<first>-<last>`. Where the server
 *   supports tokens (22.2+, and the table keeps a deduplication window), a retried batch is dropped on
 *   arrival;
 * - whatever still arrives twice (older servers, or a redelivery cut into other batches after a crash)
 *   collapses in a ReplacingMergeTree keyed by the event id; read with `FINAL` (`countFinal`).
 *
 * Rows are sent as JSONEachRow with an explicit column list (an omitted column gets its DEFAULT
 * expression; on old servers JSONEachRow alone would store the type's zero instead). Dates are
 * converted per column type: whole seconds for DateTime, ISO 8601 (best-effort parsing) for DateTime64.
 */
import type { ClickHouseClient } from '@clickhouse/client'
import { isKafkitError } from '../errors/kafkit-error.ts'
import { SinkFeatureUnsupportedError, SinkWriteError } from '../sink/errors.ts'
import type { SinkRecord, SinkWriteContext, SinkWriteResult, SinkWriter } from '../sink/types.ts'
import { detectCapabilities, type ClickHouseCapabilities } from './capabilities.ts'
import { quoteClickHouseIdent, quoteClickHouseName, splitClickHouseName } from './names.ts'
import { clickHouseWriterOptions, type ClickHouseWriterConfig, type ClickHouseWriterOptions } from './options.ts'

export interface ClickHouseWriterInit extends ClickHouseWriterOptions {
  /** A @clickhouse/client client (borrowed: not closed by `close()`). */
  client: ClickHouseClient
}

// Server error codes that mean "busy or unavailable", not "bad data": timeouts, too many queries or
// parts, memory, read-only (replica lost ZooKeeper), network, unknown insert status, cancelled.
const transientCodes = new Set([159, 202, 203, 209, 210, 241, 242, 252, 285, 319, 394, 425, 473, 999])
const transientNetworkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND'])
const transientMessages = [/socket hang up/i, /timeout error/i, /ECONNREFUSED/, /ECONNRESET/, /other side closed/i]

/** The ClickHouse error code of an error (the client parses new-style messages; 18.x ones are parsed here). */
export function clickHouseErrorCode(error: unknown): number | undefined {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown }
  if (typeof code === 'string' && /^\d+$/.test(code)) return Number(code)
  const match = typeof message === 'string' ? /Code: (\d+)/.exec(message) : null
  return match ? Number(match[1]) : undefined
}

/** True when a ClickHouse (or network) error means the server is unavailable or busy rather than the rows bad. */
export function isTransientClickHouseError(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    if (isKafkitError(current) && current.code === 'KAFKIT_SINK_WRITE_FAILED') return current.retryable
    const serverCode = clickHouseErrorCode(current)
    if (serverCode !== undefined) return transientCodes.has(serverCode)
    const { code, message, name } = current as { code?: unknown; message?: unknown; name?: unknown }
    if (typeof code === 'string' && transientNetworkCodes.has(code)) return true
    if (name === 'AbortError' || name === 'TimeoutError') return true
    if (typeof message === 'string' && transientMessages.some(pattern => pattern.test(message))) return true
    current = (current as { cause?: unknown }).cause
  }
  return false
}

function pad(value: number, width = 2): string {
  return String(value).padStart(width, '0')
}

export class ClickHouseWriter<
  Row extends Record<string, unknown> = Record<string, unknown>
> implements SinkWriter<Row> {
  readonly config: Readonly<ClickHouseWriterConfig>
  readonly storesOffsets = false
  readonly #client: ClickHouseClient
  readonly #owned: boolean
  #ready: Promise<{ capabilities: ClickHouseCapabilities; columns: Map<string, string>; token: boolean }> | undefined
  #closed = false

  constructor(init: ClickHouseWriterInit & { ownsClient?: boolean }) {
    const { client, ownsClient, ...options } = init
    this.config = clickHouseWriterOptions.resolve(options)
    this.#client = client
    this.#owned = ownsClient ?? false
  }

  /** A sink on its own client for `url` (closed by `close()`). Needs the `@clickhouse/client` package. */
  static async connect<Row extends Record<string, unknown>>(
    url: string,
    options: ClickHouseWriterOptions
  ): Promise<ClickHouseWriter<Row>> {
    const { createClient, ClickHouseLogLevel } = await import('@clickhouse/client')
    // The client logs every failed request at ERROR itself; the sink reports failures through its runner.
    const client = createClient({ url, log: { level: ClickHouseLogLevel.OFF } })
    return new ClickHouseWriter<Row>({ ...options, client, ownsClient: true })
  }

  get name(): string {
    return `clickhouse:${this.config.table}`
  }

  /** The server's capabilities (detected on first use). */
  async capabilities(signal?: AbortSignal): Promise<ClickHouseCapabilities> {
    return (await this.#prepare(signal)).capabilities
  }

  isTransient(error: unknown): boolean {
    return isTransientClickHouseError(error)
  }

  /** The deterministic identity of one partition's slice of a batch (its insert_deduplication_token). */
  blockToken(topic: string, partition: number, first: bigint, last: bigint): string {
    return `kafkit:${this.config.table}:${topic}:${partition}:${first}-${last}`
  }

  async write(records: readonly SinkRecord<Row>[], context: SinkWriteContext): Promise<SinkWriteResult> {
    if (this.#closed) throw new SinkWriteError(`${this.name} is closed`)
    try {
      const { columns, token } = await this.#prepare(context.signal)
      // One block per topic-partition, in offset order: its offset range is its identity.
      const blocks = new Map<string, SinkRecord<Row>[]>()
      for (const record of records) {
        const id = `${record.partition}:${record.topic}`
        const block = blocks.get(id)
        if (block) block.push(record)
        else blocks.set(id, [record])
      }
      let written = 0
      for (const block of blocks.values()) {
        const rows = block.flatMap(record => (record.row === null ? [] : [this.#encode(record.row, columns)]))
        if (rows.length === 0) continue
        const first = block[0] as SinkRecord<Row>
        const last = block.at(-1) as SinkRecord<Row>
        const names = [...new Set(rows.flatMap(row => Object.keys(row)))]
        const signal = AbortSignal.any([
          AbortSignal.timeout(this.config.insertTimeoutMs),
          ...(context.signal ? [context.signal] : [])
        ])
        await this.#client.insert({
          table: quoteClickHouseName(this.config.table),
          values: rows,
          format: 'JSONEachRow',
          columns: names.map(quoteClickHouseIdent) as [string, ...string[]],
          abort_signal: signal,
          clickhouse_settings: {
            ...(token
              ? { insert_deduplication_token: this.blockToken(first.topic, first.partition, first.offset, last.offset) }
              : {}),
            ...(names.some(name => columns.get(name)?.startsWith('DateTime64'))
              ? { date_time_input_format: 'best_effort' }
              : {})
          }
        })
        written += rows.length
      }
      return { written, skipped: 0, path: token ? 'insert+token' : 'insert' }
    } catch (error) {
      throw this.#wrap(error, `inserting ${records.length} record(s)`)
    }
  }

  /** Row counts for reconciliation: `rows` and `distinct` read with FINAL, `stored` without (duplicates not yet merged). */
  async countFinal(
    idColumn: string,
    signal?: AbortSignal
  ): Promise<{ rows: number; distinct: number; stored: number }> {
    const table = quoteClickHouseName(this.config.table)
    const id = quoteClickHouseIdent(idColumn)
    const result = await this.#client.query({
      query: `SELECT (SELECT count() FROM ${table} FINAL) AS rows, (SELECT uniqExact(${id}) FROM ${table} FINAL) AS distinct, (SELECT count() FROM ${table}) AS stored`,
      format: 'JSONEachRow',
      ...(signal ? { abort_signal: signal } : {})
    })
    const [row] = await result.json<{ rows: string; distinct: string; stored: string }>()
    return { rows: Number(row?.rows ?? 0), distinct: Number(row?.distinct ?? 0), stored: Number(row?.stored ?? 0) }
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#owned) await this.#client.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  #prepare(signal?: AbortSignal) {
    this.#ready ??= (async () => {
      const capabilities = await detectCapabilities(this.#client, signal)
      const { database, table } = splitClickHouseName(this.config.table)
      const result = await this.#client.query({
        query: `SELECT name, type FROM system.columns WHERE database = ${database === undefined ? 'currentDatabase()' : `'${database.replaceAll("'", "\\'")}'`} AND table = '${table.replaceAll("'", "\\'")}'`,
        format: 'JSONEachRow',
        ...(signal ? { abort_signal: signal } : {})
      })
      const columns = new Map((await result.json<{ name: string; type: string }>()).map(row => [row.name, row.type]))
      if (columns.size === 0) throw new SinkWriteError(`${this.name}: table ${this.config.table} does not exist`)
      const { deduplication } = this.config
      if (deduplication === 'token' && !capabilities.insertDeduplicationToken) {
        throw new SinkFeatureUnsupportedError(
          `${this.name}: deduplication "token" needs insert_deduplication_token (ClickHouse 22.2+); the server is ${capabilities.version}. Use deduplication "auto" or "off" and read with FINAL.`,
          { details: { version: capabilities.version } }
        )
      }
      const token = deduplication !== 'off' && capabilities.insertDeduplicationToken
      return { capabilities, columns, token }
    })().catch((error: unknown) => {
      this.#ready = undefined
      throw error
    })
    return this.#ready
  }

  /** A row as JSONEachRow wants it: dates per column type, bigints as strings. */
  #encode(row: Row, columns: Map<string, string>): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    for (const [name, value] of Object.entries(row)) {
      if (value === undefined) continue
      if (value instanceof Date) {
        const type = columns.get(name) ?? ''
        if (type.startsWith('DateTime64')) out[name] = value.toISOString()
        else if (type.startsWith('DateTime')) out[name] = Math.floor(value.getTime() / 1000)
        else if (type.startsWith('Date')) {
          out[name] = `${value.getUTCFullYear()}-${pad(value.getUTCMonth() + 1)}-${pad(value.getUTCDate())}`
        } else out[name] = value.toISOString()
      } else if (typeof value === 'bigint') out[name] = value.toString()
      else if (Buffer.isBuffer(value)) out[name] = value.toString('utf8')
      else out[name] = value
    }
    return out
  }

  #wrap(error: unknown, doing: string): Error {
    if (isKafkitError(error)) return error
    const { message } = error as { message?: unknown }
    const code = clickHouseErrorCode(error)
    return new SinkWriteError(
      `${this.name}: ${doing} failed: ${typeof message === 'string' ? message : String(error)}`,
      {
        cause: error,
        retryable: isTransientClickHouseError(error),
        details: { table: this.config.table, ...(code === undefined ? {} : { clickhouseCode: code }) }
      }
    )
  }
}
