import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { retryOptions } from '../../../src/retry/options.ts'
import { Consumer, type ConsumerInit } from '../../../src/consumer/consumer.ts'
import { defaultLogger } from '../../../src/handling/logger.ts'
import { RetryFlow } from '../../../src/retry/retry-flow.ts'
import type { RetryOptions } from '../../../src/retry/options.ts'
import { retryFlowTopics } from '../../../src/retry/topic-names.ts'

const base = {
  brokers: ['127.0.0.1:1'],
  groupId: 'g',
  topics: ['shop.order.created'],
  env: {},
  handler: async () => {}
}

/** The retry tiers a consumer with `retry` composes, built the way the consumer builds them. */
function flowOf(init: ConsumerInit, retry: RetryOptions): RetryFlow {
  const origin = new Consumer(init).config
  return new RetryFlow({ retry, init, origin, logger: defaultLogger(), newConsumer: tier => new Consumer(tier) })
}

test('retry options: 5m, 10m, 20m, 40m tiers by default, per-key ordering off, no in-place retries per tier', () => {
  const config = retryOptions.resolve({})
  assert.deepEqual(config.tiers, [300_000, 600_000, 1_200_000, 2_400_000])
  assert.equal(config.perKeyOrdering, false)
  assert.equal(config.maxRetriesPerTier, 0)
  assert.throws(() => retryOptions.resolve({ tiers: [] }), /tiers/)
  assert.throws(() => retryOptions.resolve({ tiers: [0] }), /tiers/)
})

test('flow topics: tiers named by their delay, the DLQ as the consumer names it, release and parked topics', () => {
  const flow = retryFlowTopics('shop.order.created', [250, 300_000, 5_400_000])
  assert.deepEqual(
    flow.tiers.map(t => t.topic),
    ['shop.order.created.retry.250ms', 'shop.order.created.retry.5m', 'shop.order.created.retry.1h30m']
  )
  assert.deepEqual(
    flow.tiers.map(t => t.tier),
    [1, 2, 3]
  )
  assert.equal(flow.dlq, 'shop.order.created.dlq')
  assert.equal(flow.release, 'shop.order.created.retry.release')
  assert.equal(flow.parked, 'shop.order.created.retry.parked')
  assert.equal(retryFlowTopics('a.b.c', [1000], { dlqTopic: 'all.dead.letters' }).dlq, 'all.dead.letters')
  assert.equal(
    retryFlowTopics('a.b.c', [1000], { retryTopic: '{topic}.retry-{tier}' }).tiers[0]?.topic,
    'a.b.c.retry-1'
  )
  assert.throws(() => retryFlowTopics('a.b.c', [1000, 1000]), /both use topic/)
})

test('Consumer with retry: durations as text, one consumer per tier, checked at construction', () => {
  assert.ok(
    new Consumer({ ...base, retry: { tiers: ['250ms'] } }).config.groupId === 'g',
    'a consumer takes retry tiers'
  )
  const consumer = flowOf(base, { tiers: ['250ms', '1s', '1h30m'] })
  assert.deepEqual(consumer.retry.delaysMs, [250, 1000, 5_400_000])
  assert.deepEqual(
    consumer.tiers.map(t => [t.config.groupId, t.config.topics[0], t.config.startOffset, t.config.maxRetries]),
    [
      ['g.retry.250ms', 'shop.order.created.retry.250ms', 'earliest', 0],
      ['g.retry.1s', 'shop.order.created.retry.1s', 'earliest', 0],
      ['g.retry.1h30m', 'shop.order.created.retry.1h30m', 'earliest', 0]
    ]
  )
  assert.equal(consumer.release, undefined, 'no release consumer without per-key ordering')
  const twice = flowOf(base, { tiers: [1000, 1000, 5000], topicTemplate: '{topic}.retry.{tier}' })
  assert.deepEqual(
    twice.tiers.map(t => [t.config.groupId, t.config.topics[0]]),
    [
      ['g.retry.1s.1', 'shop.order.created.retry.1'],
      ['g.retry.1s.2', 'shop.order.created.retry.2'],
      ['g.retry.5s', 'shop.order.created.retry.3']
    ],
    'tiers sharing a delay get a group each'
  )
  const keyed = flowOf(base, { tiers: [1000], perKeyOrdering: true })
  assert.equal(keyed.release?.config.groupId, 'g.retry.release')
  assert.throws(
    () => new Consumer({ ...base, retry: { tiers: ['soon'] } }),
    (error: unknown) =>
      isKafkitError(error) && error.code === 'KAFKIT_CONFIG_INVALID' && /retry.tiers\[0\]/.test(error.message)
  )
  assert.throws(
    () =>
      new Consumer({
        ...base,
        concurrency: { mode: 'unordered' },
        retry: { perKeyOrdering: true }
      }),
    /concurrency.mode must be 'partition' or 'key'/
  )
  assert.throws(
    () =>
      new Consumer({
        brokers: base.brokers,
        groupId: 'g',
        topics: ['t'],
        env: {},
        batchHandler: async () => {},
        retry: { perKeyOrdering: true }
      }),
    /per-message handler/
  )
  assert.throws(
    () =>
      new Consumer({
        ...base,
        failureRoute: { route: () => Promise.resolve('dead-letter' as const) },
        retry: { tiers: [1000] }
      }),
    /failureRoute/
  )
  // A breaker is kept on the tiers, with a threshold their in-place retries allow.
  const breaker = flowOf({ ...base, maxRetries: 3, breaker: { threshold: 3 } }, { tiers: [1000] })
  assert.equal(breaker.tiers[0]?.config.breaker?.threshold, 1)
})
