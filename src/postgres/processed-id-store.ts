/**
 * `PostgresProcessedIdStore`: the idempotent consumer's processed ids in a PostgreSQL table, shared by
 * every worker on the database. One row per (scope, id): `claimed` until its lease expires, then
 * `processed` for the store's `ttl`. A claim is one statement (`INSERT ... ON CONFLICT DO UPDATE ...
 * WHERE` the row has expired), so of many workers claiming the same id exactly one wins; times are the
 * database's clock, so workers' clocks do not matter. Expired rows are claimable at once and deleted by
 * `purgeExpired()` (run it now and then).
 *
 * An unreachable or failing database fails as a transient `KAFKIT_STORE_UNAVAILABLE`, so the message is
 * retried and its handler does not run unclaimed; a missing table (or one of another shape) fails with
 * the same code, not retryable, saying what to do. The pool is borrowed: `close()` does not end it.
 */
import type { Pool } from 'pg'
import { z } from 'zod'
import { defineOptions } from '../config/define-options.ts'
import { duration } from '../config/duration.ts'
import { ConfigError, isKafkitError, KafkitError } from '../errors/kafkit-error.ts'
import { TransientError } from '../handling/errors.ts'
import type { ClaimResult, ProcessedIdStore } from '../handling/processed-id-store.ts'
import { quoteIdent, quoteQualified } from './sql-text.ts'

const COMPONENT = 'postgres processed-id store'
const SEVEN_DAYS_MS = 7 * 24 * 60 * 60 * 1000

export const postgresProcessedIdStoreOptions = defineOptions({
  component: COMPONENT,
  schema: z.strictObject({
    table: z
      .string()
      .regex(/^[^.]{1,63}(\.[^.]{1,63})?$/, 'table or schema.table')
      .default('kafkit_processed_ids')
      .describe('The table of processed ids, optionally schema-qualified (`ops.processed_ids`); see `createTable()`.'),
    ttl: duration(1)
      .default(SEVEN_DAYS_MS)
      .describe(
        'How long a processed id is remembered (default 7 days): a redelivery within it is skipped, after it the id is claimable again. Keep it longer than a message can take to come back (retention, replays).'
      )
  })
})

export type PostgresProcessedIdStoreOptions = z.input<typeof postgresProcessedIdStoreOptions.schema>
export type PostgresProcessedIdStoreConfig = z.output<typeof postgresProcessedIdStoreOptions.schema>

export interface PostgresProcessedIdStoreInit extends PostgresProcessedIdStoreOptions {
  /** A `pg` Pool, borrowed: `close()` leaves it open. Give it a `connectionTimeoutMillis`. */
  pool: Pool
}

/** Rows deleted per statement by `purgeExpired()`, so a large purge never holds many locks at once. */
const PURGE_BATCH = 10_000
/** Claims tried again when the row seen by a lost claim was gone (released, expired) by the next read. */
const CLAIM_ATTEMPTS = 3

/** The lease in whole milliseconds; a lease that is not a positive number is a programming error. */
function leaseOf(leaseMs: number): number {
  if (!Number.isFinite(leaseMs) || leaseMs <= 0) {
    throw new ConfigError(`processed-id store lease: got ${leaseMs}, expected a positive number of milliseconds`)
  }
  return Math.max(1, Math.ceil(leaseMs))
}

function reasonOf(error: unknown): string {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown }
  const text = typeof message === 'string' && message !== '' ? message : String(error)
  return typeof code === 'string' && !text.includes(code) ? `${text} (${code})` : text
}

/** A failure of the store as a KafkitError: transient unless the table is missing or does not fit. */
function storeError(error: unknown, operation: string, table: string, details: Record<string, unknown>): KafkitError {
  if (isKafkitError(error)) return error
  const code = (error as { code?: unknown } | null)?.code
  const sqlState = typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
  const all = { operation, table, ...details, ...(sqlState ? { sqlState } : {}) }
  if (sqlState === '42P01' || sqlState === '3F000') {
    return new KafkitError(
      'KAFKIT_STORE_UNAVAILABLE',
      `${COMPONENT}: table ${table} does not exist; call createTable() once before consuming (it is idempotent)`,
      { cause: error, retryable: false, details: all }
    )
  }
  if (sqlState?.startsWith('42')) {
    return new KafkitError(
      'KAFKIT_STORE_UNAVAILABLE',
      `${COMPONENT}: ${operation} on ${table} was refused: ${reasonOf(error)}; the table needs the columns createTable() makes (scope, id, state, expires_at) and the user needs privileges on it`,
      { cause: error, retryable: false, details: all }
    )
  }
  return new TransientError(
    `${COMPONENT}: ${operation} failed, the database is unavailable: ${reasonOf(error)}`,
    { cause: error, details: all },
    'KAFKIT_STORE_UNAVAILABLE'
  )
}

/** Two workers creating the table at once: the loser fails on the catalog, and the table exists either way. */
function isConcurrentCreate(error: unknown): boolean {
  return ['23505', '42710', '42P07'].includes((error as { code?: string } | null)?.code ?? '')
}

export class PostgresProcessedIdStore implements ProcessedIdStore, AsyncDisposable {
  readonly config: Readonly<PostgresProcessedIdStoreConfig>
  readonly #pool: Pool
  readonly #table: string
  readonly #sql: { claim: string; state: string; complete: string; release: string; purge: string }
  #closed = false

  constructor(init: PostgresProcessedIdStoreInit) {
    const { pool, ...options } = init
    this.config = postgresProcessedIdStoreOptions.resolve(options)
    if (typeof (pool as Partial<Pool> | undefined)?.query !== 'function') {
      throw new ConfigError(`${COMPONENT}: \`pool\` must be a pg Pool`, {
        details: { component: COMPONENT, key: 'pool' }
      })
    }
    this.#pool = pool
    const t = quoteQualified(this.config.table)
    this.#table = t
    this.#sql = {
      claim: `INSERT INTO ${t} AS p (scope, id, state, expires_at) VALUES ($1, $2, 'claimed', now() + $3::bigint * interval '1 millisecond') ON CONFLICT (scope, id) DO UPDATE SET state = 'claimed', expires_at = excluded.expires_at WHERE p.expires_at <= now() RETURNING 1`,
      state: `SELECT state FROM ${t} WHERE scope = $1 AND id = $2 AND expires_at > now()`,
      complete: `INSERT INTO ${t} (scope, id, state, expires_at) VALUES ($1, $2, 'processed', now() + $3::bigint * interval '1 millisecond') ON CONFLICT (scope, id) DO UPDATE SET state = 'processed', expires_at = excluded.expires_at`,
      release: `DELETE FROM ${t} WHERE scope = $1 AND id = $2 AND state = 'claimed'`,
      purge: `DELETE FROM ${t} WHERE (scope, id) IN (SELECT scope, id FROM ${t} WHERE expires_at <= now() LIMIT $1)`
    }
  }

  /** Creates the table and its index when missing (idempotent, safe for several workers at once). */
  async createTable(): Promise<void> {
    const name = this.config.table.split('.').at(-1) ?? this.config.table
    const statements = [
      `CREATE TABLE IF NOT EXISTS ${this.#table} (scope text NOT NULL, id text NOT NULL, state text NOT NULL CHECK (state IN ('claimed', 'processed')), expires_at timestamptz NOT NULL, PRIMARY KEY (scope, id))`,
      `CREATE INDEX IF NOT EXISTS ${quoteIdent(`${name.slice(0, 48)}_expires_at_idx`)} ON ${this.#table} (expires_at)`
    ]
    for (const statement of statements) {
      try {
        await this.#pool.query(statement)
      } catch (error) {
        if (!isConcurrentCreate(error)) throw storeError(error, 'createTable', this.config.table, {})
      }
    }
  }

  claim(scope: string, id: string, leaseMs: number): Promise<ClaimResult> {
    const lease = leaseOf(leaseMs)
    return this.#run('claim', scope, id, async () => {
      for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
        const won = await this.#pool.query(this.#sql.claim, [scope, id, lease])
        if (won.rows.length > 0) return 'claimed'
        // Held by an unexpired row a moment ago: read what it is now.
        const held = await this.#pool.query<{ state: string }>(this.#sql.state, [scope, id])
        const state = held.rows[0]?.state
        if (state === 'processed') return 'processed'
        if (state === 'claimed') return 'in-progress'
      }
      // Claimed and released over and over by others meanwhile: someone is working on it.
      return 'in-progress'
    })
  }

  complete(scope: string, id: string): Promise<void> {
    return this.#run('complete', scope, id, async () => {
      await this.#pool.query(this.#sql.complete, [scope, id, this.config.ttl])
    })
  }

  release(scope: string, id: string): Promise<void> {
    return this.#run('release', scope, id, async () => {
      await this.#pool.query(this.#sql.release, [scope, id])
    })
  }

  /** Deletes the rows whose lease or TTL has passed (in batches); resolves with how many it deleted. */
  async purgeExpired(): Promise<number> {
    let total = 0
    try {
      for (;;) {
        const result = await this.#pool.query(this.#sql.purge, [PURGE_BATCH])
        const deleted = result.rowCount ?? 0
        total += deleted
        if (deleted < PURGE_BATCH) return total
      }
    } catch (error) {
      throw storeError(error, 'purgeExpired', this.config.table, { deletedBefore: total })
    }
  }

  /** Stops the store; the borrowed pool stays open. Later calls fail as transient. */
  close(): Promise<void> {
    this.#closed = true
    return Promise.resolve()
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  async #run<T>(operation: string, scope: string, id: string, work: () => Promise<T>): Promise<T> {
    if (this.#closed) {
      throw new TransientError(
        `${COMPONENT}: ${operation} after close()`,
        { details: { operation, scope, id } },
        'KAFKIT_STORE_UNAVAILABLE'
      )
    }
    try {
      return await work()
    } catch (error) {
      throw storeError(error, operation, this.config.table, { scope, id })
    }
  }
}
