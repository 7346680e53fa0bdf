import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CallWatchdog } from '../../../src/consumer/watchdog.ts'

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
