/**
 * The producer against a single broker that crashes or hangs. The test starts its own one-node
 * cluster (see test/helpers/ports.ts) and SIGKILLs / SIGSTOPs that JVM:
 * - idempotent producing across a SIGKILL + restart: every acknowledged message is in the topic
 *   exactly once (retries reuse the producer id and sequence numbers, so the restarted broker,
 *   which rebuilds its producer state from the log, drops re-sent batches it already has);
 * - the circuit breaker opens once requests have failed for breaker.openAfterMs with no acknowledgement
 *   (the only broker is down: the cluster takes no writes; sends then fail fast with
 *   KAFKIT_CIRCUIT_OPEN) and closes through one probe once it is back;
 * - while the broker hangs: the delivery timeout, and a full buffer failing fast or making sends wait.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { stringSerde } from '../../../src/message/serde.ts'
import { Producer } from '../../../src/producer/producer.ts'
import type { SendOutcome } from '../../../src/producer/types.ts'
import type { BreakerStateChange } from '../../../src/resilience/circuit-breaker.ts'
import { pauseNode, startKafka, stopKafka, stopNode, type LocalKafkaCluster } from '../../../src/testing/local-kafka.ts'
import { createTestTopic } from '../../../src/testing/topics.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { eventually, sleep } from '../../helpers/wait.ts'
import { restartWhenPortFree } from '../../helpers/restart-nodes.ts'
import { TEST_PORTS } from '../../helpers/ports.ts'

const PORT = TEST_PORTS.producerBrokerRestart
let cluster: LocalKafkaCluster

before(async () => {
  cluster = await startKafka({ port: PORT, fresh: true })
})
after(async () => {
  await stopKafka({ port: PORT })
})

const code = (error: unknown) => (isKafkitError(error) ? error.code : String(error))

test(
  'idempotent producing across a broker SIGKILL + restart: 0 duplicates, 0 acknowledged lost',
  { timeout: 240_000 },
  async t => {
    const brokers = cluster.brokers
    const { topic } = await createTestTopic({ brokers, partitions: 3 })
    const producer = new Producer<string>({
      brokers,
      topic,
      env: {},
      valueSerde: stringSerde,
      // Retries (bounded by the delivery timeout) outlast the restart, with the same sequence numbers.
      deliveryTimeoutMs: 180_000,
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
    const rounds = 30
    const perRound = 200
    let restarted: Promise<void> | undefined
    const inFlight: Promise<void>[] = []
    for (let round = 0; round < rounds; round++) {
      const values = Array.from({ length: perRound }, (_, i) => `r${round}-m${i}`)
      inFlight.push(
        producer.sendBatch(values.map((value, i) => ({ key: `k${i % 25}`, value }))).then(o => record(values, o))
      )
      if (round === 8) {
        // Kill while two rounds are in flight, restart at once; the producer keeps retrying meanwhile.
        await stopNode(cluster, 1, 'SIGKILL')
        restarted = restartWhenPortFree(cluster)
      }
      if (inFlight.length >= 2) await inFlight.shift()
    }
    await Promise.all(inFlight)
    await restarted

    assert.ok(
      acknowledged.length >= rounds * perRound * 0.9,
      `${acknowledged.length} acknowledged, ${failed.length} failed`
    )
    const records = await readTopic(brokers, topic, acknowledged.length, { quietMs: 2000, timeoutMs: 90_000 })
    const counts = new Map<string, number>()
    for (const r of records) counts.set(r.value.toString(), (counts.get(r.value.toString()) ?? 0) + 1)
    const duplicates = [...counts].filter(([, n]) => n > 1)
    const lost = acknowledged.filter(v => !counts.has(v))
    assert.deepEqual(duplicates.slice(0, 5), [], `${duplicates.length} duplicated values`)
    assert.deepEqual(lost.slice(0, 5), [], `${lost.length} acknowledged values lost`)
    assert.ok(producer.metrics().retries > 0, 'the outage was met with retries')
  }
)

test('the breaker opens while the broker is down and closes after it returns', { timeout: 180_000 }, async t => {
  const brokers = cluster.brokers
  const { topic } = await createTestTopic({ brokers })
  const producer = new Producer<string>({
    brokers,
    topic,
    env: {},
    valueSerde: stringSerde,
    deliveryTimeoutMs: 6000,
    retryBackoff: { baseMs: 20, maxMs: 200 },
    breaker: { openAfterMs: 2000, cooldownMs: 1000 },
    connectTimeoutMs: 1000,
    requestTimeoutMs: 3000,
    lingerMs: 0
  })
  t.after(() => producer.close({ timeoutMs: 5000 }))
  const changes: BreakerStateChange[] = []
  producer.on('breaker', change => changes.push(change))
  // Precondition, not under test: the broker restarted by the previous test may need a few seconds
  // before its producer-id manager answers InitProducerId on a loaded machine.
  for (let attempt = 1; ; attempt++) {
    try {
      assert.equal((await producer.send({ value: 'before' })).status, 'sent')
      break
    } catch (error) {
      if (attempt >= 20) throw error
      await sleep(500) // between attempts
    }
  }
  changes.length = 0

  await stopNode(cluster, 1, 'SIGKILL')
  const started = Date.now()
  const down = producer.send({ value: 'down' })
  down.catch(() => undefined)
  // No acknowledgement while requests keep failing for openAfterMs: the cluster takes no writes.
  await eventually(() => producer.metrics().breakerState === 'open', 10_000, 50)
  assert.equal(producer.metrics().breakerState, 'open')
  assert.ok(Date.now() - started >= 2000, 'not before openAfterMs')
  await assert.rejects(producer.send({ value: 'fast' }), (error: unknown) => code(error) === 'KAFKIT_CIRCUIT_OPEN')
  await assert.rejects(down, (error: unknown) => {
    assert.equal(code(error), 'KAFKIT_SEND_TIMEOUT', 'a message already accepted keeps its delivery timeout')
    assert.equal((error as { retryable?: boolean }).retryable, true, 'a broker outage is retryable')
    return true
  })

  await restartWhenPortFree(cluster)
  let delivered = false
  for (let attempt = 0; attempt < 120 && !delivered; attempt++) {
    try {
      delivered = (await producer.send({ value: `after-${attempt}` })).status === 'sent'
    } catch (error) {
      assert.ok(['KAFKIT_CIRCUIT_OPEN', 'KAFKIT_SEND_TIMEOUT'].includes(code(error)), code(error))
      await sleep(250) // between attempts
    }
  }
  assert.ok(delivered, 'a send succeeds once the broker is back')
  const metrics = producer.metrics()
  assert.equal(metrics.breakerState, 'closed')
  assert.ok(metrics.breakerTrips >= 1)
  const path = changes.map(c => `${c.from}>${c.to}`)
  assert.equal(path[0], 'closed>open')
  assert.ok(['half-open>closed', 'open>closed'].includes(path.at(-1) ?? ''), path.join(' '))
  assert.ok(
    // open>closed: a request sent before the breaker opened, still retrying, was acknowledged.
    path.every(p => ['closed>open', 'open>half-open', 'half-open>open', 'half-open>closed', 'open>closed'].includes(p)),
    path.join(' ')
  )
})

test('while the broker hangs: send timeout, full buffer failing fast or waiting', { timeout: 120_000 }, async t => {
  const brokers = cluster.brokers
  const { topic } = await createTestTopic({ brokers })
  const value = 'v'.repeat(1000)
  const common = {
    brokers,
    topic,
    env: {},
    valueSerde: stringSerde,
    // A hung request neither fails nor is retried before requestTimeoutMs; retries only cover the
    // warm-up right after the broker started (its coordinator may still be loading).
    maxRetries: 5,
    retryBackoff: { baseMs: 100, maxMs: 500 },
    requestTimeoutMs: 60_000,
    breaker: { enabled: false },
    lingerMs: 0
  }
  const timing = new Producer<string>({ ...common, deliveryTimeoutMs: 500 })
  const failing = new Producer<string>({ ...common, bufferMemory: 4096, bufferFullBehavior: 'fail' })
  const waiting = new Producer<string>({ ...common, bufferMemory: 4096, bufferFullBehavior: 'wait', maxBlockMs: 300 })
  const producers = [timing, failing, waiting]
  // Connected and the topic's partitions known before the broker freezes.
  for (const producer of producers) assert.equal((await producer.send({ value: 'warm-up' })).status, 'sent')

  pauseNode(cluster, 1, true)
  t.after(async () => {
    pauseNode(cluster, 1, false)
    await Promise.all(producers.map(p => p.close({ timeoutMs: 2000 })))
  })

  await assert.rejects(timing.send({ value }), (error: unknown) => {
    assert.equal(code(error), 'KAFKIT_SEND_TIMEOUT')
    assert.equal((error as { details: { inFlight: boolean } }).details.inFlight, true)
    assert.match(
      (error as Error).message,
      /not acknowledged within deliveryTimeoutMs \(500 ms\); it was sent and may still be written/
    )
    return true
  })

  const held = [failing.send({ value }), failing.send({ value }), failing.send({ value })]
  for (const pending of held) pending.catch(() => undefined)
  await assert.rejects(failing.send({ value }), (error: unknown) => {
    assert.equal(code(error), 'KAFKIT_PRODUCER_BUFFER_FULL')
    assert.match((error as Error).message, /buffer is full \(\d+ of 4096 bytes\) and bufferFullBehavior is fail/)
    return true
  })
  assert.equal(failing.metrics().buffered.messages, 3)
  // close() gives up at its deadline and names exactly the messages that were not delivered.
  const report = await failing.close({ timeoutMs: 300 })
  assert.equal(report.flushed, 0)
  assert.equal(report.failed.length, 3)
  for (const failure of report.failed) {
    assert.equal(code(failure.error), 'KAFKIT_PRODUCER_CLOSED')
    assert.equal(failure.topic, topic)
    assert.equal(failure.message.value, value)
    assert.ok(failure.eventId)
  }
  const rejected = await Promise.allSettled(held)
  assert.deepEqual(
    rejected.map(r => (r.status === 'rejected' ? code(r.reason) : 'sent')),
    ['KAFKIT_PRODUCER_CLOSED', 'KAFKIT_PRODUCER_CLOSED', 'KAFKIT_PRODUCER_CLOSED']
  )

  const first = [waiting.send({ value }), waiting.send({ value }), waiting.send({ value })]
  for (const pending of first) pending.catch(() => undefined)
  const blocked = waiting.send({ value })
  let ready = false
  void waiting.ready.then(() => (ready = true))
  // A fixed wait (within maxBlockMs): `ready` must not resolve in this time.
  await sleep(100)
  assert.equal(ready, false, '`ready` stays pending while a send waits for room')
  await assert.rejects(blocked, (error: unknown) => {
    assert.equal(code(error), 'KAFKIT_PRODUCER_BUFFER_FULL')
    assert.match((error as Error).message, /no room in the producer's buffer within maxBlockMs \(300 ms\)/)
    return true
  })

  pauseNode(cluster, 1, false)
  const settled = await Promise.allSettled(first)
  assert.ok(
    settled.every(s => s.status === 'fulfilled'),
    'held messages are delivered once the broker thaws'
  )
  await waiting.ready
})
