/**
 * Chaos (reliability matrix A1 for the sink): the sink worker (a child process) is SIGKILLed again and
 * again while it writes, once exactly between the database commit and the Kafka offset commit (the
 * worker kills itself there), then a last worker drains the topic. In both modes (idempotent on a
 * unique key, exactly-once with offsets in Postgres and no unique key) the table ends with row count =
 * distinct ids = records produced. A control run with idempotence off (at-least-once, no key) must show
 * duplicates, so the check is known to catch them.
 *
 * Sizes: KAFKIT_CHAOS_RECORDS (default 20000) records, KAFKIT_CHAOS_KILLS (default 4) random kills
 * plus the one between the commits; the full run is KAFKIT_CHAOS_RECORDS=200000
 * KAFKIT_CHAOS_KILLS=19.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { test, type TestContext } from 'node:test'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers, databaseUrl } from '../../helpers/env.ts'
import { logTableDdl, produceLogEvents, topicRecordCount } from '../../fixtures/sink/log-events.ts'
import { createTestSchema } from './postgres-schema.ts'

const records = Number(process.env.KAFKIT_CHAOS_RECORDS ?? 20_000)
const randomKills = Number(process.env.KAFKIT_CHAOS_KILLS ?? 4)
const workerFile = fileURLToPath(new URL('../../fixtures/sink/sink-worker.ts', import.meta.url))
const nodeBin = process.execPath

interface Worker {
  child: ChildProcess
  batches: number
  exited: Promise<number | null>
  firstBatch: Promise<void>
}

function startWorker(env: Record<string, string>): Worker {
  const child = spawn(nodeBin, ['--conditions=development', workerFile], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const worker: Worker = {
    child,
    batches: 0,
    exited: once(child, 'exit').then(([code]) => code as number | null),
    firstBatch: Promise.resolve()
  }
  worker.firstBatch = new Promise<void>(resolve => {
    createInterface({ input: child.stdout }).on('line', line => {
      if (line.startsWith('{"batch"')) {
        worker.batches++
        resolve()
      }
    })
    void worker.exited.then(() => resolve())
  })
  return worker
}

async function chaosRun(t: TestContext, delivery: 'idempotent' | 'exactly-once' | 'at-least-once', kills: number) {
  const brokers = bootstrapServers()
  const source = await createTestTopic({ bootstrapServers: brokers, partitions: 4, prefix: 'sink-chaos' })
  t.after(source.delete)
  const db = await createTestSchema(t)
  const table = db.qualified('logs')
  await db.query(logTableDdl(table, { unique: delivery === 'idempotent' }))
  const env = {
    KAFKA_BROKERS: brokers.join(','),
    DATABASE_URL: databaseUrl(),
    SINK_TOPIC: source.topic,
    SINK_GROUP: uniqueName('chaos'),
    SINK_TABLE: table,
    SINK_OFFSETS_TABLE: db.qualified('kafkit_offsets'),
    SINK_DELIVERY: delivery,
    // Large enough for the COPY paths (straight COPY, the merge after a redelivery, the offsets guard).
    SINK_BATCH_SIZE: '400'
  }
  const alive = new Set<ChildProcess>()
  t.after(() => {
    for (const child of alive) child.kill('SIGKILL')
  })
  const distinctStored = async () =>
    Number((await db.query<{ d: string }>(`SELECT count(DISTINCT log_id) AS d FROM ${table}`))[0]?.d)
  // The records arrive in waves, one before each worker, so every worker has work when it is killed.
  const waves = kills + 2
  const perWave = Math.ceil(records / waves)
  let produced = 0
  const produceWave = async () => {
    const count = Math.min(perWave, records - produced)
    await produceLogEvents(brokers, source.topic, count, { runId: delivery, from: produced })
    produced += count
  }
  // 1. The worker kills itself between the database commit and the Kafka commit of its 2nd batch.
  await produceWave()
  const self = startWorker({ ...env, KILL_AFTER_WRITE: '2' })
  alive.add(self.child)
  await self.exited
  alive.delete(self.child)
  assert.equal(self.child.signalCode, 'SIGKILL', 'the worker killed itself after a database commit')
  // 2. Killed from outside at a random moment after its first batch.
  let killedMidWrite = 0
  for (let kill = 0; kill < kills; kill++) {
    await produceWave()
    const worker = startWorker(env)
    alive.add(worker.child)
    await Promise.race([worker.firstBatch, new Promise(resolve => setTimeout(resolve, 20_000))])
    await new Promise(resolve => setTimeout(resolve, Math.floor(Math.random() * 60)))
    worker.child.kill('SIGKILL')
    await worker.exited
    alive.delete(worker.child)
    if ((await distinctStored()) < produced) killedMidWrite++
  }
  // 3. A last worker gets the last wave, drains the topic and exits once the group's lag is 0.
  while (produced < records) await produceWave()
  const last = startWorker({ ...env, EXIT_WHEN_IDLE: '1' })
  alive.add(last.child)
  assert.equal(await last.exited, 0, 'the last worker drained the topic')
  alive.delete(last.child)
  // The topic itself must hold each record once (an idempotent producer), or the check means nothing.
  assert.equal(await topicRecordCount(brokers, source.topic), produced, 'the topic holds each produced record once')
  const [count] = await db.query<{ n: string; d: string }>(
    `SELECT count(*) AS n, count(DISTINCT log_id) AS d FROM ${table}`
  )
  return { rows: Number(count?.n), distinct: Number(count?.d), produced, killedMidWrite }
}

for (const delivery of ['idempotent', 'exactly-once'] as const) {
  test(`chaos (${delivery}): ${randomKills + 1} SIGKILLs while writing ${records} records, rows = distinct = produced`, async t => {
    const result = await chaosRun(t, delivery, randomKills)
    t.diagnostic(`${result.killedMidWrite} of ${randomKills} random kills left records unwritten`)
    if (randomKills > 0) assert.ok(result.killedMidWrite > 0, 'at least one random kill hit a worker with work left')
    assert.equal(result.distinct, result.produced, 'nothing lost')
    assert.equal(result.rows, result.distinct, 'nothing stored twice')
  })
}

test('chaos control (at-least-once, no key): the kill between the commits shows up as duplicates', async t => {
  const result = await chaosRun(t, 'at-least-once', 0)
  assert.equal(result.distinct, result.produced, 'nothing lost')
  assert.ok(result.rows > result.distinct, `duplicates expected, got ${result.rows} rows for ${result.distinct} ids`)
})
