import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ConsumerCircuitBreaker } from '../../../src/handling/consumer-breaker.ts'
import { PermanentError, TransientError } from '../../../src/handling/errors.ts'
import { HandlerExecutor } from '../../../src/handling/handler-executor.ts'
import type { BreakerStateChange } from '../../../src/resilience/circuit-breaker.ts'
import { eventually, sleep } from '../../helpers/wait.ts'
import { captureLogger, consumed, context } from './fixtures.ts'

test('permits: closed lets everyone pass; open lets nobody; half-open lets one probe at a time', () => {
  let now = 0
  const breaker = new ConsumerCircuitBreaker({ threshold: 2, cooldownMs: 100, now: () => now })
  const permit = breaker.tryAcquire()
  assert.deepEqual(permit, { probe: false })
  assert.equal(breaker.mayDispatch(), true)
  breaker.recordFailure({ probe: false }, new Error('a'))
  breaker.recordFailure({ probe: false }, new Error('b'))
  assert.equal(breaker.state, 'open')
  assert.equal(breaker.mayDispatch(), false)
  assert.equal(breaker.tryAcquire(), undefined)
  now = 100
  assert.equal(breaker.mayDispatch(), true, 'a probe is due')
  const probe = breaker.tryAcquire()
  assert.deepEqual(probe, { probe: true })
  assert.equal(breaker.mayDispatch(), false, 'the probe is running')
  assert.equal(breaker.tryAcquire(), undefined)
  breaker.recordNeutral(probe)
  assert.equal(breaker.state, 'half-open')
  const second = breaker.tryAcquire()
  assert.deepEqual(second, { probe: true }, 'a neutral verdict frees the probe slot')
  breaker.recordSuccess(second)
  assert.equal(breaker.state, 'closed')
  assert.equal(breaker.trips, 1)
})

test('acquire waits for the cool-down and rejects when its signal aborts', async () => {
  const breaker = new ConsumerCircuitBreaker({ threshold: 1, cooldownMs: 30 })
  breaker.recordFailure({ probe: false }, new Error('down'))
  const waited = breaker.acquire()
  assert.deepEqual(await waited, { probe: true })
  const controller = new AbortController()
  const blocked = breaker.acquire(controller.signal)
  controller.abort(new Error('stop'))
  await assert.rejects(blocked, /stop/)
  await assert.rejects(breaker.whenDispatchable(AbortSignal.abort(new Error('gone'))), /gone/)
})

test('waiters are released together when the probe succeeds', async () => {
  const breaker = new ConsumerCircuitBreaker({ threshold: 1, cooldownMs: 0 })
  breaker.recordFailure({ probe: false }, new Error('down'))
  const probe = await breaker.acquire()
  assert.equal(probe.probe, true)
  const others = [breaker.acquire(), breaker.acquire(), breaker.whenDispatchable()]
  let settled = 0
  for (const p of others) void p.then(() => settled++)
  // A fixed wait: nobody may pass in this time.
  await sleep(20)
  assert.equal(settled, 0, 'nobody passes while the probe runs')
  breaker.recordSuccess(probe)
  await Promise.all(others)
  assert.equal(settled, 3)
})

test('bad options fail at construction', () => {
  assert.throws(() => new ConsumerCircuitBreaker({ threshold: 0 }), /`threshold`: got 0, expected at least 1/)
})

test('during an outage nothing is dead-lettered: messages wait, a probe tests the downstream, all resume', async () => {
  let downstreamUp = false
  let calls = 0
  const breaker = new ConsumerCircuitBreaker({ threshold: 3, cooldownMs: 40 })
  const changes: string[] = []
  breaker.on('state', (c: BreakerStateChange) => changes.push(`${c.from}>${c.to}`))
  const executor = new HandlerExecutor({
    maxRetries: 1,
    retryBackoff: { baseMs: 1, maxMs: 2 },
    breaker,
    logger: captureLogger(),
    handler: () => {
      calls++
      return downstreamUp ? Promise.resolve() : Promise.reject(new TransientError('db down'))
    }
  })
  // maxRetries 1 would dead-letter after 2 attempts; the breaker (threshold 3) keeps the message.
  const pending = [0, 1, 2].map(i => executor.execute(consumed({ partition: i }), context()))
  await eventually(() => breaker.trips >= 3, 10_000, 5)
  assert.equal(breaker.trips, 3, 'failed probes re-open it')
  assert.notEqual(breaker.state, 'closed')
  // Three failures opened it; after that only one probe per cool-down reached the downstream.
  assert.ok(calls <= 3 + breaker.trips, `attempts while open are probes only, got ${calls}`)
  downstreamUp = true
  const outcomes = await Promise.all(pending)
  assert.deepEqual(
    outcomes.map(o => o.kind),
    ['done', 'done', 'done']
  )
  assert.equal(breaker.state, 'closed')
  assert.ok(changes.includes('half-open>closed'))
})

test('a permanent failure while probing is neutral: the next waiter probes', async () => {
  const breaker = new ConsumerCircuitBreaker({ threshold: 1, cooldownMs: 0 })
  breaker.recordFailure({ probe: false }, new Error('down'))
  const executor = new HandlerExecutor({
    breaker,
    logger: captureLogger(),
    handler: m => (m.offset === 1n ? Promise.reject(new PermanentError('bad')) : Promise.resolve())
  })
  const [bad, good] = await Promise.all([
    executor.execute(consumed({ offset: 1n }), context()),
    executor.execute(consumed({ offset: 2n }), context())
  ])
  assert.equal(bad.kind, 'dead-letter')
  assert.equal(good.kind, 'done')
  assert.equal(breaker.state, 'closed')
})

test('when a message was retried to exhaustion while the breaker stayed closed it is dead-lettered', async () => {
  const breaker = new ConsumerCircuitBreaker({ threshold: 10, cooldownMs: 1000 })
  const executor = new HandlerExecutor({
    maxRetries: 2,
    retryBackoff: { baseMs: 1, maxMs: 1 },
    breaker,
    logger: captureLogger(),
    handler: () => Promise.reject(new TransientError('flaky'))
  })
  const outcome = await executor.execute(consumed(), context())
  assert.equal(outcome.kind, 'dead-letter')
  assert.equal(breaker.state, 'closed')
})

test('an aborted wait for the breaker ends as aborted', async () => {
  const breaker = new ConsumerCircuitBreaker({ threshold: 1, cooldownMs: 60_000 })
  breaker.recordFailure({ probe: false }, new Error('down'))
  const executor = new HandlerExecutor({ breaker, logger: captureLogger(), handler: async () => {} })
  const controller = new AbortController()
  const pending = executor.execute(consumed(), context(controller.signal))
  controller.abort(new Error('revoked'))
  const outcome = await pending
  assert.deepEqual([outcome.kind, outcome.attempts], ['aborted', 0])
})
