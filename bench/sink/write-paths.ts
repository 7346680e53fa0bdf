/**
 * Which Postgres write path is faster at which batch size: multi-row INSERT ... ON CONFLICT vs COPY
 * into a staging table + INSERT ... SELECT ... ON CONFLICT, both through PostgresWriter (idempotent and
 * exactly-once), on seed 000 log rows. No Kafka: this isolates the database write. Its result sets
 * PostgresWriter's `copyMinRows` default. Writes bench/results/sink-paths.json.
 *
 *   node_modules/.bin/node --conditions=development bench/sink/write-paths.ts   (ROWS=40000 by default)
 */
import { mkdir, writeFile } from 'node:fs/promises'
import pg from 'pg'
import { PostgresWriter } from '../../src/postgres/postgres-writer.ts'
import type { SinkRecord } from '../../src/sink/types.ts'
import { logColumns, logRowAt, postgresLogsDdl, type PgLogRow } from './log-rows.ts'

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const totalRows = Number(process.env.ROWS ?? 40_000)
const batchSizes = (process.env.BATCH_SIZES ?? '100,500,1000,2000,5000,10000').split(',').map(Number)

const pool = new pg.Pool({ connectionString: url, max: 2 })
const schema = `bench_paths_${process.pid}`
await pool.query(`CREATE SCHEMA ${schema}`)
const results: { delivery: string; path: string; batchSize: number; rowsPerSecond: number }[] = []
try {
  for (const delivery of ['idempotent', 'exactly-once'] as const) {
    for (const batchSize of batchSizes) {
      for (const bulk of ['insert', 'copy'] as const) {
        const table = `${schema}.logs_${bulk}_${batchSize}_${delivery.replace('-', '_')}`
        await pool.query(postgresLogsDdl(table, { unique: delivery === 'idempotent' }))
        const sink = new PostgresWriter<PgLogRow>({
          database: pool,
          table,
          columns: logColumns,
          delivery,
          bulk,
          offsetsTable: `${schema}.offsets`,
          ...(delivery === 'idempotent' ? { key: ['log_id'] } : {})
        })
        const started = performance.now()
        for (let from = 0; from < totalRows; from += batchSize) {
          const batch: SinkRecord<PgLogRow>[] = []
          for (let i = from; i < Math.min(totalRows, from + batchSize); i++) {
            batch.push({ topic: 'logs', partition: 0, offset: BigInt(i), row: logRowAt(i) })
          }
          await sink.write(batch, { groupId: `bench-${table}` })
        }
        const seconds = (performance.now() - started) / 1000
        const rowsPerSecond = Math.round(totalRows / seconds)
        results.push({ delivery, path: bulk, batchSize, rowsPerSecond })
        process.stdout.write(
          `${delivery.padEnd(13)} ${bulk.padEnd(7)} batch ${String(batchSize).padStart(6)}: ${rowsPerSecond} rows/s\n`
        )
        await sink.close()
      }
    }
  }
} finally {
  await pool.query(`DROP SCHEMA ${schema} CASCADE`)
  await pool.end()
}
await mkdir('bench/results', { recursive: true })
await writeFile('bench/results/sink-paths.json', `${JSON.stringify({ totalRows, results }, null, 2)}\n`)
