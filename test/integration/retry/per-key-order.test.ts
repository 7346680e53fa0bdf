/**
 * Per-key ordered retries on a real broker: while a key has a record in retry, later records of the
 * key are parked and released in order once it succeeds or is dead-lettered.
 *
 * - in one process: the success order of every key equals its produce order, every record ends once
 *   in the ledger or once in the DLQ, and every key is free again at the end; the same run without
 *   per-key ordering (negative control) shows keys out of order, so the check is known to catch it;
 * - across restarts: the worker (a child process) is SIGKILLed while keys are parked, a new one takes
 *   over from what is in Kafka; nothing is lost and the first success of each record per key still
 *   follows the produce order.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test, type TestContext } from 'node:test'
import { PermanentError, TransientError } from '../../../src/handling/errors.ts'
import { Consumer } from '../../../src/consumer/consumer.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { deadLettered, failurePlan } from './failure-plan.ts'
import { retryWorkerPool, type RetryWorker } from './worker-pool.ts'
import {
  deleteFlowTopics,
  firstSuccessOrder,
  liveParkedRecords,
  produceIds,
  quiet,
  readLedger,
  sleep,
  waitFor
} from './helpers.ts'

const brokers = () => bootstrapServers()
const TIERS = [200, 400]
const KEYS = 12

const dlqIdsOf = (records: { value?: Buffer | null }[]) =>
  records.map(record => (JSON.parse(String(record.value)) as { id: number }).id)

async function inProcessRun(t: TestContext, perKeyOrdering: boolean) {
  const { topic } = await createTestTopic({ brokers: brokers(), partitions: 3 })
  t.after(() => deleteFlowTopics(brokers(), topic))
  const count = 300
  await produceIds(brokers(), topic, count, { keys: KEYS })
  const failures = new Map<number, number>()
  const successes: { id: number; key: string; at: number }[] = []
  const consumer = new Consumer<{ id: number; key: string }>({
    brokers: brokers(),
    groupId: uniqueName('retry-key-group'),
    topics: [topic],
    startOffset: 'earliest',
    maxRetries: 0,
    concurrency: { mode: 'key', limit: 8 },
    logger: quiet,
    retry: { tiers: TIERS, perKeyOrdering },
    handler: async message => {
      await Promise.resolve()
      const { id, key } = message.value
      const plan = failurePlan(id, TIERS.length)
      const failed = failures.get(id) ?? 0
      if (plan === 'permanent') throw new PermanentError(`record ${id} is bad`)
      if (failed < plan) {
        failures.set(id, failed + 1)
        throw new TransientError(`record ${id} failure ${failed + 1}`)
      }
      successes.push({ id, key, at: Date.now() })
    }
  })
  await consumer.start()
  const ids = Array.from({ length: count }, (_v, id) => id)
  const dead = ids.filter(id => deadLettered(id, TIERS.length))
  try {
    await waitFor(() => successes.length >= count - dead.length, 120_000, 'every record to succeed')
    const dlq = await readTopic(brokers(), `${topic}.dlq`, dead.length, { timeoutMs: 30_000, quietMs: 1500 })
    if (perKeyOrdering) {
      await waitFor(() => consumer.metrics().retry?.keys?.blockedKeys === 0, 30_000, 'every key to be free again')
    }
    const metrics = consumer.metrics()
    await consumer.stop()
    const succeeded = successes.map(s => s.id)
    assert.equal(new Set(succeeded).size, succeeded.length, 'no record succeeded twice')
    const dlqIds = dlqIdsOf(dlq)
    assert.deepEqual(
      [...dlqIds].sort((a, b) => a - b),
      dead,
      'the records that never succeed are in the DLQ once each'
    )
    assert.deepEqual(
      [...succeeded, ...dlqIds].sort((a, b) => a - b),
      ids,
      'every record ends in the ledger or the DLQ'
    )
    return { metrics, order: firstSuccessOrder(successes) }
  } finally {
    await consumer.stop()
  }
}

test('per-key ordering: each key succeeds in produce order; parked records are released in order', async t => {
  const { metrics, order } = await inProcessRun(t, true)
  assert.deepEqual(order.outOfOrder, [], 'every key succeeded in produce order')
  assert.ok((metrics.retry?.release?.processed ?? 0) > 0, 'parked records were released and handled')
  assert.equal(metrics.retry?.keys?.parkedRecords, 0, 'nothing left parked')
  t.diagnostic(
    `released ${metrics.retry?.release?.processed} parked records; routed ${JSON.stringify(metrics.retry?.routed)}; origin rerouted ${metrics.rerouted}`
  )
})

test('negative control: without per-key ordering the same run succeeds keys out of order, and the check sees it', async t => {
  const { order } = await inProcessRun(t, false)
  assert.ok(order.outOfOrder.length > 0, 'retried records overtaken by later records of their key')
})

test('per-key ordering survives SIGKILLs: a new worker releases what the killed one parked, in order, losing nothing', async t => {
  const { topic } = await createTestTopic({ brokers: brokers(), partitions: 3 })
  t.after(() => deleteFlowTopics(brokers(), topic))
  const count = 600
  const { ledger, start } = retryWorkerPool(t, {
    KAFKA_BROKERS: brokers().join(','),
    TOPIC: topic,
    GROUP: uniqueName('retry-kill-group'),
    TIERS: '400,800',
    PER_KEY: '1',
    INSTANCE: 'worker-1'
  })
  const kills = 4
  const parkedAtKill: number[] = []
  for (let i = 0; i < kills; i++) {
    // Records arrive in waves, so every worker has fresh records to park behind retries in flight.
    await produceIds(brokers(), topic, count / kills, { keys: KEYS, from: (i * count) / kills })
    const worker = start()
    const attempts = () => readLedger(readFileSync(ledger, 'utf8')).attempts.length
    const before = attempts()
    await waitFor(() => attempts() > before, 30_000, 'the worker to handle a record')
    // Killed at a random moment of the retries in flight (a chaos gap, not a wait for anything).
    await sleep(300 + Math.random() * 700)
    worker.child.kill('SIGKILL')
    await worker.exited
    parkedAtKill.push(await liveParkedRecords(brokers(), `${topic}.retry.parked`))
  }
  const last = start()
  const ids = Array.from({ length: count }, (_v, id) => id)
  const dead = ids.filter(id => deadLettered(id, 2))
  await waitFor(
    () => {
      const done = new Set(readLedger(readFileSync(ledger, 'utf8')).successes.map(s => s.id))
      return ids.every(id => done.has(id) || dead.includes(id))
    },
    180_000,
    'every record to succeed'
  )
  const dlq = await readTopic(brokers(), `${topic}.dlq`, dead.length, { timeoutMs: 60_000, quietMs: 2000 })
  last.child.kill('SIGTERM')
  await last.exited

  const events = readLedger(readFileSync(ledger, 'utf8'))
  const succeeded = new Set(events.successes.map(s => s.id))
  const dlqIds = new Set(dlqIdsOf(dlq))
  const lost = ids.filter(id => !succeeded.has(id) && !dlqIds.has(id))
  assert.deepEqual(lost, [], 'no record lost')
  assert.deepEqual(
    [...dlqIds].filter(id => !dead.includes(id)),
    [],
    'only the records planned to fail for good are in the DLQ'
  )
  assert.deepEqual(
    [...succeeded].filter(id => dead.includes(id)),
    [],
    'no record planned to fail for good succeeded'
  )
  const { outOfOrder } = firstSuccessOrder(events.successes)
  assert.deepEqual(outOfOrder, [], 'per key, records first succeeded in produce order')
  assert.ok(
    parkedAtKill.some(n => n > 0),
    `records were parked in Kafka when a worker was killed (${parkedAtKill.join(', ')})`
  )
  const duplicates = events.successes.length - succeeded.size
  t.diagnostic(
    `${kills} SIGKILLs; records parked at each kill: ${parkedAtKill.join(', ')}; ${duplicates} duplicate successes; ${dlq.length} DLQ records for ${dead.length} ids`
  )
})

test('per-key ordering across workers: two workers of one group, one leaving and a new one joining each wave', async t => {
  const { topic } = await createTestTopic({ brokers: brokers(), partitions: 4 })
  t.after(() => deleteFlowTopics(brokers(), topic))
  const count = 600
  const { ledger, start } = retryWorkerPool(t, {
    KAFKA_BROKERS: brokers().join(','),
    TOPIC: topic,
    GROUP: uniqueName('retry-churn-group'),
    TIERS: '300,600',
    PER_KEY: '1',
    ASSIGNOR: 'cooperative-sticky'
  })
  const workers = [start(), start()]
  const badExits: string[] = []
  const waves = 4
  for (let i = 0; i < waves; i++) {
    await produceIds(brokers(), topic, count / waves, { keys: KEYS, from: (i * count) / waves })
    // A random gap before the next departure (chaos), in which the workers park records and retry them.
    await sleep(1500 + Math.random() * 1000)
    // One worker leaves (gracefully or not) while records are parked and waiting on the tiers.
    const leaving = workers[i % 2] as RetryWorker
    const graceful = i % 2 === 0
    leaving.child.kill(graceful ? 'SIGTERM' : 'SIGKILL')
    const [code, signal] = await leaving.exited
    // A worker still loading its modules has no SIGTERM handler yet and dies of the signal: that is a kill,
    // not a crash. A worker that handled it must exit 0 (exit 1 was an uncaught stop-while-starting).
    if (graceful && code !== 0 && signal !== 'SIGTERM') badExits.push(`wave ${i}: exit code ${code} after SIGTERM`)
    workers[i % 2] = start()
  }
  const ids = Array.from({ length: count }, (_v, id) => id)
  const dead = ids.filter(id => deadLettered(id, 2))
  const unfinished = () => {
    const done = new Set(readLedger(readFileSync(ledger, 'utf8')).successes.map(s => s.id))
    return ids.filter(id => !done.has(id) && !dead.includes(id))
  }
  await waitFor(() => unfinished().length === 0, 240_000, 'every record to succeed').catch((error: unknown) => {
    throw new Error(`${(error as Error).message}; not succeeded yet: ${unfinished().join(', ')}`)
  })
  const dlq = await readTopic(brokers(), `${topic}.dlq`, dead.length, { timeoutMs: 60_000, quietMs: 2000 })
  for (const worker of workers) worker.child.kill('SIGTERM')
  for (const worker of workers) {
    const [code] = await worker.exited
    if (code !== 0) badExits.push(`final stop: exit code ${code} after SIGTERM`)
  }

  assert.deepEqual(badExits, [], 'every worker stopped by SIGTERM exits cleanly')
  const events = readLedger(readFileSync(ledger, 'utf8'))
  const succeeded = new Set(events.successes.map(s => s.id))
  const dlqIds = new Set(dlqIdsOf(dlq))
  assert.deepEqual(
    ids.filter(id => !succeeded.has(id) && !dlqIds.has(id)),
    [],
    'no record lost'
  )
  assert.deepEqual(
    [...dlqIds].filter(id => !dead.includes(id)),
    [],
    'only the records planned to fail for good are in the DLQ'
  )
  const { outOfOrder } = firstSuccessOrder(events.successes)
  assert.deepEqual(outOfOrder, [], 'per key, records first succeeded in produce order')
  t.diagnostic(
    `${waves} workers left (SIGTERM/SIGKILL alternating) and were replaced; ${events.successes.length - succeeded.size} duplicate successes`
  )
})
