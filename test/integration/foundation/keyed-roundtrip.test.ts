/**
 * The broker and the harness work end to end: 10,000 keyed messages over 6 partitions are produced
 * and read back, every one arrives once, and the order per key is the order they were produced in.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Producer, ProduceAcks, stringSerializers } from '@platformatic/kafka'
import { createTestTopic } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'

test('10,000 keyed messages all arrive, in order per key', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 6 })
  t.after(drop)

  const producer = new Producer({
    clientId: 'roundtrip',
    bootstrapBrokers: brokers,
    serializers: stringSerializers,
    idempotent: true,
    acks: ProduceAcks.ALL
  })
  t.after(() => producer.close())
  const total = 10_000
  const keys = 100
  for (let start = 0; start < total; start += 500) {
    await producer.send({
      messages: Array.from({ length: 500 }, (_, j) => {
        const i = start + j
        return { topic, key: `key-${i % keys}`, value: String(i) }
      })
    })
  }

  const received = await readTopic(brokers, topic, total, { quietMs: 500 })
  assert.equal(received.length, total, 'every message arrives exactly once')
  const seen = new Set(received.map(m => m.value.toString()))
  assert.equal(seen.size, total, 'no message is missing or duplicated')

  const lastPerKey = new Map<string, number>()
  const partitionOfKey = new Map<string, number>()
  for (const message of received) {
    const key = message.key.toString()
    const value = Number(message.value.toString())
    assert.ok((lastPerKey.get(key) ?? -1) < value, `order of ${key} holds`)
    lastPerKey.set(key, value)
    const partition = partitionOfKey.get(key) ?? message.partition
    assert.equal(partition, message.partition, `${key} always lands in one partition`)
    partitionOfKey.set(key, partition)
  }
  assert.equal(lastPerKey.size, keys)
  assert.ok(new Set(partitionOfKey.values()).size > 1, 'keys spread over several partitions')
})
