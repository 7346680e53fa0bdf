/**
 * The consumer runtime on a real broker: at-least-once with commits only below settled records,
 * ordering modes (per key strictly in order, different keys in parallel), bounded buffering, error
 * kinds to the dead-letter topic, batch handlers, the replay-group filter, and lag.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Consumer } from '../../../src/consumer/consumer.ts'
import { parseDeadLetterHeaders } from '../../../src/handling/dead-letter.ts'
import { BusinessError, PermanentError, TransientError } from '../../../src/handling/errors.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { committedOffsets, json, produceKeyed, quiet, sleep, waitFor } from './helpers.ts'

const brokers = () => bootstrapServers()

test('key ordering: every record once, the same key strictly in order, different keys in parallel; commits reach the end', async t => {
  const { topic, delete: drop } = await createTestTopic({ brokers: brokers(), partitions: 3 })
  t.after(drop)
  const produced = await produceKeyed(brokers(), topic, 3000, { keys: 20 })
  const groupId = uniqueName('group')
  const seen = new Map<string, number[]>()
  const running = new Set<string>()
  let concurrent = 0
  let peakConcurrent = 0
  let peakBuffered = 0
  const overlaps: string[] = []
  const consumer = new Consumer<{ key: string; seq: number }>({
    brokers: brokers(),
    groupId,
    topics: [topic],
    startOffset: 'earliest',
    concurrency: { mode: 'key', limit: 8 },
    maxBufferedRecords: 200,
    maxPollRecords: 100,
    logger: quiet,
    handler: async message => {
      const { key, seq } = message.value
      // Recorded, not asserted here: the executor would treat a throw as a handler failure and retry it.
      if (running.has(key)) overlaps.push(key)
      running.add(key)
      concurrent++
      peakConcurrent = Math.max(peakConcurrent, concurrent)
      peakBuffered = Math.max(peakBuffered, consumer.metrics().buffered)
      await sleep(seq % 3) // simulated work
      running.delete(key)
      concurrent--
      const list = seen.get(key) ?? []
      list.push(seq)
      seen.set(key, list)
    }
  })
  await consumer.start()
  await waitFor(() => consumer.metrics().processed >= produced.length, 90_000, 'all records processed')
  await consumer.stop()
  assert.equal(consumer.health, 'stopped')

  assert.deepEqual(overlaps, [], 'no key ran twice at once')
  assert.equal(consumer.metrics().failed, 0)
  for (const [key, seqs] of seen) {
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      `key ${key} was processed out of order`
    )
  }
  assert.equal(
    [...seen.values()].reduce((n, s) => n + s.length, 0),
    produced.length,
    'each record exactly once'
  )
  assert.ok(peakConcurrent > 1, `different keys ran in parallel (peak ${peakConcurrent})`)
  assert.ok(peakConcurrent <= 8, `the concurrency limit held (peak ${peakConcurrent})`)
  assert.ok(peakBuffered <= 200, `buffering stayed bounded (peak ${peakBuffered})`)
  const committed = await committedOffsets(brokers(), groupId, topic)
  const total = [...committed.values()].reduce((sum, offset) => sum + offset, 0n)
  assert.equal(total, BigInt(produced.length), 'the committed offsets reach the end of every partition')
})

test('a restarted consumer resumes after the last settled record; in-flight work at stop is not committed', async t => {
  const { topic, delete: drop } = await createTestTopic({ brokers: brokers() })
  t.after(drop)
  await produceKeyed(brokers(), topic, 50, { keys: 1 })
  const groupId = uniqueName('group')
  const processed: number[] = []
  const first = new Consumer<{ seq: number }>({
    brokers: brokers(),
    groupId,
    topics: [topic],
    startOffset: 'earliest',
    commitStrategy: 'message',
    shutdownTimeoutMs: 200,
    logger: quiet,
    handler: async (message, { signal }) => {
      if (message.value.seq === 30) {
        // Hangs until the stop aborts it: this record must not be committed.
        await new Promise((_resolve, reject) =>
          signal.addEventListener('abort', () => reject(new Error('aborted', { cause: signal.reason })))
        )
      }
      processed.push(message.value.seq)
    }
  })
  await first.start()
  await waitFor(() => processed.length >= 30, 60_000, '30 records')
  await waitFor(
    () => first.metrics().partitions[0]?.position === 30n && first.metrics().partitions[0]?.inFlight === 1,
    10_000,
    'records 0..29 settled and record 30 hanging'
  )
  await first.stop()
  assert.deepEqual(
    processed,
    Array.from({ length: 30 }, (_v, i) => i)
  )
  assert.equal((await committedOffsets(brokers(), groupId, topic)).get(0), 30n, 'committed up to the hanging record')

  const again: number[] = []
  const second = new Consumer<{ seq: number }>({
    brokers: brokers(),
    groupId,
    topics: [topic],
    logger: quiet,
    handler: message => {
      again.push(message.value.seq)
      return Promise.resolve()
    }
  })
  await second.start()
  await waitFor(() => again.length >= 20, 60_000, 'the rest')
  await second.stop()
  assert.deepEqual(
    again,
    Array.from({ length: 20 }, (_v, i) => 30 + i)
  )
})

test('error kinds: transient retried then dead-lettered, permanent and undecodable dead-lettered at once, business committed; the partition never stalls', async t => {
  const { topic, delete: drop } = await createTestTopic({ brokers: brokers() })
  t.after(drop)
  t.after(async () => {
    const { Admin } = await import('@platformatic/kafka')
    const admin = new Admin({ clientId: 'kafkit-consumer-test', bootstrapBrokers: brokers() })
    await admin.deleteTopics({ topics: [`${topic}.dlq`] }).catch(() => undefined)
    await admin.close()
  })
  const kinds = ['ok', 'transient-once', 'transient-always', 'permanent', 'business', 'undecodable', 'ok']
  await produceKeyed(brokers(), topic, kinds.length, {
    keys: 1,
    value: i => (kinds[i] === 'undecodable' ? Buffer.from([0xff, 0x7b]) : json({ kind: kinds[i], i }))
  })
  const groupId = uniqueName('group')
  const attempts = new Map<number, number>()
  const done: number[] = []
  const consumer = new Consumer<{ kind: string; i: number }>({
    brokers: brokers(),
    groupId,
    topics: [topic],
    startOffset: 'earliest',
    maxRetries: 2,
    retryBackoff: { baseMs: 1, maxMs: 5 },
    logger: quiet,
    handler: async (message, { attempt }) => {
      await Promise.resolve()
      const { kind, i } = message.value
      attempts.set(i, attempt)
      if (kind === 'transient-once' && attempt === 1) throw new TransientError('flaky downstream')
      if (kind === 'transient-always') throw new Error('connection refused')
      if (kind === 'permanent') throw new PermanentError('schema mismatch: no id')
      if (kind === 'business') throw new BusinessError('order already shipped')
      done.push(i)
    }
  })
  await consumer.start()
  await waitFor(() => {
    const m = consumer.metrics()
    return m.processed + m.deadLettered + m.business >= kinds.length
  }, 60_000)
  await consumer.stop()
  const metrics = consumer.metrics()
  assert.deepEqual(done, [0, 1, 6])
  assert.equal(attempts.get(2), 3, 'transient: 1 attempt + 2 retries')
  assert.equal(attempts.get(3), 1, 'permanent: no retry')
  assert.equal(metrics.deadLettered, 3)
  assert.equal(metrics.business, 1)
  assert.equal((await committedOffsets(brokers(), groupId, topic)).get(0), BigInt(kinds.length))

  const dead = await readTopic(brokers(), `${topic}.dlq`, 3, { quietMs: 500 })
  assert.equal(dead.length, 3)
  const infos = dead.map(record => ({ record, info: parseDeadLetterHeaders(record.headers) }))
  const byOffset = new Map(infos.map(entry => [entry.info.originOffset, entry]))
  assert.deepEqual([...byOffset.keys()].sort(), [2n, 3n, 5n])
  const undecodable = byOffset.get(5n)
  assert.deepEqual(undecodable?.record.value, Buffer.from([0xff, 0x7b]), 'raw bytes kept')
  assert.equal(undecodable?.info.errorKind, 'permanent')
  assert.equal(byOffset.get(2n)?.info.errorKind, 'transient')
  assert.equal(byOffset.get(2n)?.info.attempts, 3)
  assert.equal(byOffset.get(3n)?.info.consumerGroup, groupId)
  assert.equal(byOffset.get(3n)?.info.originTopic, topic)
})

test('batch handler: consecutive records of one partition; a failing record is split out and dead-lettered alone', async t => {
  const { topic, delete: drop } = await createTestTopic({ brokers: brokers(), partitions: 2 })
  t.after(drop)
  const dlq = await createTestTopic({ brokers: brokers(), prefix: 'batch-dlq' })
  t.after(dlq.delete)
  await produceKeyed(brokers(), topic, 400, { keys: 8 })
  const batches: { partition: number; offsets: bigint[] }[] = []
  const consumer = new Consumer<{ key: string; seq: number }>({
    brokers: brokers(),
    groupId: uniqueName('group'),
    topics: [topic],
    startOffset: 'earliest',
    dlqTopic: dlq.topic,
    maxPollRecords: 50,
    maxRetries: 0,
    logger: quiet,
    batchHandler: async messages => {
      await Promise.resolve()
      if (messages.some(m => m.value.key === 'key-3' && m.value.seq === 7)) throw new PermanentError('bad record')
      batches.push({ partition: messages[0]?.partition ?? -1, offsets: messages.map(m => m.offset) })
    }
  })
  await consumer.start()
  await waitFor(() => consumer.metrics().processed + consumer.metrics().deadLettered >= 400, 60_000)
  await consumer.stop()
  assert.equal(consumer.metrics().deadLettered, 1)
  for (const batch of batches) {
    assert.ok(batch.offsets.length <= 50, 'maxPollRecords bounds a batch')
    batch.offsets.forEach((offset, i) => i > 0 && assert.equal(offset, (batch.offsets[i - 1] as bigint) + 1n))
  }
  const dead = await readTopic(brokers(), dlq.topic, 1, { quietMs: 300 })
  assert.equal(dead.length, 1)
  assert.deepEqual(JSON.parse(dead[0]?.value.toString() ?? '{}'), { key: 'key-3', seq: 7 })
})

for (const kind of ['handler', 'batch handler'] as const) {
  test(`replayed records meant for another group are skipped and committed; lag returns to 0 (${kind})`, async t => {
    const { topic, delete: drop } = await createTestTopic({ brokers: brokers() })
    t.after(drop)
    const groupId = uniqueName('group')
    await produceKeyed(brokers(), topic, 5, { keys: 1 })
    await produceKeyed(brokers(), topic, 3, { keys: 1, start: 5, headers: { 'kafkit-replay-group': 'someone-else' } })
    await produceKeyed(brokers(), topic, 2, { keys: 1, start: 8, headers: { 'kafkit-replay-group': groupId } })
    const handled: number[] = []
    const consumer = new Consumer<{ seq: number }>({
      brokers: brokers(),
      groupId,
      topics: [topic],
      startOffset: 'earliest',
      ensureTopics: false,
      logger: quiet,
      ...(kind === 'handler'
        ? {
            handler: message => {
              handled.push(message.value.seq)
              return Promise.resolve()
            }
          }
        : {
            batchHandler: messages => {
              for (const message of messages) handled.push(message.value.seq)
              return Promise.resolve()
            }
          })
    })
    await consumer.start()
    await waitFor(() => consumer.metrics().processed + consumer.metrics().skipped >= 10, 60_000)
    await consumer.commit()
    const lag = await consumer.lag()
    await consumer.stop()
    assert.deepEqual(handled, [0, 1, 2, 3, 4, 8, 9])
    assert.equal(consumer.metrics().skipped, 3)
    assert.deepEqual(
      lag.map(entry => entry.lag),
      [0n]
    )
  })
}

test('bad configuration fails at construction with the key named', () => {
  assert.throws(
    () =>
      new Consumer({
        brokers: ['127.0.0.1:1'],
        groupId: 'g',
        topics: ['t'],
        handler: async () => {},
        env: { KAFKA_CONSUMER_START_OFFSET: '-3' }
      }),
    /KAFKA_CONSUMER_START_OFFSET/
  )
  assert.throws(
    () =>
      new Consumer({
        brokers: ['127.0.0.1:1'],
        groupId: 'g',
        topics: ['t'],
        concurrency: { mode: 'key' },
        batchHandler: async () => {},
        env: {}
      }),
    /concurrency\.mode/
  )
  assert.throws(
    () => new Consumer({ brokers: ['127.0.0.1:1'], groupId: 'g', topics: ['t'], env: {} }),
    /exactly one of `handler`/
  )
})

test("onDeadLetter 'stop': the consumer stops at the bad record, commits up to it and done() names it", async t => {
  const { topic, delete: drop } = await createTestTopic({ brokers: brokers() })
  t.after(drop)
  await produceKeyed(brokers(), topic, 10, { keys: 1 })
  const groupId = uniqueName('group')
  const consumer = new Consumer<{ seq: number }>({
    brokers: brokers(),
    groupId,
    topics: [topic],
    startOffset: 'earliest',
    onDeadLetter: 'stop',
    commitStrategy: 'message',
    logger: quiet,
    handler: message => (message.value.seq === 6 ? Promise.reject(new PermanentError('bad amount')) : Promise.resolve())
  })
  await consumer.start()
  await assert.rejects(consumer.done(), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'KAFKIT_CONSUMER_STOPPED')
    assert.match(error.message, new RegExp(`${topic}/0@6: bad amount`))
    return true
  })
  assert.equal(consumer.health, 'failed')
  assert.equal((await committedOffsets(brokers(), groupId, topic)).get(0), 6n)
})

test('batch linger: a partition waits up to batchLingerMs to fill its batch', async t => {
  const { topic, delete: drop } = await createTestTopic({ brokers: brokers() })
  t.after(drop)
  const sizes: number[] = []
  const consumer = new Consumer<{ seq: number }>({
    brokers: brokers(),
    groupId: uniqueName('group'),
    topics: [topic],
    startOffset: 'earliest',
    ensureTopics: false,
    maxPollRecords: 100,
    batchLingerMs: 1500,
    logger: quiet,
    batchHandler: messages => {
      sizes.push(messages.length)
      return Promise.resolve()
    }
  })
  await consumer.start()
  // Two produce calls well within the linger: they end up in one batch.
  await produceKeyed(brokers(), topic, 30, { keys: 1 })
  await produceKeyed(brokers(), topic, 30, { keys: 1, start: 30 })
  await waitFor(() => consumer.metrics().processed >= 60, 30_000)
  await consumer.stop()
  assert.deepEqual(sizes, [60])
})

/** A consumer of `topic` from the start with a 300 ms max poll interval and one quick retry. */
function watched(topic: string) {
  return {
    brokers: brokers(),
    groupId: uniqueName('group'),
    topics: [topic],
    startOffset: 'earliest' as const,
    ensureTopics: false,
    maxPollIntervalMs: 300,
    maxRetries: 1,
    retryBackoff: { baseMs: 1, maxMs: 1 },
    logger: quiet,
    env: {}
  }
}

test('max poll interval: a call running longer fails as a transient timeout, its signal aborts, and the retry goes on in order', async t => {
  const { topic, delete: drop } = await createTestTopic({ brokers: brokers() })
  t.after(drop)
  await produceKeyed(brokers(), topic, 4, { keys: 1 })
  const reasons: unknown[] = []
  const finished: string[] = []
  const settled: bigint[] = []
  let lateReturn: Promise<void> | undefined
  const consumer = new Consumer<{ seq: number }>({
    ...watched(topic),
    handler: (message, { attempt, signal }) => {
      if (message.value.seq !== 1 || attempt > 1) {
        finished.push(`${message.value.seq}#${attempt}`)
        return Promise.resolve()
      }
      // Ignores its signal (only records why it was aborted) and returns long after the watchdog
      // failed it: the retry and the records behind it must not wait for it, nor run twice when it
      // returns at last.
      signal.addEventListener('abort', () => reasons.push(signal.reason))
      lateReturn = sleep(1500)
      return lateReturn
    }
  })
  consumer.on('settled', ({ offset }) => settled.push(offset))
  await consumer.start()
  await waitFor(() => consumer.metrics().processed >= 4, 30_000)
  assert.deepEqual(finished, ['0#1', '1#2', '2#1', '3#1'], 'partition order kept through the timeout and retry')
  await lateReturn
  // A fixed wait: the late return must change nothing (no second settle, no second run) in this time.
  await sleep(200)
  await consumer.stop()
  assert.deepEqual(settled, [0n, 1n, 2n, 3n], 'each record settles once, in order, the late return changing nothing')
  assert.equal(consumer.metrics().processed, 4)
  assert.equal(consumer.metrics().retried, 1)
  assert.equal(consumer.metrics().deadLettered, 0)
  assert.equal((reasons[0] as { code?: string } | undefined)?.code, 'KAFKIT_HANDLER_TIMEOUT')
})

test('first attempts: a handler that returns nothing or throws at once, middleware that awaits before calling on, a throwing settled listener: each record settles once, and hung calls still time out', async t => {
  const { topic, delete: drop } = await createTestTopic({ brokers: brokers() })
  t.after(drop)
  await produceKeyed(brokers(), topic, 6, { keys: 1 })
  const calls: string[] = []
  const timeouts: unknown[] = []
  let listenerThrew = false
  const consumer = new Consumer<{ seq: number }>({
    ...watched(topic),
    // Odd records reach the handler a turn later, after the call for them was begun.
    middleware: [
      next => async (message, context) => {
        if (message.value.seq % 2 === 1) await sleep(1) // a turn later (see above)
        return next(message, context)
      }
    ],
    handler: ((message: { value: { seq: number } }, { attempt, signal }: { attempt: number; signal: AbortSignal }) => {
      const { seq } = message.value
      calls.push(`${seq}/${attempt}`)
      if (attempt === 1 && seq === 2) throw new TransientError('thrown before any promise')
      if (attempt === 1 && (seq === 3 || seq === 4)) {
        // Hangs, ignoring its signal (3 behind the awaiting middleware, 4 not): the watchdog must fail it.
        signal.addEventListener('abort', () => timeouts.push((signal.reason as { code?: string }).code))
        return new Promise<void>(() => undefined)
      }
      // Returns nothing at all (not a promise), like a plain synchronous function.
      return undefined
    }) as unknown as (message: unknown) => Promise<void>
  })
  consumer.on('settled', () => {
    if (listenerThrew) return
    listenerThrew = true
    throw new Error('a listener bug')
  })
  await consumer.start()
  await waitFor(() => consumer.metrics().processed >= 6, 30_000)
  await consumer.stop()
  assert.ok(listenerThrew)
  assert.deepEqual(calls.sort(), ['0/1', '1/1', '2/1', '2/2', '3/1', '3/2', '4/1', '4/2', '5/1'])
  assert.deepEqual(timeouts, ['KAFKIT_HANDLER_TIMEOUT', 'KAFKIT_HANDLER_TIMEOUT'])
  const metrics = consumer.metrics()
  assert.equal(metrics.processed, 6)
  assert.equal(metrics.retried, 3)
  assert.equal(metrics.deadLettered, 0)
})
