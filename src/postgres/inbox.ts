/**
 * The inbox: exactly-once effects for a handler whose effects live in PostgreSQL. The handler runs in a
 * transaction that first inserts `(scope, event id)` into the inbox table; its own statements use the
 * same transaction (`tx`), and the consumer commits the Kafka offset only after that transaction
 * committed. A redelivery (a crash before the offset commit, a rebalance, a duplicate send) finds the
 * row and skips the handler, so the effects are applied once per event and scope. A second worker
 * that gets the same event at the same time waits on the first one's row and then skips.
 *
 * The handler's error rolls everything back, the inbox row included, and is rethrown for the
 * consumer's error handling (in-place retries, retry tiers, dead-letter topic). A database that is
 * unreachable fails the message as transient (`KAFKIT_STORE_UNAVAILABLE`), so it is retried, never
 * skipped.
 */
import type { Pool, PoolClient } from 'pg'
import { ConfigError } from '../errors/kafkit-error.ts'
import { positionOf, publishHandlerEvent } from '../handling/diagnostics.ts'
import { PermanentError, TransientError } from '../handling/errors.ts'
import type { ConsumedMessage, HandlerContext, MessageHandler } from '../handling/types.ts'
import { isTransientPostgresError } from './postgres-writer.ts'
import { inPoolTransaction } from './pool-transaction.ts'
import { quoteIdent, quoteQualified } from './sql-text.ts'

export interface InboxInit<V = unknown> {
  /** The pool the inbox transactions run on (borrowed: not ended by Kafkit). */
  pool: Pool
  /** The inbox table (`schema.table` allowed). Default `kafkit_inbox`. */
  table?: string
  /** The event's id. Default: the `event-id` header. */
  id?: (message: ConsumedMessage<V>) => string | undefined
  /** The namespace of ids. Default: the consumer group, so each service applies an event once. */
  scope?: (context: HandlerContext) => string
}

/** A handler that runs inside the inbox transaction: `tx` is the client to write its effects with. */
export type InboxHandler<V = unknown> = (
  message: ConsumedMessage<V>,
  tx: PoolClient,
  context: HandlerContext
) => Promise<void>

const TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,48}(\.[A-Za-z_][A-Za-z0-9_]{0,48})?$/

export class Inbox<V = unknown> {
  readonly table: string
  readonly #tableSql: string
  readonly #pool: Pool
  readonly #idOf: (message: ConsumedMessage<V>) => string | undefined
  readonly #scopeOf: (context: HandlerContext) => string

  constructor(init: InboxInit<V>) {
    this.table = init.table ?? 'kafkit_inbox'
    if (!TABLE.test(this.table)) {
      throw new ConfigError(
        `inbox option \`table\`: got ${JSON.stringify(this.table)}, expected a table name or schema.table of letters, digits and underscores (at most 49 characters each)`,
        { details: { component: 'inbox', key: 'table' } }
      )
    }
    this.#tableSql = quoteQualified(this.table)
    this.#pool = init.pool
    this.#idOf = init.id ?? (message => message.meta.eventId)
    this.#scopeOf = init.scope ?? (context => context.groupId)
  }

  /** Creates the inbox table when missing. */
  async createTable(): Promise<void> {
    const index = quoteIdent(`${this.table.split('.').at(-1) ?? this.table}_processed_at`)
    await this.#pool.query(`CREATE TABLE IF NOT EXISTS ${this.#tableSql} (
      scope text NOT NULL,
      event_id text NOT NULL,
      topic text NOT NULL,
      partition integer NOT NULL,
      "offset" bigint NOT NULL,
      processed_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (scope, event_id)
    )`)
    await this.#pool.query(`CREATE INDEX IF NOT EXISTS ${index} ON ${this.#tableSql} (processed_at)`)
  }

  /** Deletes entries older than `ms` (a redelivery older than that would run again); returns how many. */
  async purgeOlderThan(ms: number): Promise<number> {
    const result = await this.#pool.query(
      `DELETE FROM ${this.#tableSql} WHERE processed_at < now() - $1::bigint * interval '1 millisecond'`,
      [ms]
    )
    return result.rowCount ?? 0
  }

  /** Wraps `handle` so it runs at most once per event and scope, in the inbox transaction. */
  handler(handle: InboxHandler<V>): MessageHandler<V> {
    return async (message, context) => {
      const id = this.#idOf(message)
      if (id === undefined || id === '') {
        throw new PermanentError(
          `invalid message: ${message.topic}/${message.partition}@${message.offset} has no event id for the inbox`
        )
      }
      const scope = this.#scopeOf(context)
      let duplicate = false
      await inPoolTransaction(
        this.#pool,
        async tx => {
          const inserted = await this.#database(() =>
            tx.query(
              `INSERT INTO ${this.#tableSql} (scope, event_id, topic, partition, "offset") VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT DO NOTHING`,
              [scope, id, message.topic, message.partition, message.offset.toString()]
            )
          )
          // Applied before: the transaction wrote nothing, and its commit changes nothing.
          duplicate = inserted.rowCount === 0
          if (!duplicate) await handle(message, tx, context)
        },
        statement => this.#database(statement)
      )
      if (duplicate) publishHandlerEvent(() => ({ type: 'duplicate', ...positionOf(message, context.groupId), id }))
    }
  }

  /** Runs one of the inbox's own statements; a lost database becomes a transient, coded failure. */
  async #database<T>(statement: () => Promise<T>): Promise<T> {
    try {
      return await statement()
    } catch (error) {
      if (!isTransientPostgresError(error)) throw error
      throw new TransientError(
        `inbox ${this.table}: the database is unavailable (${(error as Error).message}); the message will be retried`,
        { cause: error },
        'KAFKIT_STORE_UNAVAILABLE'
      )
    }
  }
}
