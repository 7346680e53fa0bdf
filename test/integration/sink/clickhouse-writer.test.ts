/**
 * ClickHouseWriter and the logs table helper against a real ClickHouse (test/helpers/clickhouse.ts
 * installs and starts Debian's clickhouse-server when none is configured). What the server lacks is
 * detected, and each detected capability is checked against the server itself (the feature works iff
 * it was detected), so neither the detection nor the documentation can drift. A retried batch
 * collapses to one row per event when read with FINAL; whether the server also drops it on arrival
 * (insert_deduplication_token) is asserted per capability.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { ClickHouseSettings } from '@clickhouse/client'
import { ClickHouseWriter } from '../../../src/clickhouse/clickhouse-writer.ts'
import {
  detectCapabilities,
  missingFeatures,
  type ClickHouseCapabilities
} from '../../../src/clickhouse/capabilities.ts'
import { createLogsTable } from '../../../src/clickhouse/logs-table.ts'
import type { SinkRecord } from '../../../src/sink/types.ts'
import { clickHouseClient, createTestDatabase, startClickHouse, type TestClickHouse } from '../../helpers/clickhouse.ts'

let server: TestClickHouse
let capabilities: ClickHouseCapabilities

before(async () => {
  server = await startClickHouse()
  const client = clickHouseClient(server.url)
  capabilities = await detectCapabilities(client)
  await client.close()
  process.stderr.write(
    `[clickhouse] server ${capabilities.version}; lacks: ${missingFeatures(capabilities).join('; ') || 'nothing'}\n`
  )
})
after(() => server.stop())

interface LogEvent extends Record<string, unknown> {
  log_id: string
  timestamp: Date
  service: string
  environment: string
  level: string
  message: string
  trace_id?: string
}

function event(i: number): LogEvent {
  return {
    log_id: `log-${i}`,
    timestamp: new Date(Date.UTC(2024, 4, 1, 12, 0, i % 60, 250)),
    service: i % 2 === 0 ? 'api-gateway' : 'billing',
    environment: 'production',
    level: 'info',
    message: `event ${i} "quoted" \\ tab\there é`,
    ...(i % 3 === 0 ? { trace_id: `trace-${i}` } : {})
  }
}

function batch(from: number, count: number, partitions = 2): SinkRecord<LogEvent>[] {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k
    return { topic: 'logs', partition: i % partitions, offset: BigInt(Math.floor(i / partitions)), row: event(i) }
  })
}

test('detected capabilities match what the server accepts', async t => {
  const { client } = await createTestDatabase(t, server.url)
  const works = async (query: string, settings: ClickHouseSettings = {}) =>
    client.command({ query, clickhouse_settings: settings }).then(
      () => true,
      () => false
    )
  assert.equal(await works('CREATE TABLE probe_dt64 (d DateTime64(3)) ENGINE = Memory'), capabilities.dateTime64)
  assert.equal(await works('SELECT now64()'), capabilities.now64)
  assert.equal(
    await works('CREATE TABLE probe_lc (s LowCardinality(String)) ENGINE = Memory'),
    capabilities.lowCardinality === 'stable'
  )
  assert.equal(
    await works('CREATE TABLE probe_ttl (d DateTime) ENGINE = MergeTree ORDER BY d TTL d + INTERVAL 1 DAY'),
    capabilities.ttl
  )
  assert.equal(await works('SELECT 1', { insert_deduplication_token: 'probe' }), capabilities.insertDeduplicationToken)
  assert.equal(
    await works(
      'CREATE TABLE probe_dedup (d DateTime) ENGINE = MergeTree ORDER BY d SETTINGS non_replicated_deduplication_window = 10'
    ),
    capabilities.nonReplicatedDeduplication
  )
})

test("seed 000's logs table: ReplacingMergeTree with log_id in the key, adapted and reported", async t => {
  const { client, database } = await createTestDatabase(t, server.url)
  const created = await createLogsTable(client, { table: `${database}.logs` })
  assert.equal(created.adaptations.length > 0, missingFeatures(capabilities).length > 0)
  const result = await client.query({
    query: `SELECT engine, sorting_key FROM system.tables WHERE database = '${database}' AND name = 'logs'`,
    format: 'JSONEachRow'
  })
  const [info] = await result.json<{ engine: string; sorting_key?: string }>()
  assert.equal(info?.engine, 'ReplacingMergeTree')
  const columns = await client.query({
    query: `SELECT name, type FROM system.columns WHERE database = '${database}' AND table = 'logs'`,
    format: 'JSONEachRow'
  })
  const types = new Map((await columns.json<{ name: string; type: string }>()).map(c => [c.name, c.type]))
  assert.equal(types.get('timestamp')?.startsWith('DateTime64'), capabilities.dateTime64)
  assert.equal(types.get('service')?.startsWith('LowCardinality'), capabilities.lowCardinality === 'stable')
  // Creating it again is a no-op.
  await createLogsTable(client, { table: `${database}.logs`, capabilities })
})

test('a retried batch is one row per event read with FINAL; token dedup where the server has it', async t => {
  const { client, database } = await createTestDatabase(t, server.url)
  await createLogsTable(client, { table: `${database}.logs`, capabilities })
  // No background merges during the test, or one could collapse the duplicates before they are counted.
  await client.command({ query: `SYSTEM STOP MERGES ${database}.logs` })
  const sink = new ClickHouseWriter<LogEvent>({ client, table: `${database}.logs` })
  t.after(() => sink.close())

  const first = await sink.write(batch(0, 200), { groupId: 'g' })
  assert.equal(first.written, 200)
  assert.equal(first.path, capabilities.insertDeduplicationToken ? 'insert+token' : 'insert')
  // The same batch again (the offset commit was lost), then the next one.
  await sink.write(batch(0, 200), { groupId: 'g' })
  await sink.write(batch(200, 100), { groupId: 'g' })

  const counts = await sink.countFinal('log_id')
  assert.equal(counts.rows, 300, 'FINAL collapses the redelivered rows')
  assert.equal(counts.distinct, 300)
  const dropsOnArrival = capabilities.insertDeduplicationToken && capabilities.nonReplicatedDeduplication
  assert.equal(counts.stored, dropsOnArrival ? 300 : 500, 'without tokens the retried block is stored again')

  // Omitted columns got their DEFAULT expressions (an explicit column list), and values round-trip.
  const rows = await client.query({
    query: `SELECT log_id, toUnixTimestamp(timestamp) AS ts, message, trace_id, toUnixTimestamp(_inserted_at) AS inserted FROM ${database}.logs FINAL WHERE log_id IN ('log-3', 'log-4') ORDER BY log_id`,
    format: 'JSONEachRow'
  })
  const stored = await rows.json<{ log_id: string; ts: string; message: string; trace_id: string; inserted: string }>()
  assert.equal(stored.length, 2)
  for (const row of stored) {
    const expected = event(Number(row.log_id.slice(4)))
    assert.equal(Number(row.ts), Math.floor(expected.timestamp.getTime() / 1000))
    assert.equal(row.message, expected.message)
    assert.equal(row.trace_id, expected.trace_id ?? '')
    assert.ok(
      Math.abs(Number(row.inserted) - Date.now() / 1000) < 600,
      `_inserted_at defaulted to now(), got ${row.inserted}`
    )
  }
})

test('deduplication "token" fails clearly on a server without tokens', async t => {
  const { client, database } = await createTestDatabase(t, server.url)
  await createLogsTable(client, { table: `${database}.logs`, capabilities })
  const sink = new ClickHouseWriter<LogEvent>({ client, table: `${database}.logs`, deduplication: 'token' })
  if (capabilities.insertDeduplicationToken) {
    assert.equal((await sink.write(batch(0, 10), { groupId: 'g' })).path, 'insert+token')
    return
  }
  await assert.rejects(sink.write(batch(0, 10), { groupId: 'g' }), (error: Error & { code: string }) => {
    assert.equal(error.code, 'KAFKIT_SINK_FEATURE_UNSUPPORTED')
    assert.match(error.message, new RegExp(`server is ${capabilities.version.replaceAll('.', '\\.')}`))
    return true
  })
})

test('a bad row is a permanent failure, an unreachable server a transient one', async t => {
  const { client, database } = await createTestDatabase(t, server.url)
  await createLogsTable(client, { table: `${database}.logs`, capabilities })
  const sink = new ClickHouseWriter<Record<string, unknown>>({ client, table: `${database}.logs` })
  const bad: SinkRecord<Record<string, unknown>>[] = [
    { topic: 'logs', partition: 0, offset: 0n, row: { ...event(1), timestamp: 'not a time' } }
  ]
  await assert.rejects(sink.write(bad, { groupId: 'g' }), (error: Error & { code: string; retryable: boolean }) => {
    assert.equal(error.code, 'KAFKIT_SINK_WRITE_FAILED')
    assert.equal(error.retryable, false)
    return true
  })
  const down = await ClickHouseWriter.connect<LogEvent>('http://127.0.0.1:1', { table: 'logs' })
  t.after(() => down.close())
  await assert.rejects(down.write(batch(0, 1), { groupId: 'g' }), (error: Error & { retryable: boolean }) => {
    assert.equal(error.retryable, true, error.message)
    assert.equal(down.isTransient(error), true)
    return true
  })
})
