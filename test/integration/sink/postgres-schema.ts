/**
 * Per-test isolation in the real PostgreSQL: each test gets a pool and a schema of its own (a unique
 * name), dropped with everything in it in `t.after`.
 */
import type { TestContext } from 'node:test'
import pg from 'pg'
import { uniqueName } from '../../../src/testing/topics.ts'
import { databaseUrl } from '../../helpers/env.ts'

export interface TestSchema {
  pool: pg.Pool
  schema: string
  /** `schema.name`, for table options. */
  qualified(name: string): string
  query<R extends pg.QueryResultRow = Record<string, unknown>>(text: string, values?: unknown[]): Promise<R[]>
}

export async function createTestSchema(t: TestContext, options: { poolSize?: number } = {}): Promise<TestSchema> {
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: options.poolSize ?? 4 })
  pool.on('error', () => undefined)
  const schema = uniqueName('sink').replaceAll('-', '_')
  await pool.query(`CREATE SCHEMA "${schema}"`)
  t.after(async () => {
    await pool.query(`DROP SCHEMA "${schema}" CASCADE`).catch(() => undefined)
    await pool.end()
  })
  return {
    pool,
    schema,
    qualified: name => `${schema}.${name}`,
    query: async <R extends pg.QueryResultRow>(text: string, values?: unknown[]) =>
      (await pool.query<R>(text, values)).rows
  }
}

/** Seed 000's logs table in Postgres: `log_id` is the unique key the idempotent sink relies on. */
export function logsTableDdl(table: string, options: { unique?: boolean } = {}): string {
  return `CREATE TABLE ${table} (
    log_id text ${options.unique === false ? '' : 'PRIMARY KEY'},
    ts timestamptz NOT NULL,
    service text NOT NULL,
    level text NOT NULL,
    message text NOT NULL,
    attrs jsonb,
    payload bytea,
    version bigint NOT NULL DEFAULT 0
  )`
}
