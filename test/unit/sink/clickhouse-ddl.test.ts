/** Seed 000's logs table DDL for a current server and for Debian's 18.16, and error classification. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { missingFeatures, type ClickHouseCapabilities } from '../../../src/clickhouse/capabilities.ts'
import { clickHouseErrorCode, isTransientClickHouseError } from '../../../src/clickhouse/clickhouse-writer.ts'
import { logsTableDdl } from '../../../src/clickhouse/logs-table.ts'
import { quoteClickHouseName } from '../../../src/clickhouse/names.ts'
import { isTransientPostgresError } from '../../../src/postgres/postgres-writer.ts'

const current: ClickHouseCapabilities = {
  version: '24.8.1',
  major: 24,
  minor: 8,
  dateTime64: true,
  now64: true,
  lowCardinality: 'stable',
  ttl: true,
  insertDeduplicationToken: true,
  nonReplicatedDeduplication: true
}
const debian: ClickHouseCapabilities = {
  version: '18.16.1',
  major: 18,
  minor: 16,
  dateTime64: false,
  now64: false,
  lowCardinality: 'experimental',
  ttl: false,
  insertDeduplicationToken: false,
  nonReplicatedDeduplication: false
}

test("a current server gets seed 000's table as recommended, with a deduplication window", () => {
  const { ddl, adaptations } = logsTableDdl(current, { table: 'logs_db.logs' })
  assert.deepEqual(adaptations, [])
  assert.match(ddl, /`logs_db`\.`logs`/)
  assert.match(ddl, /timestamp DateTime64\(3, 'UTC'\)/)
  assert.match(ddl, /service LowCardinality\(String\)/)
  assert.match(ddl, /ENGINE = ReplacingMergeTree\(_inserted_at\)/)
  assert.match(ddl, /ORDER BY \(service, environment, timestamp, log_id\)/)
  assert.match(ddl, /TTL timestamp \+ INTERVAL 90 DAY/)
  assert.match(ddl, /SETTINGS non_replicated_deduplication_window = 1000/)
  assert.deepEqual(missingFeatures(current), [])
})

test('18.16 gets the nearest older form, and every change is reported', () => {
  const { ddl, adaptations } = logsTableDdl(debian)
  assert.match(ddl, /timestamp DateTime\('UTC'\)/)
  assert.match(ddl, /service String/)
  assert.match(ddl, /_inserted_at DateTime DEFAULT now\(\)/)
  assert.doesNotMatch(ddl, /TTL|SETTINGS|LowCardinality|DateTime64/)
  assert.equal(adaptations.length, 5)
  assert.ok(adaptations.some(line => /insert_deduplication_token/.test(line)))
  assert.equal(missingFeatures(debian).length, 6)
})

test('ClickHouse errors: server codes from old and new messages; busy vs bad data', () => {
  const old = new Error('Code: 252, e.displayText() = DB::Exception: Too many parts (300), e.what() = DB::Exception')
  assert.equal(clickHouseErrorCode(old), 252)
  assert.equal(isTransientClickHouseError(old), true)
  const parse = Object.assign(new Error('Cannot parse input'), { code: '27' })
  assert.equal(isTransientClickHouseError(parse), false)
  assert.equal(isTransientClickHouseError(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' })), true)
  assert.equal(quoteClickHouseName('a`b.c'), '`a\\`b`.`c`')
})

test('Postgres errors: connection and shutdown states are transient, data errors are not', () => {
  assert.equal(isTransientPostgresError(Object.assign(new Error('x'), { code: '57P01' })), true)
  assert.equal(isTransientPostgresError(Object.assign(new Error('x'), { code: '08006' })), true)
  assert.equal(isTransientPostgresError(Object.assign(new Error('x'), { code: '40P01' })), true)
  assert.equal(isTransientPostgresError(new Error('Connection terminated unexpectedly')), true)
  assert.equal(isTransientPostgresError(Object.assign(new Error('x'), { code: '23502' })), false)
  assert.equal(isTransientPostgresError(Object.assign(new Error('x'), { code: '22P02' })), false)
  assert.equal(
    isTransientPostgresError(new Error('wrapped', { cause: Object.assign(new Error('y'), { code: 'ECONNRESET' }) })),
    true
  )
})
