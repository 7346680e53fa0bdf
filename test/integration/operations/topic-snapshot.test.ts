/** A snapshot read ends at the offsets seen when it began, even while producers keep writing. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isDeepStrictEqual } from 'node:util'
import { Producer, stringSerializers } from '@platformatic/kafka'
import { readTopicSnapshot, snapshotRanges } from '../../../src/operations/topic-snapshot.ts'
import { createTestTopic } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { eventually } from '../../helpers/wait.ts'

test('reads exactly the records present at the start, from a given offset per partition', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 3 })
  t.after(drop)
  const producer = new Producer({
    clientId: 'snapshot-test',
    bootstrapBrokers: brokers,
    serializers: stringSerializers,
    // Under load a timed-out send is retried; without idempotence that would duplicate records.
    idempotent: true
  })
  t.after(() => producer.close())
  await producer.send({
    messages: Array.from({ length: 300 }, (_, i) => ({ topic, partition: i % 3, key: `k${i}`, value: String(i) }))
  })

  const ranges = await snapshotRanges({ brokers, topic })
  assert.deepEqual(
    ranges.map(r => [r.partition, r.start, r.end]),
    [
      [0, 0n, 100n],
      [1, 0n, 100n],
      [2, 0n, 100n]
    ]
  )

  const seen: string[] = []
  let producedDuring = false
  for await (const record of readTopicSnapshot({
    brokers,
    topic,
    from: new Map([[1, 90n]])
  })) {
    if (!producedDuring) {
      producedDuring = true
      await producer.send({ messages: [{ topic, partition: 0, key: 'late', value: 'late' }] })
    }
    seen.push(record.value.toString())
  }
  assert.equal(seen.length, 100 + 10 + 100, 'partition 1 from offset 90, the others whole, nothing later')
  assert.ok(!seen.includes('late'), 'a record produced during the read is not part of the snapshot')
  assert.equal(new Set(seen).size, seen.length)
})

test('an empty topic yields nothing and returns at once', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 2 })
  t.after(drop)
  const records = []
  for await (const record of readTopicSnapshot({ brokers, topic })) records.push(record)
  assert.equal(records.length, 0)
})

test('a partition whose last offsets are transaction markers or aborted records still ends', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 2 })
  t.after(drop)
  const producer = new Producer({
    clientId: 'snapshot-test-tx',
    bootstrapBrokers: brokers,
    serializers: stringSerializers,
    idempotent: true,
    transactionalId: `snapshot-test-${topic}`
  })
  t.after(() => producer.close())
  const committed = await producer.beginTransaction()
  await committed.send({
    messages: [0, 1, 2].map(i => ({ topic, partition: 0, key: `c${i}`, value: `committed-${i}` }))
  })
  await committed.commit()
  const aborted = await producer.beginTransaction()
  await aborted.send({ messages: [{ topic, partition: 1, key: 'a', value: 'aborted' }] })
  await aborted.abort()

  // Partition 0: three records and a commit marker; partition 1: an aborted record and its marker.
  // EndTxn returns once the coordinator has logged the outcome; it writes the markers to the partitions
  // after that, and until a marker lands the snapshot (read_committed) ends before the open transaction.
  // A CI run once saw partition 1 still at 0 here, so wait for the markers before reading.
  const expected = [
    [0, 0n, 4n],
    [1, 0n, 2n]
  ]
  let ranges: Awaited<ReturnType<typeof snapshotRanges>> = []
  const seenMarkers = async () => {
    ranges = await snapshotRanges({ brokers, topic })
    return isDeepStrictEqual(
      ranges.map(r => [r.partition, r.start, r.end]),
      expected
    )
  }
  // Not a waitFor: the assertion below shows the ranges seen last.
  await eventually(seenMarkers, 15_000, 100)
  assert.deepEqual(
    ranges.map(r => [r.partition, r.start, r.end]),
    expected
  )
  const seen: string[] = []
  const signal = AbortSignal.timeout(60_000)
  for await (const record of readTopicSnapshot({ brokers, topic, signal })) {
    seen.push(record.value.toString())
  }
  assert.deepEqual(seen, ['committed-0', 'committed-1', 'committed-2'], 'committed records only, and the read ends')
})
