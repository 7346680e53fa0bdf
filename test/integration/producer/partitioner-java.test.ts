/**
 * Proof that Kafkit's key partitioning is the Java client's: the same keys are produced once by
 * Kafka's own Java console producer (org.apache.kafka.tools.ConsoleProducer, default partitioner)
 * and once by Kafkit, to the same topic on the same broker; reading the topic back, every key's
 * Java record and Kafkit record sit in the same partition.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Producer } from '../../../src/producer/producer.ts'
import { stringSerde } from '../../../src/message/serde.ts'
import { createTestTopic } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { javaConsoleProducer } from './java-tools.ts'

test("keys land in the partition Kafka's Java producer picks", { timeout: 120_000 }, async t => {
  const brokers = bootstrapServers()
  const partitions = 7
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions })
  t.after(drop)
  const keys = [
    ...Array.from({ length: 150 }, (_, i) => `key-${i}`),
    'booking-12345',
    'a',
    'ab',
    'abc',
    'user:+972501234567',
    'ünïcødé-κλειδί',
    '日本語のキー',
    'emoji-🚀',
    'x'.repeat(300)
  ]
  await javaConsoleProducer(
    brokers,
    topic,
    keys.map(key => `${key}\tjava`)
  )

  const producer = new Producer<string>({ brokers, topic, env: {}, valueSerde: stringSerde })
  t.after(() => producer.close())
  const outcomes = await producer.sendBatch(keys.map(key => ({ key, value: 'kafkit' })))
  assert.ok(outcomes.every(o => o.ok))

  const records = await readTopic(brokers, topic, keys.length * 2, { quietMs: 300 })
  assert.equal(records.length, keys.length * 2)
  const java = new Map<string, number>()
  const kafkit = new Map<string, number>()
  for (const record of records) {
    ;(record.value.toString() === 'java' ? java : kafkit).set(record.key.toString('utf8'), record.partition)
  }
  assert.equal(java.size, keys.length, 'every Java record read back')
  const mismatches = keys.filter(key => java.get(key) !== kafkit.get(key))
  assert.deepEqual(mismatches, [], 'keys whose partition differs between Java and Kafkit')
  assert.ok(new Set(java.values()).size === partitions, 'the keys cover every partition')
})
