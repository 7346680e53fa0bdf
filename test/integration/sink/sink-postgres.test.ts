/**
 * The sink runner on a real broker into the real PostgreSQL: every good record lands once, bad ones
 * (not JSON, no log_id) go to the DLQ (errorsTolerance all) or stop the sink before them (none), an
 * exactly-once sink skips what the database already holds, and a database outage (the server stopped
 * with pg_ctlcluster) opens the breaker and pauses the sink without committing or losing anything;
 * once the server is back the lag returns to 0.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import { parseDeadLetterHeaders } from '../../../src/handling/dead-letter.ts'
import { PostgresWriter } from '../../../src/postgres/postgres-writer.ts'
import { Sink } from '../../../src/sink/sink.ts'
import { createTestTopic } from '../../../src/testing/topics.ts'
import { uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers, databaseUrl } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import {
  logColumns,
  logTableDdl,
  mapLogEvent,
  produceLogEvents,
  type LogEvent,
  type LogRow
} from '../../fixtures/sink/log-events.ts'
import { createTestSchema } from './postgres-schema.ts'
import { eventually } from '../../helpers/wait.ts'
import { postgresCluster, postgresReady } from '../../helpers/postgres.ts'

const quiet = { debug() {}, info() {}, warn() {}, error() {} }

/** The group's committed offset per partition of `topic`. */
async function committedOffsets(brokers: string[], groupId: string, topic: string): Promise<Map<number, bigint>> {
  const admin = new Admin({ clientId: 'kafkit-sink-test', bootstrapBrokers: brokers })
  try {
    const [group] = await admin.listConsumerGroupOffsets({ groups: [groupId] })
    return new Map(
      (group?.topics.find(entry => entry.name === topic)?.partitions ?? []).map(p => [
        p.partitionIndex,
        p.committedOffset
      ])
    )
  } finally {
    await admin.close()
  }
}

test('idempotent sink: good records stored once, bad ones dead-lettered, lag 0', async t => {
  const brokers = bootstrapServers()
  const source = await createTestTopic({ brokers, partitions: 3, prefix: 'sink-src' })
  t.after(source.delete)
  const dlq = await createTestTopic({ brokers, partitions: 1, prefix: 'sink-dlq' })
  t.after(dlq.delete)
  const db = await createTestSchema(t)
  const table = db.qualified('logs')
  await db.query(logTableDdl(table, { unique: true }))

  const produced = await produceLogEvents(brokers, source.topic, 3000, { badEvery: 500 })
  const writer = new PostgresWriter<LogRow>({ database: db.pool, table, columns: logColumns, key: ['log_id'] })
  const sink = new Sink<LogEvent, LogRow>({
    brokers,
    groupId: uniqueName('sink'),
    topics: [source.topic],
    batchSize: 400,
    lingerMs: 50,
    errorsTolerance: 'all',
    dlqTopic: dlq.topic,
    writer,
    map: mapLogEvent,
    logger: quiet
  })
  t.after(() => sink.close())
  await sink.start()
  assert.ok(await eventually(() => sink.stats.records === 3000, 60_000), `processed ${sink.stats.records} of 3000`)
  assert.ok(await eventually(async () => (await sink.lag()) === 0, 20_000), 'lag returns to 0')

  const [count] = await db.query<{ n: string; d: string }>(
    `SELECT count(*) AS n, count(DISTINCT log_id) AS d FROM ${table}`
  )
  assert.deepEqual(count, { n: String(produced.good.length), d: String(produced.good.length) })
  assert.equal(sink.stats.deadLettered, produced.bad)
  assert.equal(produced.bad, 6)
  const dead = await readTopic(brokers, dlq.topic, produced.bad, { quietMs: 500, timeoutMs: 20_000 })
  assert.equal(dead.length, produced.bad, 'each bad record once in the DLQ')
  const infos = dead.map(record => parseDeadLetterHeaders(record.headers))
  assert.ok(infos.every(info => info.originTopic === source.topic && info.errorKind === 'permanent'))
  const codes = infos.map(info => info.errorCode).sort()
  assert.deepEqual(codes, [
    ...Array<string>(3).fill('KAFKIT_DESERIALIZATION_FAILED'),
    ...Array<string>(3).fill('KAFKIT_SINK_MAPPING_FAILED')
  ])
  await sink.stop()
  await writer.close()
})

test('errorsTolerance none: the sink stops before the first bad record and commits up to it', async t => {
  const brokers = bootstrapServers()
  const source = await createTestTopic({ brokers, partitions: 1, prefix: 'sink-src' })
  t.after(source.delete)
  const db = await createTestSchema(t)
  const table = db.qualified('logs')
  await db.query(logTableDdl(table, { unique: true }))
  // 100 events; index 49 is the first bad one (badEvery 50).
  await produceLogEvents(brokers, source.topic, 100, { badEvery: 50 })
  const writer = new PostgresWriter<LogRow>({ database: db.pool, table, columns: logColumns, key: ['log_id'] })
  const groupId = uniqueName('sink')
  const sink = new Sink<LogEvent, LogRow>({
    brokers,
    groupId,
    topics: [source.topic],
    batchSize: 30,
    lingerMs: 50,
    writer,
    map: mapLogEvent,
    logger: quiet
  })
  t.after(() => writer.close())
  await sink.start()
  await assert.rejects(sink.done(), (error: Error & { code: string; details: Record<string, unknown> }) => {
    assert.equal(error.code, 'KAFKIT_SINK_STOPPED')
    assert.equal(error.details.offset, '49')
    assert.match(error.message, /without log_id/)
    return true
  })
  const [count] = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)
  assert.equal(count?.n, '49', 'the records before the bad one are stored')
  assert.equal((await committedOffsets(brokers, groupId, source.topic)).get(0), 49n, 'committed up to the bad record')
})

test('exactly-once, errorsTolerance all: undecodable, unmappable and database-rejected records are dead-lettered, the rest stored once', async t => {
  const brokers = bootstrapServers()
  const source = await createTestTopic({ brokers, partitions: 2, prefix: 'sink-src' })
  t.after(source.delete)
  const dlq = await createTestTopic({ brokers, partitions: 1, prefix: 'sink-dlq' })
  t.after(dlq.delete)
  const db = await createTestSchema(t)
  const table = db.qualified('logs')
  // No unique key; the database itself refuses one row (event 77).
  await db.query(`${logTableDdl(table, { unique: false })}`)
  await db.query(`ALTER TABLE ${table} ADD CONSTRAINT not_77 CHECK (message <> 'request 77')`)
  const produced = await produceLogEvents(brokers, source.topic, 600, { badEvery: 200 })
  const groupId = uniqueName('sink')
  const writer = new PostgresWriter<LogRow>({
    database: db.pool,
    table,
    columns: logColumns,
    delivery: 'exactly-once',
    offsetsTable: db.qualified('kafkit_offsets')
  })
  t.after(() => writer.close())
  const sink = new Sink<LogEvent, LogRow>({
    brokers,
    groupId,
    topics: [source.topic],
    batchSize: 100,
    lingerMs: 50,
    errorsTolerance: 'all',
    dlqTopic: dlq.topic,
    writer,
    map: mapLogEvent,
    logger: quiet
  })
  t.after(() => sink.close())
  await sink.start()
  assert.ok(await eventually(() => sink.stats.records === 600, 60_000), `processed ${sink.stats.records} of 600`)
  assert.ok(await eventually(async () => (await sink.lag()) === 0, 20_000), 'lag returns to 0')
  const [count] = await db.query<{ n: string; d: string }>(
    `SELECT count(*) AS n, count(DISTINCT log_id) AS d FROM ${table}`
  )
  const expected = String(produced.good.length - 1)
  assert.deepEqual(count, { n: expected, d: expected })
  assert.equal(sink.stats.deadLettered, produced.bad + 1)
  const dead = await readTopic(brokers, dlq.topic, produced.bad + 1, { quietMs: 500, timeoutMs: 20_000 })
  const codes = dead.map(record => parseDeadLetterHeaders(record.headers).errorCode).sort()
  assert.deepEqual(codes, [
    'KAFKIT_DESERIALIZATION_FAILED',
    'KAFKIT_SINK_MAPPING_FAILED',
    'KAFKIT_SINK_MAPPING_FAILED',
    'KAFKIT_SINK_WRITE_FAILED'
  ])
  // The stored offsets moved past every record, the dead-lettered ones included.
  const stored = await db.query<{ s: string }>(
    `SELECT sum(next_offset)::text AS s FROM ${db.qualified('kafkit_offsets')} WHERE "group" = $1`,
    [groupId]
  )
  assert.equal(stored[0]?.s, '600')
  await sink.stop()
})

test('exactly-once, errorsTolerance none: a row the database rejects stops the sink there; nothing after it is stored', async t => {
  const brokers = bootstrapServers()
  const source = await createTestTopic({ brokers, partitions: 1, prefix: 'sink-src' })
  t.after(source.delete)
  const db = await createTestSchema(t)
  const table = db.qualified('logs')
  await db.query(`${logTableDdl(table, { unique: false })}`)
  await db.query(`ALTER TABLE ${table} ADD CONSTRAINT not_77 CHECK (message <> 'request 77')`)
  await produceLogEvents(brokers, source.topic, 200)
  const groupId = uniqueName('sink')
  const offsetsTable = db.qualified('kafkit_offsets')
  const writer = new PostgresWriter<LogRow>({
    database: db.pool,
    table,
    columns: logColumns,
    delivery: 'exactly-once',
    offsetsTable
  })
  t.after(() => writer.close())
  const sink = new Sink<LogEvent, LogRow>({
    brokers,
    groupId,
    topics: [source.topic],
    batchSize: 50,
    lingerMs: 50,
    writer,
    map: mapLogEvent,
    logger: quiet
  })
  await sink.start()
  await assert.rejects(sink.done(), (error: Error & { code: string; details: Record<string, unknown> }) => {
    assert.equal(error.code, 'KAFKIT_SINK_STOPPED')
    assert.equal(error.details.offset, '77')
    assert.match(error.message, /not_77/)
    return true
  })
  const [count] = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)
  assert.equal(count?.n, '77', 'the records before the rejected one are stored, none after it')
  const [stored] = await db.query<{ next: string }>(
    `SELECT next_offset::text AS next FROM ${offsetsTable} WHERE "group" = $1`,
    [groupId]
  )
  assert.equal(stored?.next, '77', 'the stored offset stops at the rejected record')
  assert.equal((await committedOffsets(brokers, groupId, source.topic)).get(0), 77n)
})

test('exactly-once sink: resumes from the offsets stored in Postgres, no duplicate without a unique key', async t => {
  const brokers = bootstrapServers()
  const source = await createTestTopic({ brokers, partitions: 2, prefix: 'sink-src' })
  t.after(source.delete)
  const db = await createTestSchema(t)
  const table = db.qualified('logs')
  await db.query(logTableDdl(table, { unique: false }))
  const produced = await produceLogEvents(brokers, source.topic, 2000)
  const groupId = uniqueName('sink')
  const writer = new PostgresWriter<LogRow>({
    database: db.pool,
    table,
    columns: logColumns,
    delivery: 'exactly-once',
    offsetsTable: db.qualified('kafkit_offsets')
  })
  t.after(() => writer.close())
  // A previous run stored the first 300 records of partition 0 and crashed before committing to Kafka.
  const earlier = await readTopic(brokers, source.topic, 2000, { timeoutMs: 20_000 })
  const partition0 = earlier.filter(record => record.partition === 0).slice(0, 300)
  await writer.write(
    partition0.map(record => ({
      topic: record.topic,
      partition: 0,
      offset: record.offset,
      row: mapLogEvent({ value: JSON.parse(record.value.toString()) as LogEvent } as never)
    })),
    { groupId }
  )
  const sink = new Sink<LogEvent, LogRow>({
    brokers,
    groupId,
    topics: [source.topic],
    batchSize: 250,
    lingerMs: 50,
    writer,
    map: mapLogEvent,
    logger: quiet
  })
  t.after(() => sink.close())
  await sink.start()
  assert.ok(await eventually(() => sink.stats.records === 2000, 60_000), `processed ${sink.stats.records} of 2000`)
  assert.equal(sink.stats.alreadyStored, 300, 'the stored range is dropped before the write')
  const [count] = await db.query<{ n: string; d: string }>(
    `SELECT count(*) AS n, count(DISTINCT log_id) AS d FROM ${table}`
  )
  assert.deepEqual(count, { n: String(produced.good.length), d: String(produced.good.length) })
  assert.ok(await eventually(async () => (await sink.lag()) === 0, 20_000), 'lag returns to 0')
  await sink.stop()
})

test('database outage: the breaker opens, nothing is committed or lost, and the sink catches up', async t => {
  const brokers = bootstrapServers()
  // Whatever happens, the server runs again at the end (other tests need it). Registered first: after
  // hooks run in order, and the schema's cleanup needs the server.
  t.after(async () => {
    try {
      postgresCluster('start')
    } catch {
      // already running
    }
    await eventually(postgresReady, 30_000)
  })
  const source = await createTestTopic({ brokers, partitions: 2, prefix: 'sink-src' })
  t.after(source.delete)
  const db = await createTestSchema(t)
  const table = db.qualified('logs')
  await db.query(logTableDdl(table, { unique: true }))
  const writer = await PostgresWriter.connect<LogRow>(databaseUrl(), {
    table,
    columns: logColumns,
    key: ['log_id']
  })
  t.after(() => writer.close())
  const groupId = uniqueName('sink')
  const sink = new Sink<LogEvent, LogRow>({
    brokers,
    groupId,
    topics: [source.topic],
    batchSize: 200,
    lingerMs: 50,
    maxRetries: 3,
    retryBackoff: { baseMs: 50, maxMs: 200 },
    breaker: { threshold: 2, cooldownMs: 1000 },
    writer,
    map: mapLogEvent,
    logger: quiet
  })
  t.after(() => sink.close())
  const states: string[] = []
  sink.on('breaker', change => states.push(change.to))
  await sink.start()
  const first = await produceLogEvents(brokers, source.topic, 1000, { runId: 'a' })
  assert.ok(await eventually(() => sink.stats.records === 1000, 60_000))

  postgresCluster('stop')
  const second = await produceLogEvents(brokers, source.topic, 1000, { runId: 'b' })
  assert.ok(await eventually(() => states.includes('open'), 30_000), `breaker opened (states: ${states.join(', ')})`)
  const lagDuringOutage = await sink.lag()
  assert.equal(lagDuringOutage, 1000, 'nothing of the second half committed while the database is down')
  assert.equal(sink.stats.records, 1000)
  assert.equal(sink.stats.deadLettered, 0)

  postgresCluster('start')
  assert.ok(await eventually(() => sink.stats.records === 2000, 60_000), `caught up: ${sink.stats.records} of 2000`)
  assert.ok(await eventually(async () => (await sink.lag()) === 0, 20_000), 'lag returns to 0')
  assert.equal(states.at(-1), 'closed')
  const [count] = await db.query<{ n: string; d: string }>(
    `SELECT count(*) AS n, count(DISTINCT log_id) AS d FROM ${table}`
  )
  const total = first.good.length + second.good.length
  assert.deepEqual(count, { n: String(total), d: String(total) })
  await sink.stop()
})
