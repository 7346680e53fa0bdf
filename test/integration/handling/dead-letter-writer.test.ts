/**
 * The DLQ writer against a real broker: a real consumed record that failed is dead-lettered, read back
 * from the DLQ topic, and its bytes and `kafkit-dlq-*` headers compared with the original.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Producer } from '@platformatic/kafka'
import { DeadLetterWriteError, DeadLetterWriter } from '../../../src/handling/dead-letter-writer.ts'
import { originalHeaderEntries, originalHeaders, parseDeadLetterHeaders } from '../../../src/handling/dead-letter.ts'
import { PermanentError, TransientError } from '../../../src/handling/errors.ts'
import { HandlerExecutor } from '../../../src/handling/handler-executor.ts'
import type { ConsumedMessage } from '../../../src/handling/types.ts'
import { readStandardHeaders } from '../../../src/message/headers.ts'
import { utf8Strict } from '../../../src/message/serde.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic, type RawMessage } from '../../helpers/read-topic.ts'
import { waitFor } from '../../helpers/wait.ts'
import { captureLogger } from '../../unit/handling/fixtures.ts'

const quiet = { debug() {}, info() {}, warn() {}, error() {} }

/** What the runtime does with a fetched record: keep the bytes, decode what decodes. */
function toConsumed(record: RawMessage): ConsumedMessage<unknown> {
  const headerEntries = record.headerEntries.map(([name, value]) => [name.toString(), value] as const)
  const headers = new Map(headerEntries)
  const raw = { key: record.key ?? null, value: record.value ?? null }
  let value: unknown
  try {
    value = raw.value === null ? null : JSON.parse(utf8Strict(raw.value))
  } catch {
    value = undefined
  }
  return {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    timestamp: new Date(Number(record.timestamp)),
    key: raw.key === null ? null : raw.key.toString('utf8'),
    value,
    headers,
    headerEntries,
    meta: readStandardHeaders(headers),
    raw
  }
}

function bufferProducer(brokers: string[], extra: { retries?: number; retryDelay?: number } = {}) {
  return new Producer({ clientId: 'kafkit-dlq-test', bootstrapBrokers: brokers, ...extra })
}

test('a failed record lands in the DLQ with its bytes, headers and the reasons, acknowledged', async t => {
  const brokers = bootstrapServers()
  const source = await createTestTopic({ brokers, partitions: 2, prefix: 'dlq-src' })
  t.after(source.delete)
  const dlq = await createTestTopic({ brokers, partitions: 1, prefix: 'dlq' })
  t.after(dlq.delete)
  const producer = bufferProducer(brokers)
  t.after(() => producer.close())

  const notUtf8 = Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0x00, 0xff])
  await producer.send({
    messages: [
      {
        topic: source.topic,
        partition: 1,
        key: Buffer.from('order-9'),
        value: notUtf8,
        headers: new Map([
          [Buffer.from('event-id'), Buffer.from('evt-9')],
          [Buffer.from('event-type'), Buffer.from('orders.order.placed')],
          [Buffer.from('opaque'), Buffer.from([0, 1, 2, 250])],
          // Kafka allows a name twice; distinct Buffer keys keep both in the Map.
          [Buffer.from('hop'), Buffer.from('a')],
          [Buffer.from('hop'), Buffer.from('b')]
        ])
      },
      { topic: source.topic, partition: 0, value: null as unknown as Buffer }
    ],
    acks: -1
  })
  const fetched = (await readTopic(brokers, source.topic, 2)).map(toConsumed)
  assert.equal(fetched.length, 2)
  const poison = fetched.find(m => m.partition === 1)
  const tombstone = fetched.find(m => m.partition === 0)
  assert.ok(poison && tombstone)
  assert.equal(poison.value, undefined, 'not UTF-8: the value did not decode')
  assert.equal(tombstone.raw.value, null)

  const groupId = uniqueName('billing')
  const executor = new HandlerExecutor({
    maxRetries: 2,
    retryBackoff: { baseMs: 1, maxMs: 5 },
    logger: quiet,
    handler: m => Promise.reject(m.value === null ? new TransientError('db down') : new PermanentError('bad'))
  })
  const logged = captureLogger()
  const writer = new DeadLetterWriter({ producer, topic: dlq.topic, groupId, logger: logged })

  const undecodable = executor.rejectUndeserializable(poison, new TypeError('not valid utf-8'), {
    signal: AbortSignal.timeout(30_000),
    groupId
  })
  const exhausted = await executor.execute(tombstone, { signal: AbortSignal.timeout(30_000), groupId })
  assert.equal(exhausted.kind, 'dead-letter')
  if (exhausted.kind !== 'dead-letter') return
  const receipts = [
    await writer.write(poison, undecodable, { signal: AbortSignal.timeout(30_000) }),
    await writer.write(tombstone, exhausted, { signal: AbortSignal.timeout(30_000) })
  ]
  // Each record, once acknowledged, is logged at error with where it was and where it went.
  const errors = logged.lines.filter(line => line.level === 'error')
  assert.equal(errors.length, 2)
  assert.equal(errors[0]?.fields.dlqTopic, dlq.topic)
  assert.equal(errors[0]?.fields.offset, String(poison.offset))
  assert.match(errors[0]?.message ?? '', /it is in the dead-letter topic/)
  assert.deepEqual(
    receipts.map(r => [r.topic, r.partition, r.offset, r.writeAttempts]),
    [
      [dlq.topic, 0, 0n, 1],
      [dlq.topic, 0, 1n, 1]
    ],
    'each write resolved with the acknowledged DLQ offset'
  )

  const [first, second] = await readTopic(brokers, dlq.topic, 2, { quietMs: 300 })
  assert.ok(first && second)
  assert.deepEqual(first.key, Buffer.from('order-9'))
  assert.deepEqual(first.value, notUtf8, 'the raw bytes, not a decoded copy')
  const kept = originalHeaders(first.headers)
  assert.deepEqual([...kept.keys()].sort(), ['event-id', 'event-type', 'hop', 'opaque'])
  assert.deepEqual(kept.get('opaque'), Buffer.from([0, 1, 2, 250]))
  assert.deepEqual(
    originalHeaderEntries(first.headerEntries).map(([name, value]) => `${name}=${value.toString('hex')}`),
    poison.headerEntries?.map(([name, value]) => `${name}=${value.toString('hex')}`),
    'every original header, in order, the repeated one twice'
  )
  assert.equal(poison.headerEntries?.filter(([name]) => name === 'hop').length, 2)
  const info = parseDeadLetterHeaders(first.headers)
  assert.equal(info.originTopic, source.topic)
  assert.equal(info.originPartition, 1)
  assert.equal(info.originOffset, poison.offset)
  assert.equal(info.originTimestamp?.getTime(), poison.timestamp.getTime())
  assert.equal(info.consumerGroup, groupId)
  assert.equal(info.errorKind, 'permanent')
  assert.equal(info.errorClass, 'DeserializationError')
  assert.equal(info.errorCode, 'KAFKIT_DESERIALIZATION_FAILED')
  assert.match(info.errorMessage, /not valid utf-8/)
  assert.equal(info.attempts, 0)

  // The client reads a null key or value as undefined (an empty one would be an empty Buffer).
  assert.equal(second.key, undefined, 'a null key stays null')
  assert.equal(second.value, undefined, 'a null value stays null')
  const info2 = parseDeadLetterHeaders(second.headers)
  assert.equal(info2.originPartition, 0)
  assert.equal(info2.errorKind, 'transient')
  assert.equal(info2.errorClass, 'TransientError')
  assert.equal(info2.attempts, 3, 'one attempt and two retries')
  assert.equal(info2.firstFailureAt.getTime(), exhausted.firstFailureAt.getTime())
  assert.equal(info2.lastFailureAt.getTime(), exhausted.lastFailureAt.getTime())
  assert.ok(info2.lastFailureAt >= info2.firstFailureAt)
})

test('a write that is not acknowledged is retried until the DLQ topic exists, or fails after maxWriteAttempts', async t => {
  const brokers = bootstrapServers()
  // The client must not create the topic itself, and should give up each write quickly.
  const producer = bufferProducer(brokers, { retries: 0, retryDelay: 50 })
  t.after(() => producer.close())
  const message: ConsumedMessage<unknown> = {
    topic: 'orders',
    partition: 0,
    offset: 5n,
    timestamp: new Date(),
    key: 'k',
    value: { a: 1 },
    headers: new Map(),
    meta: readStandardHeaders(new Map()),
    raw: { key: Buffer.from('k'), value: Buffer.from('{"a":1}') }
  }
  const failure = {
    reason: 'permanent' as const,
    error: new PermanentError('bad'),
    attempts: 1,
    firstFailureAt: new Date(),
    lastFailureAt: new Date()
  }

  const missing = uniqueName('dlq-missing')
  const bounded = new DeadLetterWriter({
    producer,
    topic: missing,
    groupId: 'g',
    maxWriteAttempts: 2,
    writeBackoff: { baseMs: 10, maxMs: 20 },
    logger: quiet
  })
  await assert.rejects(
    bounded.write(message, failure),
    (error: unknown) => error instanceof DeadLetterWriteError && error.code === 'KAFKIT_DLQ_WRITE_FAILED'
  )

  const aborting = new DeadLetterWriter({ producer, topic: missing, groupId: 'g', logger: quiet })
  const controller = new AbortController()
  const pending = aborting.write(message, failure, { signal: controller.signal })
  setTimeout(() => controller.abort(new Error('worker stopping')), 300)
  await assert.rejects(pending, /worker stopping/)

  // Unbounded: the write keeps trying and succeeds once the topic appears.
  const late = uniqueName('dlq-late')
  const patient = new DeadLetterWriter({
    producer,
    topic: late,
    groupId: 'g',
    writeBackoff: { baseMs: 100, maxMs: 200 },
    logger: quiet
  })
  let failedWrites = 0
  const writing = patient.write(message, failure, {
    signal: AbortSignal.timeout(60_000),
    onWriteFailure: () => failedWrites++
  })
  await waitFor(() => failedWrites > 0, 30_000, 'a write to the missing topic to fail')
  const { Admin } = await import('@platformatic/kafka')
  const admin = new Admin({ clientId: 'kafkit-dlq-test', bootstrapBrokers: brokers })
  t.after(async () => {
    await admin.deleteTopics({ topics: [late] }).catch(() => undefined)
    await admin.close()
  })
  await admin.createTopics({ topics: [late], partitions: 1, replicas: 1 })
  const receipt = await writing
  assert.ok(receipt.writeAttempts > 1, `retried before the topic existed (${receipt.writeAttempts} writes)`)
  const [record] = await readTopic(brokers, late, 1)
  assert.equal(parseDeadLetterHeaders(record?.headers ?? new Map()).originOffset, 5n)
})
