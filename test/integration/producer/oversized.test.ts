/**
 * An oversized message fails alone with a clear, coded error; the other messages of its batch are
 * written. Two limits: the producer's own `maxMessageBytes` (checked before buffering) and the
 * topic's `max.message.bytes` (the broker rejects the whole record batch; the producer splits it and
 * retries the messages one by one, so only the oversized one fails).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { stringSerde } from '../../../src/message/serde.ts'
import { Producer } from '../../../src/producer/producer.ts'
import { createTestTopic } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'

test('a message over the topic limit fails alone; the rest of its batch is written', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({
    brokers,
    configs: { 'max.message.bytes': String(64 * 1024) }
  })
  t.after(drop)
  const producer = new Producer<string>({
    brokers,
    topic,
    env: {},
    valueSerde: stringSerde,
    maxMessageBytes: 512 * 1024
  })
  t.after(() => producer.close())

  const values = Array.from({ length: 10 }, (_, i) => (i === 4 ? 'B'.repeat(100 * 1024) : `small-${i}`))
  values.push('C'.repeat(600 * 1024)) // over the producer's own limit: refused before buffering
  const outcomes = await producer.sendBatch(values.map(value => ({ value })))

  const failed = outcomes.flatMap((outcome, i) => (outcome.ok ? [] : [[i, outcome.error] as const]))
  assert.deepEqual(
    failed.map(([i]) => i),
    [4, 10],
    'only the two oversized messages failed'
  )
  const [, brokerSide] = failed[0] ?? []
  assert.ok(isKafkitError(brokerSide) && brokerSide.code === 'KAFKIT_MESSAGE_TOO_LARGE')
  assert.match(brokerSide.message, /larger than the topic accepts .*only this message failed/)
  assert.equal(brokerSide.retryable, false)
  const [, clientSide] = failed[1] ?? []
  assert.ok(isKafkitError(clientSide) && clientSide.code === 'KAFKIT_MESSAGE_TOO_LARGE')
  assert.match(clientSide.message, /more than maxMessageBytes \(524288\)/)

  const offsets = outcomes.flatMap(o => (o.ok ? [o.result.offset] : []))
  assert.equal(offsets.length, 9)
  const records = await readTopic(brokers, topic, 9, { quietMs: 500 })
  assert.deepEqual(
    records.map(r => r.value.toString()),
    values.filter((_, i) => i !== 4 && i !== 10),
    'the nine others, in order'
  )
  assert.deepEqual(
    records.map(r => r.offset),
    offsets
  )
  const metrics = producer.metrics()
  assert.equal(metrics.messagesSent, 9)
  assert.equal(metrics.messagesFailed, 2)
  assert.equal(metrics.breakerState, 'closed', 'an oversized message says nothing about broker health')
  assert.equal(metrics.retries, 0, 'MESSAGE_TOO_LARGE is not retriable: never retried')
})
