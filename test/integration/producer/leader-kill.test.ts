/**
 * The producer on a three-node cluster (started by the test, see test/helpers/ports.ts) when a node's JVM is
 * SIGKILLed:
 * - idempotent producing across the kill of a partition leader: leadership moves, the producer
 *   re-sends to the new leader with the same sequence numbers, and reading back from the survivors
 *   finds every acknowledged message exactly once;
 * - with a node gone, a topic that requires three in-sync replicas refuses writes with the
 *   retriable NOT_ENOUGH_REPLICAS: once the retries run out the messages go to the producer DLQ
 *   (a topic still writable with two replicas) with headers saying why.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { stringSerde } from '../../../src/message/serde.ts'
import { Producer } from '../../../src/producer/producer.ts'
import type { SendOutcome } from '../../../src/producer/types.ts'
import { startKafka, stopKafka, stopNode, type LocalKafkaCluster } from '../../../src/testing/local-kafka.ts'
import { createTestTopic } from '../../../src/testing/topics.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { TEST_PORTS } from '../../helpers/ports.ts'

const PORT = TEST_PORTS.producerLeaderKill
let cluster: LocalKafkaCluster
/** Topics made while all three nodes run (a topic with three replicas cannot be created later). */
let failover: string
let strict: string
let dlq: string
let killed: number | undefined

before(async () => {
  cluster = await startKafka({ brokers: 3, port: PORT, fresh: true })
  const bootstrapServers = cluster.bootstrapServers
  failover = (
    await createTestTopic({ bootstrapServers, partitions: 3, replicas: 3, configs: { 'min.insync.replicas': '2' } })
  ).topic
  strict = (await createTestTopic({ bootstrapServers, replicas: 3, configs: { 'min.insync.replicas': '3' } })).topic
  dlq = (
    await createTestTopic({
      bootstrapServers,
      replicas: 3,
      configs: { 'min.insync.replicas': '2' },
      prefix: 'kafkit-test-dlq'
    })
  ).topic
})
after(async () => {
  await stopKafka({ port: PORT })
})

async function leaderOf(brokers: string[], topic: string, partition: number): Promise<number> {
  const admin = new Admin({ clientId: 'kafkit-test-admin', bootstrapBrokers: brokers })
  try {
    const metadata = await admin.metadata({ topics: [topic], forceUpdate: true })
    const leader = metadata.topics.get(topic)?.partitions[partition]?.leader
    assert.ok(typeof leader === 'number' && leader >= 1)
    return leader
  } finally {
    await admin.close()
  }
}

test(
  'idempotent producing across a leader SIGKILL on 3 nodes: 0 duplicates, 0 acknowledged lost',
  { timeout: 240_000 },
  async t => {
    const brokers = cluster.bootstrapServers
    const leader = await leaderOf(brokers, failover, 0)
    const producer = new Producer<string>({
      brokers,
      topic: failover,
      env: {},
      valueSerde: stringSerde,
      maxRetries: 100,
      retryBackoff: { baseMs: 100, maxMs: 1000 },
      sendTimeoutMs: 120_000,
      breaker: { enabled: false },
      connectTimeoutMs: 2000,
      requestTimeoutMs: 10_000,
      lingerMs: 2
    })
    t.after(() => producer.close({ timeoutMs: 5000 }))

    const acknowledged: string[] = []
    const failed: string[] = []
    const record = (values: string[], outcomes: SendOutcome[]) =>
      outcomes.forEach((outcome, i) => (outcome.ok ? acknowledged : failed).push(values[i] as string))
    const inFlight: Promise<void>[] = []
    for (let round = 0; round < 30; round++) {
      const values = Array.from({ length: 200 }, (_, i) => `r${round}-m${i}`)
      inFlight.push(
        producer.sendBatch(values.map((value, i) => ({ key: `k${i % 30}`, value }))).then(o => record(values, o))
      )
      if (round === 8) {
        await stopNode(cluster, leader, 'SIGKILL')
        killed = leader
      }
      if (inFlight.length >= 2) await inFlight.shift()
    }
    await Promise.all(inFlight)
    assert.notEqual(
      await leaderOf(
        brokers.filter((_, i) => i + 1 !== leader),
        failover,
        0
      ),
      leader,
      'leadership moved'
    )

    assert.ok(acknowledged.length >= 6000 * 0.9, `${acknowledged.length} acknowledged, ${failed.length} failed`)
    const survivors = brokers.filter((_, i) => i + 1 !== leader)
    const records = await readTopic(survivors, failover, acknowledged.length, { quietMs: 2000, timeoutMs: 90_000 })
    const counts = new Map<string, number>()
    for (const r of records) counts.set(r.value.toString(), (counts.get(r.value.toString()) ?? 0) + 1)
    const duplicates = [...counts].filter(([, n]) => n > 1)
    const lost = acknowledged.filter(v => !counts.has(v))
    assert.deepEqual(duplicates.slice(0, 5), [], `${duplicates.length} duplicated values`)
    assert.deepEqual(lost.slice(0, 5), [], `${lost.length} acknowledged values lost`)
  }
)

test('messages whose retries run out (NOT_ENOUGH_REPLICAS) go to the producer DLQ', { timeout: 120_000 }, async t => {
  assert.ok(killed !== undefined, 'runs after the leader kill: one node is down')
  const brokers = cluster.bootstrapServers.filter((_, i) => i + 1 !== killed)
  const producer = new Producer<string>({
    brokers,
    topic: strict,
    env: {},
    valueSerde: stringSerde,
    maxRetries: 3,
    retryBackoff: { baseMs: 50, maxMs: 200 },
    dlqTopic: dlq,
    breaker: { threshold: 100, cooldownMs: 1000 },
    lingerMs: 0
  })
  t.after(() => producer.close({ timeoutMs: 5000 }))

  const results = await producer.sendBatch([
    { key: 'k1', value: 'first', headers: { origin: 'test' } },
    { key: 'k2', value: 'second' }
  ])
  for (const outcome of results) {
    assert.ok(outcome.ok, `dead-lettered, not failed: ${outcome.ok ? '' : outcome.error.message}`)
    assert.equal(outcome.result.status, 'dead-lettered')
    assert.equal(outcome.result.topic, strict)
    assert.equal(outcome.result.deadLetter?.topic, dlq)
    const error = outcome.result.deadLetter?.error
    assert.ok(isKafkitError(error) && error.code === 'KAFKIT_PRODUCE_FAILED' && error.retryable)
    assert.match(error.message, /not acknowledged after 3 retries/)
  }
  const metrics = producer.metrics()
  assert.equal(metrics.messagesDeadLettered, 2)
  assert.equal(metrics.messagesSent, 0)
  assert.ok(metrics.retries >= 3)

  const records = await readTopic(brokers, dlq, 2, { quietMs: 500 })
  assert.deepEqual(records.map(r => r.value.toString()).sort(), ['first', 'second'])
  const first = records.find(r => r.value.toString() === 'first')
  const headers = new Map([...(first?.headers ?? [])].map(([name, value]) => [name.toString(), value.toString()]))
  const header = (name: string) => headers.get(name)
  assert.equal(first?.key.toString(), 'k1')
  assert.equal(header('origin'), 'test', 'original headers kept')
  assert.ok(header('event-id'), 'the standard headers too')
  assert.equal(header('kafkit-dlq-origin-topic'), strict)
  assert.equal(header('kafkit-dlq-error-code'), 'KAFKIT_PRODUCE_FAILED')
  assert.equal(header('kafkit-dlq-error-kind'), 'transient')
  assert.equal(header('kafkit-dlq-attempts'), '4')
  assert.match(header('kafkit-dlq-error-message') ?? '', /NOT_ENOUGH_REPLICAS|fewer in-sync replicas/)
})
