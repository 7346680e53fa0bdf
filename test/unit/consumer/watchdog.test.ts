import assert from 'node:assert/strict'
import { mock, test } from 'node:test'
import { CallWatchdog, watchdogMiddleware, type HandlerCall } from '../../../src/consumer/watchdog.ts'
import type { ConsumedMessage, HandlerContext } from '../../../src/handling/types.ts'

const at = (offset: number) => ({ topic: 't', partition: 0, offset: BigInt(offset) })

function context(signal = new AbortController().signal) {
  return { signal, groupId: 'g', attempt: 1 }
}

/** Begins a call that records when and why it was rejected. */
function watched(watchdog: CallWatchdog, offset: number, signal?: AbortSignal) {
  const started = performance.now()
  const outcome: { error?: { code?: string }; afterMs?: number } = {}
  const call = watchdog.begin(at(offset), context(signal), true, error => {
    outcome.error = error as { code?: string }
    outcome.afterMs = performance.now() - started
  })
  return { call, outcome }
}

test('a call over the limit fails with KAFKIT_HANDLER_TIMEOUT and its signal aborts, never before the limit', async t => {
  const watchdog = new CallWatchdog(120)
  t.after(() => watchdog.stop())
  watchdog.start()
  const { call, outcome } = watched(watchdog, 1)
  const signal = call.signal
  await new Promise(resolve => setTimeout(resolve, 100))
  assert.equal(outcome.afterMs, undefined, 'not yet at the limit')
  // Due between the limit and the limit plus two ticks (tick 50 ms for 120 ms).
  await new Promise(resolve => setTimeout(resolve, 250))
  assert.equal(outcome.error?.code, 'KAFKIT_HANDLER_TIMEOUT')
  assert.ok((outcome.afterMs ?? 0) >= 120, `failed after ${outcome.afterMs} ms`)
  assert.equal(signal.aborted, true)
  assert.equal((signal.reason as { code?: string }).code, 'KAFKIT_HANDLER_TIMEOUT')
})

test('calls that ended are not failed; ending is idempotent and unlinks from anywhere in the list', async t => {
  const watchdog = new CallWatchdog(60)
  t.after(() => watchdog.stop())
  watchdog.start()
  const first = watched(watchdog, 1)
  const middle = watched(watchdog, 2)
  const last = watched(watchdog, 3)
  watchdog.end(middle.call)
  watchdog.end(middle.call)
  watchdog.end(first.call)
  await new Promise(resolve => setTimeout(resolve, 300))
  assert.equal(first.outcome.error, undefined)
  assert.equal(middle.outcome.error, undefined)
  assert.equal(last.outcome.error?.code, 'KAFKIT_HANDLER_TIMEOUT', 'the one still running fails')
  // A call begun after the list emptied is watched again.
  const again = watched(watchdog, 4)
  await new Promise(resolve => setTimeout(resolve, 300))
  assert.equal(again.outcome.error?.code, 'KAFKIT_HANDLER_TIMEOUT')
})

test("abortCalls aborts only the signals of calls made with that partition's signal", () => {
  const watchdog = new CallWatchdog(60_000)
  const partitionA = new AbortController()
  const partitionB = new AbortController()
  const a = watchdog.begin(at(1), context(partitionA.signal), false, () => undefined)
  const b = watchdog.begin(at(2), context(partitionB.signal), false, () => undefined)
  const aSignal = a.signal
  const bSignal = b.signal
  watchdog.abortCalls(partitionA.signal, 'revoked')
  assert.equal(aSignal.aborted, true)
  assert.equal(aSignal.reason, 'revoked')
  assert.equal(bSignal.aborted, false)
  // A signal asked for after the parent aborted starts aborted.
  partitionB.abort('stopping')
  const late = watchdog.begin(at(3), context(partitionB.signal), false, () => undefined)
  assert.equal(late.signal.aborted, true)
})

test('a call made with a signal of its own (not a partition) follows it by listening', () => {
  const watchdog = new CallWatchdog(60_000)
  const parent = new AbortController()
  const call = watchdog.begin(at(1), context(parent.signal), true, () => undefined)
  const signal = call.signal
  parent.abort('gone')
  assert.equal(signal.aborted, true)
  assert.equal(signal.reason, 'gone')
})

test("a partition's signal: its abort reaches the running calls made with it, which need no listener of their own", () => {
  const watchdog = new CallWatchdog(60_000)
  const partition = new AbortController()
  watchdog.watchPartition(partition.signal)
  assert.equal(watchdog.isPartitionSignal(partition.signal), true)
  assert.equal(watchdog.isPartitionSignal(new AbortController().signal), false)
  const call = watchdog.begin(at(1), context(partition.signal), false, () => undefined)
  const signal = call.signal
  partition.abort('revoked')
  assert.equal(signal.aborted, true)
  assert.equal(signal.reason, 'revoked')
})

test('the middleware: the call the runtime began is handed on as is; any other call is watched on its own and ends with the handler', async t => {
  const watchdog = new CallWatchdog(60_000)
  t.after(() => watchdog.stop())
  const partition = new AbortController()
  watchdog.watchPartition(partition.signal)
  const message = { ...at(1) } as unknown as ConsumedMessage<unknown>
  const seen: HandlerContext[] = []
  let finish: () => void = () => undefined
  const handler = watchdogMiddleware<unknown>(watchdog)((_message, ctx) => {
    seen.push(ctx)
    return new Promise<void>(resolve => (finish = resolve))
  })
  const direct = watchdog.begin(message, context(partition.signal), false, () => undefined)
  watchdog.direct = direct
  void handler(message, context(partition.signal))
  assert.equal(seen[0], direct, 'the direct call itself')
  assert.equal(watchdog.direct, undefined, 'used once')
  finish()

  // A retry (or any call the runtime did not begin): a call of its own, linked until the handler ends.
  const retry = handler(message, { signal: partition.signal, groupId: 'g', attempt: 2 })
  const own = seen[1] as HandlerCall
  assert.notEqual(own, direct)
  assert.equal(own.attempt, 2)
  assert.equal(own.linked, true)
  assert.equal(own.listen, false, "a partition's signal needs no listener")
  finish()
  await retry
  assert.equal(own.linked, false)

  const other = new AbortController()
  const failing = watchdogMiddleware<unknown>(watchdog)(() => Promise.reject(new Error('boom')))
  await assert.rejects(failing(message, context(other.signal)), /boom/)
  const throwing = watchdogMiddleware<unknown>(watchdog)(() => {
    throw new Error('sync boom')
  })
  await assert.rejects(throwing(message, context(other.signal)), /sync boom/)
})

test('the middleware fails a call over the limit with KAFKIT_HANDLER_TIMEOUT (fake clock)', async t => {
  mock.timers.enable({ apis: ['setInterval'] })
  t.after(() => mock.timers.reset())
  const watchdog = new CallWatchdog(1000)
  t.after(() => watchdog.stop())
  watchdog.start()
  const hung = watchdogMiddleware<unknown>(watchdog)(() => new Promise<void>(() => undefined))
  let failed: { code?: string } | undefined
  const code = () => failed?.code
  void hung({ ...at(1) } as unknown as ConsumedMessage<unknown>, context()).catch(
    (error: unknown) => (failed = error as { code?: string })
  )
  mock.timers.tick(1000)
  await new Promise(resolve => setImmediate(resolve))
  assert.equal(code(), undefined, 'not before the limit')
  mock.timers.tick(200)
  await new Promise(resolve => setImmediate(resolve))
  assert.equal(code(), 'KAFKIT_HANDLER_TIMEOUT')
})
