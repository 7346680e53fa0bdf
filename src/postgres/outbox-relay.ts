/**
 * `OutboxRelay` publishes the committed rows of an outbox table to Kafka with Kafkit's idempotent
 * producer, oldest first, and deletes (or marks) them once Kafka acknowledged them.
 *
 * - It never skips a row: each round reads every unpublished row it can see, by id, not the rows after
 *   the last id it published. A transaction that took its ids early and commits late is read in the
 *   first round after its commit. Rows of a rolled-back transaction are never visible to it.
 * - Each key's events go out in commit order (outbox.ts explains why id order is commit order per key).
 * - One relay leads: it holds a session-level advisory lock on its own connection, and reads, publishes
 *   and settles on that connection. Other relays stand by and try the lock every
 *   `leaderCheckIntervalMs`; when the leader dies its connection closes, the lock is free, and a
 *   standby takes over. A row is published at least once: a leader that dies between Kafka's
 *   acknowledgement and its DELETE leaves the row for the next leader, which sends it again with the
 *   same `event-id`.
 * - It wakes on NOTIFY (the outbox's insert trigger) and polls every `pollIntervalMs` as a fallback.
 * - When the database or Kafka is down it waits with a growing backoff, reports it in `health`, and
 *   resumes where the table says it is: nothing is kept in memory between rounds.
 */
import { EventEmitter } from 'node:events'
import type { Client, ClientConfig } from 'pg'
import { ConfigError } from '../errors/kafkit-error.ts'
import { defaultLogger, type HandlingLogger } from '../handling/logger.ts'
import { bytesSerde } from '../message/serde.ts'
import { Producer, type ProducerInit } from '../producer/producer.ts'
import { outboxRelayOptions, type OutboxRelayConfig, type OutboxRelayOptions } from './outbox-options.ts'
import { deleteExpired, publishRows, selectUnpublished, settleRound, type OutboxRow } from './outbox-round.ts'
import { outboxNames, type OutboxNames } from './outbox-schema.ts'
import { quoteIdent } from './sql-text.ts'

export interface OutboxRelayInit extends OutboxRelayOptions {
  /** The database: a connection string or `pg` client config. Default `DATABASE_URL`. */
  database?: string | ClientConfig
  /** Kafka brokers of the relay's own producer (default `KAFKA_BROKERS`). */
  brokers?: string[]
  /** Further options of the relay's own producer (it is always idempotent). */
  producer?: Omit<ProducerInit<Buffer>, 'valueSerde' | 'brokers' | 'env'>
  /** The environment to read `KAFKA_*` and `DATABASE_URL` from (default `process.env`). */
  env?: NodeJS.ProcessEnv
  logger?: HandlingLogger
}

/**
 * `leading`: this relay publishes; `standby`: another relay leads; `waiting-for-database` /
 * `waiting-for-kafka`: the last attempt failed and the relay is backing off.
 */
export type OutboxRelayState =
  'idle' | 'starting' | 'leading' | 'standby' | 'waiting-for-database' | 'waiting-for-kafka' | 'stopped'

export interface OutboxRelayHealth {
  state: OutboxRelayState
  /** True while leading or standing by. */
  healthy: boolean
  since: Date
  lastError: { message: string; code: string | undefined; at: Date } | undefined
  /** Rows published (acknowledged by Kafka and settled) by this relay. */
  published: number
  /** Rows moved to the dead-letter table by this relay. */
  deadLettered: number
  lastPublishedAt: Date | undefined
}

export type OutboxRelayEvents = {
  health: [OutboxRelayHealth]
  published: [{ count: number; lastId: string }]
  'dead-letter': [{ id: string; eventId: string; reason: string; code: string | undefined }]
  /** A round found no unpublished row, after rows (or on the first round): the outbox is drained. */
  idle: []
}

class KafkaStalled extends Error {}

export class OutboxRelay extends EventEmitter<OutboxRelayEvents> {
  readonly config: Readonly<OutboxRelayConfig>
  readonly names: OutboxNames
  readonly #database: ClientConfig
  readonly #producer: Producer<Buffer>
  readonly #logger: HandlingLogger
  #session: Client | undefined
  #sessionError: Error | undefined
  #leader = false
  #stopping = false
  readonly #abort = new AbortController()
  #loop: Promise<void> | undefined
  #wake: (() => void) | undefined
  #dirty = false
  /** The last round found nothing to publish (`idle` is emitted once per such stretch). */
  #idle = false
  #failures = 0
  #lastCleanup = 0
  #health: OutboxRelayHealth = {
    state: 'idle',
    healthy: false,
    since: new Date(),
    lastError: undefined,
    published: 0,
    deadLettered: 0,
    lastPublishedAt: undefined
  }

  constructor(init: OutboxRelayInit = {}) {
    super()
    const { database, brokers, producer, env = process.env, logger, ...options } = init
    this.config = outboxRelayOptions.resolve(options, { env })
    this.names = outboxNames(this.config.table, 'outbox relay')
    const url = database ?? env.DATABASE_URL
    if (url === undefined || url === '') {
      throw new ConfigError(
        'outbox relay: no database: pass `database` (a connection string or pg client config) or set DATABASE_URL',
        { details: { component: 'outbox relay', key: 'database' } }
      )
    }
    this.#database = typeof url === 'string' ? { connectionString: url, connectionTimeoutMillis: 5000 } : url
    this.#producer = new Producer<Buffer>({
      lingerMs: 0,
      ...producer,
      ...(brokers ? { brokers } : {}),
      idempotent: true,
      acks: -1,
      valueSerde: bytesSerde,
      env
    })
    this.#logger = logger ?? defaultLogger()
  }

  get health(): OutboxRelayHealth {
    return { ...this.#health }
  }

  /** Starts relaying in the background; `health` and the `health` event say how it goes. */
  start(): void {
    if (this.#loop !== undefined) return
    this.#setState('starting')
    this.#loop = this.#run()
  }

  /** Stops after the current round, releases the leader lock and closes the producer. */
  async stop(): Promise<void> {
    this.#stopping = true
    // A round waiting on Kafka gives up its sends not yet in flight; their rows stay for the next leader.
    this.#abort.abort(new Error('the outbox relay is stopping'))
    this.#wake?.()
    await this.#loop
    await this.#dropSession()
    await this.#producer.close({ timeoutMs: 5000 })
    this.#setState('stopped')
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      try {
        const session = await this.#ensureSession()
        if (!(await this.#lead(session))) {
          this.#setState('standby')
          this.#dirty = false
          await this.#sleep(this.config.leaderCheckIntervalMs)
          continue
        }
        const more = await this.#round(session)
        this.#failures = 0
        if (!more) await this.#sleep(this.config.pollIntervalMs)
      } catch (error) {
        await this.#recover(error as Error)
      }
    }
  }

  /** One round; true when there may be more to do at once. */
  async #round(session: Client): Promise<boolean> {
    this.#dirty = false
    await this.#cleanup(session)
    const { rows } = await session.query<OutboxRow>(selectUnpublished(this.names), [this.config.batchSize])
    if (rows.length === 0) {
      this.#setState('leading')
      if (!this.#idle) this.emit('idle')
      this.#idle = true
      return this.#dirty
    }
    this.#idle = false
    const plan = await publishRows(this.#producer, rows, this.#abort.signal, () => this.#setState('waiting-for-kafka'))
    await settleRound(session, this.names, plan, this.config.retentionMs)
    this.#count(plan.done)
    for (const { row, reason, code } of plan.deadLetters) {
      this.#health.deadLettered++
      this.#logger.warn({ id: row.id, eventId: row.event_id, topic: row.topic, code }, 'outbox row dead-lettered')
      this.emit('dead-letter', { id: row.id, eventId: row.event_id, reason, code })
    }
    if (plan.transient !== undefined) throw new KafkaStalled('Kafka did not acknowledge', { cause: plan.transient })
    this.#setState('leading')
    return rows.length === this.config.batchSize || this.#dirty
  }

  #count(done: readonly string[]): void {
    if (done.length === 0) return
    this.#health.published += done.length
    this.#health.lastPublishedAt = new Date()
    this.emit('published', { count: done.length, lastId: done.reduce((a, b) => (BigInt(a) > BigInt(b) ? a : b)) })
  }

  async #cleanup(session: Client): Promise<void> {
    const { retentionMs, cleanupIntervalMs } = this.config
    if (retentionMs === 0 || Date.now() - this.#lastCleanup < cleanupIntervalMs) return
    this.#lastCleanup = Date.now()
    const deleted = await deleteExpired(session, this.names, retentionMs)
    if (deleted > 0) this.#logger.debug({ table: this.names.table, deleted }, 'outbox rows past retention deleted')
  }

  async #ensureSession(): Promise<Client> {
    if (this.#sessionError !== undefined) await this.#dropSession()
    if (this.#session !== undefined) return this.#session
    const { default: pg } = await import('pg')
    const client = new pg.Client(this.#database)
    this.#sessionError = undefined
    // A broken socket emits 'error'; without a listener it would crash the process.
    client.on('error', error => {
      this.#sessionError = error
      this.#wake?.()
    })
    client.on('notification', () => {
      this.#dirty = true
      this.#wake?.()
    })
    this.#session = client
    await client.connect()
    await client.query(`LISTEN ${quoteIdent(this.names.channel)}`)
    // This session runs only the relay's own statements, all of them by id. An outbox is empty most of
    // the time, so its statistics say "no unpublished rows"; with a backlog the planner then reads the
    // whole backlog and sorts it in every round (bitmap scan), or scans the table to delete by id. The
    // indexes are always the right plan here (bench/outbox: 4x less database time per row).
    await client.query('SET enable_bitmapscan = off; SET enable_seqscan = off')
    return client
  }

  async #lead(session: Client): Promise<boolean> {
    if (this.#leader) return true
    const { rows } = await session.query<{ locked: boolean }>(
      'SELECT pg_try_advisory_lock(hashtext($1), 0) AS locked',
      [this.names.leaderLockSpace]
    )
    this.#leader = rows[0]?.locked === true
    if (this.#leader) this.#logger.info({ table: this.names.table }, 'outbox relay leads')
    return this.#leader
  }

  async #dropSession(): Promise<void> {
    const session = this.#session
    this.#session = undefined
    this.#leader = false
    this.#sessionError = undefined
    // Ending the connection releases the leader lock.
    await session?.end().catch(() => undefined)
  }

  async #recover(error: Error): Promise<void> {
    const kafka = error instanceof KafkaStalled
    const cause = kafka ? (error.cause as Error) : error
    if (!kafka) await this.#dropSession()
    this.#failures++
    const { retryBackoffMs, maxRetryBackoffMs } = this.config
    const wait = Math.min(maxRetryBackoffMs, retryBackoffMs * 2 ** Math.min(this.#failures - 1, 16))
    this.#health.lastError = { message: cause.message, code: (cause as { code?: string }).code, at: new Date() }
    this.#setState(kafka ? 'waiting-for-kafka' : 'waiting-for-database')
    this.#logger.warn(
      { table: this.names.table, code: this.#health.lastError.code, waitMs: wait, error: cause.message },
      kafka ? 'outbox relay: Kafka failed, retrying' : 'outbox relay: database failed, reconnecting'
    )
    await this.#sleep(wait)
  }

  /** Waits `ms`, or less when woken (a NOTIFY, a broken session, stop()). */
  #sleep(ms: number): Promise<void> {
    if (this.#stopping || this.#dirty) return Promise.resolve()
    return new Promise(resolve => {
      const timer = setTimeout(done, ms)
      function done(): void {
        clearTimeout(timer)
        resolve()
      }
      this.#wake = () => {
        this.#wake = undefined
        done()
      }
    })
  }

  #setState(state: OutboxRelayState): void {
    if (this.#health.state === state) return
    this.#health.state = state
    this.#health.since = new Date()
    this.#health.healthy = state === 'leading' || state === 'standby'
    this.emit('health', this.health)
  }
}
