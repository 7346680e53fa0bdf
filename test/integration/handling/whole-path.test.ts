/**
 * Handling end to end on a real broker: poison pills and each error kind end where they should
 * (transient → retried, then DLQ; permanent → DLQ at once; business → committed, not in the DLQ), the
 * partition never stalls, and an open circuit breaker neither dead-letters nor commits. Driven by the
 * consumer runtime (src/consumer), which follows the contract at the top of src/handling/index.ts.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin, Producer } from '@platformatic/kafka'
import { z } from 'zod'
import { parseDeadLetterHeaders, type DeadLetterInfo } from '../../../src/handling/dead-letter.ts'
import { BusinessError, PermanentError, TransientError } from '../../../src/handling/errors.ts'
import { EventRouter } from '../../../src/handling/event-router.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { eventually } from '../../helpers/wait.ts'
import { Consumer, type SettledOutcome } from '../../../src/consumer/consumer.ts'

const quiet = { debug() {}, info() {}, warn() {}, error() {} }

async function committedOffset(brokers: string[], groupId: string, topic: string): Promise<bigint | undefined> {
  const admin = new Admin({ clientId: 'kafkit-handling-test', bootstrapBrokers: brokers })
  try {
    const [group] = await admin.listConsumerGroupOffsets({ groups: [groupId] })
    const offset = group?.topics.find(t => t.name === topic)?.partitions.find(p => p.partitionIndex === 0)
    return offset === undefined || offset.committedOffset < 0n ? undefined : offset.committedOffset
  } finally {
    await admin.close()
  }
}

/** Runs the consumer until `expected` records settled; their verdicts by offset, in offset order. */
async function settleAll<V>(consumer: Consumer<V>, expected: number): Promise<Map<bigint, SettledOutcome>> {
  const outcomes = new Map<bigint, SettledOutcome>()
  consumer.on('settled', ({ offset, outcome }) => outcomes.set(offset, outcome))
  await consumer.start()
  // Not a waitFor: the caller's assertions show what did not settle.
  await eventually(() => outcomes.size >= expected, 120_000, 20)
  await consumer.stop()
  return new Map([...outcomes].sort(([a], [b]) => (a < b ? -1 : 1)))
}

function record(type: string | undefined, value: Buffer | null, key = 'k') {
  return {
    key: Buffer.from(key),
    value: value as Buffer,
    headers: type === undefined ? new Map<Buffer, Buffer>() : new Map([[Buffer.from('event-type'), Buffer.from(type)]])
  }
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value))

test('poison pills and each error kind end where they should; the partition never stalls', async t => {
  const brokers = bootstrapServers()
  const source = await createTestTopic({ brokers, prefix: 'handling-src' })
  t.after(source.delete)
  const dlqTopic = await createTestTopic({ brokers, prefix: 'handling-dlq' })
  t.after(dlqTopic.delete)
  const producer = new Producer({ clientId: 'kafkit-handling-test', bootstrapBrokers: brokers })
  t.after(() => producer.close())

  const inputs = [
    /* 0 */ record('orders.order.placed', json({ id: 'ok-1' })),
    /* 1 */ record('orders.order.placed', Buffer.from('{"id": "broken')),
    /* 2 */ record('orders.order.placed', Buffer.from([0xff, 0xfe, 0x7b, 0x7d])),
    /* 3 */ record('orders.order.placed', null),
    /* 4 */ record('flaky', json({ id: 'flaky' })),
    /* 5 */ record('down', json({ id: 'down' })),
    /* 6 */ record('invalid', json({ id: 'invalid' })),
    /* 7 */ record('conflict', json({ id: 'conflict' })),
    /* 8 */ record('refused', json({ id: 'refused' })),
    /* 9 */ record(undefined, json({ id: 'untyped' })),
    /* 10 */ record('other.thing', json({ id: 'unknown type' })),
    /* 11 */ record('orders.order.placed', json({ id: 'ok-2' }))
  ]
  await producer.send({ messages: inputs.map(m => ({ ...m, topic: source.topic, partition: 0 })), acks: -1 })

  const attempts = new Map<string, number>()
  const count = (id: string) => attempts.set(id, (attempts.get(id) ?? 0) + 1)
  const placed: string[] = []
  const router = new EventRouter<Record<string, { id: string }>>({ logger: quiet })
    .on('orders.order.placed', m => Promise.resolve(void placed.push(m.value.id)), {
      schema: z.object({ id: z.string() })
    })
    .on('flaky', m => {
      count(m.value.id)
      return (attempts.get('flaky') ?? 0) < 3 ? Promise.reject(new TransientError('busy')) : Promise.resolve()
    })
    .on('down', m => {
      count(m.value.id)
      return Promise.reject(new TransientError('downstream down'))
    })
    .on('invalid', m => {
      count(m.value.id)
      return Promise.reject(new PermanentError('invalid message'))
    })
    .on('conflict', m => {
      count(m.value.id)
      return Promise.reject(new BusinessError('already booked'))
    })
    .on('refused', m => {
      count(m.value.id)
      // A plain error: classified by its message (seed 004's list) as transient.
      return Promise.reject(new Error('connect: connection refused'))
    })
  const groupId = uniqueName('handling')
  const outcomes = await settleAll(
    new Consumer({
      brokers,
      groupId,
      topics: [source.topic],
      startOffset: 'earliest',
      commitStrategy: 'message',
      handler: router,
      maxRetries: 2,
      retryBackoff: { baseMs: 5, maxMs: 20 },
      dlqTopic: dlqTopic.topic,
      logger: quiet,
      env: {}
    }),
    inputs.length
  )

  assert.deepEqual(
    [...outcomes].map(([offset, kind]) => `${offset}:${kind}`),
    [
      '0:done',
      '1:dead-letter',
      '2:dead-letter',
      '3:dead-letter',
      '4:done',
      '5:dead-letter',
      '6:dead-letter',
      '7:business',
      '8:dead-letter',
      '9:dead-letter',
      '10:done',
      '11:done'
    ]
  )
  assert.deepEqual(placed, ['ok-1', 'ok-2'])
  assert.deepEqual(Object.fromEntries(attempts), { flaky: 3, down: 3, invalid: 1, conflict: 1, refused: 3 })
  assert.equal(await committedOffset(brokers, groupId, source.topic), 12n, 'committed through the last record')

  const dead = await readTopic(brokers, dlqTopic.topic, 7, { quietMs: 500 })
  const byOffset = new Map<bigint, { info: DeadLetterInfo; value: Buffer | undefined }>(
    dead.map(r => [
      parseDeadLetterHeaders(r.headers).originOffset,
      { info: parseDeadLetterHeaders(r.headers), value: r.value }
    ])
  )
  assert.equal(dead.length, 7, 'each failed record once, nothing else')
  assert.deepEqual(
    [...byOffset].map(([offset, { info }]) => `${offset}:${info.errorKind}:${info.errorClass}:${info.attempts}`),
    [
      '1:permanent:DeserializationError:0',
      '2:permanent:DeserializationError:0',
      '3:permanent:SchemaMismatchError:1',
      '5:transient:TransientError:3',
      '6:permanent:PermanentError:1',
      '8:transient:Error:3',
      '9:permanent:PermanentError:1'
    ]
  )
  assert.deepEqual(byOffset.get(2n)?.value, Buffer.from([0xff, 0xfe, 0x7b, 0x7d]), 'raw bytes kept')
  assert.deepEqual(byOffset.get(1n)?.value, Buffer.from('{"id": "broken'))
  assert.equal(byOffset.get(3n)?.value, undefined, 'the null value stays null')
  assert.match(byOffset.get(9n)?.info.errorMessage ?? '', /has no event type/)
  assert.equal(byOffset.get(9n)?.info.errorCode, 'KAFKIT_EVENT_UNROUTABLE')
  for (const { info } of byOffset.values()) {
    assert.equal(info.originTopic, source.topic)
    assert.equal(info.consumerGroup, groupId)
  }
})

test('while the circuit breaker is open nothing is dead-lettered or committed; after the probe all resume', async t => {
  const brokers = bootstrapServers()
  const source = await createTestTopic({ brokers, prefix: 'breaker-src' })
  t.after(source.delete)
  const dlqTopic = await createTestTopic({ brokers, prefix: 'breaker-dlq' })
  t.after(dlqTopic.delete)
  const producer = new Producer({ clientId: 'kafkit-handling-test', bootstrapBrokers: brokers })
  t.after(() => producer.close())
  const total = 20
  await producer.send({
    messages: Array.from({ length: total }, (_, i) => ({
      topic: source.topic,
      partition: 0,
      ...record('save', json({ i }))
    })),
    acks: -1
  })

  let downstreamUp = false
  const saved: number[] = []
  const groupId = uniqueName('breaker')
  const consumer = new Consumer<{ i: number }>({
    brokers,
    groupId,
    topics: [source.topic],
    startOffset: 'earliest',
    commitStrategy: 'message',
    maxRetries: 1,
    retryBackoff: { baseMs: 5, maxMs: 10 },
    breaker: { threshold: 2, cooldownMs: 150 },
    dlqTopic: dlqTopic.topic,
    logger: quiet,
    env: {},
    handler: m => {
      if (!downstreamUp) return Promise.reject(new TransientError('db down'))
      saved.push(m.value.i)
      return Promise.resolve()
    }
  })
  const breaker = consumer.breaker as NonNullable<typeof consumer.breaker>
  const running = settleAll(consumer, total)
  await eventually(() => breaker.trips >= 3, 60_000, 20)
  assert.equal(breaker.trips, 3, 'the breaker opened, and failed probes re-opened it')
  assert.equal(await committedOffset(brokers, groupId, source.topic), undefined, 'nothing committed during the outage')
  downstreamUp = true
  const outcomes = await running
  assert.equal(breaker.state, 'closed')
  assert.deepEqual(
    [...outcomes.values()],
    Array.from({ length: total }, () => 'done')
  )
  assert.deepEqual(
    saved,
    Array.from({ length: total }, (_, i) => i)
  )
  assert.equal(await committedOffset(brokers, groupId, source.topic), BigInt(total))
  const dead = await readTopic(brokers, dlqTopic.topic, 0, { timeoutMs: 1_000, quietMs: 500 })
  assert.equal(dead.length, 0, 'the outage sent nothing to the DLQ although maxRetries was 1')
})
