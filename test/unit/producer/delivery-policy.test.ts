import assert from 'node:assert/strict'
import { test } from 'node:test'
import { NetworkError, ProtocolError } from '@platformatic/kafka'
import { deliveryRetries, retriesWithin } from '../../../src/producer/delivery-policy.ts'
import { OutageDetector } from '../../../src/producer/outage.ts'
import { CircuitBreaker } from '../../../src/resilience/circuit-breaker.ts'

const backoff = { baseMs: 100, maxMs: 1000 }

test('the retry count spans the delivery timeout even when every attempt fails at once', () => {
  for (const timeout of [1000, 30_000, 120_000]) {
    const retries = retriesWithin(timeout, backoff)
    // The least delay of each retry is half its cap (equal jitter): the loop lasts at least this long.
    let least = 0
    for (let k = 1; k <= retries; k++) least += Math.min(backoff.maxMs, backoff.baseMs * 2 ** (k - 1)) / 2
    assert.ok(least >= timeout, `${retries} retries last at least ${least} ms for ${timeout}`)
    assert.ok(least - timeout <= backoff.maxMs, 'and not much more')
  }
  assert.equal(retriesWithin(0, backoff), 2, 'never the single retry the client turns into unlimited ones')
  assert.equal(deliveryRetries({ deliveryTimeoutMs: 120_000, maxRetries: 3, backoff }).retries, 3, 'a count wins')
  assert.equal(deliveryRetries({ deliveryTimeoutMs: 120_000, maxRetries: 0, backoff }).retries, false)
})

test('a leader or connection error refreshes the metadata before the next try; delays stay in [cap/2, cap]', () => {
  const told: string[] = []
  const policy = deliveryRetries({
    deliveryTimeoutMs: 10_000,
    backoff,
    onRetry: operation => told.push(operation),
    random: () => 0.999
  })
  let cleared = 0
  const client = { clearMetadata: () => cleared++ }
  const notLeader = new ProtocolError('NOT_LEADER_OR_FOLLOWER')
  const refused = new NetworkError('Connection refused')
  const replicas = new ProtocolError('NOT_ENOUGH_REPLICAS')
  assert.equal(policy.retryDelay(client, 'produce', 1, 10, notLeader), 100)
  assert.equal(policy.retryDelay(client, 'produce', 3, 10, refused), 400)
  assert.equal(policy.retryDelay(client, 'metadata', 9, 10, replicas), 1000)
  assert.equal(cleared, 2, 'not for NOT_ENOUGH_REPLICAS: its leader is right')
  assert.deepEqual(told, ['produce', 'produce', 'metadata'])
  const low = deliveryRetries({ deliveryTimeoutMs: 10_000, backoff, random: () => 0 })
  assert.equal(low.retryDelay(client, 'produce', 4, 10, refused), 400)
})

test('the breaker opens only after openAfterMs of failures without an acknowledgement', () => {
  let now = 0
  const breaker = new CircuitBreaker({ threshold: 1, cooldownMs: 1000, now: () => now })
  const outage = new OutageDetector(breaker, 5000, () => now)
  const down = new NetworkError('Connection refused')
  // A node of three down: failures, but acknowledgements in between keep the breaker closed.
  for (now = 0; now < 20_000; now += 500) {
    outage.failed(down)
    if (now % 4000 === 0) outage.acknowledged()
  }
  assert.equal(breaker.state, 'closed')
  // The whole cluster down: failures and no acknowledgement for 5 s.
  outage.acknowledged()
  for (now = 20_000; now < 24_900; now += 500) outage.failed(down)
  assert.equal(breaker.state, 'closed', 'not before openAfterMs')
  now = 25_000
  outage.failed(down)
  assert.equal(breaker.state, 'open')
  // Half-open: the probe's first failure opens it again; an acknowledgement closes it.
  now = 26_500
  assert.equal(breaker.canPass(), true)
  outage.failed(down)
  assert.equal(breaker.state, 'open')
  now = 28_000
  assert.equal(breaker.canPass(), true)
  outage.acknowledged()
  assert.equal(breaker.state, 'closed')
})

test('a topic that does not exist is not an outage', () => {
  let now = 0
  const breaker = new CircuitBreaker({ threshold: 1, cooldownMs: 1000, now: () => now })
  const outage = new OutageDetector(breaker, 1000, () => now)
  for (now = 0; now < 10_000; now += 100) outage.failed(new ProtocolError('UNKNOWN_TOPIC_OR_PARTITION'))
  assert.equal(breaker.state, 'closed')
})
