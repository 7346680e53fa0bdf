/**
 * Handling end to end on a real broker: poison pills and each error kind end where they should
 * (transient → retried, then DLQ; permanent → DLQ at once; business → committed, not in the DLQ), the
 * partition never stalls, and an open circuit breaker neither dead-letters nor commits. Driven by the
 * reference worker (the documented runtime contract in its smallest form).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin, Producer } from '@platformatic/kafka'
import { z } from 'zod'
import { ConsumerCircuitBreaker } from '../../../src/handling/consumer-breaker.ts'
import { DeadLetterWriter } from '../../../src/handling/dead-letter-writer.ts'
import { parseDeadLetterHeaders, type DeadLetterInfo } from '../../../src/handling/dead-letter.ts'
import { BusinessError, PermanentError, TransientError } from '../../../src/handling/errors.ts'
import { EventRouter } from '../../../src/handling/event-router.ts'
import { HandlerExecutor } from '../../../src/handling/handler-executor.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { runReferenceWorker } from './reference-worker.ts'

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
  const source = await createTestTopic({ bootstrapServers: brokers, prefix: 'handling-src' })
  t.after(source.delete)
  const dlqTopic = await createTestTopic({ bootstrapServers: brokers, prefix: 'handling-dlq' })
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
  const executor = new HandlerExecutor({
    handler: router.handler(),
    maxRetries: 2,
    retryBackoff: { baseMs: 5, maxMs: 20 },
    logger: quiet
  })
  const dlq = new DeadLetterWriter({ producer, topic: dlqTopic.topic, groupId, logger: quiet })

  const outcomes = await runReferenceWorker({
    brokers,
    topic: source.topic,
    groupId,
    executor,
    dlq,
    expected: inputs.length,
    signal: AbortSignal.timeout(120_000)
  })

  assert.deepEqual(
    [...outcomes].map(([offset, o]) => `${offset}:${o.kind}:${o.attempts}`),
    [
      '0:done:1',
      '1:dead-letter:0',
      '2:dead-letter:0',
      '3:dead-letter:1',
      '4:done:3',
      '5:dead-letter:3',
      '6:dead-letter:1',
      '7:business:1',
      '8:dead-letter:3',
      '9:dead-letter:1',
      '10:done:1',
      '11:done:1'
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
  const source = await createTestTopic({ bootstrapServers: brokers, prefix: 'breaker-src' })
  t.after(source.delete)
  const dlqTopic = await createTestTopic({ bootstrapServers: brokers, prefix: 'breaker-dlq' })
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
  const breaker = new ConsumerCircuitBreaker({ threshold: 2, cooldownMs: 150 })
  const groupId = uniqueName('breaker')
  const executor = new HandlerExecutor<{ i: number }>({
    maxRetries: 1,
    retryBackoff: { baseMs: 5, maxMs: 10 },
    breaker,
    logger: quiet,
    handler: m => {
      if (!downstreamUp) return Promise.reject(new TransientError('db down'))
      saved.push(m.value.i)
      return Promise.resolve()
    }
  })
  const dlq = new DeadLetterWriter({ producer, topic: dlqTopic.topic, groupId, logger: quiet })
  const running = runReferenceWorker({
    brokers,
    topic: source.topic,
    groupId,
    executor: executor as HandlerExecutor,
    dlq,
    expected: total,
    signal: AbortSignal.timeout(120_000)
  })
  const deadline = Date.now() + 60_000
  while (breaker.trips < 3 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  assert.equal(breaker.trips, 3, 'the breaker opened, and failed probes re-opened it')
  assert.equal(await committedOffset(brokers, groupId, source.topic), undefined, 'nothing committed during the outage')
  downstreamUp = true
  const outcomes = await running
  assert.equal(breaker.state, 'closed')
  assert.deepEqual(
    [...outcomes.values()].map(o => o.kind),
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
