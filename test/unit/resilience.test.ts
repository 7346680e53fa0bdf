import assert from 'node:assert/strict'
import { test } from 'node:test'
import { backoffDelay, sleep } from '../../src/resilience/backoff.ts'
import { CircuitBreaker, type BreakerStateChange } from '../../src/resilience/circuit-breaker.ts'

test('backoff doubles up to the cap; full jitter stays within [0, cap]', () => {
  const opts = { baseMs: 100, maxMs: 1000, jitter: 'none' as const }
  assert.deepEqual(
    [1, 2, 3, 4, 5].map(n => backoffDelay(n, opts)),
    [100, 200, 400, 800, 1000]
  )
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(3, { baseMs: 100, maxMs: 1000 })
    assert.ok(d >= 0 && d <= 400)
  }
  assert.equal(backoffDelay(3, { baseMs: 100, maxMs: 1000, random: () => 0.999999 }), 400)
})

test('sleep rejects when its signal aborts', async () => {
  const controller = new AbortController()
  const pending = sleep(10_000, controller.signal)
  controller.abort(new Error('stop'))
  await assert.rejects(pending, /stop/)
})

test('breaker: opens after threshold, one half-open probe after cool-down, closes on success', () => {
  let now = 0
  const breaker = new CircuitBreaker({ threshold: 3, cooldownMs: 1000, now: () => now })
  const changes: BreakerStateChange[] = []
  breaker.on('state', change => changes.push(change))
  breaker.failure()
  breaker.failure()
  assert.equal(breaker.state, 'closed')
  breaker.success()
  breaker.failure()
  breaker.failure()
  assert.equal(breaker.state, 'closed', 'a success resets the count of consecutive failures')
  breaker.failure(new Error('down'))
  assert.equal(breaker.state, 'open')
  assert.equal(breaker.canPass(), false)
  assert.equal(breaker.retryInMs, 1000)
  now = 1000
  assert.equal(breaker.canPass(), true, 'the probe')
  assert.equal(breaker.state, 'half-open')
  assert.equal(breaker.canPass(), false, 'only one probe at a time')
  breaker.failure()
  assert.equal(breaker.state, 'open', 'a failed probe opens it again')
  now = 2500
  assert.equal(breaker.canPass(), true)
  breaker.success()
  assert.equal(breaker.state, 'closed')
  assert.equal(breaker.trips, 2)
  assert.deepEqual(
    changes.map(c => `${c.from}>${c.to}`),
    ['closed>open', 'open>half-open', 'half-open>open', 'open>half-open', 'half-open>closed']
  )
})
