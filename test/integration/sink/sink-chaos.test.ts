/**
 * Chaos (reliability matrix A1 for the sink): the sink worker (a child process) is SIGKILLed again and
 * again while it writes, then a last worker drains the topic. Between the good records are bad ones of
 * three kinds (not JSON, a mapping that throws, a row the database's check constraint rejects), which
 * the sink dead-letters. The check, from what was produced: every good record is stored (exactly once
 * for idempotent and exactly-once, at least once for at-least-once), every bad record is in the
 * dead-letter topic at least once, and nothing else is in either.
 *
 * - In every mode the first worker kills itself between a database commit and the Kafka offset commit.
 * - Exactly-once, deterministic: workers kill themselves right after the first database commit whose
 *   stored offset passes a bad record (KILL_AT_BAD_COMMIT), three times in a row. This is the window in
 *   which a dead letter written after the commit would be lost.
 * - Controls that must fail: at-least-once without a key shows the duplicates the check looks for; a
 *   mapping that quietly drops bad records shows the dead letters the check looks for as missing.
 *
 * Sizes: KAFKIT_CHAOS_RECORDS (default 12000) records, KAFKIT_CHAOS_KILLS (default 4) random kills per
 * mode. The full run: KAFKIT_CHAOS_RECORDS=100000 KAFKIT_CHAOS_KILLS=25 (see docs/sinks.md).
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { test, type TestContext } from 'node:test'
import { readTopicSnapshot } from '../../../src/operations/topic-snapshot.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers, databaseUrl } from '../../helpers/env.ts'
import { sleep } from '../../helpers/wait.ts'
import { logTableDdl, produceLogEvents, topicRecordCount, type BadKind } from '../../fixtures/sink/log-events.ts'
import { createTestSchema } from './postgres-schema.ts'

const records = Number(process.env.KAFKIT_CHAOS_RECORDS ?? 12_000)
const randomKills = Number(process.env.KAFKIT_CHAOS_KILLS ?? 4)
const workerFile = fileURLToPath(new URL('../../fixtures/sink/sink-worker.ts', import.meta.url))
const nodeBin = process.execPath
const allBadKinds: readonly BadKind[] = ['not-json', 'no-id', 'rejected']

type Delivery = 'idempotent' | 'exactly-once' | 'at-least-once'

interface Worker {
  child: ChildProcess
  exited: Promise<number | null>
  firstBatch: Promise<void>
}

function startWorker(env: Record<string, string>): Worker {
  const child = spawn(nodeBin, ['--conditions=development', workerFile], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  const firstBatch = new Promise<void>(resolve => {
    createInterface({ input: child.stdout }).on('line', line => {
      if (line.startsWith('{"batch"')) resolve()
    })
    void exited.then(() => resolve())
  })
  return { child, exited, firstBatch }
}

interface ChaosOptions {
  delivery: Delivery
  records: number
  /** Workers killed from outside at a random moment after their first batch. */
  kills: number
  /** One bad record in this many (0: none). */
  badEvery: number
  /** What the first workers do to themselves: die after a database commit, before the Kafka commit (the
   * 2nd batch), or at the first database commit that passes a bad record, this many workers in a row. */
  selfKill: { afterWrite: true } | { atBadCommit: number }
  /** The control's worker: its mapping returns no row for bad records instead of throwing. */
  swallowBad?: boolean
}

interface ChaosResult {
  produced: number
  good: number
  rows: number
  distinct: number
  /** Good records not in the table. */
  missingGood: number
  /** log_ids in the table that were not produced as good records. */
  strayRows: number
  bad: number
  deadLetters: number
  /** Bad records not in the dead-letter topic. */
  missingBad: string[]
  /** Dead-letter records that are not bad records. */
  strayDeadLetters: number
  killedMidWrite: number
}

async function chaosRun(t: TestContext, options: ChaosOptions): Promise<ChaosResult> {
  const brokers = bootstrapServers()
  const source = await createTestTopic({ brokers, partitions: 4, prefix: 'sink-chaos' })
  t.after(source.delete)
  const dlq = await createTestTopic({ brokers, partitions: 2, prefix: 'sink-chaos-dlq' })
  t.after(dlq.delete)
  const db = await createTestSchema(t)
  const table = db.qualified('logs')
  await db.query(logTableDdl(table, { unique: options.delivery === 'idempotent' }))
  const env = {
    KAFKA_BROKERS: brokers.join(','),
    DATABASE_URL: databaseUrl(),
    SINK_TOPIC: source.topic,
    SINK_GROUP: uniqueName('chaos'),
    SINK_TABLE: table,
    SINK_OFFSETS_TABLE: db.qualified('kafkit_offsets'),
    SINK_DELIVERY: options.delivery,
    SINK_DLQ_TOPIC: dlq.topic,
    // Large enough for the COPY paths (straight COPY, the merge after a redelivery, the offsets guard).
    SINK_BATCH_SIZE: '400',
    ...(options.swallowBad ? { SINK_SWALLOW_BAD: '1' } : {})
  }
  const alive = new Set<ChildProcess>()
  t.after(() => {
    for (const child of alive) child.kill('SIGKILL')
  })
  const run = async (worker: Worker, kill?: (worker: Worker) => Promise<void>): Promise<Worker> => {
    alive.add(worker.child)
    await kill?.(worker)
    await worker.exited
    alive.delete(worker.child)
    return worker
  }
  const distinctStored = async () =>
    Number((await db.query<{ d: string }>(`SELECT count(DISTINCT log_id) AS d FROM ${table}`))[0]?.d)

  const selfKills = 'atBadCommit' in options.selfKill ? options.selfKill.atBadCommit : 1
  // The records arrive in waves, one before each worker, so every worker has work when it dies.
  const perWave = Math.ceil(options.records / (selfKills + options.kills + 1))
  const good: string[] = []
  const badValues: string[] = []
  let produced = 0
  const produceWave = async () => {
    const count = Math.min(perWave, options.records - produced)
    const wave = await produceLogEvents(brokers, source.topic, count, {
      runId: options.delivery,
      from: produced,
      badEvery: options.badEvery,
      badKinds: allBadKinds
    })
    good.push(...wave.good)
    badValues.push(...wave.badValues)
    produced += count
  }

  // 1. Workers that kill themselves at the chosen moment.
  for (let i = 0; i < selfKills; i++) {
    await produceWave()
    const self = await run(
      startWorker({
        ...env,
        ...('atBadCommit' in options.selfKill ? { KILL_AT_BAD_COMMIT: '1' } : { KILL_AFTER_WRITE: '2' })
      })
    )
    assert.equal(self.child.signalCode, 'SIGKILL', 'the worker killed itself where it was told to')
  }
  // 2. Killed from outside at a random moment after its first batch.
  let killedMidWrite = 0
  for (let kill = 0; kill < options.kills; kill++) {
    await produceWave()
    await run(startWorker(env), async worker => {
      // At most 20 s for a first batch (it settles on exit too); then a random moment (chaos).
      await Promise.race([worker.firstBatch, sleep(20_000)])
      await sleep(Math.floor(Math.random() * 60))
      worker.child.kill('SIGKILL')
    })
    if ((await distinctStored()) < good.length) killedMidWrite++
  }
  // 3. A last worker gets the last wave, drains the topic and exits once the group's lag is 0.
  while (produced < options.records) await produceWave()
  const last = await run(startWorker({ ...env, EXIT_WHEN_IDLE: '1' }))
  assert.equal(last.child.exitCode, 0, 'the last worker drained the topic')
  // The topic itself must hold each record once (an idempotent producer), or the check means nothing.
  assert.equal(await topicRecordCount(brokers, source.topic), produced, 'the topic holds each produced record once')

  const [count] = await db.query<{ n: string; d: string }>(
    `SELECT count(*) AS n, count(DISTINCT log_id) AS d FROM ${table}`
  )
  const stored = new Set(
    (await db.query<{ log_id: string }>(`SELECT DISTINCT log_id FROM ${table}`)).map(row => row.log_id)
  )
  const goodSet = new Set(good)
  const deadLetters: string[] = []
  for await (const record of readTopicSnapshot({ brokers, topic: dlq.topic })) {
    deadLetters.push(record.value?.toString() ?? '')
  }
  const badSet = new Set(badValues)
  const inDlq = new Set(deadLetters)
  return {
    produced,
    good: good.length,
    rows: Number(count?.n),
    distinct: Number(count?.d),
    missingGood: good.filter(id => !stored.has(id)).length,
    strayRows: [...stored].filter(id => !goodSet.has(id)).length,
    bad: badValues.length,
    deadLetters: deadLetters.length,
    missingBad: badValues.filter(value => !inDlq.has(value)),
    strayDeadLetters: deadLetters.filter(value => !badSet.has(value)).length,
    killedMidWrite
  }
}

/** Every good record stored, every bad one dead-lettered, nothing else in either. */
function assertAccounted(result: ChaosResult, delivery: Delivery): void {
  assert.equal(result.missingGood, 0, 'no good record lost')
  assert.equal(result.strayRows, 0, 'nothing but good records stored')
  assert.deepEqual(result.missingBad, [], 'every bad record dead-lettered')
  assert.equal(result.strayDeadLetters, 0, 'nothing but bad records dead-lettered')
  assert.ok(result.deadLetters >= result.bad)
  if (delivery !== 'at-least-once') assert.equal(result.rows, result.distinct, 'nothing stored twice')
}

for (const delivery of ['exactly-once', 'idempotent', 'at-least-once'] as const) {
  test(`chaos (${delivery}): ${randomKills + 1} SIGKILLs while writing ${records} records with bad ones mixed in: each good record stored, each bad one dead-lettered`, async t => {
    const result = await chaosRun(t, {
      delivery,
      records,
      kills: randomKills,
      badEvery: 40,
      selfKill: { afterWrite: true }
    })
    t.diagnostic(
      `${result.killedMidWrite} of ${randomKills} random kills left records unwritten; ${result.rows} rows for ${result.good} good records; ${result.deadLetters} dead letters for ${result.bad} bad records`
    )
    if (randomKills > 0) assert.ok(result.killedMidWrite > 0, 'at least one random kill hit a worker with work left')
    assertAccounted(result, delivery)
  })
}

test('exactly-once: killed at each first database commit past a bad record, no bad record is lost', async t => {
  const result = await chaosRun(t, {
    delivery: 'exactly-once',
    records: Math.min(records, 6000),
    kills: 0,
    badEvery: 97,
    selfKill: { atBadCommit: 3 }
  })
  t.diagnostic(`${result.deadLetters} dead letters for ${result.bad} bad records`)
  assertAccounted(result, 'exactly-once')
})

test('chaos control (at-least-once, no key): the kill between the commits shows up as duplicates', async t => {
  const result = await chaosRun(t, {
    delivery: 'at-least-once',
    records: Math.min(records, 6000),
    kills: 0,
    badEvery: 0,
    selfKill: { afterWrite: true }
  })
  assert.equal(result.missingGood, 0, 'nothing lost')
  assert.ok(result.rows > result.distinct, `duplicates expected, got ${result.rows} rows for ${result.distinct} ids`)
})

test('chaos control (a mapping that drops bad records): the check finds them missing from the DLQ', async t => {
  const result = await chaosRun(t, {
    delivery: 'exactly-once',
    records: 2000,
    kills: 0,
    badEvery: 50,
    selfKill: { afterWrite: true },
    swallowBad: true
  })
  assert.ok(result.missingBad.length > 0, 'dropped bad records are reported missing')
  assert.equal(result.missingGood, 0)
})
