/**
 * The producer against a real broker: results carry the partition and offset each message really got
 * (checked by reading the topic back), standard headers read back typed, serdes, partitioners,
 * explicit partitions, metrics, async mode, and close() flushing what is pending.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { message } from '../../../src/message/builder.ts'
import { readStandardHeaders } from '../../../src/message/headers.ts'
import { bytesSerde, stringSerde, type Serde } from '../../../src/message/serde.ts'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { keyPartition } from '../../../src/producer/murmur2.ts'
import { Producer } from '../../../src/producer/producer.ts'
import { createTestTopic } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'

const env = {}

test('send and sendBatch report the partition and offset each message got', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 3 })
  t.after(drop)
  const producer = new Producer<{ n: number }>({ brokers, topic, env, lingerMs: 2 })
  t.after(() => producer.close())

  const single = await producer.send(message({ n: -1 }).key('k-single').eventType('test.created').correlationId('c-1'))
  assert.equal(single.status, 'sent')
  assert.equal(single.partition, keyPartition(Buffer.from('k-single'), 3))
  assert.equal(single.offset, 0n)

  const outcomes = await producer.sendBatch(
    Array.from({ length: 300 }, (_, n) => ({ key: `k-${n % 17}`, value: { n } }))
  )
  assert.equal(outcomes.length, 300)
  const where = new Map<string, string>()
  outcomes.forEach((outcome, n) => {
    assert.ok(outcome.ok, `message ${n} sent`)
    assert.equal(outcome.result.partition, keyPartition(Buffer.from(`k-${n % 17}`), 3), 'Java-compatible key hash')
    where.set(`${outcome.result.partition}@${String(outcome.result.offset)}`, JSON.stringify({ n }))
  })

  const records = await readTopic(brokers, topic, 301, { quietMs: 300 })
  assert.equal(records.length, 301)
  for (const record of records) {
    const expected = where.get(`${record.partition}@${String(record.offset)}`)
    if (expected === undefined) continue
    assert.equal(record.value.toString(), expected, 'the reported offset holds that message')
    where.delete(`${record.partition}@${String(record.offset)}`)
  }
  assert.equal(where.size, 0, 'every reported position was found')

  const first = records.find(r => r.key.toString() === 'k-single')
  assert.ok(first)
  const meta = readStandardHeaders(new Map([...first.headers].map(([k, v]) => [k.toString(), v])))
  assert.equal(meta.eventType, 'test.created')
  assert.equal(meta.correlationId, 'c-1')
  assert.equal(meta.eventId, single.eventId)
  assert.ok(meta.timestamp instanceof Date && Math.abs(meta.timestamp.getTime() - Date.now()) < 60_000)

  const metrics = producer.metrics()
  assert.equal(metrics.messagesSent, 301)
  assert.equal(metrics.messagesFailed, 0)
  assert.ok(metrics.bytesSent > 301 * 8)
  assert.ok(metrics.batchesSent >= 2)
  assert.ok(metrics.latencyMs.max >= metrics.latencyMs.p99 && metrics.latencyMs.p99 >= metrics.latencyMs.p50)
  assert.ok(metrics.latencyMs.avg > 0)
  assert.deepEqual(metrics.buffered, { messages: 0, bytes: 0 })
})

test('serdes, explicit partitions, round-robin, custom partitioner and header stamping', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 4 })
  t.after(drop)

  const strings = new Producer<string>({
    brokers,
    topic,
    env,
    valueSerde: stringSerde,
    partitioner: 'round-robin',
    stampHeaders: false
  })
  t.after(() => strings.close())
  const spread = await strings.sendBatch(Array.from({ length: 8 }, (_, i) => ({ key: 'same', value: `s${i}` })))
  assert.deepEqual(
    new Set(spread.map(o => (o.ok ? o.result.partition : -1))),
    new Set([0, 1, 2, 3]),
    'round-robin ignores the key'
  )
  const pinned = await strings.send({ value: 'pinned', partition: 2 })
  assert.equal(pinned.partition, 2)
  assert.equal(pinned.eventId, undefined, 'stampHeaders off: no event id added')
  await assert.rejects(strings.send({ value: 'nowhere', partition: 9 }), (error: unknown) => {
    assert.ok(isKafkitError(error) && error.code === 'KAFKIT_INVALID_PARTITION')
    assert.match(error.message, /partition 9 does not exist: topic .* has 4 partition\(s\)/)
    return true
  })

  const upper: Serde<{ text: string }> = {
    contentType: 'text/upper',
    serialize: value => Buffer.from(value.text.toUpperCase()),
    deserialize: bytes => ({ text: bytes.toString() })
  }
  const custom = new Producer<{ text: string }>({ brokers, topic, env, valueSerde: upper, partitioner: () => 3 })
  t.after(() => custom.close())
  const shouted = await custom.send({ value: { text: 'hello' }, key: Buffer.from([0, 1]) })
  assert.equal(shouted.partition, 3)

  const raw = new Producer<Buffer>({ brokers, topic, env, valueSerde: bytesSerde })
  t.after(() => raw.close())
  const tombstone = await raw.send({ key: 'gone', value: null as unknown as Buffer, partition: 1 })
  assert.equal(tombstone.partition, 1)

  const records = await readTopic(brokers, topic, 11, { quietMs: 300 })
  const byValue = new Map(records.map(r => [r.value?.toString() ?? '<null>', r]))
  assert.equal(byValue.get('HELLO')?.partition, 3, 'custom serde and partitioner')
  assert.equal(byValue.get('pinned')?.partition, 2)
  assert.equal(byValue.get('pinned')?.headers.size, 0)
  assert.equal(byValue.get('<null>')?.key.toString(), 'gone', 'a null value is a tombstone')
})

test('async mode resolves when queued; close() flushes what is pending and reports it', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 2 })
  t.after(drop)
  const producer = new Producer<number>({ brokers, topic, env: { KAFKA_PRODUCER_ASYNC: 'true' }, lingerMs: 500 })
  const queued = await producer.send({ value: 0 })
  assert.equal(queued.status, 'queued')
  assert.equal(queued.offset, undefined)
  const more = await Promise.all(Array.from({ length: 99 }, (_, i) => producer.send({ value: i + 1 })))
  assert.ok(more.every(r => r.status === 'queued'))
  assert.ok(producer.metrics().buffered.messages > 0, 'held by the linger')
  const report = await producer.close()
  assert.deepEqual(report, { flushed: 100, failed: [] })
  const records = await readTopic(brokers, topic, 100, { quietMs: 300 })
  assert.deepEqual(
    records.map(r => Number(r.value.toString())).sort((a, b) => a - b),
    Array.from({ length: 100 }, (_, i) => i)
  )
})

test('await using closes the producer and flushes fire-and-forget sends', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers })
  t.after(drop)
  const results: Promise<unknown>[] = []
  {
    await using producer = new Producer<string>({ brokers, topic, env, valueSerde: stringSerde, lingerMs: 1000 })
    for (let i = 0; i < 50; i++) results.push(producer.send({ value: `m${i}` }))
  }
  const settled = await Promise.allSettled(results)
  assert.ok(settled.every(s => s.status === 'fulfilled'))
  const records = await readTopic(brokers, topic, 50, { quietMs: 300 })
  assert.equal(records.length, 50)
})

test('acks 1 and 0 without idempotence, and every compression codec, read back intact', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers })
  t.after(drop)
  const leader = new Producer<string>({ brokers, topic, env: {}, valueSerde: stringSerde, idempotent: false, acks: 1 })
  t.after(() => leader.close())
  const one = await leader.send({ value: 'acks-1' })
  assert.equal(one.status, 'sent')
  assert.equal(typeof one.offset, 'bigint')
  const none = new Producer<string>({
    brokers,
    topic,
    env: { KAFKA_PRODUCER_REQUIRE_ACKS: '0', KAFKA_PRODUCER_IDEMPOTENT: 'false' },
    valueSerde: stringSerde
  })
  t.after(() => none.close())
  const zero = await none.send({ value: 'acks-0' })
  assert.equal(zero.status, 'sent')
  assert.equal(zero.offset, undefined, 'acks 0: no offset comes back')

  const codecs = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const
  const text = 'compressible text '.repeat(200)
  for (const compression of codecs) {
    const producer = new Producer<string>({ brokers, topic, env: {}, valueSerde: stringSerde, compression })
    const outcomes = await producer.sendBatch(
      Array.from({ length: 20 }, (_, i) => ({ value: `${compression}-${i}-${text}` }))
    )
    assert.ok(
      outcomes.every(o => o.ok),
      compression
    )
    await producer.close()
  }
  const records = await readTopic(brokers, topic, 2 + codecs.length * 20, { quietMs: 500 })
  const values = new Set(records.map(r => r.value.toString()))
  assert.ok(values.has('acks-1') && values.has('acks-0'))
  for (const compression of codecs) {
    for (let i = 0; i < 20; i++) assert.ok(values.has(`${compression}-${i}-${text}`), `${compression} message ${i}`)
  }
})

test("a message sent from a 'failed' listener while waiting messages are admitted is sent once, and so are they", async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 1 })
  t.after(drop)
  const producer = new Producer<string>({ brokers, topic, env, valueSerde: stringSerde, lingerMs: 2 })
  t.after(() => producer.close())
  // The topic's partitions are not known yet: the three messages wait for them together, and the
  // first fails (no partition 7) while the other two are still waiting.
  let late: Promise<unknown> | undefined
  producer.once('failed', () => {
    late = producer.send({ value: 'late' })
  })
  const outcomes = await producer.sendBatch([{ value: 'bad', partition: 7 }, { value: 'one' }, { value: 'two' }])
  assert.deepEqual(
    outcomes.map(o => o.ok),
    [false, true, true]
  )
  assert.ok(late)
  await late
  await producer.flush()
  const records = await readTopic(brokers, topic, 3, { quietMs: 500 })
  assert.deepEqual(records.map(r => r.value.toString()).sort(), ['late', 'one', 'two'], 'each sent once')
})
