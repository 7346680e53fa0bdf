import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BusinessError, classifyError, HandlerTimeoutError, TransientError } from '../../../src/handling/errors.ts'
import { HandlerExecutor } from '../../../src/handling/handler-executor.ts'
import { idempotentConsumer } from '../../../src/handling/middleware/idempotent-consumer.ts'
import { loggingMiddleware } from '../../../src/handling/middleware/logging.ts'
import { HandlerMetrics, metricsMiddleware } from '../../../src/handling/middleware/metrics.ts'
import { timeoutMiddleware } from '../../../src/handling/middleware/timeout.ts'
import { tracingMiddleware, type TraceContext, type TraceResult } from '../../../src/handling/middleware/tracing.ts'
import { InMemoryProcessedIdStore } from '../../../src/handling/processed-id-store.ts'
import { sleep } from '../../helpers/wait.ts'
import { captureLogger, consumed, context, resolved } from './fixtures.ts'

const ctx = (signal?: AbortSignal) => ({ ...context(signal), attempt: 1 })

test('logging: one line per attempt with position and standard headers, never the value or key by default', async () => {
  const logger = captureLogger()
  const secret = { card: '4111 1111 1111 1111' }
  const message = consumed({
    key: 'customer-secret-key',
    value: secret,
    headers: { 'event-id': 'e-1', 'event-type': 'pay', authorization: 'Bearer abc' }
  })
  const ok = loggingMiddleware({ logger })(async () => {})
  await ok(message, ctx())
  const failing = loggingMiddleware({ logger })(() => Promise.reject(new TransientError('db down')))
  await assert.rejects(failing(message, ctx()), TransientError)
  assert.deepEqual(
    logger.lines.map(l => `${l.level}:${l.message}`),
    ['debug:handled', 'warn:handler failed']
  )
  assert.equal(logger.lines[0]?.fields.eventId, 'e-1')
  assert.equal(logger.lines[1]?.fields.kind, 'transient')
  const everything = JSON.stringify(logger.lines)
  for (const hidden of ['4111', 'customer-secret-key', 'Bearer'])
    assert.equal(everything.includes(hidden), false, hidden)

  const verbose = captureLogger()
  await loggingMiddleware({ logger: verbose, includeKey: true, includeValue: 10, successLevel: 'info' })(
    async () => {}
  )(message, ctx())
  assert.equal(verbose.lines[0]?.level, 'info')
  assert.equal(verbose.lines[0]?.fields.key, 'customer-secret-key')
  assert.equal(verbose.lines[0]?.fields.value, '{"card":"4…', 'values are cut to the bound')
})

test('metrics: HandlerMetrics counts attempts, outcomes, retries and durations from the channel', async t => {
  const metrics = new HandlerMetrics({ groupId: 'group-1' })
  t.after(() => metrics.close())
  const other = new HandlerMetrics({ groupId: 'someone-else' })
  t.after(() => other.close())
  let calls = 0
  const executor = new HandlerExecutor({
    maxRetries: 1,
    retryBackoff: { baseMs: 1, maxMs: 1 },
    logger: captureLogger(),
    middleware: [metricsMiddleware()],
    handler: m => {
      calls++
      if (m.offset === 1n) return Promise.reject(new TransientError('down'))
      if (m.offset === 2n) return Promise.reject(new BusinessError('no'))
      return Promise.resolve()
    }
  })
  for (const offset of [0n, 1n, 2n, 3n]) {
    await executor.execute(consumed({ offset, headers: { 'event-type': offset === 3n ? 'b' : 'a' } }), context())
  }
  const snap = metrics.snapshot()
  assert.equal(calls, 5)
  assert.deepEqual(snap.attempts, {
    ok: 2,
    failed: 3,
    failedByKind: { transient: 2, permanent: 0, business: 1, unclassified: 0 }
  })
  assert.deepEqual(snap.messages, { done: 2, business: 1, 'dead-letter': 1, aborted: 0 })
  assert.equal(snap.retries, 1)
  assert.equal(snap.durationMs.count, 5)
  assert.equal(snap.durationMs.buckets.at(-1)?.count, 5, 'the +Inf bucket holds every attempt')
  assert.deepEqual(snap.byEventType, { a: { ok: 1, failed: 3 }, b: { ok: 1, failed: 0 } })
  assert.equal(other.snapshot().attempts.ok, 0, 'filtered by group')
  metrics.close()
  await executor.execute(consumed(), context())
  assert.equal(metrics.snapshot().attempts.ok, 2, 'closed metrics no longer count')
  metrics.reset()
  assert.equal(metrics.snapshot().attempts.ok, 0)
})

test('timeout: aborts the handler signal and fails as transient; the outer abort is not a timeout', async () => {
  let sawAbort = false
  const slow = timeoutMiddleware({ ms: 20, graceMs: 1000 })(
    (_m, c) =>
      new Promise((_resolve, reject) => {
        c.signal.addEventListener('abort', () => {
          sawAbort = true
          reject(c.signal.reason as Error)
        })
      })
  )
  await assert.rejects(slow(consumed(), ctx()), (error: unknown) => {
    assert.ok(error instanceof HandlerTimeoutError)
    assert.equal(classifyError(error), 'transient')
    return true
  })
  assert.equal(sawAbort, true)

  const outer = new AbortController()
  const stopped = timeoutMiddleware(10_000)(
    (_m, c) =>
      new Promise((_resolve, reject) => {
        c.signal.addEventListener('abort', () => reject(new Error('stopped by owner')))
      })
  )
  const pending = stopped(consumed(), ctx(outer.signal))
  outer.abort()
  await assert.rejects(pending, /stopped by owner/)

  const fast = timeoutMiddleware(1000)(async () => {})
  await fast(consumed(), ctx())
  assert.throws(() => timeoutMiddleware(-1), /`ms`: got -1/)
})

test('timeout: a handler that ignores its signal is given the grace period, then the attempt fails', async () => {
  let finished = false
  const stubborn = timeoutMiddleware({ ms: 5, graceMs: 30 })(async () => {
    await sleep(15) // outlives the 5 ms timeout, within the 30 ms grace
    finished = true
  })
  await assert.rejects(stubborn(consumed(), ctx()), HandlerTimeoutError)
  assert.equal(finished, true, 'the timed-out attempt ended before the failure was reported')
})

test('tracing: start and end around the handler with standard headers; hook errors never fail the message', async () => {
  const started: TraceContext[] = []
  const ended: TraceResult[] = []
  const inside: string[] = []
  const traced = tracingMiddleware<string>({
    start: trace => {
      started.push(trace)
      return `span-${trace.offset}`
    },
    end: (span, result) => {
      ended.push(result)
      inside.push(`end:${span}`)
    },
    around: async (span, run) => {
      inside.push(`enter:${span}`)
      await run()
    }
  })
  const message = consumed({
    offset: 7n,
    headers: { 'event-id': 'e', 'correlation-id': 'c', traceparent: '00-abc-def-01' }
  })
  await traced(() => resolved(inside.push('handler')))(message, ctx())
  await assert.rejects(traced(() => Promise.reject(new Error('x')))(message, ctx()), /x/)
  assert.equal(started[0]?.headers.correlationId, 'c')
  assert.equal(started[0]?.traceparent, '00-abc-def-01')
  assert.equal(started[0]?.offset, 7n)
  assert.deepEqual(inside.slice(0, 3), ['enter:span-7', 'handler', 'end:span-7'])
  assert.equal(ended[0]?.error, undefined)
  assert.match(String(ended[1]?.error), /x/)

  const hookErrors: unknown[] = []
  const broken = tracingMiddleware({
    start: () => {
      throw new Error('tracer down')
    },
    end: () => {},
    onHookError: error => hookErrors.push(error)
  })
  let ran = false
  await broken(() => resolved((ran = true)))(message, ctx())
  assert.equal(ran, true)
  assert.equal(hookErrors.length, 1)
})

test('idempotent consumer: an event runs once per group; duplicates are skipped', async () => {
  const store = new InMemoryProcessedIdStore()
  const runs: string[] = []
  const handler = idempotentConsumer({ store })((m, c) => resolved(runs.push(`${c.groupId}:${m.meta.eventId}`)))
  const message = consumed({ headers: { 'event-id': 'evt-1' } })
  await handler(message, ctx())
  await handler(message, ctx())
  await handler(message, { ...ctx(), groupId: 'other-service' })
  assert.deepEqual(runs, ['group-1:evt-1', 'other-service:evt-1'])
  assert.equal(await store.claim('group-1', 'evt-1', 1000), 'processed')
})

test('idempotent consumer: a failure releases the claim, a business refusal completes it, a live claim is transient', async () => {
  const store = new InMemoryProcessedIdStore()
  let calls = 0
  const flaky = idempotentConsumer({ store })(() =>
    ++calls === 1 ? Promise.reject(new TransientError('db down')) : Promise.resolve()
  )
  const message = consumed({ headers: { 'event-id': 'evt-2' } })
  await assert.rejects(flaky(message, ctx()), TransientError)
  await flaky(message, ctx())
  assert.equal(calls, 2, 'the retry could claim again')

  const refusing = idempotentConsumer({ store })(() => Promise.reject(new BusinessError('conflict')))
  const refused = consumed({ headers: { 'event-id': 'evt-3' } })
  await assert.rejects(refusing(refused, ctx()), BusinessError)
  assert.equal(await store.claim('group-1', 'evt-3', 1000), 'processed')

  assert.equal(await store.claim('group-1', 'evt-4', 60_000), 'claimed', 'another worker holds it')
  const blocked = idempotentConsumer({ store })(async () => {})
  await assert.rejects(
    blocked(consumed({ headers: { 'event-id': 'evt-4' } }), ctx()),
    (error: unknown) => error instanceof TransientError && error.code === 'KAFKIT_EVENT_IN_PROGRESS'
  )
})

test('idempotent consumer: custom key; a message without an id is processed or rejected as configured', async () => {
  const store = new InMemoryProcessedIdStore()
  let runs = 0
  const byOrder = idempotentConsumer<{ orderId: string }>({ store, key: m => m.value.orderId })(() => resolved(runs++))
  await byOrder(consumed({ value: { orderId: 'o-1' } }), ctx())
  await byOrder(consumed({ value: { orderId: 'o-1' } }), ctx())
  assert.equal(runs, 1)
  const lenient = idempotentConsumer({ store })(() => resolved(runs++))
  await lenient(consumed(), ctx())
  await lenient(consumed(), ctx())
  assert.equal(runs, 3)
  const strict = idempotentConsumer({ store, onMissingKey: 'permanent' })(() => resolved(runs++))
  await assert.rejects(strict(consumed(), ctx()), /invalid message: .* has no event id/)
  assert.equal(classifyError(await strict(consumed(), ctx()).catch((e: unknown) => e)), 'permanent')
})

test('in-memory store: leases expire, processed ids expire after the TTL, size stays bounded', async () => {
  let now = 0
  const store = new InMemoryProcessedIdStore({ maxEntries: 3, ttlMs: 1000, now: () => now })
  assert.equal(await store.claim('s', 'a', 100), 'claimed')
  assert.equal(await store.claim('s', 'a', 100), 'in-progress')
  now = 100
  assert.equal(await store.claim('s', 'a', 100), 'claimed', 'the lease of a crashed claimer expired')
  await store.complete('s', 'a')
  now = 1099
  assert.equal(await store.claim('s', 'a', 100), 'processed')
  now = 1100
  assert.equal(await store.claim('s', 'a', 100), 'claimed', 'forgotten after the TTL')
  await store.release('s', 'a')
  assert.equal(await store.claim('s', 'a', 100), 'claimed', 'released claims are claimable at once')
  for (const id of ['b', 'c', 'd', 'e']) {
    await store.claim('s', id, 10_000)
    await store.complete('s', id)
  }
  assert.equal(store.size, 3)
  assert.equal(await store.claim('s', 'e', 100), 'processed')
  assert.equal(await store.claim('s', 'b', 100), 'claimed', 'the oldest was evicted')
  await store.release('s', 'e')
  assert.equal(await store.claim('s', 'e', 100), 'processed', 'release never forgets a processed id')
  assert.throws(() => new InMemoryProcessedIdStore({ maxEntries: 0 }), /`maxEntries`: got 0/)
  await store[Symbol.asyncDispose]()
  assert.equal(store.size, 0)
})
