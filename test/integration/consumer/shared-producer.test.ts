/**
 * A consumer given a Kafkit Producer writes its dead-letter records with it: the usual dead-letter
 * headers, acknowledged before the origin offset is committed, and the producer left open on stop.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Consumer } from '../../../src/consumer/consumer.ts'
import { parseDeadLetterHeaders } from '../../../src/handling/dead-letter.ts'
import type { DeadLetterProducer } from '../../../src/handling/dead-letter-writer.ts'
import { PermanentError } from '../../../src/handling/errors.ts'
import { Producer } from '../../../src/producer/producer.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { committedOffsets, json, produceKeyed, quiet, sleep, waitFor } from './helpers.ts'

test('a shared producer carries the dead-letter writes, acknowledged before the commit, and stays usable after stop()', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers })
  t.after(drop)
  const dlq = await createTestTopic({ brokers, prefix: 'shared-dlq' })
  t.after(dlq.delete)
  await produceKeyed(brokers, topic, 5, { keys: 1, value: i => json({ i, bad: i === 2 }) })

  const producer = new Producer<{ note: string }>({ brokers, env: {} })
  t.after(() => producer.close())
  // The shared producer's client: its sends to the DLQ are noted and held until `acknowledge` resolves.
  const client = producer.client
  const send: DeadLetterProducer['send'] = client.send.bind(client)
  const dlqWrites: bigint[] = []
  const acknowledge = Promise.withResolvers<void>()
  Object.assign(client, {
    send: async (options: Parameters<DeadLetterProducer['send']>[0]) => {
      if (options.messages.some(message => message.topic === dlq.topic)) {
        dlqWrites.push(
          ...options.messages.map(message => parseDeadLetterHeaders(message.headers ?? new Map()).originOffset)
        )
        await acknowledge.promise
      }
      return send(options)
    }
  })

  const groupId = uniqueName('group')
  const consumer = new Consumer<{ i: number; bad: boolean }>({
    brokers,
    env: {},
    groupId,
    topics: [topic],
    startOffset: 'earliest',
    dlqTopic: dlq.topic,
    commitIntervalMs: 100,
    logger: quiet,
    producer,
    handler: async message => {
      await Promise.resolve()
      if (message.value.bad) throw new PermanentError('bad record')
    }
  })
  await consumer.start()
  await waitFor(() => dlqWrites.length === 1, 30_000)
  assert.deepEqual(dlqWrites, [2n], 'the dead-letter record went through the shared producer')
  // While the write is not acknowledged, nothing at or past the bad record is committed: a fixed wait
  // (ten commit intervals) in which no such commit may happen.
  await sleep(1000)
  const held = (await committedOffsets(brokers, groupId, topic)).get(0) ?? -1n
  assert.ok(held <= 2n, `committed ${held} before the dead-letter write was acknowledged`)
  assert.equal(consumer.metrics().deadLettered, 0)
  assert.equal(consumer.metrics().partitions[0]?.position, 2n)

  acknowledge.resolve()
  await waitFor(() => consumer.metrics().processed + consumer.metrics().deadLettered >= 5, 30_000)
  await consumer.stop()
  assert.equal(consumer.metrics().deadLettered, 1)
  assert.equal((await committedOffsets(brokers, groupId, topic)).get(0), 5n)

  const dead = await readTopic(brokers, dlq.topic, 1, { quietMs: 300 })
  assert.equal(dead.length, 1)
  const info = parseDeadLetterHeaders(dead[0]?.headers ?? new Map())
  assert.equal(info.originTopic, topic)
  assert.equal(info.originOffset, 2n)
  assert.equal(info.consumerGroup, groupId)
  assert.equal(info.errorKind, 'permanent')
  assert.deepEqual(JSON.parse(dead[0]?.value.toString() ?? '{}'), { i: 2, bad: true }, 'the original bytes')

  assert.equal(producer.closed, false, 'stop() left the shared producer open')
  const after = await producer.send({ topic, value: { note: 'after stop' } })
  assert.equal(after.status, 'sent')
  assert.equal(after.offset, 5n)
})
