/** Sink, Postgres and ClickHouse sink options: defaults, environment, and errors naming key and value. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { clickHouseWriterOptions } from '../../../src/clickhouse/options.ts'
import { ConfigError } from '../../../src/errors/kafkit-error.ts'
import { postgresWriterOptions } from '../../../src/postgres/options.ts'
import { sinkOptions } from '../../../src/sink/options.ts'

const base = { brokers: ['127.0.0.1:9092'], groupId: 'g', topics: ['logs'] }

test('sink defaults follow Connect-like names and KAFKA_SINK_* variables apply', () => {
  const config = sinkOptions.resolve(base, { env: {} })
  assert.equal(config.batchSize, 500)
  assert.equal(config.errorsTolerance, 'none')
  const fromEnv = sinkOptions.resolve(
    { groupId: 'g' },
    {
      env: { KAFKA_BROKERS: 'a:1,b:2', KAFKA_SINK_TOPICS: 'x,y', KAFKA_SINK_BATCH_SIZE: '50', KAFKA_SINK_LINGER: '2s' }
    }
  )
  assert.deepEqual(fromEnv.brokers, ['a:1', 'b:2'])
  assert.deepEqual(fromEnv.topics, ['x', 'y'])
  assert.equal(fromEnv.batchSize, 50)
  assert.equal(fromEnv.lingerMs, 2000)
})

test('sink: errorsTolerance all needs a dlqTopic; a breaker must open before retries run out', () => {
  assert.throws(
    () => sinkOptions.resolve({ ...base, errorsTolerance: 'all' }, { env: {} }),
    (error: ConfigError) =>
      error instanceof ConfigError && /`dlqTopic`/.test(error.message) && /errorsTolerance is all/.test(error.message)
  )
  assert.throws(
    () => sinkOptions.resolve({ ...base, maxRetries: 1, breaker: { threshold: 5 } }, { env: {} }),
    (error: ConfigError) => /`breaker.threshold`/.test(error.message) && /got 5/.test(error.message)
  )
  assert.throws(
    () => sinkOptions.resolve(base, { env: { KAFKA_SINK_BATCHSIZE: '5' } }),
    (error: ConfigError) => /unknown environment variable KAFKA_SINK_BATCHSIZE/.test(error.message)
  )
})

test('postgres sink: key and version must name columns; idempotent needs a key', () => {
  const ok = postgresWriterOptions.resolve({ table: 's.logs', columns: ['id', 'v'], key: ['id'], version: 'v' })
  assert.equal(ok.delivery, 'idempotent')
  assert.equal(ok.bulk, 'auto')
  assert.equal(
    postgresWriterOptions.resolve({ table: 'logs', columns: ['id'], delivery: 'exactly-once' }).offsetsTable,
    'kafkit_offsets'
  )
  assert.throws(
    () => postgresWriterOptions.resolve({ table: 'logs', columns: ['id'], key: ['id'], version: 'v' }),
    /`version`/
  )
  assert.throws(() => postgresWriterOptions.resolve({ table: 'a.b.c', columns: ['id'], key: ['id'] }), /`table`/)
  assert.throws(
    () => postgresWriterOptions.resolve({ table: 'logs', columns: ['id'], maxParameters: 70_000 }),
    /`maxParameters`/
  )
})

test('clickhouse sink: deduplication is auto, token or off', () => {
  assert.equal(clickHouseWriterOptions.resolve({ table: 'db.logs' }).deduplication, 'auto')
  assert.throws(
    () => clickHouseWriterOptions.resolve({ table: 'logs', deduplication: 'always' as 'auto' }),
    /"auto", "token", "off"/
  )
})
