/**
 * A dead-letter topic that refuses the record (its `max.message.bytes` is smaller than any dead-letter
 * record): the consumer and the sink keep retrying the write, report the stuck record (the `blocked`
 * event and `metrics().partitions[].blocked`, a warning with its position), and move no offset past it:
 * not the group's committed offset, not the offsets an exactly-once sink stores in Postgres. Once the
 * topic takes larger records again, the record is dead-lettered and everything after it goes through.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admin, ConfigResourceTypes, IncrementalAlterConfigOperationTypes, Producer } from '@platformatic/kafka'
import { Consumer } from '../../../src/consumer/consumer.ts'
import { PermanentError } from '../../../src/handling/errors.ts'
import { readTopicSnapshot } from '../../../src/operations/topic-snapshot.ts'
import { PostgresWriter } from '../../../src/postgres/postgres-writer.ts'
import { Sink } from '../../../src/sink/sink.ts'
import { createTestTopic } from '../../../src/testing/topics.ts'
import { uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { createTestSchema } from '../sink/postgres-schema.ts'
import { captureLogger } from '../../unit/handling/fixtures.ts'
import { eventually } from '../../helpers/wait.ts'

/** Smaller than any dead-letter record (its headers alone are larger). */
const REFUSING = { 'max.message.bytes': '100' }

async function produceNumbers(brokers: string[], topic: string, count: number, bad: number): Promise<void> {
  const producer = new Producer({ clientId: 'kafkit-blocked-test', bootstrapBrokers: brokers, idempotent: true })
  try {
    const messages = Array.from({ length: count }, (_v, n) => ({
      topic,
      key: Buffer.from('k'),
      value: Buffer.from(n === bad ? `{not json ${n}` : JSON.stringify({ n }))
    }))
    await producer.send({ messages, acks: -1 })
  } finally {
    await producer.close()
  }
}

async function acceptLargeRecords(brokers: string[], topic: string): Promise<void> {
  const admin = new Admin({ clientId: 'kafkit-blocked-test', bootstrapBrokers: brokers })
  try {
    await admin.incrementalAlterConfigs({
      resources: [
        {
          resourceType: ConfigResourceTypes.TOPIC,
          resourceName: topic,
          configs: [
            { name: 'max.message.bytes', configOperation: IncrementalAlterConfigOperationTypes.SET, value: '1048588' }
          ]
        }
      ]
    })
  } finally {
    await admin.close()
  }
}

async function deadLetterCount(brokers: string[], topic: string): Promise<number> {
  let count = 0
  for await (const _record of readTopicSnapshot({ brokers, topic })) count++
  return count
}

test('consumer: a dead-letter write the topic refuses holds the partition at the record, is reported and retried until it lands', async t => {
  const brokers = bootstrapServers()
  const source = await createTestTopic({ brokers, prefix: 'blocked-src' })
  t.after(source.delete)
  const dlq = await createTestTopic({ brokers, prefix: 'blocked-dlq', configs: REFUSING })
  t.after(dlq.delete)
  await produceNumbers(brokers, source.topic, 30, -1)
  const handled: number[] = []
  const logger = captureLogger()
  const consumer = new Consumer<{ n: number }>({
    brokers,
    groupId: uniqueName('blocked'),
    topics: [source.topic],
    startOffset: 'earliest',
    dlqTopic: dlq.topic,
    ensureTopics: false,
    commitStrategy: 'message',
    logger,
    handler: message => {
      if (message.value.n === 10) return Promise.reject(new PermanentError('record 10 is bad'))
      handled.push(message.value.n)
      return Promise.resolve()
    }
  })
  const blocked: bigint[] = []
  consumer.on('blocked', event => blocked.push(event.offset))
  t.after(() => consumer.stop())
  await consumer.start()

  assert.ok(await eventually(() => blocked.length >= 3, 60_000), 'the refused write is retried and reported')
  assert.deepEqual([...new Set(blocked)], [10n])
  assert.equal(consumer.metrics().partitions[0]?.blocked?.offset, 10n, 'metrics name the stuck record')
  assert.ok(
    logger.lines.some(
      line => line.level === 'warn' && line.fields.offset === '10' && line.fields.dlqTopic === dlq.topic
    ),
    'a warning names the record and the dead-letter topic'
  )
  assert.deepEqual(
    handled,
    Array.from({ length: 10 }, (_v, n) => n),
    'nothing after the record is handled'
  )
  const committed = consumer.metrics().partitions[0]?.committed ?? 0n
  assert.ok(committed <= 10n, `committed ${committed}: not past the record`)

  await acceptLargeRecords(brokers, dlq.topic)
  assert.ok(await eventually(() => handled.length === 29, 60_000), `handled ${handled.length} of 29 after the fix`)
  assert.ok(
    await eventually(async () => (await deadLetterCount(brokers, dlq.topic)) === 1, 20_000),
    'dead-lettered once'
  )
  assert.equal(consumer.metrics().partitions[0]?.blocked, undefined, 'no longer blocked')
})

test('exactly-once sink: while the dead-letter topic refuses a bad record, no offset stored in Postgres passes it', async t => {
  const brokers = bootstrapServers()
  const source = await createTestTopic({ brokers, prefix: 'blocked-sink-src' })
  t.after(source.delete)
  const dlq = await createTestTopic({ brokers, prefix: 'blocked-sink-dlq', configs: REFUSING })
  t.after(dlq.delete)
  const db = await createTestSchema(t)
  const table = db.qualified('numbers')
  const offsetsTable = db.qualified('kafkit_offsets')
  await db.query(`CREATE TABLE ${table} (n integer NOT NULL)`)
  await produceNumbers(brokers, source.topic, 300, 150)
  const groupId = uniqueName('blocked-sink')
  const sink = new Sink<{ n: number }, { n: number }>({
    brokers,
    groupId,
    topics: [source.topic],
    batchSize: 100,
    lingerMs: 20,
    errorsTolerance: 'all',
    dlqTopic: dlq.topic,
    writer: new PostgresWriter<{ n: number }>({
      database: db.pool,
      table,
      columns: ['n'],
      delivery: 'exactly-once',
      offsetsTable
    }),
    map: message => ({ n: message.value.n }),
    logger: captureLogger()
  })
  const blocked: bigint[] = []
  sink.consumer.on('blocked', event => blocked.push(event.offset))
  t.after(() => sink.close())
  await sink.start()

  assert.ok(await eventually(() => blocked.length >= 3, 60_000), 'the refused write is retried and reported')
  assert.deepEqual([...new Set(blocked)], [150n])
  const stored = async () =>
    BigInt((await db.query<{ o: string }>(`SELECT max(next_offset) AS o FROM ${offsetsTable}`))[0]?.o ?? '0')
  assert.ok((await stored()) <= 150n, 'the stored offset does not pass the record')
  const rows = async () => Number((await db.query<{ c: string }>(`SELECT count(*) AS c FROM ${table}`))[0]?.c)
  assert.ok((await rows()) <= 150, 'nothing after the record is stored')

  await acceptLargeRecords(brokers, dlq.topic)
  assert.ok(await eventually(async () => (await rows()) === 299, 60_000), 'every good record stored after the fix')
  assert.ok(await eventually(async () => (await sink.lag()) === 0, 30_000), 'lag 0')
  assert.equal(await stored(), 300n)
  assert.equal(await deadLetterCount(brokers, dlq.topic), 1, 'the bad record dead-lettered once')
})
