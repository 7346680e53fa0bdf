/**
 * An exactly-once Stage on a real broker, in process: transactions aborted on purpose (the transform
 * fails after it has sent outputs into the open transaction) are retried, and a read_committed reader
 * sees each input's outputs exactly once; the group's committed offsets reach the end through the
 * transactions alone.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TransientError } from '../../../src/handling/errors.ts'
import { message } from '../../../src/message/builder.ts'
import { Stage } from '../../../src/stage/stage.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { committedOffsets, json, produceKeyed, quiet, waitFor } from '../consumer/helpers.ts'

test('exactly-once stage: aborted transactions are retried, read_committed sees each output once', async t => {
  const brokers = bootstrapServers()
  const input = await createTestTopic({ brokers, partitions: 3, prefix: 'eos-in' })
  const output = await createTestTopic({ brokers, partitions: 3, prefix: 'eos-out' })
  t.after(async () => {
    await Promise.all([input.delete(), output.delete()])
  })
  const count = 3000
  await produceKeyed(brokers, input.topic, count, { keys: 30, value: i => json({ seq: i }) })
  const groupId = uniqueName('eos')
  let aborted = 0
  const stage = new Stage<{ seq: number }, { seq: number; double: number }>({
    brokers,
    groupId,
    topics: [input.topic],
    startOffset: 'earliest',
    delivery: 'exactly-once',
    outputTopic: output.topic,
    transaction: { maxRecords: 100, maxMs: 20 },
    maxRetries: 1000,
    retryBackoff: { baseMs: 1, maxMs: 10 },
    logger: quiet,
    env: {},
    transform: async ({ value, key }, { attempt }) => {
      // About one input in 100 fails once, after the batch's earlier outputs were written into the
      // transaction (the pause lets them reach the broker): the transaction aborts, the batch runs again.
      if (value.seq % 97 === 0 && attempt === 1) {
        aborted++
        await new Promise(resolve => setTimeout(resolve, 50))
        throw new TransientError('aborted on purpose')
      }
      return message({ seq: value.seq, double: value.seq * 2 }).key(key ?? '')
    }
  })
  await stage.start()
  await waitFor(
    async () => {
      const committed = await committedOffsets(brokers, groupId, input.topic)
      return [...committed.values()].reduce((a, b) => a + b, 0n) === BigInt(count)
    },
    120_000,
    'every input committed by a transaction'
  )
  await stage.stop()
  const outputs = await readTopic(brokers, output.topic, count, { readCommitted: true, quietMs: 1500 })
  const seqs = outputs.map(record => (JSON.parse(record.value.toString()) as { seq: number }).seq)
  const distinct = new Set(seqs)
  t.diagnostic(
    `outputs ${outputs.length}, distinct ${distinct.size}, aborted ${aborted}, transactions ${stage.transactions}`
  )
  assert.ok(aborted > 0, 'transactions were aborted on purpose')
  assert.equal(distinct.size, count, 'an output for every input')
  assert.equal(outputs.length, count, 'and only one')
  const uncommitted = await readTopic(brokers, output.topic, count, { quietMs: 1500 })
  assert.ok(
    uncommitted.length > count,
    `a read_uncommitted reader also sees the aborted outputs (${uncommitted.length})`
  )
})

test('exactly-once stage: a transaction that outlives the transaction timeout is aborted by Kafka, and the stage goes on with a new producer', async t => {
  const brokers = bootstrapServers()
  const input = await createTestTopic({ brokers, partitions: 1, prefix: 'eos-slow-in' })
  const output = await createTestTopic({ brokers, partitions: 1, prefix: 'eos-slow-out' })
  t.after(async () => {
    await Promise.all([input.delete(), output.delete()])
  })
  const count = 50
  await produceKeyed(brokers, input.topic, count, { keys: 5, value: i => json({ seq: i }) })
  const groupId = uniqueName('eos-slow')
  let slow = 0
  const stage = new Stage<{ seq: number }, { seq: number }>({
    brokers,
    groupId,
    topics: [input.topic],
    startOffset: 'earliest',
    delivery: 'exactly-once',
    outputTopic: output.topic,
    transaction: { maxRecords: 10, maxMs: 10 },
    // The transaction timeout Kafka applies is the producer's request timeout.
    producer: { requestTimeoutMs: 2000 },
    maxRetries: 1000,
    retryBackoff: { baseMs: 10, maxMs: 100 },
    logger: quiet,
    env: {},
    transform: async ({ value, key }, { attempt }) => {
      if (value.seq === 25 && attempt === 1) {
        slow++
        // Longer than the timeout and the coordinator's check of timed-out transactions.
        await new Promise(resolve => setTimeout(resolve, 14_000))
      }
      return message({ seq: value.seq }).key(key ?? '')
    }
  })
  await stage.start()
  await waitFor(
    async () => [...(await committedOffsets(brokers, groupId, input.topic)).values()][0] === BigInt(count),
    90_000,
    'every input committed'
  )
  await stage.stop()
  const outputs = await readTopic(brokers, output.topic, count, { readCommitted: true, quietMs: 1500 })
  const seqs = new Set(outputs.map(record => (JSON.parse(record.value.toString()) as { seq: number }).seq))
  assert.equal(slow, 1)
  assert.equal(seqs.size, count)
  assert.equal(outputs.length, count, 'the timed-out transaction left nothing visible')
})
