import assert from 'node:assert/strict'
import { test } from 'node:test'
import { decodeRecord } from '../../../src/consumer/decode.ts'
import { ConsumerStoppedError } from '../../../src/consumer/errors.ts'
import { FailureRouter } from '../../../src/consumer/failure-router.ts'
import { ConsumerMetricsRecorder, type DeadLetterBlock } from '../../../src/consumer/metrics.ts'
import type { FailureRoute } from '../../../src/consumer/types.ts'
import { parseDeadLetterHeaders } from '../../../src/handling/dead-letter.ts'
import type { DeadLetterProducer } from '../../../src/handling/dead-letter-writer.ts'
import type { DeadLetterOutcome } from '../../../src/handling/handler-executor.ts'
import type { ConsumedMessage } from '../../../src/handling/types.ts'
import type { MessageToProduce } from '../../../src/kafka/client.ts'
import { jsonSerde } from '../../../src/message/serde.ts'
import { fakeClock, partition, record, recordingLogger, turns } from './fakes.ts'

type Produced = MessageToProduce<Buffer, Buffer, Buffer, Buffer>

/** A producer that fails its first `failures` sends, then acknowledges. */
function producer(failures = 0) {
  const sent: { message: Produced; acks: number | undefined }[] = []
  let left = failures
  const fake: DeadLetterProducer = {
    send: ({ messages, acks }) => {
      for (const message of messages) sent.push({ message, acks })
      if (left > 0) {
        left--
        return Promise.reject(new Error('NOT_ENOUGH_REPLICAS'))
      }
      return Promise.resolve({ offsets: [{ topic: messages[0]?.topic ?? '', partition: 0, offset: 41n }] })
    }
  }
  return { fake, sent }
}

function failed(error: unknown = new Error('schema mismatch')): DeadLetterOutcome {
  const at = new Date(0)
  return { kind: 'dead-letter', reason: 'permanent', error, attempts: 1, firstFailureAt: at, lastFailureAt: at }
}

function router(options: { route?: FailureRoute<unknown>; onDeadLetter?: 'dlq' | 'stop'; dlqTopic?: string } = {}) {
  const failures: Error[] = []
  const blocked: DeadLetterBlock[] = []
  const metrics = new ConsumerMetricsRecorder()
  const { logger, lines } = recordingLogger()
  const failureRouter = new FailureRouter<unknown>({
    config: { groupId: 'g', dlqTopic: options.dlqTopic, onDeadLetter: options.onDeadLetter ?? 'dlq' },
    route: options.route,
    metrics,
    logger,
    host: { fail: error => failures.push(error), blocked: event => blocked.push(event) }
  })
  const state = partition(0, 3)
  const message = (offset: number) => decodeRecord(record(0, offset), jsonSerde()) as ConsumedMessage<unknown>
  return { failureRouter, failures, blocked, metrics, lines, state, message }
}

test('a dead-letter record goes to <topic>.dlq (or dlqTopic) with the failure headers, acknowledged with acks all', async () => {
  const { failureRouter, state, message } = router()
  const { fake, sent } = producer()
  failureRouter.attach(fake)
  assert.equal(await failureRouter.divert(state, message(1), failed()), 'dead-letter')
  assert.equal(sent.length, 1)
  assert.equal(sent[0]?.message.topic, 't.dlq')
  assert.equal(sent[0]?.acks, -1)
  const info = parseDeadLetterHeaders(sent[0]?.message.headers as Map<Buffer, Buffer>)
  assert.equal(info.originTopic, 't')
  assert.equal(info.originOffset, 1n)
  assert.equal(info.consumerGroup, 'g')
  assert.equal(info.errorKind, 'permanent')
  assert.deepEqual(sent[0]?.message.value, record(0, 1).value, 'the original bytes')
  assert.equal(router({ dlqTopic: 'shared.dlq' }).failureRouter.dlqTopicFor('t'), 'shared.dlq')
})

test('a write that keeps failing blocks the partition (blocked, with attempts and error) until it is acknowledged (fake clock)', async t => {
  const clock = fakeClock(t)
  const { failureRouter, blocked, state, message } = router()
  const { fake, sent } = producer(2)
  failureRouter.attach(fake)
  let settled: string | undefined
  void failureRouter.divert(state, message(2), failed()).then(outcome => (settled = outcome))
  await turns()
  assert.equal(sent.length, 1)
  assert.deepEqual(
    blocked.map(b => [b.offset, b.attempts, b.dlqTopic, b.error]),
    [[2n, 1, 't.dlq', 'NOT_ENOUGH_REPLICAS']]
  )
  assert.equal(state.blocked?.offset, 2n)
  const since = state.blocked?.since
  clock.tick(30_000)
  await turns()
  assert.equal(sent.length, 2)
  assert.equal(state.blocked?.attempts, 2)
  assert.equal(state.blocked?.since, since, 'blocked since the first failure')
  assert.equal(settled, undefined, 'not acknowledged yet')
  clock.tick(30_000)
  await turns()
  assert.equal(sent.length, 3)
  assert.equal(settled, 'dead-letter')
  assert.equal(state.blocked, undefined, 'unblocked once acknowledged')
})

test('an aborted partition signal ends the write: the divert rejects and the record stays unsettled', async () => {
  const { failureRouter, state, message, lines } = router()
  const { fake } = producer(1)
  failureRouter.attach(fake)
  const diverting = failureRouter.divert(state, message(0), failed())
  state.controller.abort(new Error('revoked'))
  await assert.rejects(diverting)
  assert.ok(lines.some(l => l.message.includes('dead-letter write not acknowledged')))
  assert.equal(state.blocked, undefined)
})

test('a failure route: rerouted records skip the DLQ, dead-letter falls through to it, a rejection leaves the record unsettled', async () => {
  const verdicts: ('rerouted' | 'dead-letter' | Error)[] = ['rerouted', 'dead-letter', new Error('tier write refused')]
  const routed: bigint[] = []
  const route: FailureRoute<unknown> = {
    route: message => {
      routed.push(message.offset)
      const verdict = verdicts.shift()
      return verdict instanceof Error ? Promise.reject(verdict) : Promise.resolve(verdict ?? 'dead-letter')
    }
  }
  const { failureRouter, state, message } = router({ route })
  const { fake, sent } = producer()
  failureRouter.attach(fake)
  assert.equal(await failureRouter.divert(state, message(0), failed()), 'rerouted')
  assert.equal(sent.length, 0)
  assert.equal(await failureRouter.divert(state, message(1), failed()), 'dead-letter')
  assert.equal(sent.length, 1)
  await assert.rejects(failureRouter.divert(state, message(2), failed()), /tier write refused/)
  assert.deepEqual(routed, [0n, 1n, 2n])
  assert.equal(sent.length, 1)
})

test("onDeadLetter 'stop': the consumer fails with an error naming the record, and nothing is written", async () => {
  const { failureRouter, failures, state, message } = router({ onDeadLetter: 'stop' })
  const { fake, sent } = producer()
  failureRouter.attach(fake)
  await assert.rejects(failureRouter.divert(state, message(1), failed(new Error('bad'))), ConsumerStoppedError)
  assert.equal(failures.length, 1)
  assert.match(failures[0]?.message ?? '', /t\/0@1: bad/)
  assert.equal(sent.length, 0)
})

test('business refusals: nothing to tell without a route; told to the route, false when that fails', async () => {
  const { failureRouter, state, message } = router()
  assert.equal(failureRouter.business(state, message(0)), undefined)
  const told: bigint[] = []
  let refuse = false
  const route: FailureRoute<unknown> = {
    route: () => Promise.resolve('dead-letter'),
    business: m => {
      told.push(m.offset)
      if (refuse) throw new Error('audit log down')
      return Promise.resolve()
    }
  }
  const withRoute = router({ route })
  assert.equal(await withRoute.failureRouter.business(withRoute.state, message(0)), true)
  refuse = true
  assert.equal(await withRoute.failureRouter.business(withRoute.state, message(1)), false, 'a throw, even not async')
  assert.deepEqual(told, [0n, 1n])
})

test("a batch handler's deadLetter: a message of its batch is dead-lettered as permanent; another partition's is refused", async () => {
  const { failureRouter, state, metrics } = router()
  const { fake, sent } = producer()
  failureRouter.attach(fake)
  const own = decodeRecord(record(0, 2), jsonSerde()) as ConsumedMessage<unknown>
  assert.equal(await failureRouter.divertFromBatch(state, own, new Error('bad row')), 'dead-letter')
  assert.equal(parseDeadLetterHeaders(sent[0]?.message.headers as Map<Buffer, Buffer>).errorKind, 'permanent')
  assert.equal(metrics.failed, 1)
  const other = decodeRecord(record(1, 0), jsonSerde()) as ConsumedMessage<unknown>
  await assert.rejects(failureRouter.divertFromBatch(state, other, new Error('x')), {
    code: 'KAFKIT_CONFIG_INVALID'
  })
  assert.equal(sent.length, 1)
})
