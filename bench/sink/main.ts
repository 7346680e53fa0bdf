/**
 * `npm run bench:sink`: rows per second from Kafka into Postgres through the sink runner, idempotent
 * (ON CONFLICT on log_id) and exactly-once (rows + offsets in one transaction), against the ceiling:
 * COPY of the same rows straight into Postgres in the same run (no Kafka, no conflict handling). Each
 * sink run consumes the whole topic with a fresh group into a fresh table; its clock starts at
 * `start()` and stops when the last record is committed. Writes bench/results/sink.json with
 * `ratios` `idempotent/copy` and `exactlyOnce/copy`, plus `consumeOnly/copy`: reading and decoding the
 * same records from Kafka with no database at all, the bound no sink can pass.
 *
 * Env: ROWS (default 100000), BATCH_SIZE (default 2000), KAFKA_BROKERS (else the local Kafka is
 * started), DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { Consumer, MessagesStreamModes, Producer, ProduceAcks } from '@platformatic/kafka'
import pg from 'pg'
import { Sink } from '../../src/sink/sink.ts'
import { PostgresSink } from '../../src/postgres/postgres-sink.ts'
import { copyFromStdin } from '../../src/postgres/copy-from.ts'
import { copyLine } from '../../src/postgres/sql-text.ts'
import { createTestTopic, kafkaStatus, startKafka, stopKafka, uniqueName } from '../../src/testing/index.ts'
import { logColumns, logRowAt, postgresLogsDdl, type PgLogRow } from './log-rows.ts'

const rows = Number(process.env.ROWS ?? 100_000)
const batchSize = Number(process.env.BATCH_SIZE ?? 2000)
const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const quiet = { debug() {}, info() {}, warn() {}, error() {} }

let brokers = process.env.KAFKA_BROKERS?.split(',')
let startedHere = false
if (!brokers) {
  startedHere = !(await kafkaStatus())?.nodes.every(n => n.running)
  brokers = (await startKafka({ log: line => console.error(line) })).bootstrapServers
}
const pool = new pg.Pool({ connectionString: url, max: 4 })
const schema = `bench_sink_${process.pid}`
await pool.query(`CREATE SCHEMA ${schema}`)
const topic = await createTestTopic({ bootstrapServers: brokers, partitions: 3, prefix: 'kafkit.bench.sink' })

interface Figure {
  rows: number
  seconds: number
  rowsPerSecond: number
}
const figure = (seconds: number): Figure => ({ rows, seconds, rowsPerSecond: Math.round(rows / seconds) })

try {
  // The topic: the same rows as JSON, keyed by service.
  const producer = new Producer({
    clientId: 'kafkit-bench',
    bootstrapBrokers: brokers,
    idempotent: true,
    acks: ProduceAcks.ALL
  })
  for (let from = 0; from < rows; from += 2000) {
    const messages = []
    for (let i = from; i < Math.min(rows, from + 2000); i++) {
      const row = logRowAt(i)
      messages.push({ topic: topic.topic, key: Buffer.from(row.service), value: Buffer.from(JSON.stringify(row)) })
    }
    await producer.send({ messages })
  }
  await producer.close()

  // The ceiling: COPY of the same rows straight into an empty table, one statement.
  const copyTable = `${schema}.copy_logs`
  await pool.query(postgresLogsDdl(copyTable, { unique: true }))
  const client = await pool.connect()
  let copy: Figure
  try {
    const started = performance.now()
    const lines = function* () {
      for (let i = 0; i < rows; i++) yield copyLine(logRowAt(i), logColumns)
    }
    const copied = await copyFromStdin(
      client,
      `COPY ${copyTable} (${logColumns.map(c => `"${c}"`).join(', ')}) FROM STDIN`,
      lines()
    )
    copy = figure((performance.now() - started) / 1000)
    if (copied !== rows) throw new Error(`COPY stored ${copied} of ${rows}`)
  } finally {
    client.release()
  }
  console.log(`copy          ${copy.rowsPerSecond} rows/s (${copy.seconds.toFixed(2)} s)`)

  // The other bound: reading the same records from Kafka and decoding them, with no database at all.
  const consumer = new Consumer({
    clientId: 'kafkit-bench',
    groupId: uniqueName('bench-read'),
    bootstrapBrokers: brokers,
    maxWaitTime: 50
  })
  let consumeOnly: Figure
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
    consumeOnly = figure((performance.now() - started) / 1000)
    await stream.close()
  } finally {
    await consumer.close(true)
  }
  console.log(
    `kafka read    ${consumeOnly.rowsPerSecond} rows/s (${consumeOnly.seconds.toFixed(2)} s) consume + JSON.parse, no database`
  )

  const runSink = async (
    delivery: 'idempotent' | 'exactly-once'
  ): Promise<Figure & { paths: Record<string, number> }> => {
    const table = `${schema}.${delivery === 'idempotent' ? 'idempotent' : 'exactly_once'}_logs`
    await pool.query(postgresLogsDdl(table, { unique: delivery === 'idempotent' }))
    const writer = new PostgresSink<PgLogRow>({
      database: pool,
      table,
      columns: logColumns,
      delivery,
      offsetsTable: `${schema}.kafkit_offsets`,
      ...(delivery === 'idempotent' ? { key: ['log_id'] } : {})
    })
    const sink = new Sink<PgLogRow, PgLogRow>({
      brokers: brokers ?? [],
      groupId: uniqueName('bench-sink'),
      topics: [topic.topic],
      batchSize,
      lingerMs: 50,
      writer,
      map: message => ({ ...message.value, timestamp: new Date(message.value.timestamp) }),
      logger: quiet
    })
    const paths: Record<string, number> = {}
    sink.on('batch', report => {
      paths[report.path] = (paths[report.path] ?? 0) + 1
    })
    const started = performance.now()
    await sink.start()
    while (sink.stats.records < rows) await new Promise(resolve => setTimeout(resolve, 20))
    const seconds = (performance.now() - started) / 1000
    await sink.stop()
    const stored = Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n)
    if (stored !== rows) throw new Error(`${delivery}: stored ${stored} of ${rows}`)
    return { ...figure(seconds), paths }
  }
  const idempotent = await runSink('idempotent')
  console.log(
    `idempotent    ${idempotent.rowsPerSecond} rows/s (${idempotent.seconds.toFixed(2)} s) batches by path ${JSON.stringify(idempotent.paths)}`
  )
  const exactlyOnce = await runSink('exactly-once')
  console.log(
    `exactly-once  ${exactlyOnce.rowsPerSecond} rows/s (${exactlyOnce.seconds.toFixed(2)} s) batches by path ${JSON.stringify(exactlyOnce.paths)}`
  )

  const ratio = (a: Figure) => Math.round((a.rowsPerSecond / copy.rowsPerSecond) * 100) / 100
  const result = {
    rows,
    batchSize,
    copy,
    consumeOnly,
    idempotent,
    exactlyOnce,
    ratios: {
      'idempotent/copy': ratio(idempotent),
      'exactlyOnce/copy': ratio(exactlyOnce),
      'consumeOnly/copy': ratio(consumeOnly)
    }
  }
  console.log(`ratios        ${JSON.stringify(result.ratios)} (target >= 0.5)`)
  await mkdir('bench/results', { recursive: true })
  await writeFile('bench/results/sink.json', `${JSON.stringify(result, null, 2)}\n`)
} finally {
  await topic.delete().catch(() => undefined)
  await pool.query(`DROP SCHEMA ${schema} CASCADE`)
  await pool.end()
  if (startedHere) await stopKafka()
}
