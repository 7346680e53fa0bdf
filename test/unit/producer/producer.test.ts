/**
 * What the producer decides before any broker is involved: messages it refuses (no topic, values a
 * serde cannot write, too large, after close), the metrics snapshot, and the latency histogram.
 * Everything that needs a broker is in test/integration/producer.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { message } from '../../../src/message/builder.ts'
import { stringSerde } from '../../../src/message/serde.ts'
import { LatencyHistogram } from '../../../src/producer/metrics.ts'
import { PartitionChooser } from '../../../src/producer/partitioners.ts'
import { Producer } from '../../../src/producer/producer.ts'

// Port 1 on loopback: nothing listens, and these tests never get as far as connecting.
const brokers = ['127.0.0.1:1']

async function code(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    assert.ok(isKafkitError(error), `a KafkitError, got ${String(error)}`)
    return error.code
  }
  assert.fail('expected a rejection')
}

test('messages refused before buffering get coded errors and count as failed', async t => {
  const producer = new Producer({ brokers, env: {}, maxMessageBytes: 2048 })
  t.after(() => producer.close())
  const failed: string[] = []
  producer.on('failed', f => failed.push(f.error.message))
  assert.equal(await code(producer.send({ value: 1 })), 'KAFKIT_PRODUCE_FAILED', 'no topic anywhere')
  const circular: Record<string, unknown> = {}
  circular.self = circular
  assert.equal(await code(producer.send({ topic: 't', value: circular })), 'KAFKIT_SERIALIZATION_FAILED')
  assert.equal(await code(producer.send({ topic: 't', value: undefined })), 'KAFKIT_SERIALIZATION_FAILED')
  assert.equal(
    await code(producer.send({ topic: 't', value: 1, key: 5 as unknown as string })),
    'KAFKIT_SERIALIZATION_FAILED'
  )
  assert.equal(
    await code(producer.send({ topic: 't', value: 1, headers: { n: 5 as unknown as string } })),
    'KAFKIT_SERIALIZATION_FAILED'
  )
  const large = producer.send({ topic: 't', value: 'x'.repeat(4096) })
  await assert.rejects(large, /is \d+ bytes .* more than maxMessageBytes \(2048\)/)
  assert.equal(await code(large), 'KAFKIT_MESSAGE_TOO_LARGE')
  const metrics = producer.metrics()
  assert.equal(metrics.messagesFailed, 6)
  assert.equal(metrics.messagesSent, 0)
  assert.equal(metrics.lastError?.code, 'KAFKIT_MESSAGE_TOO_LARGE')
  assert.equal(failed.length, 6, 'a failed event per refused message')
})

test('sendBatch reports a refusal in its slot and never rejects', async t => {
  const producer = new Producer<string>({ brokers, env: {}, valueSerde: stringSerde })
  t.after(() => producer.close())
  const outcomes = await producer.sendBatch([{ value: 'no topic' }, { topic: 't', value: 42 as unknown as string }])
  assert.equal(outcomes.length, 2)
  assert.ok(!outcomes[0]?.ok && isKafkitError(outcomes[0]?.error) && outcomes[0].error.code === 'KAFKIT_PRODUCE_FAILED')
  assert.ok(
    !outcomes[1]?.ok && isKafkitError(outcomes[1]?.error) && outcomes[1].error.code === 'KAFKIT_SERIALIZATION_FAILED'
  )
  assert.deepEqual(await producer.sendBatch([]), [])
})

test('a closed producer refuses messages; close() twice gives the same report', async () => {
  const producer = new Producer({ brokers, topic: 't', env: {} })
  const report = await producer.close()
  assert.deepEqual(report, { flushed: 0, failed: [] })
  assert.equal(await producer.close(), report)
  assert.equal(await code(producer.send(message({ a: 1 }))), 'KAFKIT_PRODUCER_CLOSED')
  await assert.rejects(
    producer.beginTransaction(),
    (error: unknown) => isKafkitError(error) && error.code === 'KAFKIT_PRODUCER_CLOSED'
  )
  assert.equal(producer.closed, true)
})

test('transaction calls in the wrong state are refused', async t => {
  const producer = new Producer({ brokers, topic: 't', env: {} })
  t.after(() => producer.close())
  await assert.rejects(
    producer.commitTransaction(),
    (e: unknown) => isKafkitError(e) && e.code === 'KAFKIT_TRANSACTION_STATE'
  )
  await assert.rejects(
    producer.abortTransaction(),
    (e: unknown) => isKafkitError(e) && e.code === 'KAFKIT_TRANSACTION_STATE'
  )
})

test('partition chooser: sticky per batch for keyless messages, round-robin, custom', () => {
  const sticky = new PartitionChooser('murmur2')
  const m = { value: 1 }
  const first = sticky.choose(m, null, 't', 4, 1)
  assert.equal(sticky.choose(m, null, 't', 4, 1), first, 'same batch, same partition')
  assert.equal(sticky.choose(m, null, 't', 4, 2), (first + 1) % 4, 'the next batch moves on')
  assert.equal(sticky.choose(m, Buffer.from('foobar'), 't', 7, 2), 0, 'keyed: Java murmur2')
  const rr = new PartitionChooser('round-robin')
  const seen = Array.from({ length: 8 }, () => rr.choose(m, Buffer.from('same-key'), 't', 4, 1))
  assert.deepEqual(seen.slice(4), seen.slice(0, 4), 'cycles')
  assert.deepEqual([...new Set(seen)].sort(), [0, 1, 2, 3], 'every partition, keys ignored')
  const custom = new PartitionChooser((_message, key, partitions) => (key?.length ?? 0) % partitions)
  assert.equal(custom.choose(m, Buffer.from('abcde'), 't', 3, 1), 2)
})

test('latency histogram: percentiles within one bucket (~6%), exact max and mean', () => {
  const histogram = new LatencyHistogram()
  for (let v = 1; v <= 10_000; v++) histogram.record(v)
  assert.equal(histogram.count, 10_000)
  assert.equal(histogram.max, 10_000)
  assert.equal(histogram.mean, 5000.5)
  const p50 = histogram.percentile(50)
  const p99 = histogram.percentile(99)
  assert.ok(p50 >= 5000 && p50 <= 5000 * 1.07, `p50 ${p50}`)
  assert.ok(p99 >= 9900 && p99 <= 10_000, `p99 ${p99}`)
  assert.equal(new LatencyHistogram().percentile(99), 0)
  for (const v of [0, 0.5, 15, 16, 31, 32, 1e6, 2 ** 33]) {
    const bucket = LatencyHistogram.bucketOf(v)
    assert.ok(LatencyHistogram.bucketUpper(bucket) > v || v >= 2 ** 32, `bucket of ${v} covers it`)
  }
})

test('an abort signal drops a message that is not sent yet, for send() and sendBatch()', async t => {
  // Nothing listens on the port: the partitions never load, so the messages wait to be admitted.
  const producer = new Producer<string>({
    brokers,
    topic: 't',
    env: {},
    valueSerde: stringSerde,
    connectTimeoutMs: 200
  })
  t.after(() => producer.close({ timeoutMs: 100 }))
  const already = AbortSignal.abort(new Error('stopped before'))
  await assert.rejects(producer.send({ value: 'a' }, { signal: already }), /stopped before/)
  const early = await producer.sendBatch([{ value: 'b' }, { value: 'c' }], { signal: already })
  assert.deepEqual(
    early.map(o => (o.ok ? 'sent' : o.error.message)),
    ['stopped before', 'stopped before']
  )

  const controller = new AbortController()
  const single = producer.send({ value: 'd' }, { signal: controller.signal })
  const batch = producer.sendBatch([{ value: 'e' }, { value: 'f' }], { signal: controller.signal })
  assert.equal(producer.metrics().buffered.messages, 3, 'waiting for the partitions')
  controller.abort(new Error('shutting down'))
  await assert.rejects(single, /shutting down/)
  assert.deepEqual(
    (await batch).map(o => (o.ok ? 'sent' : o.error.message)),
    ['shutting down', 'shutting down']
  )
  assert.equal(producer.metrics().messagesFailed, 6)
})
