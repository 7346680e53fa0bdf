/**
 * A 3-node cluster keeps every acknowledged write when the partition leader's JVM is SIGKILLed mid-run:
 * producing (acks=all, idempotent) continues after leader election, and every acknowledged message is
 * read back from the surviving replicas.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin, Producer, ProduceAcks, stringSerializers } from '@platformatic/kafka'
import { startKafka, stopKafka, stopNode } from '../../../src/testing/local-kafka.ts'
import { createTestTopic } from '../../../src/testing/topics.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { TEST_PORTS } from '../../helpers/ports.ts'

const PORT = TEST_PORTS.leaderFailover

test('SIGKILL of the partition leader loses no acknowledged message', { timeout: 240_000 }, async t => {
  const cluster = await startKafka({ nodes: 3, port: PORT, fresh: true })
  t.after(() => stopKafka({ port: PORT }))
  const brokers = cluster.brokers
  const { topic } = await createTestTopic({
    brokers,
    partitions: 1,
    replicas: 3,
    configs: { 'min.insync.replicas': '2' }
  })

  const admin = new Admin({ clientId: 'failover-admin', bootstrapBrokers: brokers })
  const metadata = await admin.metadata({ topics: [topic], forceUpdate: true })
  await admin.close()
  const leader = metadata.topics.get(topic)?.partitions[0]?.leader
  assert.ok(typeof leader === 'number' && leader >= 1, 'partition 0 has a leader')
  assert.equal(metadata.topics.get(topic)?.partitions[0]?.replicas.length, 3)

  const producer = new Producer({
    clientId: 'failover',
    bootstrapBrokers: brokers,
    serializers: stringSerializers,
    idempotent: true,
    acks: ProduceAcks.ALL,
    retries: 20,
    retryDelay: 250
  })
  t.after(() => producer.close(true))

  const acknowledged: string[] = []
  let failed = 0
  let killed = false
  for (let i = 0; acknowledged.length < 3000; i++) {
    if (acknowledged.length >= 1000 && !killed) {
      await stopNode(cluster, leader, 'SIGKILL')
      killed = true
    }
    const batch = Array.from({ length: 50 }, (_, j) => `m-${i}-${j}`)
    try {
      await producer.send({ messages: batch.map(value => ({ topic, key: value, value })) })
      acknowledged.push(...batch)
    } catch {
      failed++
      assert.ok(failed < 40, 'producing resumes after leader election')
    }
  }
  assert.ok(killed)

  const survivors = brokers.filter((_, index) => index + 1 !== leader)
  const received = await readTopic(survivors, topic, acknowledged.length, { timeoutMs: 90_000, quietMs: 1000 })
  const values = new Set(received.map(m => m.value.toString()))
  const lost = acknowledged.filter(v => !values.has(v))
  assert.deepEqual(lost.slice(0, 10), [], `${lost.length} acknowledged messages lost`)
  assert.equal(received.length, values.size, 'idempotence: no duplicates')
})
