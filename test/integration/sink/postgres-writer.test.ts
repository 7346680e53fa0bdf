/**
 * PostgresWriter against the real PostgreSQL: both write paths (multi-row INSERT and COPY + merge) store
 * the same values, redelivered batches are skipped (idempotent), the version upsert keeps the newest
 * row, exactly-once stores rows and offsets in one transaction and skips what was stored (also for two
 * writers racing on one partition), and failures are told apart (unreachable vs. bad row). The same
 * sink also runs on an embedded PGlite.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import { PostgresWriter } from '../../../src/postgres/postgres-writer.ts'
import { pgliteDatabase } from '../../../src/postgres/sql-database.ts'
import { ConfigError } from '../../../src/errors/kafkit-error.ts'
import type { SinkRecord } from '../../../src/sink/types.ts'
import { createTestSchema, logsTableDdl } from './postgres-schema.ts'

interface LogRow extends Record<string, unknown> {
  log_id: string
  ts: Date
  service: string
  level: string
  message: string
  attrs: Record<string, unknown> | null
  payload: Buffer | null
  version: number
}

const columns = ['log_id', 'ts', 'service', 'level', 'message', 'attrs', 'payload', 'version']

function logRow(i: number, overrides: Partial<LogRow> = {}): LogRow {
  return {
    log_id: `log-${i}`,
    ts: new Date(Date.UTC(2024, 0, 1, 0, 0, 0, i % 1000)),
    service: i % 2 === 0 ? 'api' : 'worker',
    level: 'info',
    // Characters the COPY text format must escape, and non-ASCII.
    message: `line ${i}\twith tab\nnew line \\ backslash "quote" 'single' é ☃`,
    attrs: i % 3 === 0 ? null : { i, nested: { ok: true }, list: [1, 'two'] },
    payload: i % 4 === 0 ? null : Buffer.from([0, 1, 2, 255, i % 256]),
    version: 1,
    ...overrides
  }
}

function records(
  rows: LogRow[],
  options: { topic?: string; partition?: number; from?: bigint } = {}
): SinkRecord<LogRow>[] {
  const from = options.from ?? 0n
  return rows.map((row, index) => ({
    topic: options.topic ?? 'logs',
    partition: options.partition ?? 0,
    offset: from + BigInt(index),
    row
  }))
}

const ctx = { groupId: 'g1' }

for (const bulk of ['insert', 'copy'] as const) {
  test(`idempotent (${bulk}): a redelivered batch is skipped and values round-trip`, async t => {
    const db = await createTestSchema(t)
    const table = db.qualified('logs')
    await db.query(logsTableDdl(table))
    const sink = new PostgresWriter<LogRow>({ database: db.pool, table, columns, key: ['log_id'], bulk })
    t.after(() => sink.close())

    const rows = Array.from({ length: 300 }, (_, i) => logRow(i))
    const first = await sink.write(records(rows), ctx)
    assert.deepEqual(first, { written: 300, skipped: 0, path: bulk })
    // The same batch again (a crash before the Kafka commit), plus 50 new rows.
    const again = await sink.write(records([...rows, ...Array.from({ length: 50 }, (_, i) => logRow(300 + i))]), ctx)
    assert.deepEqual(again, { written: 50, skipped: 300, path: bulk })

    const [count] = await db.query<{ n: string; d: string }>(
      `SELECT count(*) AS n, count(DISTINCT log_id) AS d FROM ${table}`
    )
    assert.deepEqual(count, { n: '350', d: '350' })
    const stored = await db.query<LogRow>(`SELECT * FROM ${table} WHERE log_id = ANY($1) ORDER BY log_id`, [
      ['log-1', 'log-3', 'log-4']
    ])
    for (const row of stored) {
      const i = Number(row.log_id.slice(4))
      const expected = logRow(i)
      assert.equal(row.message, expected.message)
      assert.equal(row.ts.getTime(), expected.ts.getTime())
      assert.deepEqual(row.attrs, expected.attrs)
      assert.deepEqual(row.payload, expected.payload)
    }
  })
}

test('a batch with the same key twice stores it once (insert and copy)', async t => {
  const db = await createTestSchema(t)
  for (const bulk of ['insert', 'copy'] as const) {
    const table = db.qualified(`dupes_${bulk}`)
    await db.query(logsTableDdl(table))
    const sink = new PostgresWriter<LogRow>({ database: db.pool, table, columns, key: ['log_id'], bulk })
    const result = await sink.write(records([logRow(1), logRow(2), logRow(1, { message: 'second copy' })]), ctx)
    assert.deepEqual(result, { written: 2, skipped: 1, path: bulk })
    const [row] = await db.query<{ message: string }>(`SELECT message FROM ${table} WHERE log_id = 'log-1'`)
    assert.equal(row?.message, logRow(1).message, 'the first one wins with DO NOTHING')
    await sink.close()
  }
})

test('upsert by version: the higher version wins, also inside one batch and with copy', async t => {
  const db = await createTestSchema(t)
  for (const bulk of ['insert', 'copy'] as const) {
    const table = db.qualified(`versions_${bulk}`)
    await db.query(logsTableDdl(table))
    const sink = new PostgresWriter<LogRow>({
      database: db.pool,
      table,
      columns,
      key: ['log_id'],
      version: 'version',
      bulk
    })
    await sink.write(records([logRow(1, { version: 5, message: 'v5' }), logRow(2, { version: 1, message: 'v1' })]), ctx)
    const result = await sink.write(
      records([
        logRow(1, { version: 4, message: 'older' }),
        logRow(2, { version: 2, message: 'v2' }),
        logRow(2, { version: 3, message: 'v3' }),
        logRow(3, { version: 1, message: 'new' })
      ]),
      ctx
    )
    assert.equal(result.written, 2, 'log-2 updated to v3, log-3 inserted')
    const rows = await db.query<{ log_id: string; message: string; version: string }>(
      `SELECT log_id, message, version FROM ${table} ORDER BY log_id`
    )
    assert.deepEqual(rows, [
      { log_id: 'log-1', message: 'v5', version: '5' },
      { log_id: 'log-2', message: 'v3', version: '3' },
      { log_id: 'log-3', message: 'new', version: '1' }
    ])
    await sink.close()
  }
})

for (const bulk of ['insert', 'copy'] as const) {
  test(`exactly-once (${bulk}): rows and offsets in one transaction, redelivery skipped without a unique key`, async t => {
    const db = await createTestSchema(t)
    const table = db.qualified('logs')
    await db.query(logsTableDdl(table, { unique: false }))
    const offsetsTable = db.qualified('kafkit_offsets')
    const sink = new PostgresWriter<LogRow>({
      database: db.pool,
      table,
      columns,
      delivery: 'exactly-once',
      offsetsTable,
      bulk
    })
    t.after(() => sink.close())

    assert.deepEqual(await sink.loadOffsets('g1', ['logs']), [])
    const rows = Array.from({ length: 100 }, (_, i) => logRow(i))
    // Partition 0 offsets 10..109 (a null row in the middle: a record that maps to no row).
    const batch = records(rows, { from: 10n })
    batch[5] = { ...batch[5]!, row: null }
    const first = await sink.write(batch, ctx)
    assert.deepEqual(first, { written: 99, skipped: 0, path: bulk })
    assert.deepEqual(await sink.loadOffsets('g1', ['logs']), [{ topic: 'logs', partition: 0, nextOffset: 110n }])

    // Redelivery overlapping the stored range (offsets 60..159): only 110..159 are new.
    const overlap = records(
      Array.from({ length: 100 }, (_, i) => logRow(50 + i)),
      { from: 60n }
    )
    const second = await sink.write(overlap, ctx)
    assert.deepEqual(second, { written: 50, skipped: 50, path: bulk })
    const [count] = await db.query<{ n: string; d: string }>(
      `SELECT count(*) AS n, count(DISTINCT log_id) AS d FROM ${table}`
    )
    assert.deepEqual(count, { n: '149', d: '149' })
    assert.deepEqual(await sink.loadOffsets('g1', ['logs', 'other']), [
      { topic: 'logs', partition: 0, nextOffset: 160n }
    ])
    // Another group's offsets are its own.
    assert.deepEqual(await sink.loadOffsets('g2', ['logs']), [])
  })
}

test('exactly-once: a failing batch stores neither rows nor offsets', async t => {
  const db = await createTestSchema(t)
  const table = db.qualified('logs')
  await db.query(logsTableDdl(table, { unique: false }))
  const offsetsTable = db.qualified('kafkit_offsets')
  const sink = new PostgresWriter<LogRow>({ database: db.pool, table, columns, delivery: 'exactly-once', offsetsTable })
  t.after(() => sink.close())
  const bad = records([logRow(1), logRow(2, { service: null as unknown as string })])
  await assert.rejects(sink.write(bad, ctx), (error: Error & { code: string; retryable: boolean }) => {
    assert.equal(error.code, 'KAFKIT_SINK_WRITE_FAILED')
    assert.equal(error.retryable, false, 'a NOT NULL violation is the data, not the database')
    assert.match(error.message, /null value in column "service"/)
    return true
  })
  const [count] = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)
  assert.equal(count?.n, '0')
  assert.deepEqual(await sink.loadOffsets('g1', ['logs']), [])
})

for (const bulk of ['insert', 'copy'] as const) {
  test(`exactly-once (${bulk}): two writers racing on one partition store every record once`, async t => {
    const db = await createTestSchema(t, { poolSize: 8 })
    const table = db.qualified('logs')
    await db.query(logsTableDdl(table, { unique: false }))
    const offsetsTable = db.qualified('kafkit_offsets')
    // copy: the one-round-trip script with its offsets guard; insert: the locked read-then-write path.
    const options = { table, columns, delivery: 'exactly-once' as const, offsetsTable, bulk }
    const a = new PostgresWriter<LogRow>({ ...options, database: db.pool })
    const b = new PostgresWriter<LogRow>({ ...options, database: db.pool })
    t.after(() => a.close())
    t.after(() => b.close())
    // A zombie (b) and the new owner (a) each write partitions 0 and 1 in order, with other batch
    // boundaries, at the same time: every record is offered twice, in overlapping ranges.
    const all = Array.from({ length: 400 }, (_, i) => logRow(i))
    const totals = { written: 0, skipped: 0 }
    const writer = async (sink: PostgresWriter<LogRow>, partition: number, size: number) => {
      for (let start = 0; start < all.length; start += size) {
        const slice = all.slice(start, start + size).map(row => ({ ...row, log_id: `${partition}-${row.log_id}` }))
        const result = await sink.write(records(slice, { partition, from: BigInt(start) }), ctx)
        totals.written += result.written
        totals.skipped += result.skipped
      }
    }
    const writes = [writer(a, 0, 100), writer(b, 0, 30), writer(a, 1, 70), writer(b, 1, 50)]
    await Promise.all(writes)
    assert.deepEqual(totals, { written: 800, skipped: 800 }, 'each record offered twice, stored once')
    const [count] = await db.query<{ n: string; d: string }>(
      `SELECT count(*) AS n, count(DISTINCT log_id) AS d FROM ${table}`
    )
    assert.deepEqual(count, { n: '800', d: '800' })
    assert.deepEqual(await a.loadOffsets('g1', ['logs']), [
      { topic: 'logs', partition: 0, nextOffset: 400n },
      { topic: 'logs', partition: 1, nextOffset: 400n }
    ])
  })
}

test('at-least-once (control): a redelivered batch is stored twice', async t => {
  const db = await createTestSchema(t)
  const table = db.qualified('logs')
  await db.query(logsTableDdl(table, { unique: false }))
  const sink = new PostgresWriter<LogRow>({
    database: db.pool,
    table,
    columns,
    delivery: 'at-least-once',
    bulk: 'copy'
  })
  t.after(() => sink.close())
  const batch = records([logRow(1), logRow(2)])
  await sink.write(batch, ctx)
  await sink.write(batch, ctx)
  const [count] = await db.query<{ n: string; d: string }>(
    `SELECT count(*) AS n, count(DISTINCT log_id) AS d FROM ${table}`
  )
  assert.deepEqual(count, { n: '4', d: '2' })
})

test('an unreachable database is a retryable write failure', async t => {
  const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/test', connectionTimeoutMillis: 2000 })
  pool.on('error', () => undefined)
  t.after(() => pool.end())
  const sink = new PostgresWriter<LogRow>({ database: pool, table: 'logs', columns, key: ['log_id'] })
  await assert.rejects(sink.write(records([logRow(1)]), ctx), (error: Error & { code: string; retryable: boolean }) => {
    assert.equal(error.code, 'KAFKIT_SINK_WRITE_FAILED')
    assert.equal(error.retryable, true)
    assert.equal(sink.isTransient(error), true)
    return true
  })
})

test('bad options fail at construction with the key and what is allowed', () => {
  const database = new pg.Pool()
  assert.throws(
    () => new PostgresWriter({ database, table: 'logs', columns }),
    (error: ConfigError) =>
      error instanceof ConfigError && /`key`/.test(error.message) && /idempotent/.test(error.message)
  )
  assert.throws(
    () => new PostgresWriter({ database, table: 'logs', columns, key: ['nope'] }),
    (error: ConfigError) => /`key.0`/.test(error.message) && /log_id/.test(error.message)
  )
  assert.throws(
    () => new PostgresWriter({ database, table: 'logs', columns, key: ['log_id'], bulk: 'fast' as 'copy' }),
    (error: ConfigError) => /`bulk`.*"fast".*"auto", "insert", "copy"/.test(error.message)
  )
  void database.end()
})

test('runs on an embedded PGlite: idempotent and exactly-once (INSERT path, no COPY)', async t => {
  const lite = new PGlite()
  t.after(() => lite.close())
  await lite.exec(`${logsTableDdl('logs')}; ${logsTableDdl('plain', { unique: false })}`)
  const database = pgliteDatabase(lite)
  const idempotent = new PostgresWriter<LogRow>({
    database,
    table: 'logs',
    columns,
    key: ['log_id'],
    bulk: 'auto',
    copyMinRows: 1
  })
  const rows = Array.from({ length: 20 }, (_, i) => logRow(i))
  assert.deepEqual(await idempotent.write(records(rows), ctx), { written: 20, skipped: 0, path: 'insert' })
  assert.deepEqual(await idempotent.write(records(rows), ctx), { written: 0, skipped: 20, path: 'insert' })
  const exactly = new PostgresWriter<LogRow>({ database, table: 'plain', columns, delivery: 'exactly-once' })
  await exactly.write(records(rows), ctx)
  assert.deepEqual(await exactly.write(records(rows), ctx), { written: 0, skipped: 20, path: 'none' })
  assert.deepEqual(await exactly.loadOffsets('g1', ['logs']), [{ topic: 'logs', partition: 0, nextOffset: 20n }])
  const result = await lite.query<{ n: number }>('SELECT count(*)::int AS n FROM plain')
  assert.equal(result.rows[0]?.n, 20)
  const stored = await lite.query<{ message: string; payload: Uint8Array | null }>(
    `SELECT message, payload FROM logs WHERE log_id = 'log-1'`
  )
  assert.equal(stored.rows[0]?.message, logRow(1).message)
  assert.deepEqual(Buffer.from(stored.rows[0]?.payload ?? []), logRow(1).payload)
})
