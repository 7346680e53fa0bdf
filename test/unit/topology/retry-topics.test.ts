import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { checkTopicName } from '../../../src/topology/topic-naming.ts'
import { delayMs, formatDelay, retryTopicNames } from '../../../src/topology/retry-topics.ts'

test('delays render compactly and stably', () => {
  const cases: [number, string][] = [
    [250, '250ms'],
    [1000, '1s'],
    [1500, '1s500ms'],
    [300_000, '5m'],
    [600_000, '10m'],
    [5_400_000, '1h30m'],
    [3_600_000, '1h'],
    [86_400_000, '1d'],
    [90_061_001, '1d1h1m1s1ms'],
    [0, '0ms']
  ]
  for (const [ms, text] of cases) assert.equal(formatDelay(ms), text, String(ms))
  // Stable: the same delay written two ways gives one name.
  assert.equal(formatDelay(delayMs('90m')), formatDelay(delayMs(5_400_000)))
  assert.throws(() => formatDelay(1.5), /whole number/)
  assert.throws(() => formatDelay(-1), /whole number/)
})

test('default names: seed 003 tiers and <topic>.dlq, following the convention when the origin does', () => {
  const names = retryTopicNames('todos.task.events')
  assert.deepEqual(names, {
    origin: 'todos.task.events',
    tiers: [
      { tier: 1, delayMs: 300_000, topic: 'todos.task.events.retry.5m' },
      { tier: 2, delayMs: 600_000, topic: 'todos.task.events.retry.10m' },
      { tier: 3, delayMs: 1_200_000, topic: 'todos.task.events.retry.20m' },
      { tier: 4, delayMs: 2_400_000, topic: 'todos.task.events.retry.40m' }
    ],
    dlq: 'todos.task.events.dlq'
  })
  for (const topic of [...names.tiers.map(t => t.topic), names.dlq]) {
    assert.equal(checkTopicName(topic).conventional, true, topic)
  }
  assert.equal(checkTopicName(retryTopicNames('a.b.c', { tiers: ['1h30m'] }).tiers[0]?.topic ?? '').conventional, true)
})

test('tiers as milliseconds or duration text', () => {
  const names = retryTopicNames('orders.order.placed', { tiers: [250, '1s', '1.5s', '90m'] })
  assert.deepEqual(
    names.tiers.map(t => [t.delayMs, t.topic]),
    [
      [250, 'orders.order.placed.retry.250ms'],
      [1000, 'orders.order.placed.retry.1s'],
      [1500, 'orders.order.placed.retry.1s500ms'],
      [5_400_000, 'orders.order.placed.retry.1h30m']
    ]
  )
  assert.deepEqual(retryTopicNames('a.b.c', { tiers: [] }).tiers, [])
})

test('names overridable by template or function', () => {
  const templated = retryTopicNames('orders.order.placed', {
    tiers: ['5m', '10m'],
    retryTopic: 'retry-{tier}-{delayMs}.{topic}.{delay}',
    dlqTopic: 'dead.{topic}'
  })
  assert.deepEqual(
    templated.tiers.map(t => t.topic),
    ['retry-1-300000.orders.order.placed.5m', 'retry-2-600000.orders.order.placed.10m']
  )
  assert.equal(templated.dlq, 'dead.orders.order.placed')

  const calls: unknown[] = []
  const byFunction = retryTopicNames('orders.order.placed', {
    tiers: [1000],
    retryTopic: (origin, ms, tier) => {
      calls.push([origin, ms, tier])
      return `${origin}-r${tier}`
    },
    dlqTopic: origin => `${origin}-dead`
  })
  assert.deepEqual(calls, [['orders.order.placed', 1000, 1]])
  assert.equal(byFunction.tiers[0]?.topic, 'orders.order.placed-r1')
  assert.equal(byFunction.dlq, 'orders.order.placed-dead')
})

test('bad delays, unknown placeholders, illegal and colliding names are config errors', () => {
  const expectConfig = (fn: () => unknown, pattern: RegExp) =>
    assert.throws(fn, error => {
      assert.ok(isKafkitError(error))
      assert.equal(error.code, 'KAFKIT_CONFIG_INVALID')
      assert.match(error.message, pattern)
      return true
    })
  expectConfig(() => retryTopicNames('a.b.c', { tiers: ['soon'] }), /retry tier 1 "soon": expected a duration/)
  expectConfig(() => retryTopicNames('a.b.c', { tiers: [0] }), /retry tier 1 must be at least 1 ms/)
  expectConfig(() => retryTopicNames('a.b.c', { tiers: [1.5] }), /at least 1 ms \(a whole number\)/)
  expectConfig(
    () => retryTopicNames('a.b.c', { tiers: ['5m', '300s'] }),
    /retry tier 2 \(5m\) and retry tier 1 \(5m\) would both use topic a\.b\.c\.retry\.5m/
  )
  expectConfig(
    () => retryTopicNames('a.b.c', { dlqTopic: '{topic}' }),
    /the DLQ and the origin would both use topic a\.b\.c/
  )
  expectConfig(() => retryTopicNames('a.b.c', { retryTopic: '{topic}.{when}' }), /uses \{when\}; known: \{topic\}/)
  expectConfig(() => retryTopicNames('a.b.c', { dlqTopic: () => 'has space' }), /the DLQ: "has space" is not a legal/)
  // One name per tier with {tier}, even for equal delays.
  assert.deepEqual(
    retryTopicNames('a.b.c', { tiers: ['5m', '5m'], retryTopic: '{topic}.retry.{tier}' }).tiers.map(t => t.topic),
    ['a.b.c.retry.1', 'a.b.c.retry.2']
  )
})

test('duration text round-trips through formatDelay', () => {
  for (const ms of [1, 250, 1000, 1500, 300_000, 5_400_000, 86_400_000, 90_061_001]) {
    assert.equal(delayMs(formatDelay(ms)), ms, formatDelay(ms))
  }
  assert.equal(delayMs('1.5s'), 1500)
  assert.equal(delayMs('250'), 250)
  assert.equal(delayMs(' 2H '), 7_200_000)
})
