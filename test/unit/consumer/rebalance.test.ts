import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CommitCoordinator, type CommitTarget } from '../../../src/consumer/commit-coordinator.ts'
import type { RawRecord } from '../../../src/consumer/decode.ts'
import { Dispatcher } from '../../../src/consumer/dispatcher.ts'
import { ConsumerMetricsRecorder } from '../../../src/consumer/metrics.ts'
import type { ConsumerConfig } from '../../../src/consumer/options.ts'
import { partitionId, topicPartition, type PartitionState } from '../../../src/consumer/partition-state.ts'
import { RebalanceHandler, type GroupView } from '../../../src/consumer/rebalance.ts'
import { CallWatchdog } from '../../../src/consumer/watchdog.ts'
import type { CommitIdentity } from '../../../src/kafka/commit-in-generation.ts'
import { fakeClock, record, recordingLogger, take, turns } from './fakes.ts'

type Protocol = { groupProtocol: 'classic' | 'consumer'; assignor: 'roundrobin' | 'cooperative-sticky' }

/**
 * A rebalance handler on real parts (commits, dispatcher, watchdog) with a group client that is a plain
 * object: the test sets its assignment and generation, and calls the handler as the client's events would.
 */
function harness(protocol: Protocol = { groupProtocol: 'classic', assignor: 'cooperative-sticky' }) {
  const group = {
    generationId: 1,
    memberId: 'member-1',
    assignments: [] as { topic: string; partitions: number[] }[]
  } satisfies GroupView
  const assign = (...owned: number[]) => (group.assignments = [{ topic: 't', partitions: owned }])
  const events: string[] = []
  const sent: { as: CommitIdentity | undefined; offsets: string[] }[] = []
  const started: string[] = []
  const state = { running: true, buffered: 0, resumed: 0 }
  const partitions = new Map<string, PartitionState>()
  const metrics = new ConsumerMetricsRecorder()
  const config = {
    groupId: 'g',
    ...protocol,
    revokeDrainMs: 1000,
    concurrency: { mode: 'partition', limit: 16 },
    commitStrategy: 'interval',
    commitEveryMessages: undefined,
    commitIntervalMs: 1000
  } as unknown as ConsumerConfig
  /** The handler, for the parts made before it. */
  const late: { handler?: RebalanceHandler } = {}
  const commits = new CommitCoordinator({
    config,
    partitions,
    owns: id => late.handler?.owns(id) ?? false,
    metrics,
    logger: recordingLogger().logger,
    onCommit: () => undefined
  })
  const target: CommitTarget = {
    get generationId() {
      return group.generationId
    },
    closed: false,
    send: (as, offsets) => {
      sent.push({ as, offsets: offsets.map(o => `${o.partition}@${o.offset}`) })
      return Promise.resolve()
    }
  }
  commits.attach(target)
  const dispatcher = new Dispatcher(
    partitions,
    { limit: 16, batch: false, lingerMs: 0, maxPollRecords: 500 },
    () => state.running && !late.handler?.rebalancing
  )
  dispatcher.runWith({ runOne: (s, r) => started.push(`${s.partition}@${r.offset}`), runBatch: () => undefined })
  const handler = new RebalanceHandler({
    config,
    partitions,
    commits,
    dispatcher,
    watchdog: new CallWatchdog(60_000),
    metrics,
    host: {
      group: () => group,
      running: () => state.running,
      assigned: list => events.push(`assigned ${list.map(p => p.partition).join(',')}`),
      revoked: list => events.push(`revoked ${list.map(p => p.partition).join(',')}`),
      dropped: count => (state.buffered -= count),
      resume: () => state.resumed++
    }
  })
  late.handler = handler
  /** A fetched record taken in (as the consumer's #accept does); undefined when not owned. */
  const accept = (partition: number, offset: number): PartitionState | undefined => {
    const raw = record(partition, offset)
    const live = handler.stateFor(raw)
    if (live) {
      take(live, raw)
      state.buffered++
    }
    return live
  }
  /** A call ends, as the runner ends it. */
  const end = (live: PartitionState, raw: RawRecord) => {
    live.queue.release(raw)
    if (live.queue.inFlight === 0) live.onIdle?.()
    dispatcher.ended(live)
  }
  return { handler, group, assign, events, sent, started, state, partitions, dispatcher, commits, accept, end, metrics }
}

test('partition ids name a topic and partition both ways', () => {
  assert.deepEqual(topicPartition(partitionId('orders.v1', 7)), { topic: 'orders.v1', partition: 7 })
})

test('assignments: new partitions announced; a record of a partition not owned is dropped', () => {
  const { handler, assign, events, accept } = harness()
  assign(0, 1)
  handler.reconcile()
  assert.deepEqual(events, ['assigned 0,1'])
  assert.ok(accept(0, 0))
  assert.equal(accept(2, 0), undefined, 'not owned, even after asking the client again')
  handler.reconcile()
  assert.deepEqual(events, ['assigned 0,1'], 'nothing new')
})

test('a revoked partition: queue dropped, settled offsets committed at once, in-flight work drained and committed, then aborted and announced', async () => {
  const { handler, assign, events, sent, state, partitions, accept, end } = harness()
  assign(0)
  handler.onJoin()
  const live = accept(0, 0) as PartitionState
  accept(0, 1)
  accept(0, 2)
  const first = live.queue.next() as RawRecord
  live.tracker.settle(0n)
  live.queue.release(first)
  const second = live.queue.next() as RawRecord
  assign()
  handler.onRebalance()
  assert.equal(state.buffered, 2, 'the queued record dropped')
  await turns()
  assert.deepEqual(
    sent,
    [{ as: { generation: 1, memberId: 'member-1' }, offsets: ['0@1'] }],
    'at once, in its generation'
  )
  assert.equal(live.controller.signal.aborted, false, 'the record in flight may finish')
  assert.deepEqual(events, ['assigned 0'])
  live.tracker.settle(1n)
  end(live, second)
  await turns()
  assert.deepEqual(sent[1]?.offsets, ['0@2'], 'what the drain settled')
  assert.equal(live.controller.signal.aborted, true)
  assert.equal((live.controller.signal.reason as { code?: string }).code, 'KAFKIT_PARTITION_REVOKED')
  assert.deepEqual(events, ['assigned 0', 'revoked 0'])
  assert.equal(partitions.has(live.id), false)
  assert.ok(state.resumed > 0, 'fetching may resume')
})

test('in-flight work past revokeDrainMs is aborted, and the partition let go (fake clock)', async t => {
  const clock = fakeClock(t)
  const { handler, assign, events, accept } = harness({ groupProtocol: 'consumer', assignor: 'cooperative-sticky' })
  assign(0)
  handler.onJoin()
  const live = accept(0, 0) as PartitionState
  live.queue.next()
  assign()
  handler.onRebalance()
  clock.tick(999)
  await turns()
  assert.equal(live.controller.signal.aborted, false)
  clock.tick(1)
  await turns()
  assert.equal(live.controller.signal.aborted, true)
  assert.deepEqual(events, ['assigned 0', 'revoked 0'])
})

test('a partition assigned back while its earlier state is let go: the new one is held, and announced after the revoke', async () => {
  const { handler, assign, events, started, accept, end, dispatcher } = harness()
  assign(0)
  handler.onJoin()
  const old = accept(0, 0) as PartitionState
  const running = old.queue.next() as RawRecord
  assign()
  handler.reconcile()
  assign(0)
  handler.reconcile()
  assert.deepEqual(events, ['assigned 0'], 'the second assignment waits for the revoke')
  const fresh = accept(0, 0) as PartitionState
  assert.notEqual(fresh, old)
  assert.equal(fresh.held, true)
  dispatcher.pump()
  assert.deepEqual(started, [], 'held: nothing of it runs while the old state has work in flight')
  old.tracker.settle(0n)
  end(old, running)
  await turns()
  assert.deepEqual(events, ['assigned 0', 'revoked 0', 'assigned 0'])
  assert.equal(fresh.held, false)
  assert.deepEqual(started, ['0@0'], 'released: it runs')
})

test('eager: a rebalance stops dispatching and commits at once and after the drain; the join resumes (fake clock)', async t => {
  const clock = fakeClock(t)
  const { handler, assign, sent, started, accept, end, dispatcher, metrics } = harness({
    groupProtocol: 'classic',
    assignor: 'roundrobin'
  })
  assign(0, 1)
  handler.onJoin()
  const a = accept(0, 0) as PartitionState
  accept(1, 0)
  dispatcher.pump()
  assert.deepEqual(started, ['0@0', '1@0'])
  a.tracker.settle(0n)
  handler.onRebalance()
  assert.equal(metrics.rebalances, 1)
  assert.equal(handler.rebalancing, true)
  await turns()
  assert.deepEqual(
    sent.map(s => s.offsets),
    [['0@1']]
  )
  accept(0, 1)
  end(a, record(0, 0))
  assert.deepEqual(started, ['0@0', '1@0'], 'nothing new starts during the rebalance')
  clock.tick(1000)
  await turns()
  assert.equal(sent.length, 1, 'nothing more settled: no second request')
  handler.onJoin()
  assert.equal(handler.rebalancing, false)
  assert.deepEqual(started, ['0@0', '1@0', '0@1'])
})

test('a partition given up commits as the member and generation it was given up in (cooperative), none for eager', t => {
  fakeClock(t)
  for (const [assignor, expected] of [
    ['cooperative-sticky', { generation: 7, memberId: 'member-1' }],
    ['roundrobin', undefined]
  ] as const) {
    const { handler, assign, group, accept } = harness({ groupProtocol: 'classic', assignor })
    assign(0)
    handler.onJoin()
    const live = accept(0, 0) as PartitionState
    live.queue.next()
    group.generationId = 7
    assign()
    handler.reconcile()
    assert.equal(live.revokedIn, 7)
    assert.deepEqual(live.revokedAs, expected, assignor)
  }
})
