import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CommitCoordinator, type CommitEvent, type CommitTarget } from '../../../src/consumer/commit-coordinator.ts'
import { ConsumerMetricsRecorder } from '../../../src/consumer/metrics.ts'
import type { PartitionState } from '../../../src/consumer/partition-state.ts'
import type { CommitIdentity, OffsetToCommit } from '../../../src/kafka/commit-in-generation.ts'
import { fakeClock, partition, partitions, recordingLogger, turns } from './fakes.ts'

type Config = ConstructorParameters<typeof CommitCoordinator>[0]['config']

interface Sent {
  as: CommitIdentity | undefined
  offsets: string[]
}

/** A group client that records commit requests; `fail` makes the next ones reject, `hold` keeps them pending. */
class FakeTarget implements CommitTarget {
  generationId = 1
  closed = false
  fail = 0
  hold: PromiseWithResolvers<void> | undefined
  readonly sent: Sent[] = []

  async send(as: CommitIdentity | undefined, offsets: OffsetToCommit[]): Promise<void> {
    this.sent.push({ as, offsets: offsets.map(o => `${o.topic}/${o.partition}@${o.offset}`) })
    if (this.hold) await this.hold.promise
    if (this.fail > 0) {
      this.fail--
      throw new Error('NOT_COORDINATOR')
    }
  }
}

function coordinator(states: PartitionState[], config: Partial<Config> = {}, owned = states.map(s => s.id)) {
  const map = partitions(...states)
  const owns = new Set(owned)
  const events: CommitEvent[] = []
  const metrics = new ConsumerMetricsRecorder()
  const { logger, lines } = recordingLogger()
  const commits = new CommitCoordinator({
    config: {
      groupId: 'g',
      groupProtocol: 'consumer',
      commitStrategy: 'interval',
      commitEveryMessages: undefined,
      commitIntervalMs: 1000,
      ...config
    },
    partitions: map,
    owns: id => owns.has(id),
    metrics,
    logger,
    onCommit: event => events.push(event)
  })
  const target = new FakeTarget()
  return { commits, target, events, metrics, lines, owns }
}

function settle(state: PartitionState, ...offsets: number[]): void {
  for (const offset of offsets) state.tracker.settle(BigInt(offset))
}

test('commits the settled prefix of the partitions the client owns, and only what moved since', async () => {
  const [a, b, c] = [partition(0, 3), partition(1, 3), partition(2, 3)] as [
    PartitionState,
    PartitionState,
    PartitionState
  ]
  const { commits, target, events } = coordinator([a, b, c], {}, [a.id, b.id])
  settle(a, 0, 2)
  settle(b, 0, 1, 2)
  settle(c, 0)
  assert.equal(await commits.commitOnce(), true, 'nothing to send before a client is attached')
  commits.attach(target)
  await commits.commit()
  assert.deepEqual(target.sent, [{ as: undefined, offsets: ['t/0@1', 't/1@3'] }], 'not the unowned partition 2')
  assert.equal(a.tracker.lastCommitted, 1n)
  assert.deepEqual(
    events.map(e => e.offsets.map(o => `${o.partition}@${o.offset}`)),
    [['0@1', '1@3']]
  )
  await commits.commit()
  assert.equal(target.sent.length, 1, 'nothing new: no request')
  settle(a, 1)
  await commits.commit()
  assert.deepEqual(target.sent[1]?.offsets, ['t/0@3'])
})

test('classic protocol: owned partitions commit in the last join`s generation, a partition given up only in its own', async () => {
  const [a, b] = [partition(0, 2), partition(1, 2)] as [PartitionState, PartitionState]
  const { commits, target } = coordinator([a, b], { groupProtocol: 'classic' })
  commits.attach(target)
  settle(a, 0)
  settle(b, 0)
  await commits.commit()
  assert.deepEqual(target.sent, [], 'no join yet: no generation to commit in')
  commits.joined(4, 'member-1')
  b.revokedIn = 3
  b.revokedAs = { generation: 3, memberId: 'member-1' }
  target.generationId = 4
  await commits.commit()
  assert.deepEqual(target.sent, [{ as: { generation: 4, memberId: 'member-1' }, offsets: ['t/0@1'] }])
  assert.equal(commits.mayCommit(b), false, 'the group moved on from the generation it was given up in')
  target.generationId = 3
  settle(a, 1)
  await commits.commit()
  assert.deepEqual(target.sent.slice(1), [
    { as: { generation: 4, memberId: 'member-1' }, offsets: ['t/0@2'] },
    { as: { generation: 3, memberId: 'member-1' }, offsets: ['t/1@1'] }
  ])
})

test('a partition state that is no longer the live one commits nothing', async () => {
  const old = partition(0, 1)
  const { commits, target } = coordinator([old])
  commits.attach(target)
  const current = partition(0, 1)
  settle(old, 0)
  assert.equal(commits.mayCommit(old), true)
  assert.equal(commits.mayCommit(current), false, 'not in the table')
  await commits.commitOnce([current])
  assert.deepEqual(target.sent, [])
})

test('commit() coalesces: one request at a time, then one more for what settled meanwhile', async () => {
  const a = partition(0, 3)
  const { commits, target } = coordinator([a])
  commits.attach(target)
  target.hold = Promise.withResolvers()
  settle(a, 0)
  const first = commits.commit()
  settle(a, 1)
  const second = commits.commit()
  settle(a, 2)
  const third = commits.commit()
  assert.equal(second, first, 'joined the one in flight')
  assert.equal(third, first)
  assert.equal(target.sent.length, 1)
  target.hold.resolve()
  target.hold = undefined
  await first
  await turns()
  assert.deepEqual(
    target.sent.map(s => s.offsets),
    [['t/0@1'], ['t/0@3']]
  )
})

test('strategies: interval timer, every N messages, per message, per idle partition in batch mode (fake clock)', async t => {
  const clock = fakeClock(t)
  const a = partition(0, 6)
  const interval = coordinator([a], { commitStrategy: 'interval', commitIntervalMs: 1000, commitEveryMessages: 2 })
  interval.commits.attach(interval.target)
  interval.commits.start()
  settle(a, 0)
  interval.commits.counted()
  interval.commits.afterSettle()
  await turns()
  assert.equal(interval.target.sent.length, 0, 'one of two messages')
  clock.tick(1000)
  await turns()
  assert.equal(interval.target.sent.length, 1, 'the timer')
  settle(a, 1)
  interval.commits.counted()
  interval.commits.afterSettle()
  settle(a, 2)
  interval.commits.counted()
  interval.commits.afterSettle()
  await turns()
  assert.equal(interval.target.sent.length, 2, 'two messages since the last commit')
  interval.commits.stop()
  settle(a, 3)
  clock.tick(5000)
  await turns()
  assert.equal(interval.target.sent.length, 2, 'stopped')

  const b = partition(1, 2)
  const message = coordinator([b], { commitStrategy: 'message' })
  message.commits.attach(message.target)
  settle(b, 0)
  message.commits.counted()
  message.commits.afterSettle()
  await turns()
  assert.deepEqual(message.target.sent[0]?.offsets, ['t/1@1'])

  const c = partition(2, 2)
  const batch = coordinator([c], { commitStrategy: 'batch' })
  batch.commits.attach(batch.target)
  settle(c, 0)
  batch.commits.counted()
  batch.commits.afterSettle()
  batch.commits.partitionIdle(c)
  await turns()
  assert.equal(batch.target.sent.length, 0, 'a record still queued')
  c.queue.clear()
  batch.commits.partitionIdle(c)
  await turns()
  assert.deepEqual(batch.target.sent[0]?.offsets, ['t/2@1'])
})

test('failed commits: counted, not fatal, and warned about at most once per 5 s with the count in between (fake clock)', async t => {
  const clock = fakeClock(t)
  clock.setTime(60_000)
  const a = partition(0, 4)
  const { commits, target, metrics, lines } = coordinator([a])
  commits.attach(target)
  target.fail = 3
  for (const offset of [0, 1, 2]) {
    settle(a, offset)
    assert.equal(await commits.commitOnce(), false)
    clock.tick(1000)
  }
  assert.equal(metrics.commitFailures, 3)
  assert.equal(lines.filter(l => l.message === 'consumer: offset commit failed').length, 1)
  target.fail = 1
  clock.tick(3000)
  assert.equal(await commits.commitOnce(), false)
  const warnings = lines.filter(l => l.message === 'consumer: offset commit failed')
  assert.equal(warnings.length, 2)
  assert.equal((warnings[1]?.fields as { failedSinceLastWarning?: number }).failedSinceLastWarning, 2)
  assert.equal(await commits.commitOnce(), true, 'the next one carries the offsets')
  assert.equal(a.tracker.lastCommitted, 3n)
})

test('lastCommit: retried with growing pauses while it fails, never on a closed client (fake clock)', async t => {
  const clock = fakeClock(t)
  const a = partition(0, 1)
  const { commits, target } = coordinator([a])
  commits.attach(target)
  settle(a, 0)
  target.fail = 2
  let over = false
  void commits.lastCommit().then(() => (over = true))
  await turns()
  assert.equal(target.sent.length, 1)
  clock.tick(199)
  await turns()
  assert.equal(target.sent.length, 1)
  clock.tick(1)
  await turns()
  assert.equal(target.sent.length, 2, 'after 200 ms')
  clock.tick(400)
  await turns()
  assert.equal(target.sent.length, 3, 'after 400 ms more')
  assert.equal(over, true)

  const b = partition(1, 1)
  const closed = coordinator([b])
  closed.commits.attach(closed.target)
  settle(b, 0)
  closed.target.fail = 5
  closed.target.closed = true
  await closed.commits.lastCommit()
  assert.equal(closed.target.sent.length, 1)
})
