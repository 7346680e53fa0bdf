/**
 * Per-key ordered retries and business refusals: a record in retry (the head of its key) that a tier's
 * handler refuses with a BusinessError is finished (committed, neither retried nor dead-lettered), so
 * the key's parked records are released, in order.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BusinessError, TransientError } from '../../../src/handling/errors.ts'
import { Consumer } from '../../../src/consumer/consumer.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { deleteFlowTopics, produceIds, quiet, waitFor } from './helpers.ts'

test('a BusinessError on a tier finishes the head of its key: parked records of the key are released in order', async t => {
  const brokers = bootstrapServers()
  const { topic } = await createTestTopic({ brokers, partitions: 1 })
  t.after(() => deleteFlowTopics(brokers, topic))
  // Ids 0..4, one key: 0 fails on the origin, then is refused on the first tier; 1..4 wait behind it.
  await produceIds(brokers, topic, 5, { key: () => 'one-key' })
  const handled: { id: number; where: string; outcome: string }[] = []
  const consumer = new Consumer<{ id: number; key: string }>({
    brokers,
    groupId: uniqueName('retry-business-group'),
    topics: [topic],
    startOffset: 'earliest',
    maxRetries: 0,
    concurrency: { mode: 'key', limit: 4 },
    logger: quiet,
    retry: { tiers: [200, 400], perKeyOrdering: true },
    handler: async message => {
      await Promise.resolve()
      const { id } = message.value
      const where = message.topic === topic ? 'origin' : message.topic.slice(topic.length + 1)
      if (id === 0 && where === 'origin') {
        handled.push({ id, where, outcome: 'transient' })
        throw new TransientError('record 0 fails once')
      }
      if (id === 0) {
        handled.push({ id, where, outcome: 'business' })
        throw new BusinessError('record 0 is refused by a business rule')
      }
      handled.push({ id, where, outcome: 'done' })
    }
  })
  await consumer.start()
  try {
    await waitFor(() => handled.filter(h => h.outcome === 'done').length >= 4, 30_000, 'records 1..4 to be released')
    await waitFor(() => consumer.metrics().retry?.keys?.blockedKeys === 0, 10_000, 'the key to be free again')
  } finally {
    await consumer.stop()
  }
  assert.deepEqual(
    handled.map(h => `${h.id}:${h.outcome}`),
    ['0:transient', '0:business', '1:done', '2:done', '3:done', '4:done'],
    'the head first (failed, then refused), then the parked records in produce order'
  )
  assert.match(handled[1]?.where ?? '', /^retry\./, 'refused on a tier, not on the origin')
})
