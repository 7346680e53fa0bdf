/**
 * Reliability matrix B2 (small): the retrying worker (a child process, retry-worker.ts) is SIGKILLed
 * again and again while records wait on the tiers, then a last worker drains everything. Checked from
 * the ledger the handler writes before it returns: every record ends in the ledger or the DLQ (nothing
 * lost), only the records planned to fail for good are dead-lettered, and every attempt from a tier
 * started no earlier than its tier's delay after the failure that sent it there (waits resume after a
 * restart from the due time in the record's headers). Duplicates are expected (at-least-once) and
 * reported.
 *
 * Some records are not JSON at all: they are dead-lettered before any handler runs, kills or not.
 *
 * Sizes: KAFKIT_RETRY_KILL_RECORDS (default 1000), KAFKIT_RETRY_KILLS (default 5).
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { deadLettered } from './failure-plan.ts'
import { deleteFlowTopics, idOf, produceIds, readLedger, sleep, waitFor } from './helpers.ts'
import { retryWorkerPool } from './worker-pool.ts'

const records = Number(process.env.KAFKIT_RETRY_KILL_RECORDS ?? 1000)
const kills = Number(process.env.KAFKIT_RETRY_KILLS ?? 5)
const TIERS = [300, 600, 900]
/** Records whose value is not JSON: dead-lettered before any handler runs. */
const undecodable = (id: number) => id % 89 === 44
/** Records that end in the DLQ: failed for good (permanent, or on every tier) or undecodable. */
const endsDead = (id: number) => deadLettered(id, TIERS.length) || undecodable(id)

test(`SIGKILL the retrying worker ${kills} times while ${records} records go through ${TIERS.length} tiers: nothing lost, no retry early`, async t => {
  const brokers = bootstrapServers()
  const { topic } = await createTestTopic({ brokers, partitions: 3 })
  t.after(() => deleteFlowTopics(brokers, topic))
  const { ledger, start } = retryWorkerPool(t, {
    KAFKA_BROKERS: brokers.join(','),
    TOPIC: topic,
    GROUP: uniqueName('retry-kill-group'),
    TIERS: TIERS.join(','),
    INSTANCE: 'worker-1'
  })
  const ledgerNow = () => readLedger(readFileSync(ledger, 'utf8'))
  const waves = kills + 1
  const perWave = Math.ceil(records / waves)
  let produced = 0
  let waitingAtKill = 0
  for (let i = 0; i < kills; i++) {
    const count = Math.min(perWave, records - produced)
    await produceIds(brokers, topic, count, { keys: 50, from: produced, undecodable })
    produced += count
    const worker = start()
    const before = ledgerNow().attempts.length
    await waitFor(() => ledgerNow().attempts.length > before, 30_000, 'the worker to handle a record')
    // Late enough that records wait on the tiers, at a random moment of their waits (a chaos gap, not a wait
    // for anything).
    await sleep(400 + Math.random() * 800)
    worker.child.kill('SIGKILL')
    await worker.exited
    const events = ledgerNow()
    const failedLast = new Map<number, number>()
    for (const f of events.failures) failedLast.set(f.id, f.at)
    const ended = new Set(events.successes.map(s => s.id))
    // Records that failed and had not succeeded yet: waiting on a tier (or dead-lettered).
    waitingAtKill += [...failedLast.keys()].filter(id => !ended.has(id) && !deadLettered(id, TIERS.length)).length
  }
  if (produced < records)
    await produceIds(brokers, topic, records - produced, { keys: 50, from: produced, undecodable })
  const last = start()
  const ids = Array.from({ length: records }, (_v, id) => id)
  const dead = ids.filter(endsDead)
  await waitFor(
    () => {
      const done = new Set(ledgerNow().successes.map(s => s.id))
      return ids.every(id => done.has(id) || dead.includes(id))
    },
    180_000,
    'every record that can succeed to succeed'
  )
  const dlq = await readTopic(brokers, `${topic}.dlq`, dead.length, { timeoutMs: 60_000, quietMs: 3000 })
  last.child.kill('SIGTERM')
  await last.exited

  const events = ledgerNow()
  const succeeded = new Set(events.successes.map(s => s.id))
  const dlqIds = dlq.map(record => idOf(record.value))
  const inDlq = new Set(dlqIds)
  assert.deepEqual(
    ids.filter(id => !succeeded.has(id) && !inDlq.has(id)),
    [],
    'no record lost'
  )
  assert.deepEqual(
    [...inDlq].filter(id => !dead.includes(id)),
    [],
    'only records planned to fail for good are in the DLQ'
  )
  assert.deepEqual(
    [...succeeded].filter(id => dead.includes(id)),
    [],
    'no record planned to fail for good succeeded'
  )
  const early: string[] = []
  let fromTiers = 0
  for (const attempt of events.attempts) {
    const tier = TIERS.findIndex(delay => attempt.topic === `${topic}.retry.${delay}ms`)
    if (tier < 0) continue
    fromTiers++
    const waited = attempt.at - (attempt.lastFailure as number)
    if (waited < (TIERS[tier] as number)) early.push(`${attempt.id} on tier ${tier + 1} after ${waited} ms`)
  }
  assert.deepEqual(early, [], 'no attempt from a tier before its delay')
  assert.ok(waitingAtKill > 0, 'records were waiting on the tiers when workers were killed')
  t.diagnostic(
    `${kills} SIGKILLs with ${waitingAtKill} records in retry (summed); ${fromTiers} attempts from tiers; ${events.successes.length - succeeded.size} duplicate successes; ${dlqIds.length} DLQ records for ${dead.length} ids`
  )
})
