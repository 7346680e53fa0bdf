/**
 * One sink run on its own, to profile where the time goes (bench/sink/main.ts compares; this one is
 * for `--cpu-prof`): fills a topic with ROWS seed 000 log rows, then sinks them into Postgres in one
 * DELIVERY mode and prints rows/s. The clock runs from `start()` to the last record committed.
 *
 *   PROFILE=.prof/sink.cpuprofile node --conditions=development bench/sink/hot-path.ts
 *
 * PROFILE: write a CPU profile of the sink run alone (not the topic fill) to that file.
 * Env: ROWS (100000), DELIVERY (idempotent | exactly-once), BATCH_SIZE (2000), PARTITIONS (3),
 * MAX_IN_FLIGHT (sink default), KAFKA_BROKERS (required), DATABASE_URL (postgres://postgres@127.0.0.1:5432/test).
 */
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import pg from 'pg'
import { PostgresWriter } from '../../src/postgres/postgres-writer.ts'
import { Sink } from '../../src/sink/sink.ts'
import { createTestTopic, uniqueName } from '../../src/testing/index.ts'
import { fillTopic, logColumns, logMapping, postgresLogsDdl, type LogEventJson } from './log-rows.ts'

const rows = Number(process.env.ROWS ?? 100_000)
const delivery = (process.env.DELIVERY ?? 'idempotent') as 'idempotent' | 'exactly-once'
const batchSize = Number(process.env.BATCH_SIZE ?? 2000)
const partitions = Number(process.env.PARTITIONS ?? 3)
const brokers = process.env.KAFKA_BROKERS?.split(',')
if (!brokers) throw new Error('KAFKA_BROKERS is required')
const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const quiet = { debug() {}, info() {}, warn() {}, error() {} }

const pool = new pg.Pool({ connectionString: url, max: 8 })
const schema = `bench_hot_${process.pid}`
await pool.query(`CREATE SCHEMA ${schema}`)
const topic = await createTestTopic({ brokers, partitions, prefix: 'kafkit.bench.sink-hot' })
try {
  await fillTopic(brokers, topic.topic, rows)
  const table = `${schema}.logs`
  await pool.query(postgresLogsDdl(table, { unique: delivery === 'idempotent' }))
  const writer = new PostgresWriter<Record<string, unknown>>({
    database: pool,
    table,
    columns: logColumns,
    delivery,
    offsetsTable: `${schema}.kafkit_offsets`,
    ...(delivery === 'idempotent' ? { key: ['log_id'] } : {})
  })
  const sink = new Sink<LogEventJson, Record<string, unknown>>({
    brokers,
    groupId: uniqueName('bench-hot'),
    topics: [topic.topic],
    batchSize,
    lingerMs: Number(process.env.LINGER_MS ?? 50),
    ...(process.env.MAX_IN_FLIGHT ? { concurrency: { limit: Number(process.env.MAX_IN_FLIGHT) } } : {}),
    writer,
    map: logMapping(),
    logger: quiet
  })
  const profiler = process.env.PROFILE ? new Session() : undefined
  if (profiler) {
    profiler.connect()
    await profiler.post('Profiler.enable')
    await profiler.post('Profiler.start')
  }
  const started = performance.now()
  await sink.start()
  while (sink.stats.records < rows) await new Promise(resolve => setTimeout(resolve, 10))
  const seconds = (performance.now() - started) / 1000
  if (profiler && process.env.PROFILE) {
    const { profile } = await profiler.post('Profiler.stop')
    await writeFile(process.env.PROFILE, JSON.stringify(profile))
    profiler.disconnect()
  }
  await sink.stop()
  const stored = Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n)
  if (stored !== rows) throw new Error(`stored ${stored} of ${rows}`)
  console.log(`${delivery} ${Math.round(rows / seconds)} rows/s (${seconds.toFixed(2)} s)`)
} finally {
  await topic.delete().catch(() => undefined)
  await pool.query(`DROP SCHEMA ${schema} CASCADE`)
  await pool.end()
}
