/**
 * The inbox under fire: a consumer process (inbox-worker.ts) is SIGKILLed again and again while it
 * applies events whose effects (a row per event, a counter) live in PostgreSQL, and some events are
 * sent twice with the same event id. With the inbox, each event's effect is applied exactly once: the
 * counter equals the number of distinct events and no event has two effect rows. The control run, the
 * same worker without the inbox, must apply some effects twice.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { test, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { message } from '../../../src/message/builder.ts'
import { Inbox } from '../../../src/postgres/inbox.ts'
import { newEventId } from '../../../src/message/uuid.ts'
import { Producer } from '../../../src/producer/producer.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers, databaseUrl } from '../../helpers/env.ts'
import { sleep, waitFor } from '../../helpers/wait.ts'

const events = Number(process.env.INBOX_KILL_EVENTS ?? 3000)
const kills = Number(process.env.INBOX_KILLS ?? 10)
const workerFile = fileURLToPath(new URL('./inbox-worker.ts', import.meta.url))

interface Setup {
  topic: string
  pool: pg.Pool
  env: Record<string, string>
  start: () => { child: ChildProcess; exited: Promise<unknown> }
  produce: (count: number, duplicates: number) => Promise<void>
  effects: () => Promise<{ rows: number; distinct: number; counter: number }>
}

async function setUp(t: TestContext, mode: 'inbox' | 'plain'): Promise<Setup> {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 3 })
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: 2 })
  const base = uniqueName('inbox')
    .replaceAll(/[^A-Za-z0-9_]/g, '_')
    .slice(0, 40)
  const tables = { INBOX_TABLE: `${base}_inbox`, EFFECTS_TABLE: `${base}_effects`, COUNTER_TABLE: `${base}_counter` }
  await pool.query(`CREATE TABLE ${tables.EFFECTS_TABLE} (event_id text NOT NULL)`)
  await pool.query(`CREATE TABLE ${tables.COUNTER_TABLE} (id int PRIMARY KEY, n bigint NOT NULL)`)
  await pool.query(`INSERT INTO ${tables.COUNTER_TABLE} VALUES (1, 0)`)
  await new Inbox({ pool, table: tables.INBOX_TABLE }).createTable()
  const env = {
    ...tables,
    MODE: mode,
    TOPIC: topic,
    GROUP: uniqueName('inbox-group'),
    KAFKA_BROKERS: brokers.join(','),
    DATABASE_URL: databaseUrl()
  }
  const alive = new Set<ChildProcess>()
  t.after(async () => {
    for (const child of alive) child.kill('SIGKILL')
    await pool.query(`DROP TABLE IF EXISTS ${Object.values(tables).join(', ')}`)
    await pool.end()
    await drop()
  })
  const start = () => {
    const child = spawn(process.execPath, ['--conditions=development', workerFile], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'inherit']
    })
    alive.add(child)
    const exited = once(child, 'exit').finally(() => alive.delete(child))
    return { child, exited }
  }
  const produce = async (count: number, duplicates: number) => {
    const producer = new Producer({ brokers, topic, env: {} })
    const ids = Array.from({ length: count }, () => newEventId())
    // Every tenth event is sent again later (same event id): a duplicate the inbox must drop.
    const sends = [...ids, ...ids.filter((_, i) => i % 10 === 0).slice(0, duplicates)]
    await producer.sendBatch(
      sends.map((id, i) =>
        message({ i })
          .key(`key-${i % 50}`)
          .eventId(id)
      )
    )
    await producer.close()
  }
  const effects = async () => {
    const { rows } = await pool.query<{ rows: number; distinct: number; counter: string }>(
      `SELECT count(*)::int AS rows, count(DISTINCT event_id)::int AS distinct,
        (SELECT n FROM ${tables.COUNTER_TABLE} WHERE id = 1) AS counter FROM ${tables.EFFECTS_TABLE}`
    )
    const row = rows[0] as { rows: number; distinct: number; counter: string }
    return { rows: row.rows, distinct: row.distinct, counter: Number(row.counter) }
  }
  return { topic, pool, env, start, produce, effects }
}

test(`inbox: the consumer SIGKILLed ${kills} times, each event's effect applied exactly once`, async t => {
  const { start, produce, effects } = await setUp(t, 'inbox')
  await produce(events, events / 10)
  let worker = start()
  for (let kill = 0; kill < kills; kill++) {
    await sleep(700 + Math.random() * 700)
    worker.child.kill('SIGKILL')
    await worker.exited
    worker = start()
  }
  await waitFor(async () => (await effects()).distinct === events, 120_000, 'every event applied')
  // Let the last worker settle: a redelivery after the last kill must find the inbox rows.
  await sleep(2000)
  worker.child.kill('SIGTERM')
  await worker.exited
  const result = await effects()
  t.diagnostic(`events ${events}, effect rows ${result.rows}, counter ${result.counter}, kills ${kills}`)
  assert.equal(result.rows, events, 'one effect row per event')
  assert.equal(result.counter, events, 'the counter equals the number of distinct events')
})

test('control: the same worker without the inbox applies duplicates twice', async t => {
  const { start, produce, effects } = await setUp(t, 'plain')
  await produce(500, 50)
  const worker = start()
  await waitFor(async () => (await effects()).rows >= 550, 60_000, 'every send applied')
  worker.child.kill('SIGTERM')
  await worker.exited
  const result = await effects()
  assert.equal(result.distinct, 500)
  assert.ok(result.rows > result.distinct, `duplicates applied twice without the inbox (${result.rows} rows)`)
})
