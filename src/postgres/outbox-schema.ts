/**
 * The outbox's tables and names: the outbox itself (one row per event, in the writer's transaction),
 * its dead-letter table (rows Kafka refused for good, with the reason), the NOTIFY channel that wakes
 * the relay, and the two advisory-lock namespaces (per aggregate key, for commit order; per table, for
 * the relay's leadership). docs/outbox.md explains how they fit together.
 */
import { createHash } from 'node:crypto'
import type { Pool } from 'pg'
import { ConfigError } from '../errors/kafkit-error.ts'
import { quoteIdent, quoteQualified } from './sql-text.ts'

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/

/** Every name derived from one outbox table name. */
export interface OutboxNames {
  /** As given: `outbox` or `schema.outbox`. */
  table: string
  /** Quoted for SQL. */
  tableSql: string
  deadLettersSql: string
  unpublishedIndexSql: string
  notifyFunctionSql: string
  notifyTriggerSql: string
  /** The LISTEN/NOTIFY channel. */
  channel: string
  /** Namespace text of the per-key transaction locks (hashed in SQL). */
  keyLockSpace: string
  /** Namespace text of the relay's leader lock. */
  leaderLockSpace: string
}

/** Validates the table name (one identifier, optionally schema-qualified) and derives the rest. */
export function outboxNames(table: string, component = 'outbox'): OutboxNames {
  const parts = table.split('.')
  if (parts.length > 2 || !parts.every(part => IDENTIFIER.test(part))) {
    throw new ConfigError(
      `${component} option \`table\`: got ${JSON.stringify(table)}, expected a table name or schema.table of letters, digits and underscores (at most 48 characters each)`,
      { details: { component, key: 'table' } }
    )
  }
  const name = parts.at(-1) as string
  const schema = parts.length === 2 ? `${quoteIdent(parts[0] as string)}.` : ''
  return {
    table,
    tableSql: quoteQualified(table),
    deadLettersSql: `${schema}${quoteIdent(`${name}_dead_letters`)}`,
    unpublishedIndexSql: quoteIdent(`${name}_unpublished`),
    notifyFunctionSql: `${schema}${quoteIdent(`${name}_notify`)}`,
    notifyTriggerSql: quoteIdent(`${name}_notify`),
    // A channel name is at most 63 bytes; a hash keeps long schema-qualified names within it.
    channel: `kafkit_outbox_${createHash('sha256').update(table).digest('hex').slice(0, 16)}`,
    keyLockSpace: `kafkit outbox key ${table}`,
    leaderLockSpace: `kafkit outbox relay ${table}`
  }
}

/** Anything that runs a parameterized statement: a `pg` Client, a PoolClient, a Pool. */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[]; rowCount: number | null }>
}

/**
 * The DDL, idempotent. The statements run in one transaction under an advisory lock, so processes that
 * start together do not race on CREATE OR REPLACE.
 */
export function outboxDdl(names: OutboxNames): string[] {
  const { tableSql, deadLettersSql } = names
  return [
    `CREATE TABLE IF NOT EXISTS ${tableSql} (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      event_id text NOT NULL UNIQUE,
      topic text NOT NULL,
      aggregate_type text,
      aggregate_id text NOT NULL,
      event_type text NOT NULL,
      source text NOT NULL,
      subject text,
      content_type text NOT NULL DEFAULT 'application/json',
      payload jsonb NOT NULL,
      headers jsonb NOT NULL DEFAULT '{}',
      occurred_at timestamptz NOT NULL DEFAULT now(),
      created_at timestamptz NOT NULL DEFAULT now(),
      published_at timestamptz
    )`,
    `CREATE INDEX IF NOT EXISTS ${names.unpublishedIndexSql} ON ${tableSql} (id) WHERE published_at IS NULL`,
    `CREATE TABLE IF NOT EXISTS ${deadLettersSql} (
      LIKE ${tableSql} INCLUDING DEFAULTS,
      reason text NOT NULL,
      error_code text,
      dead_lettered_at timestamptz NOT NULL DEFAULT now()
    )`,
    `CREATE OR REPLACE FUNCTION ${names.notifyFunctionSql}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_notify(${literal(names.channel)}, ''); RETURN NULL; END $$`,
    `CREATE OR REPLACE TRIGGER ${names.notifyTriggerSql} AFTER INSERT ON ${tableSql}
      FOR EACH STATEMENT EXECUTE FUNCTION ${names.notifyFunctionSql}()`
  ]
}

function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`
}

/**
 * Creates the outbox table, its dead-letter table, the index the relay reads by and the NOTIFY trigger
 * (PostgreSQL 14 or newer). Safe to call on every start.
 */
export async function createOutboxTable(db: Pool | Queryable, options: { table?: string } = {}): Promise<void> {
  const names = outboxNames(options.table ?? 'kafkit_outbox')
  // A pool lends one client for the transaction; a client (pg Client, PoolClient) is used as it is.
  const pooled = 'idleCount' in db ? await db.connect() : undefined
  const client: Queryable = pooled ?? db
  let failure: Error | undefined
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`kafkit outbox ddl ${names.table}`])
    for (const statement of outboxDdl(names)) await client.query(statement)
    await client.query('COMMIT')
  } catch (error) {
    failure = error as Error
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  } finally {
    pooled?.release(failure)
  }
}
