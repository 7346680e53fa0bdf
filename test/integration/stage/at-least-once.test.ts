/**
 * An at-least-once Stage on a real broker, per input (key concurrency) and per partition batch (one
 * sendBatch for a batch's outputs): each input becomes zero, one or several outputs, in key order;
 * an input whose output Kafka refuses for good (too large) is dead-lettered with the reason, and one
 * whose transform fails transiently is retried; the input offsets are committed only after the outputs
 * were acknowledged (a stage stopped and started again produces nothing twice for what it committed).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TransientError } from '../../../src/handling/errors.ts'
import { parseDeadLetterHeaders } from '../../../src/handling/dead-letter.ts'
import { message } from '../../../src/message/builder.ts'
import { Stage } from '../../../src/stage/stage.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { committedOffsets, json, produceKeyed, quiet, waitFor } from '../consumer/helpers.ts'

for (const mode of ['key', 'partition'] as const) {
  test(`at-least-once stage (${mode} concurrency): outputs per input in key order, a refused output dead-letters its input, transient failures retried`, async t => {
    const brokers = bootstrapServers()
    const input = await createTestTopic({ brokers, partitions: 3, prefix: 'stage-in' })
    const output = await createTestTopic({ brokers, partitions: 3, prefix: 'stage-out' })
    const dlq = await createTestTopic({ brokers, partitions: 1, prefix: 'stage-dlq' })
    t.after(async () => {
      await Promise.all([input.delete(), output.delete(), dlq.delete()])
    })
    const count = 600
    await produceKeyed(brokers, input.topic, count, { keys: 12, value: i => json({ key: `key-${i % 12}`, seq: i }) })
    const groupId = uniqueName('stage')
    const failedOnce = new Set<number>()
    const stage = new Stage<{ key: string; seq: number }, { key: string; seq: number; part: number }>({
      brokers,
      groupId,
      topics: [input.topic],
      startOffset: 'earliest',
      outputTopic: output.topic,
      dlqTopic: dlq.topic,
      concurrency: { mode, limit: 8 },
      maxRetries: 3,
      retryBackoff: { baseMs: 1, maxMs: 10 },
      logger: quiet,
      env: {},
      transform: ({ value, key }) => {
        const { seq } = value
        if (seq % 100 === 7 && !failedOnce.has(seq)) {
          failedOnce.add(seq)
          throw new TransientError('the downstream hiccupped')
        }
        if (seq === 333) return message({ key: value.key, seq, part: 0, blob: 'x'.repeat(2_000_000) }).key(key ?? '')
        if (seq % 10 === 0) return null
        const parts = seq % 10 === 1 ? 2 : 1
        return Array.from({ length: parts }, (_, part) => message({ key: value.key, seq, part }).key(key ?? ''))
      }
    })
    await stage.start()
    await waitFor(() => {
      const m = stage.metrics()
      return m.processed + m.deadLettered >= count
    }, 60_000)
    await stage.stop()

    const expected = Array.from({ length: count }, (_, seq) => seq)
      .filter(seq => seq !== 333 && seq % 10 !== 0)
      .reduce((sum, seq) => sum + (seq % 10 === 1 ? 2 : 1), 0)
    const outputs = await readTopic(brokers, output.topic, expected, { quietMs: 1000 })
    assert.equal(outputs.length, expected, 'every output once (nothing produced twice)')
    const lastSeq = new Map<string, number>()
    for (const record of outputs.sort((a, b) => Number(a.offset - b.offset))) {
      const { key, seq } = JSON.parse(record.value.toString()) as { key: string; seq: number }
      assert.ok((lastSeq.get(key) ?? -1) <= seq, `key ${key} in order`)
      lastSeq.set(key, seq)
    }
    const dead = await readTopic(brokers, dlq.topic, 1, { quietMs: 500 })
    assert.equal(dead.length, 1)
    const info = parseDeadLetterHeaders(dead[0]?.headers ?? new Map())
    assert.equal(info.errorKind, 'permanent')
    assert.match(info.errorMessage ?? '', /refused/)
    assert.equal(failedOnce.size, 6, 'each transient failure retried')
    const committed = await committedOffsets(brokers, groupId, input.topic)
    assert.equal(
      [...committed.values()].reduce((a, b) => a + b, 0n),
      BigInt(count),
      'every input committed'
    )
  })
}
