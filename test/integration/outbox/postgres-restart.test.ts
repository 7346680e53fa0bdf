/**
 * PostgreSQL restarted (a real `pg_ctlcluster restart`: every connection cut, the server down for a
 * moment) under the relay and under an inbox consumer. The relay reports `waiting-for-database`, comes
 * back, and publishes every committed row; the inbox consumer retries the events whose transaction was
 * cut and applies each event exactly once.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import pg from 'pg'
import { Consumer } from '../../../src/consumer/consumer.ts'
import { message } from '../../../src/message/builder.ts'
import { newEventId } from '../../../src/message/uuid.ts'
import { Inbox } from '../../../src/postgres/inbox.ts'
import { Outbox } from '../../../src/postgres/outbox.ts'
import { OutboxRelay, type OutboxRelayState } from '../../../src/postgres/outbox-relay.ts'
import { Producer } from '../../../src/producer/producer.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers, databaseUrl } from '../../helpers/env.ts'
import { headerOf, readTopic } from '../../helpers/read-topic.ts'
import { restartPostgres } from '../../helpers/postgres.ts'
import { sleep, waitFor } from '../../helpers/wait.ts'

const quiet = { debug() {}, info() {}, warn() {}, error() {} }
function tableName(prefix: string): string {
  return uniqueName(prefix)
    .replaceAll(/[^A-Za-z0-9_]/g, '_')
    .slice(0, 40)
}

test('the relay rides through a PostgreSQL restart: waits, resumes, publishes every committed row', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 3 })
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: 4, connectionTimeoutMillis: 2000 })
  pool.on('error', () => undefined)
  const table = tableName('outbox_pgrestart')
  const outbox = new Outbox({ pool, table, topic })
  await outbox.createTable()
  const relay = new OutboxRelay({ database: databaseUrl(), brokers, table, env: {}, logger: quiet, retryBackoffMs: 50 })
  let writing = true
  t.after(async () => {
    writing = false
    await relay.stop()
    await pool.query(`DROP TABLE IF EXISTS ${table}, ${table}_dead_letters`)
    await pool.end()
    await drop()
  })
  const states: OutboxRelayState[] = []
  relay.on('health', health => states.push(health.state))
  relay.start()

  const committed = new Set<string>()
  const writer = (async () => {
    for (let n = 0; writing; n++) {
      const entry = await outbox
        .transaction(tx => outbox.add(tx, { key: `k-${n % 20}`, type: 'test.row', data: { n } }))
        .catch(() => undefined)
      if (entry) committed.add(entry.eventId)
      else await sleep(100)
    }
  })()
  await waitFor(() => relay.health.published >= 200, 30_000, 'the relay to publish before the restart')
  await restartPostgres()
  const before = relay.health.published
  await waitFor(() => relay.health.published >= before + 200, 60_000, 'the relay to publish after it')
  writing = false
  await writer
  const unpublished = async () =>
    ((await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0] as { n: number }).n
  await waitFor(async () => (await unpublished()) === 0, 60_000, 'the outbox to drain')
  const records = await readTopic(brokers, topic, committed.size, { quietMs: 1000 })
  const published = new Set(records.map(record => headerOf(record, 'event-id')))
  const lost = [...committed].filter(id => !published.has(id))
  t.diagnostic(`committed ${committed.size}, records ${records.length}, states ${states.join(' > ')}`)
  assert.ok(states.includes('waiting-for-database'), 'the restart showed in the health state')
  assert.equal(relay.health.state, 'leading')
  assert.deepEqual(lost, [], 'every committed row published')
})

test('an inbox consumer rides through a PostgreSQL restart: each event applied exactly once', async t => {
  const brokers = bootstrapServers()
  const count = 2000
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 3 })
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: 8, connectionTimeoutMillis: 2000 })
  pool.on('error', () => undefined)
  const base = tableName('inbox_pgrestart')
  const inbox = new Inbox({ pool, table: `${base}_inbox` })
  await inbox.createTable()
  await pool.query(`CREATE TABLE ${base}_effects (event_id text NOT NULL)`)
  const consumer = new Consumer({
    brokers,
    groupId: uniqueName('inbox-restart'),
    topics: [topic],
    startOffset: 'earliest',
    ensureTopics: false,
    maxRetries: 1000,
    retryBackoff: { baseMs: 50, maxMs: 500 },
    breaker: { threshold: 1000 },
    env: {},
    logger: quiet,
    handler: inbox.handler(async (event, tx) => {
      await tx.query(`INSERT INTO ${base}_effects (event_id) VALUES ($1)`, [event.meta.eventId])
      await sleep(2)
    })
  })
  t.after(async () => {
    await consumer.stop()
    await pool.query(`DROP TABLE IF EXISTS ${base}_inbox, ${base}_effects`)
    await pool.end()
    await drop()
  })
  const producer = new Producer({ brokers, topic, env: {} })
  await producer.sendBatch(
    Array.from({ length: count }, (_, i) =>
      message({ i })
        .key(`k-${i % 30}`)
        .eventId(newEventId())
    )
  )
  await producer.close()
  await consumer.start()
  const applied = async () =>
    (
      await pool
        .query<{ rows: number; distinct: number }>(
          `SELECT count(*)::int AS rows, count(DISTINCT event_id)::int AS distinct FROM ${base}_effects`
        )
        .catch(() => ({ rows: [{ rows: 0, distinct: 0 }] }))
    ).rows[0] as { rows: number; distinct: number }
  await waitFor(async () => (await applied()).distinct >= 300, 30_000, 'events applied before the restart')
  await restartPostgres()
  await waitFor(async () => (await applied()).distinct === count, 120_000, 'every event applied after it')
  const result = await applied()
  assert.equal(result.rows, count, 'each event applied exactly once')
})
