/**
 * Delayed retry tiers on a real broker (ms delays): records failing k = 0 .. tiers+1 times each end
 * exactly once in the success ledger or once in the DLQ, the observed delay before each retry is never
 * shorter than its tier's delay, a failing record never holds up the records behind it on the origin
 * partition, permanent failures skip the tiers, and the DLQ record describes the origin record.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PermanentError, TransientError } from '../../../src/handling/errors.ts'
import { parseDeadLetterHeaders } from '../../../src/handling/dead-letter.ts'
import { Consumer } from '../../../src/consumer/consumer.ts'
import { readRetryHeaders } from '../../../src/retry/retry-headers.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { deleteFlowTopics, produceIds, quiet, sleep, waitFor } from './helpers.ts'

const brokers = () => bootstrapServers()
const TIERS = [300, 600, 900]

/** What record `id` does: fail transiently `k` times (k = 0..tiers+1), or fail permanently at the origin / on tier 1. */
type Plan = { transient: number } | { permanentAt: 'origin' | 'tier' }

function planOf(id: number): Plan {
  const kind = id % (TIERS.length + 4)
  if (kind <= TIERS.length + 1) return { transient: kind }
  return { permanentAt: kind === TIERS.length + 2 ? 'origin' : 'tier' }
}

test(`records failing k = 0..${TIERS.length + 1} times end once in the ledger or once in the DLQ; delays are honoured; the origin moves on`, async t => {
  const { topic } = await createTestTopic({ brokers: brokers(), partitions: 3 })
  t.after(() => deleteFlowTopics(brokers(), topic))
  const count = 140
  await produceIds(brokers(), topic, count, { keys: 7 })
  interface Attempt {
    startedAt: number
    failedAt?: number
    topic: string
    tierHeader: number | undefined
  }
  const attempts = new Map<number, Attempt[]>()
  const ledger: number[] = []
  /** The origin handling order per origin partition: `id` at the time it was first handled. */
  const firstHandled = new Map<number, number>()
  const consumer = new Consumer<{ id: number }>({
    brokers: brokers(),
    groupId: uniqueName('retry-group'),
    topics: [topic],
    startOffset: 'earliest',
    maxRetries: 0,
    logger: quiet,
    retry: { tiers: TIERS },
    handler: async message => {
      await Promise.resolve()
      const { id } = message.value
      const list = attempts.get(id) ?? []
      const attempt: Attempt = {
        startedAt: Date.now(),
        topic: message.topic,
        tierHeader: readRetryHeaders(message.headers)?.tier
      }
      list.push(attempt)
      attempts.set(id, list)
      if (!firstHandled.has(id)) firstHandled.set(id, Date.now())
      const plan = planOf(id)
      if ('permanentAt' in plan) {
        if (plan.permanentAt === 'origin' || list.length === 2) {
          attempt.failedAt = Date.now()
          throw new PermanentError(`record ${id} is bad`)
        }
        attempt.failedAt = Date.now()
        throw new TransientError(`record ${id} fails once before its permanent failure`)
      }
      if (list.length <= plan.transient) {
        attempt.failedAt = Date.now()
        throw new TransientError(`record ${id} failure ${list.length} of ${plan.transient}`)
      }
      ledger.push(id)
    }
  })
  await consumer.start()
  const ids = Array.from({ length: count }, (_v, id) => id)
  const succeeding = ids.filter(id => {
    const plan = planOf(id)
    return 'transient' in plan && plan.transient <= TIERS.length
  })
  const deadLettered = ids.filter(id => !succeeding.includes(id))
  const dlq = `${topic}.dlq`
  try {
    await waitFor(() => ledger.length >= succeeding.length, 60_000, 'every record to succeed')
    const dlqRecords = await readTopic(brokers(), dlq, deadLettered.length, { timeoutMs: 30_000, quietMs: 1500 })
    // A last look for duplicates in the ledger after the DLQ settled.
    const metrics = consumer.metrics()
    await consumer.stop()

    assert.deepEqual(
      [...ledger].sort((a, b) => a - b),
      succeeding,
      'every record that eventually succeeds is in the ledger exactly once'
    )
    const dlqIds = dlqRecords.map(record => (JSON.parse(String(record.value)) as { id: number }).id)
    assert.deepEqual(
      [...dlqIds].sort((a, b) => a - b),
      deadLettered,
      'every record that never succeeds is in the DLQ exactly once'
    )
    assert.ok(!ledger.some(id => dlqIds.includes(id)), 'no record both succeeded and was dead-lettered')
    for (const record of dlqRecords) {
      const { id } = JSON.parse(String(record.value)) as { id: number }
      const info = parseDeadLetterHeaders(record.headers)
      const plan = planOf(id)
      const expected = 'transient' in plan ? TIERS.length + 1 : plan.permanentAt === 'origin' ? 1 : 2
      assert.equal(info.originTopic, topic, `DLQ record of ${id} names the origin topic`)
      assert.equal(info.attempts, expected, `DLQ record of ${id} counts every handler attempt`)
      assert.equal(info.errorKind, 'transient' in plan ? 'transient' : 'permanent')
      assert.equal(record.key?.toString(), `key-${id % 7}`, 'the key is kept')
      const handled = attempts.get(id) ?? []
      assert.equal(handled.length, expected, `record ${id} was handled ${expected} time(s)`)
      assert.ok(
        !record.headerEntries.some(([k]) => k.toString().startsWith('kafkit-retry-')),
        'no retry headers in the DLQ record'
      )
      assert.ok(info.firstFailureAt.getTime() <= info.lastFailureAt.getTime())
    }
    // The origin offsets of dead-lettered records point at the origin record itself.
    const dlqOffsets = new Set(
      dlqRecords.map(record => {
        const info = parseDeadLetterHeaders(record.headers)
        return `${info.originPartition}:${info.originOffset}`
      })
    )
    assert.equal(dlqOffsets.size, deadLettered.length, 'each DLQ record names a distinct origin record')

    // Observed delays: between a failure and the next attempt, at least the tier's delay.
    const violations: string[] = []
    let retries = 0
    for (const [id, list] of attempts) {
      for (let n = 1; n < list.length; n++) {
        const before = list[n - 1] as Attempt
        const now = list[n] as Attempt
        const delay = TIERS[n - 1] as number
        retries++
        assert.equal(now.topic, `${topic}.retry.${delay}ms`, `attempt ${n + 1} of ${id} comes from tier ${n}`)
        assert.equal(now.tierHeader, n)
        const observed = now.startedAt - (before.failedAt as number)
        if (observed < delay) violations.push(`${id}: attempt ${n + 1} after ${observed} ms < ${delay} ms`)
      }
    }
    assert.deepEqual(violations, [], 'no retry came before its tier delay')
    assert.ok(retries > 100, `retries happened (${retries})`)
    t.diagnostic(`${retries} delayed retries; routed ${JSON.stringify(metrics.retry?.routed)}`)

    // The origin moved on: on each key's partition, the record after a failing one was handled long
    // before the failing one's first retry (which waits at least the first tier's 300 ms).
    const late: string[] = []
    for (const id of deadLettered.concat(succeeding)) {
      const list = attempts.get(id) ?? []
      const next = id + 7 // the same key, next in produce order
      if (list.length < 2 || !firstHandled.has(next)) continue
      if ((firstHandled.get(next) as number) > (list[1] as Attempt).startedAt) {
        late.push(`${next} after the retry of ${id}`)
      }
    }
    assert.deepEqual(late, [], 'a failing record never held up the next record of its partition')
  } finally {
    await consumer.stop()
  }
})

test('stop() does not wait for a tier delay; after a restart the waiting record is handled once, when due', async t => {
  const { topic } = await createTestTopic({ brokers: brokers() })
  t.after(() => deleteFlowTopics(brokers(), topic))
  await produceIds(brokers(), topic, 1)
  const groupId = uniqueName('retry-group')
  const attempts: { at: number; topic: string; due: number | undefined }[] = []
  let failedAt = 0
  const make = () =>
    new Consumer<{ id: number }>({
      brokers: brokers(),
      groupId,
      topics: [topic],
      startOffset: 'earliest',
      maxRetries: 0,
      logger: quiet,
      retry: { tiers: [5000] },
      handler: async message => {
        await Promise.resolve()
        attempts.push({
          at: Date.now(),
          topic: message.topic,
          due: readRetryHeaders(message.headers)?.dueAt.getTime()
        })
        if (message.topic === topic) {
          failedAt = Date.now()
          throw new TransientError('downstream down')
        }
      }
    })
  const first = make()
  await first.start()
  await waitFor(() => (first.metrics().retry?.routed.toTier[1] ?? 0) === 1, 30_000, 'the record to go to tier 1')
  await waitFor(() => first.metrics().retry?.tiers[0]?.inFlight === 1, 30_000, 'the tier to hold the record')
  await first.stop()
  const stoppedAt = Date.now()
  assert.ok(
    stoppedAt < failedAt + 5000,
    `stop() ended ${stoppedAt - failedAt} ms after the failure, before the record was due`
  )
  assert.equal(attempts.length, 1, 'the record waits on tier 1, not handled yet')

  const second = make()
  await second.start()
  try {
    await waitFor(() => attempts.length === 2, 30_000, 'the retry after the restart')
    // A fixed wait: no third attempt may come in this second.
    await sleep(1000)
    const retry = attempts[1] as { at: number; topic: string; due: number | undefined }
    assert.equal(retry.topic, `${topic}.retry.5s`)
    assert.ok(
      retry.at >= failedAt + 5000,
      `handled ${retry.at - failedAt} ms after the failure, not before its 5000 ms`
    )
    assert.equal(attempts.length, 2, 'handled once from the tier')
  } finally {
    await second.stop()
  }
})

test("two groups on one origin topic share its tier topics and never handle each other's retries", async t => {
  const { topic } = await createTestTopic({ brokers: brokers(), partitions: 2 })
  t.after(() => deleteFlowTopics(brokers(), topic))
  await produceIds(brokers(), topic, 40)
  const handled = { a: [] as string[], b: [] as string[] }
  const make = (name: 'a' | 'b') =>
    new Consumer<{ id: number }>({
      brokers: brokers(),
      groupId: uniqueName(`retry-group-${name}`),
      topics: [topic],
      startOffset: 'earliest',
      maxRetries: 0,
      logger: quiet,
      retry: { tiers: [200] },
      handler: async message => {
        await Promise.resolve()
        const { id } = message.value
        handled[name].push(`${id}@${message.topic === topic ? 'origin' : 'tier'}`)
        // Group a fails the even ids once, group b the odd ones.
        if (message.topic === topic && id % 2 === (name === 'a' ? 0 : 1)) throw new TransientError('once')
      }
    })
  const a = make('a')
  const b = make('b')
  await Promise.all([a.start(), b.start()])
  try {
    await waitFor(() => handled.a.length >= 60 && handled.b.length >= 60, 60_000, 'both groups to finish')
    // A fixed wait: no group may handle anything more (another group's retry) in this second.
    await sleep(1000)
  } finally {
    await Promise.all([a.stop(), b.stop()])
  }
  const tierIds = (list: string[]) =>
    list
      .filter(entry => entry.endsWith('@tier'))
      .map(entry => Number(entry.split('@')[0]))
      .sort((x, y) => x - y)
  assert.deepEqual(
    tierIds(handled.a),
    Array.from({ length: 20 }, (_v, i) => i * 2),
    'group a retried its own failures only'
  )
  assert.deepEqual(
    tierIds(handled.b),
    Array.from({ length: 20 }, (_v, i) => i * 2 + 1),
    'group b retried its own failures only'
  )
  assert.equal(handled.a.length, 60)
  assert.equal(handled.b.length, 60)
})

test('batch handlers: a failing record is split out of its batch and retried alone on the tiers', async t => {
  const { topic } = await createTestTopic({ brokers: brokers() })
  t.after(() => deleteFlowTopics(brokers(), topic))
  await produceIds(brokers(), topic, 50)
  const batches: { topic: string; ids: number[] }[] = []
  const consumer = new Consumer<{ id: number }>({
    brokers: brokers(),
    groupId: uniqueName('retry-group'),
    topics: [topic],
    startOffset: 'earliest',
    maxRetries: 0,
    maxPollRecords: 20,
    logger: quiet,
    retry: { tiers: [200] },
    batchHandler: async messages => {
      await Promise.resolve()
      const ids = messages.map(m => m.value.id)
      batches.push({ topic: messages[0]?.topic ?? '', ids })
      // Records 7 and 33 fail on the origin (in their batch, then alone) and succeed on the tier.
      const bad = ids.find(id => id === 7 || id === 33)
      if (bad !== undefined && messages[0]?.topic === topic) throw new TransientError(`record ${bad} not yet`)
    }
  })
  await consumer.start()
  try {
    await waitFor(
      () => batches.filter(b => b.topic === `${topic}.retry.200ms`).length === 2,
      30_000,
      'both records retried from the tier'
    )
    // A fixed wait: no further batch may come from the tier in this half second.
    await sleep(500)
  } finally {
    await consumer.stop()
  }
  const fromTier = batches.filter(b => b.topic === `${topic}.retry.200ms`)
  assert.deepEqual(
    fromTier.map(b => b.ids),
    [[7], [33]],
    'each failing record retried alone from the tier'
  )
  assert.equal(consumer.metrics().retry?.routed.toTier[1], 2)
})

test('stop() at any step of start(): start() and done() resolve, nothing is left running', async t => {
  const { topic } = await createTestTopic({ brokers: brokers() })
  t.after(() => deleteFlowTopics(brokers(), topic))
  const failures: string[] = []
  // From at once to well into starting: provisioning, the parked-keys reader, the group joins.
  for (const delayMs of [0, 20, 100, 300, 800, 1500]) {
    const consumer = new Consumer<{ id: number }>({
      brokers: brokers(),
      groupId: uniqueName('retry-group'),
      topics: [topic],
      maxRetries: 0,
      logger: quiet,
      retry: { tiers: [300], perKeyOrdering: true },
      handler: async () => {}
    })
    const started = consumer.start().then(
      () => undefined,
      (error: unknown) => failures.push(`stop after ${delayMs} ms: start() rejected: ${String(error)}`)
    )
    // The delay under test: stop() this far into start().
    await sleep(delayMs)
    await consumer.stop()
    await started
    await consumer
      .done()
      .catch((error: unknown) => failures.push(`stop after ${delayMs} ms: done() rejected: ${String(error)}`))
    const { retry } = consumer.metrics()
    const runtimes = [
      { groupId: consumer.config.groupId, health: consumer.health },
      ...(retry?.tiers ?? []),
      ...(retry?.release ? [{ groupId: 'release', health: retry.release.health }] : [])
    ]
    for (const runtime of runtimes) {
      if (runtime.health !== 'stopped')
        failures.push(`stop after ${delayMs} ms: ${runtime.groupId} is ${runtime.health}`)
    }
  }
  assert.deepEqual(failures, [])
})
