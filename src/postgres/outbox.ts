/**
 * The transactional outbox: an application writes its own rows and the events they cause in one
 * PostgreSQL transaction; `OutboxRelay` publishes the committed events to Kafka afterwards. Nothing is
 * published from a transaction that rolled back, and nothing committed is lost.
 *
 * `add` first takes a transaction-scoped advisory lock on the event's key, then inserts. Two
 * transactions writing events for the same key therefore commit in the order they took their row ids,
 * so for one key the id order is the commit order, which is what lets the relay publish each key's
 * events in commit order by reading in id order. Keys in one `addMany` are locked in a fixed order.
 */
import type { Pool, PoolClient } from 'pg'
import { ConfigError } from '../errors/kafkit-error.ts'
import { InvalidMessageError } from '../message/builder.ts'
import { newEventId } from '../message/uuid.ts'
import { inPoolTransaction } from './pool-transaction.ts'
import { createOutboxTable, outboxNames, type OutboxNames, type Queryable } from './outbox-schema.ts'

/** One event, CloudEvents-shaped: `id`, `source`, `type`, `time`, `dataContentType`, `data`. */
export interface OutboxEvent<D = unknown> {
  /** The aggregate's id: the Kafka key, so one aggregate's events share a partition and keep their order. */
  key: string
  /** The event type (`todos.task.created`): the `event-type` header. */
  type: string
  /** The payload, stored as JSON and published as the record's value. */
  data: D
  /** The topic; default the outbox's `topic`. */
  topic?: string
  /** The event id (`event-id` header); a UUIDv7 when absent. Unique in the outbox. */
  id?: string
  /** Where the event comes from (`/todos/api`); default the outbox's `source`. */
  source?: string
  /** When it happened; default the time of `add`. */
  time?: Date
  /** The kind of aggregate (`todo`), kept in the row. */
  aggregateType?: string
  /** The CloudEvents subject, kept in the row. */
  subject?: string
  /** Default `application/json`. */
  dataContentType?: string
  correlationId?: string
  conversationId?: string
  schemaVersion?: string
  /** Further headers, published as they are. */
  headers?: Readonly<Record<string, string>>
}

export interface OutboxInit {
  /** A pool, for `createTable()` and `transaction()`; `add` works on any client you pass it. */
  pool?: Pool
  /** The outbox table (`schema.table` allowed). Default `kafkit_outbox`. */
  table?: string
  /** The topic of events that name none. */
  topic?: string
  /** The `source` of events that name none. Default `kafkit`. */
  source?: string
}

/** What `add` stored: the row id (the relay's order) and the event id. */
export interface OutboxEntry {
  id: bigint
  eventId: string
}

const COLUMNS = [
  'event_id',
  'topic',
  'aggregate_type',
  'aggregate_id',
  'event_type',
  'source',
  'subject',
  'content_type',
  'payload',
  'headers',
  'occurred_at'
] as const

export class Outbox {
  readonly names: OutboxNames
  readonly #pool: Pool | undefined
  readonly #topic: string | undefined
  readonly #source: string

  constructor(init: OutboxInit = {}) {
    this.names = outboxNames(init.table ?? 'kafkit_outbox')
    this.#pool = init.pool
    this.#topic = init.topic
    this.#source = init.source ?? 'kafkit'
  }

  /** Creates the outbox and dead-letter tables, index and trigger when missing (needs `pool`). */
  async createTable(): Promise<void> {
    await createOutboxTable(this.#requirePool('createTable'), { table: this.names.table })
  }

  /** Adds one event inside the caller's transaction (`tx` is the client that ran BEGIN). */
  async add(tx: Queryable, event: OutboxEvent): Promise<OutboxEntry> {
    const [entry] = await this.addMany(tx, [event])
    return entry as OutboxEntry
  }

  /** Adds events inside the caller's transaction, in the given order. */
  async addMany(tx: Queryable, events: readonly OutboxEvent[]): Promise<OutboxEntry[]> {
    if (events.length === 0) return []
    const rows = events.map((event, index) => this.#row(event, index))
    const keys = [...new Set(events.map(event => event.key))].sort()
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1), hashtext(k)) FROM unnest($2::text[]) AS k', [
      this.names.keyLockSpace,
      keys
    ])
    const values: unknown[] = []
    const tuples = rows.map(row => {
      const start = values.length
      values.push(...row)
      return `(${row.map((_, i) => `$${start + i + 1}`).join(', ')})`
    })
    const result = await tx.query(
      `INSERT INTO ${this.names.tableSql} (${COLUMNS.join(', ')}) VALUES ${tuples.join(', ')} RETURNING id, event_id`,
      values
    )
    return (result.rows as { id: string; event_id: string }[]).map(row => ({
      id: BigInt(row.id),
      eventId: row.event_id
    }))
  }

  /**
   * Runs `work` in a transaction on a client of the pool and commits (or rolls back when it throws):
   * `outbox.transaction(async tx => { await tx.query(...); await outbox.add(tx, event) })`.
   */
  transaction<T>(work: (tx: PoolClient) => Promise<T>): Promise<T> {
    return inPoolTransaction(this.#requirePool('transaction'), work)
  }

  #row(event: OutboxEvent, index: number): unknown[] {
    const topic = event.topic ?? this.#topic
    const problem =
      typeof event.key !== 'string' || event.key === ''
        ? '`key` (the aggregate id) must be a non-empty string'
        : typeof event.type !== 'string' || event.type === ''
          ? '`type` must be a non-empty string'
          : topic === undefined || topic === ''
            ? 'no topic: set `topic` on the event or on the Outbox'
            : event.data === undefined
              ? '`data` is missing (use null for an event without data)'
              : undefined
    if (problem !== undefined) {
      throw new InvalidMessageError(`outbox event ${index}: ${problem}; nothing was added`)
    }
    const headers: Record<string, string> = { ...event.headers }
    if (event.correlationId !== undefined) headers['correlation-id'] = event.correlationId
    if (event.conversationId !== undefined) headers['conversation-id'] = event.conversationId
    if (event.schemaVersion !== undefined) headers['schema-version'] = event.schemaVersion
    return [
      event.id ?? newEventId(),
      topic,
      event.aggregateType ?? null,
      event.key,
      event.type,
      event.source ?? this.#source,
      event.subject ?? null,
      event.dataContentType ?? 'application/json',
      JSON.stringify(event.data),
      JSON.stringify(headers),
      event.time ?? new Date()
    ]
  }

  #requirePool(method: string): Pool {
    if (this.#pool === undefined) {
      throw new ConfigError(`Outbox.${method}() needs a pool: new Outbox({ pool, ... })`, {
        details: { component: 'outbox', key: 'pool' }
      })
    }
    return this.#pool
  }
}
