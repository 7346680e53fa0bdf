/**
 * Seed 000's log pipeline, end to end on Kafkit: start the local Kafka (or use KAFKA_BROKERS), create
 * the topics, produce log events (a configurable count, a few of them malformed), and sink them with
 * the sink runner: into Postgres at DATABASE_URL (idempotent on `log_id`), or into an embedded
 * PostgreSQL (PGlite) when none is configured, and also into ClickHouse (seed 000's ReplacingMergeTree
 * `logs` table) when CLICKHOUSE_URL is set. Malformed events go to a dead-letter topic. It ends with a
 * reconciliation per sink: produced = stored + dead-lettered, 0 duplicates, and the throughput; the
 * exit code is 1 when anything does not add up.
 *
 *   npm run example:log-pipeline -- --count 50000 --bad-every 1000
 */
import { parseArgs } from 'node:util'
import { MultiBar, Presets } from 'cli-progress'
import { Producer, Sink, bytesSerde, type ConsumedMessage, type SinkWriter } from 'kafkit'
import { PostgresWriter, pgliteDatabase, type SqlDatabase } from 'kafkit/postgres'
import { createTestTopic, uniqueName, useKafka } from 'kafkit/testing'
import { generateLogEvent, type LogEvent } from './log-events.ts'

const { values } = parseArgs({
  options: { count: { type: 'string', default: '20000' }, 'bad-every': { type: 'string', default: '500' } }
})
const total = Number(values.count)
const badEvery = Number(values['bad-every'])
if (!Number.isInteger(total) || total < 1)
  throw new Error(`--count must be a positive whole number, got "${values.count}"`)
if (!Number.isInteger(badEvery) || badEvery < 0) {
  throw new Error(`--bad-every must be 0 (none) or a positive whole number, got "${values['bad-every']}"`)
}
const quiet = { debug() {}, info() {}, warn() {}, error() {} }

const kafka = await useKafka({ log: line => console.error(line) })
const brokers = kafka.brokers
console.log(`Kafka: ${brokers.join(',')}`)
const runId = uniqueName('run')

// Topics of this run: the raw logs (deleted at the end) and one dead-letter topic per sink (kept).
const raw = await createTestTopic({ brokers, partitions: 3, prefix: 'kafkit.logs.raw' })
const dlqPostgres = await createTestTopic({
  brokers,
  partitions: 1,
  prefix: 'kafkit.logs.dlq-postgres'
})
const topics = [raw, dlqPostgres]

/** Seed 000's log event as a Postgres row; a malformed event (no log_id, bad level) throws → DLQ. */
interface LogRow extends Record<string, unknown> {
  log_id: string
  run_id: string
  timestamp: Date
  service: string
  environment: string
  level: string
  message: string
  trace_id: string
  user_id: string
  request_id: string
  stack_trace: string
}
const levels = new Set(['debug', 'info', 'warn', 'error'])
function toRow(message: ConsumedMessage<LogEvent>): LogRow {
  const event = message.value
  if (typeof event?.log_id !== 'string' || event.log_id === '') throw new Error('log event without log_id')
  if (!levels.has(event.level)) throw new Error(`unknown level ${JSON.stringify(event.level)}`)
  const timestamp = new Date(event.timestamp)
  if (Number.isNaN(timestamp.getTime())) throw new Error(`bad timestamp ${JSON.stringify(event.timestamp)}`)
  return {
    log_id: event.log_id,
    run_id: runId,
    timestamp,
    service: event.service,
    environment: event.environment,
    level: event.level,
    message: event.message,
    trace_id: event.trace_id ?? '',
    user_id: event.user_id ?? '',
    request_id: event.request_id ?? '',
    stack_trace: event.stack_trace ?? ''
  }
}
const columns = [
  'log_id',
  'run_id',
  'timestamp',
  'service',
  'environment',
  'level',
  'message',
  'trace_id',
  'user_id',
  'request_id',
  'stack_trace'
]

// Postgres: DATABASE_URL, or an embedded PGlite.
let database: SqlDatabase
let count: (sql: string, params: unknown[]) => Promise<number>
let where: string
if (process.env.DATABASE_URL) {
  const { default: pg } = await import('pg')
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 4 })
  const { pgPoolDatabase } = await import('kafkit/postgres')
  database = pgPoolDatabase(pool, { owned: true })
  count = async (sql, params) => Number((await pool.query<{ n: string }>(sql, params)).rows[0]?.n ?? 0)
  where = `Postgres at ${process.env.DATABASE_URL.replace(/\/\/[^@/]*@/, '//***@')}`
} else {
  const { PGlite } = await import('@electric-sql/pglite')
  const lite = new PGlite()
  database = pgliteDatabase(lite, { owned: true })
  count = async (sql, params) => Number((await lite.query<{ n: number | string }>(sql, params)).rows[0]?.n ?? 0)
  where = 'embedded PGlite (set DATABASE_URL for a real Postgres)'
}
await database.withSession(session =>
  session.query(`CREATE TABLE IF NOT EXISTS log_pipeline_logs (
    log_id text PRIMARY KEY, run_id text NOT NULL, timestamp timestamptz NOT NULL, service text NOT NULL,
    environment text NOT NULL, level text NOT NULL, message text NOT NULL, trace_id text NOT NULL DEFAULT '',
    user_id text NOT NULL DEFAULT '', request_id text NOT NULL DEFAULT '', stack_trace text NOT NULL DEFAULT '')`)
)
console.log(`Postgres sink: ${where}, table log_pipeline_logs`)

interface Target {
  name: string
  sink: Sink<LogEvent, Record<string, unknown>>
  writer: SinkWriter<Record<string, unknown>>
  stored: () => Promise<{ rows: number; distinct: number }>
}
const targets: Target[] = []
const sinkOptions = {
  brokers,
  topics: [raw.topic],
  batchSize: 1000,
  lingerMs: 100,
  errorsTolerance: 'all' as const,
  logger: quiet
}

const postgresWriter = new PostgresWriter<Record<string, unknown>>({
  database,
  table: 'log_pipeline_logs',
  columns,
  key: ['log_id']
})
targets.push({
  name: 'postgres',
  writer: postgresWriter,
  sink: new Sink<LogEvent, Record<string, unknown>>({
    ...sinkOptions,
    groupId: `kafkit.log-pipeline.postgres.${runId}`,
    dlqTopic: dlqPostgres.topic,
    writer: postgresWriter,
    map: toRow
  }),
  stored: async () => ({
    rows: await count('SELECT count(*) AS n FROM log_pipeline_logs WHERE run_id = $1', [runId]),
    distinct: await count('SELECT count(DISTINCT log_id) AS n FROM log_pipeline_logs WHERE run_id = $1', [runId])
  })
})

if (process.env.CLICKHOUSE_URL) {
  const { ClickHouseWriter, createLogsTable } = await import('kafkit/clickhouse')
  const { createClient, ClickHouseLogLevel } = await import('@clickhouse/client')
  const client = createClient({ url: process.env.CLICKHOUSE_URL, log: { level: ClickHouseLogLevel.OFF } })
  const table = `logs_${runId.replaceAll('-', '_')}`
  const created = await createLogsTable(client, { table })
  console.log(`ClickHouse sink: ${process.env.CLICKHOUSE_URL} ${created.capabilities.version}, table ${table}`)
  for (const line of created.adaptations) console.log(`  adapted: ${line}`)
  const dlqClickHouse = await createTestTopic({
    brokers,
    partitions: 1,
    prefix: 'kafkit.logs.dlq-clickhouse'
  })
  topics.push(dlqClickHouse)
  const writer = new ClickHouseWriter<Record<string, unknown>>({ client, table })
  const seedColumns = new Set([
    'log_id',
    'timestamp',
    'service',
    'environment',
    'level',
    'message',
    'trace_id',
    'user_id',
    'request_id',
    'stack_trace'
  ])
  targets.push({
    name: 'clickhouse',
    writer,
    sink: new Sink<LogEvent, Record<string, unknown>>({
      ...sinkOptions,
      groupId: `kafkit.log-pipeline.clickhouse.${runId}`,
      dlqTopic: dlqClickHouse.topic,
      writer,
      map: message => Object.fromEntries(Object.entries(toRow(message)).filter(([key]) => seedColumns.has(key)))
    }),
    stored: async () => {
      const counts = await writer.countFinal('log_id')
      return { rows: counts.rows, distinct: counts.distinct }
    }
  })
}

// Bars on a terminal; in CI logs (no TTY) the summary alone says what happened.
const bars = process.stderr.isTTY
  ? new MultiBar({ format: ' {name} [{bar}] {value}/{total}', hideCursor: true }, Presets.shades_classic)
  : undefined
const producedBar = bars?.create(total, 0, { name: 'produced'.padEnd(10) })
const sinkBars = targets.map(target => bars?.create(total, 0, { name: target.name.padEnd(10) }))

const started = performance.now()
for (const [index, target] of targets.entries()) {
  target.sink.on('batch', () => sinkBars[index]?.update(target.sink.stats.records))
  await target.sink.start()
}

// Kafkit's producer with its defaults (idempotent, acks all); the values are ready-made bytes.
const producer = new Producer<Buffer>({
  brokers,
  clientId: 'kafkit-log-pipeline',
  topic: raw.topic,
  valueSerde: bytesSerde,
  env: {}
})
let bad = 0
for (let sent = 0; sent < total;) {
  const size = Math.min(1000, total - sent)
  const messages = []
  for (let i = sent; i < sent + size; i++) {
    const { key, value, malformed } = generateLogEvent(runId, i, badEvery)
    if (malformed) bad++
    messages.push({ key, value })
  }
  for (const outcome of await producer.sendBatch(messages)) if (!outcome.ok) throw outcome.error
  sent += size
  producedBar?.update(sent)
}
await producer.close()

// Wait until every sink has settled every record (stored or dead-lettered), at most two minutes.
const deadline = Date.now() + 120_000
while (Date.now() < deadline && targets.some(target => target.sink.stats.records < total)) {
  await new Promise(resolve => setTimeout(resolve, 100))
}
const seconds = (performance.now() - started) / 1000
bars?.stop()

let ok = true
console.log(`\nReconciliation (run ${runId}, topic ${raw.topic})`)
console.log(`  produced        ${total} (${total - bad} good, ${bad} malformed)`)
for (const target of targets) {
  const stored = await target.stored()
  const stats = target.sink.stats
  const lag = await target.sink.lag()
  const duplicates = stored.rows - stored.distinct
  const balanced = stored.distinct + stats.deadLettered === total && duplicates === 0 && lag === 0
  ok &&= balanced
  console.log(
    `  ${target.name.padEnd(15)} stored ${stored.distinct} + dead-lettered ${stats.deadLettered} = ${stored.distinct + stats.deadLettered}; duplicates ${duplicates}; lag ${lag}; breaker trips ${stats.breakerTrips}: ${balanced ? 'balanced' : 'NOT BALANCED'}`
  )
  await target.sink.stop()
  await target.writer.close()
}
console.log(`  throughput      ${Math.round(total / seconds)} events/s produced and sunk (${seconds.toFixed(2)} s)`)
console.log(`  all accounted for: ${ok ? 'yes' : 'NO'}`)
// The raw topic goes; the dead-letter topics stay, to look at with the DLQ commands.
await raw.delete().catch(() => undefined)
const dlqTopics = topics.filter(topic => topic !== raw).map(topic => topic.topic)
console.log(`\nThe malformed events are in ${dlqTopics.join(' and ')}:`)
const local = brokers.join(',') === '127.0.0.1:9092'
for (const topic of dlqTopics)
  console.log(`  npx kafkit dlq list ${topic}${local ? '' : ` --brokers ${brokers.join(',')}`}`)
await kafka.release()
if (!ok) process.exitCode = 1
