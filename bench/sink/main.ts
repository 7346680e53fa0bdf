/**
 * `npm run bench:sink`: rows per second from Kafka into Postgres through the sink runner, idempotent
 * (ON CONFLICT on log_id) and exactly-once (rows + offsets in one transaction), against the ceiling:
 * COPY of the same rows straight into Postgres in the same run (no Kafka, no conflict handling). Each
 * sink run consumes the whole topic with a fresh group into a fresh table; its clock starts at
 * `start()` and stops when the last record is committed. Also measured: `consumeOnly`, reading and
 * decoding the same records from Kafka with no database at all (raw @platformatic/kafka stream +
 * JSON.parse), the bound no sink can pass.
 *
 * The machine is shared, so every contender runs between two COPYs and is compared with their mean,
 * in ROUNDS rounds, and every ratio is the median of its per-round ratios. Writes
 * bench/results/sink.json with `ratios` `idempotent/copy`, `exactlyOnce/copy` and `consumeOnly/copy`.
 *
 * The sink maps each event to its row with MAP=row (default: the JSON event is the row, Postgres parses
 * the ISO timestamp, like the COPY ceiling's) or MAP=date (the timestamp parsed into a Date in
 * JavaScript first), see log-rows.ts.
 *
 * Method (bench/lib/pinning.ts): the broker JVM runs on one core, this process (the sink, and the COPY
 * client) on the other; Postgres is the machine's own service and is not pinned. The targets are the
 * median per-round ratios with their spread (bench/lib/targets.ts), `targets` in the results file.
 *
 * Env: ROWS (default 300000), BATCH_SIZE (default 2000), MAX_IN_FLIGHT (default: the sink's), MAP, ROUNDS
 * (default 5), KAFKA_BROKERS (an existing cluster, not pinned; else the benchmarks' local Kafka), the
 * pinning variables of bench/lib/pinning.ts, DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Consumer, MessagesStreamModes } from '@platformatic/kafka'
import pg from 'pg'
import { Sink } from '../../src/sink/sink.ts'
import { PostgresWriter } from '../../src/postgres/postgres-writer.ts'
import { copyFromStdin } from '../../src/postgres/copy-from.ts'
import { copyLine } from '../../src/postgres/sql-text.ts'
import { createTestTopic, uniqueName } from '../../src/testing/index.ts'
import { benchKafka } from '../lib/pinning.ts'
import { codeState, entry, printTargets, toJson } from '../lib/targets.ts'
import { fillTopic, logColumns, logRowAt, logMapping, postgresLogsDdl, type LogEventJson } from './log-rows.ts'

const rows = Number(process.env.ROWS ?? 300_000)
const batchSize = Number(process.env.BATCH_SIZE ?? 2000)
const maxInFlight = process.env.MAX_IN_FLIGHT ? Number(process.env.MAX_IN_FLIGHT) : undefined
const rounds = Number(process.env.ROUNDS ?? 5)
const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const quiet = { debug() {}, info() {}, warn() {}, error() {} }

const kafka = await benchKafka()
const bootstrap = kafka.bootstrap
const startedAt = new Date()
const pool = new pg.Pool({ connectionString: url, max: 8 })
// Postgres is shared: another session may terminate connections. An idle client that dies is logged and
// replaced (without a listener it would end the process); a run it breaks fails its round only.
pool.on('error', error => console.error(`postgres pool: ${error.message}`))
const failures: { round: number; error: string }[] = []
const schema = `bench_sink_${process.pid}`
await pool.query(`CREATE SCHEMA ${schema}`)
const topic = await createTestTopic({ brokers: bootstrap, partitions: 3, prefix: 'kafkit.bench.sink' })

interface Figure {
  rows: number
  seconds: number
  rowsPerSecond: number
}
const figure = (seconds: number): Figure => ({ rows, seconds, rowsPerSecond: Math.round(rows / seconds) })
const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}
let tables = 0

/** The ceiling: COPY of the same rows straight into an empty table with log_id as primary key, one statement. */
async function copyRun(): Promise<Figure> {
  const table = `${schema}.copy_${tables++}`
  await pool.query(postgresLogsDdl(table, { unique: true }))
  const client = await pool.connect()
  try {
    const started = performance.now()
    const lines = function* () {
      for (let i = 0; i < rows; i++) yield copyLine(logRowAt(i), logColumns)
    }
    const copied = await copyFromStdin(
      client,
      `COPY ${table} (${logColumns.map(c => `"${c}"`).join(', ')}) FROM STDIN`,
      lines()
    )
    const result = figure((performance.now() - started) / 1000)
    if (copied !== rows) throw new Error(`COPY stored ${copied} of ${rows}`)
    return result
  } finally {
    client.release()
  }
}

/** The other bound: reading the same records from Kafka and decoding them, with no database at all. */
async function consumeOnlyRun(): Promise<Figure> {
  const consumer = new Consumer({
    clientId: 'kafkit-bench',
    groupId: uniqueName('bench-read'),
    bootstrapBrokers: bootstrap,
    maxWaitTime: 50
  })
  try {
    const started = performance.now()
    const stream = await consumer.consume({
      topics: [topic.topic],
      mode: MessagesStreamModes.EARLIEST,
      autocommit: false
    })
    let seen = 0
    await new Promise<void>(resolve => {
      stream.on('data', (message: { value: Buffer }) => {
        JSON.parse(message.value.toString('utf8'))
        if (++seen === rows) resolve()
      })
    })
    const result = figure((performance.now() - started) / 1000)
    await stream.close()
    return result
  } finally {
    await consumer.close(true)
  }
}

async function sinkRun(delivery: 'idempotent' | 'exactly-once'): Promise<Figure & { paths: Record<string, number> }> {
  const table = `${schema}.${delivery === 'idempotent' ? 'idempotent' : 'exactly_once'}_${tables++}`
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
    brokers: bootstrap,
    groupId: uniqueName('bench-sink'),
    topics: [topic.topic],
    batchSize,
    lingerMs: Number(process.env.LINGER_MS ?? 50),
    ...(maxInFlight === undefined ? {} : { concurrency: { limit: maxInFlight } }),
    writer,
    map: logMapping(),
    logger: quiet
  })
  const paths: Record<string, number> = {}
  sink.on('batch', report => {
    paths[report.path] = (paths[report.path] ?? 0) + 1
  })
  const started = performance.now()
  await sink.start()
  while (sink.stats.records < rows) await new Promise(resolve => setTimeout(resolve, 10))
  const seconds = (performance.now() - started) / 1000
  await sink.stop()
  const stored = Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n)
  if (stored !== rows) throw new Error(`${delivery}: stored ${stored} of ${rows}`)
  await pool.query(`DROP TABLE ${table}`)
  return { ...figure(seconds), paths }
}

try {
  await fillTopic(bootstrap, topic.topic, rows)
  interface Round {
    copy: Figure[]
    consumeOnly: Figure
    idempotent: Figure & { paths: Record<string, number> }
    exactlyOnce: Figure & { paths: Record<string, number> }
    ratios: { 'idempotent/copy': number; 'exactlyOnce/copy': number; 'consumeOnly/copy': number }
  }
  const runs: Round[] = []
  const show = (name: string, run: Figure, extra = '') =>
    console.log(
      `  ${name.padEnd(13)} ${String(run.rowsPerSecond).padStart(7)} rows/s (${run.seconds.toFixed(2)} s)${extra}`
    )
  // Each contender runs between two COPYs and is compared with their mean, so load that comes and goes
  // on the shared machine hits both sides of a ratio alike.
  const against = (run: Figure, before: Figure, after: Figure) =>
    run.rowsPerSecond / ((before.rowsPerSecond + after.rowsPerSecond) / 2)
  for (let round = 1; round <= rounds; round++) {
    console.log(`round ${round}/${rounds}`)
    try {
      runs.push(await oneRound())
    } catch (error) {
      failures.push({ round, error: String(error) })
      console.error(`  round ${round} FAILED: ${String(error)}`)
    }
  }
  async function oneRound(): Promise<Round> {
    const copy = [await copyRun()]
    show('copy', copy[0] as Figure)
    const idempotent = await sinkRun('idempotent')
    show('idempotent', idempotent, ` batches by path ${JSON.stringify(idempotent.paths)}`)
    copy.push(await copyRun())
    show('copy', copy[1] as Figure)
    const exactlyOnce = await sinkRun('exactly-once')
    show('exactly-once', exactlyOnce, ` batches by path ${JSON.stringify(exactlyOnce.paths)}`)
    copy.push(await copyRun())
    show('copy', copy[2] as Figure)
    const consumeOnly = await consumeOnlyRun()
    show('kafka read', consumeOnly, ' consume + JSON.parse, no database')
    copy.push(await copyRun())
    show('copy', copy[3] as Figure)
    const [c0, c1, c2, c3] = copy as [Figure, Figure, Figure, Figure]
    const ratios = {
      'idempotent/copy': against(idempotent, c0, c1),
      'exactlyOnce/copy': against(exactlyOnce, c1, c2),
      'consumeOnly/copy': against(consumeOnly, c2, c3)
    }
    console.log(
      `  ratios        ${JSON.stringify(ratios, (_key, v: unknown) => (typeof v === 'number' ? Math.round(v * 100) / 100 : v))}`
    )
    return { copy, consumeOnly, idempotent, exactlyOnce, ratios }
  }
  const ratio = (name: keyof Round['ratios']) => Math.round(median(runs.map(run => run.ratios[name])) * 100) / 100
  const medianRate = (pick: (run: Round) => number) => Math.round(median(runs.map(pick)))
  const targets = {
    'sink.idempotent/copy': entry(
      'sink.idempotent/copy',
      runs.map(run => run.ratios['idempotent/copy'])
    ),
    'sink.exactlyOnce/copy': entry(
      'sink.exactlyOnce/copy',
      runs.map(run => run.ratios['exactlyOnce/copy'])
    )
  }
  const result = {
    benchmark: 'sink',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    code: codeState(),
    placement: kafka.placement,
    targets,
    failures,
    rows,
    batchSize,
    maxInFlight: maxInFlight ?? 'default',
    mapping: process.env.MAP ?? 'row',
    rounds,
    rowsPerSecond: {
      copy: medianRate(run => median(run.copy.map(c => c.rowsPerSecond))),
      consumeOnly: medianRate(run => run.consumeOnly.rowsPerSecond),
      idempotent: medianRate(run => run.idempotent.rowsPerSecond),
      exactlyOnce: medianRate(run => run.exactlyOnce.rowsPerSecond)
    },
    ratios: {
      'idempotent/copy': ratio('idempotent/copy'),
      'exactlyOnce/copy': ratio('exactlyOnce/copy'),
      'consumeOnly/copy': ratio('consumeOnly/copy')
    },
    runs
  }
  console.log(`medians       ${JSON.stringify(result.rowsPerSecond)}`)
  console.log(`ratios        ${JSON.stringify(result.ratios)} (median of ${rounds} rounds)`)
  console.log('\ntargets:')
  printTargets(targets, line => console.log(`  ${line}`))
  const dir = join(import.meta.dirname, '..', 'results')
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, 'sink.json'), toJson(result))
  console.log(`\nwrote ${join(dir, 'sink.json')}`)
  if (failures.length > 0) {
    console.error(`${failures.length} round(s) failed; the ratios leave them out`)
    process.exitCode = 1
  }
} finally {
  await topic.delete().catch(() => undefined)
  await pool.query(`DROP SCHEMA ${schema} CASCADE`)
  await pool.end()
  await kafka.release()
}
