import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { test } from 'node:test'
import { CommitCoordinator } from '../../../src/consumer/commit-coordinator.ts'
import { Dispatcher } from '../../../src/consumer/dispatcher.ts'
import { FailureRouter } from '../../../src/consumer/failure-router.ts'
import { ConsumerMetricsRecorder } from '../../../src/consumer/metrics.ts'
import type { ConsumerConfig } from '../../../src/consumer/options.ts'
import type { PartitionState } from '../../../src/consumer/partition-state.ts'
import { RecordRunner } from '../../../src/consumer/record-runner.ts'
import type { ConsumerEvents, FailureRoute } from '../../../src/consumer/types.ts'
import { CallWatchdog, watchdogMiddleware } from '../../../src/consumer/watchdog.ts'
import { PermanentError } from '../../../src/handling/errors.ts'
import { HandlerExecutor } from '../../../src/handling/handler-executor.ts'
import type { BatchHandler, MessageHandler } from '../../../src/handling/types.ts'
import { bytesSerde } from '../../../src/message/serde.ts'
import { REPLAY_GROUP_HEADER } from '../../../src/message/wire-format.ts'
import { fakeClock, partition, partitions, record, recordingLogger, take, turns } from './fakes.ts'

interface HarnessInit {
  handler?: MessageHandler<Buffer>
  batchHandler?: BatchHandler<Buffer>
  route?: FailureRoute<Buffer>
  /** DLQ sends that fail before one is acknowledged. */
  dlqFailures?: number
  maxPollRecords?: number
  states: PartitionState[]
}

/** A runner on real parts (executor, dispatcher, commits, failure routing); the DLQ producer is a fake. */
function harness(init: HarnessInit) {
  const states = partitions(...init.states)
  const events = new EventEmitter<ConsumerEvents>()
  const settled: string[] = []
  events.on('settled', e => settled.push(`${e.partition}@${e.offset}:${e.outcome}`))
  const metrics = new ConsumerMetricsRecorder()
  const { logger, lines } = recordingLogger()
  const watchdog = new CallWatchdog(60_000)
  const executor = new HandlerExecutor<Buffer>({
    ...(init.handler ? { handler: init.handler } : {}),
    ...(init.batchHandler ? { batchHandler: init.batchHandler } : {}),
    middleware: [watchdogMiddleware<Buffer>(watchdog)],
    maxRetries: 2,
    retryBackoff: { baseMs: 100, maxMs: 100, jitter: 'none' },
    logger
  })
  const config = {
    groupId: 'g',
    groupProtocol: 'consumer',
    commitStrategy: 'batch',
    commitIntervalMs: 1000,
    dlqTopic: undefined,
    onDeadLetter: 'dlq'
  } as unknown as ConsumerConfig
  const commits = new CommitCoordinator({
    config,
    partitions: states,
    owns: () => true,
    metrics,
    logger,
    onCommit: () => undefined
  })
  const committed: string[] = []
  commits.attach({
    generationId: 1,
    closed: false,
    send: (_as, offsets) => {
      committed.push(...offsets.map(o => `${o.partition}@${o.offset}`))
      return Promise.resolve()
    }
  })
  const backpressure = {
    buffered: init.states.reduce((sum, s) => sum + s.queue.size, 0),
    resumed: 0,
    maybeResume() {
      this.resumed++
    }
  }
  const failures = new FailureRouter<Buffer>({
    config,
    route: init.route,
    metrics,
    logger,
    host: { fail: () => undefined, blocked: () => undefined }
  })
  const dlq: string[] = []
  let dlqFailures = init.dlqFailures ?? 0
  failures.attach({
    send: ({ messages }) => {
      if (dlqFailures-- > 0) return Promise.reject(new Error('NOT_ENOUGH_REPLICAS'))
      for (const message of messages) dlq.push(message.topic)
      return Promise.resolve({ offsets: [] })
    }
  })
  const dispatcher = new Dispatcher(
    states,
    { limit: 4, batch: init.batchHandler !== undefined, lingerMs: 0, maxPollRecords: init.maxPollRecords ?? 10 },
    () => true
  )
  const runner = new RecordRunner<Buffer>({
    groupId: 'g',
    serde: bytesSerde,
    executor,
    route: init.route,
    watchdog,
    dispatcher,
    commits,
    backpressure,
    failures,
    metrics,
    logger,
    events
  })
  dispatcher.runWith(runner)
  return { runner, dispatcher, events, settled, metrics, lines, backpressure, dlq, committed }
}

test('records run through the handler to done, one after the other; the position moves and the buffer empties', async () => {
  const state = partition(0, 3)
  const seen: string[] = []
  const { dispatcher, settled, metrics, backpressure } = harness({
    states: [state],
    handler: async (message, context) => {
      seen.push(`${message.offset}:${context.attempt}:${message.value.toString()}`)
      await Promise.resolve()
    }
  })
  dispatcher.pump()
  await turns()
  assert.deepEqual(seen, ['0:1:{"offset":0}', '1:1:{"offset":1}', '2:1:{"offset":2}'])
  assert.deepEqual(settled, ['0@0:done', '0@1:done', '0@2:done'])
  assert.equal(state.tracker.position, 3n)
  assert.equal(metrics.processed, 3)
  assert.equal(backpressure.buffered, 0)
  assert.ok(backpressure.resumed >= 3)
  assert.equal(dispatcher.inFlight, 0)
})

test('a failing record is retried in place, then dead-lettered; it settles only once the DLQ acknowledged (fake clock)', async t => {
  const clock = fakeClock(t)
  const state = partition(0, 2)
  const attempts: number[] = []
  const { dispatcher, settled, metrics, dlq } = harness({
    states: [state],
    dlqFailures: 1,
    handler: (message, context) => {
      if (message.offset === 0n) {
        attempts.push(context.attempt)
        throw new Error('connection refused')
      }
      return Promise.resolve()
    }
  })
  dispatcher.pump()
  await turns()
  assert.deepEqual(attempts, [1])
  clock.tick(100)
  await turns()
  clock.tick(100)
  await turns()
  assert.deepEqual(attempts, [1, 2, 3], 'two retries, 100 ms apart')
  assert.deepEqual(settled, [], 'the DLQ write failed: nothing settles, the next record waits (partition order)')
  assert.equal(state.tracker.position, undefined)
  clock.tick(30_000)
  await turns()
  assert.equal(dlq.length, 1)
  assert.deepEqual(settled, ['0@0:dead-letter', '0@1:done'])
  assert.equal(metrics.deadLettered, 1)
  assert.equal(metrics.retried, 2)
})

test('records that do not decode skip the handler; replays for another group are skipped, for this one handled', async () => {
  const state = partition(0, 0)
  take(state, record(0, 0, { headers: [[REPLAY_GROUP_HEADER, 'other-group']] }))
  take(state, record(0, 1, { headers: [[REPLAY_GROUP_HEADER, 'g']] }))
  take(state, record(0, 2))
  const broken = record(0, 3)
  ;(broken as { key: Buffer }).key = Buffer.from([0xff, 0xfe])
  take(state, broken)
  const handled: bigint[] = []
  const { dispatcher, settled, dlq, metrics } = harness({
    states: [state],
    handler: message => {
      handled.push(message.offset)
      return Promise.resolve()
    }
  })
  dispatcher.pump()
  await turns()
  assert.deepEqual(handled, [1n, 2n])
  assert.deepEqual(settled, ['0@0:skipped', '0@1:done', '0@2:done', '0@3:dead-letter'])
  assert.deepEqual(dlq, ['t.dlq'], 'the key that is not UTF-8')
  assert.equal(metrics.skipped, 1)
})

test("a failure route's intercept may take a record away before the handler", async () => {
  const state = partition(0, 2)
  const handled: bigint[] = []
  const { dispatcher, settled, metrics } = harness({
    states: [state],
    route: {
      route: () => Promise.resolve('dead-letter'),
      intercept: message => Promise.resolve(message.offset === 0n ? 'rerouted' : 'handle')
    },
    handler: message => {
      handled.push(message.offset)
      return Promise.resolve()
    }
  })
  dispatcher.pump()
  await turns()
  assert.deepEqual(handled, [1n])
  assert.deepEqual(settled, ['0@0:rerouted', '0@1:done'])
  assert.equal(metrics.rerouted, 1)
})

test("a 'settled' listener that throws is logged; the record still ends and the next one runs", async () => {
  const state = partition(0, 2)
  const { dispatcher, events, lines } = harness({ states: [state], handler: () => Promise.resolve() })
  let calls = 0
  events.on('settled', () => {
    if (calls++ === 0) throw new Error('listener bug')
  })
  dispatcher.pump()
  await turns()
  assert.equal(calls, 2)
  assert.equal(state.tracker.position, 2n, 'settled before the listener threw')
  assert.ok(lines.some(l => l.level === 'error' && l.message === 'consumer: unexpected failure handling a record'))
  assert.equal(dispatcher.inFlight, 0)
})

test('batches: consecutive records in one call; a failing batch is split and only its bad record dead-lettered; committed per batch', async () => {
  const state = partition(0, 4)
  const calls: string[] = []
  const { dispatcher, settled, dlq, committed } = harness({
    states: [state],
    batchHandler: messages => {
      calls.push(messages.map(m => m.offset).join(','))
      if (messages.some(m => m.offset === 2n)) throw new PermanentError('bad row')
      return Promise.resolve()
    }
  })
  dispatcher.pump()
  await turns(10)
  assert.deepEqual(calls, ['0,1,2,3', '0', '1', '2', '3'])
  assert.deepEqual(settled, ['0@0:done', '0@1:done', '0@2:dead-letter', '0@3:done'])
  assert.equal(dlq.length, 1)
  assert.equal(committed[committed.length - 1], '0@4')
  assert.equal(dispatcher.inFlight, 0)
})

test('batch strategy: every batch commits when it ends, and the partition when it has nothing left', async () => {
  const state = partition(0, 5)
  const { dispatcher, committed } = harness({
    states: [state],
    maxPollRecords: 2,
    batchHandler: () => Promise.resolve()
  })
  dispatcher.pump()
  await turns(10)
  assert.deepEqual(committed, ['0@2', '0@4', '0@5'])
})
