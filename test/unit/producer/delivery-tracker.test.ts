/**
 * The delivery tracker on a fake clock: records time out after deliveryTimeoutMs (batched or in
 * flight) or maxBlockMs (waiting for room); a failure is settled once, counted and reported; waiting
 * for records to settle; what is pending where.
 */
import assert from 'node:assert/strict'
import { mock, test, type TestContext } from 'node:test'
import { Fifo } from '../../../src/util/fifo.ts'
import { DeliveryTracker, type RecordPlaces } from '../../../src/producer/delivery-tracker.ts'
import { ProducerCounters } from '../../../src/producer/metrics.ts'
import { IN_FLIGHT, SendGroup, SETTLED, type Batch, type PendingRecord } from '../../../src/producer/record.ts'
import type { FailedMessage } from '../../../src/producer/types.ts'
import { batchOf, pendingRecord, settle, watchedRecord } from './records.ts'

function setup(t: TestContext, config = { deliveryTimeoutMs: 1000, maxBlockMs: 500 }) {
  mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 })
  t.after(() => mock.timers.reset())
  const counters = new ProducerCounters()
  const events: FailedMessage[] = []
  let breakerReleases = 0
  const tracker = new DeliveryTracker(
    config,
    counters,
    { release: () => breakerReleases++ },
    { listening: () => true, failed: failure => events.push(failure) },
    () => Date.now()
  )
  const released: PendingRecord[] = []
  let afterReleases = 0
  const buffer = {
    admission: new Fifo<PendingRecord>(),
    ready: [] as Batch[],
    open: undefined as Batch | undefined,
    release: (record: PendingRecord) => released.push(record),
    afterRelease: () => afterReleases++
  }
  const inFlight = new Set<Batch>()
  const deadLettering = new Set<PendingRecord>()
  const places: RecordPlaces = { buffer, inFlight, deadLettering }
  tracker.start(places)
  t.after(() => tracker.stop())
  return {
    tracker,
    counters,
    events,
    buffer,
    inFlight,
    deadLettering,
    released,
    breakerReleases: () => breakerReleases,
    afterReleases: () => afterReleases
  }
}

/** Read afresh each time (no narrowing across awaits). */
const errorOf = (watched: { outcome: { error?: Error } }): Error | undefined => watched.outcome.error

const code = (error: Error | undefined) => (error as { code?: string } | undefined)?.code

test('a batched record times out after deliveryTimeoutMs on the fake clock; one in flight may still be written', async t => {
  const { buffer, inFlight, released, afterReleases, counters } = setup(t)
  const batched = watchedRecord({ partition: 1, at: 0 })
  const late = watchedRecord({ partition: 1, at: 400 })
  const sent = watchedRecord({ partition: 2, at: 0 })
  sent.record.state = IN_FLIGHT
  buffer.ready.push(batchOf([batched.record, late.record]))
  inFlight.add(batchOf([sent.record]))
  mock.timers.tick(1000)
  await settle()
  assert.equal(errorOf(batched), undefined, 'not after exactly deliveryTimeoutMs')
  mock.timers.tick(50)
  await settle()
  assert.equal(code(errorOf(batched)), 'KAFKIT_SEND_TIMEOUT')
  assert.match(errorOf(batched)?.message ?? '', /t\/1 was not sent within deliveryTimeoutMs \(1000 ms\)/)
  assert.equal(code(errorOf(sent)), 'KAFKIT_SEND_TIMEOUT')
  assert.match(errorOf(sent)?.message ?? '', /may still be written/)
  assert.equal((errorOf(sent) as { details?: { inFlight?: boolean } }).details?.inFlight, true)
  assert.equal(errorOf(late), undefined, 'sent later: not yet')
  assert.deepEqual(released, [batched.record], 'memory of what is in flight is freed when its request ends')
  assert.equal(afterReleases(), 1)
  assert.equal(counters.messagesFailed, 2)
  mock.timers.tick(400)
  await settle()
  assert.equal(code(errorOf(late)), 'KAFKIT_SEND_TIMEOUT')
})

test('a record waiting for room fails after maxBlockMs; one waiting for its topic after deliveryTimeoutMs', async t => {
  const { buffer } = setup(t)
  const waiting = watchedRecord({ at: 0 })
  buffer.admission.push(waiting.record)
  mock.timers.tick(500)
  await settle()
  assert.equal(errorOf(waiting), undefined)
  mock.timers.tick(50)
  await settle()
  assert.equal(code(errorOf(waiting)), 'KAFKIT_PRODUCER_BUFFER_FULL')
  assert.match(errorOf(waiting)?.message ?? '', /within maxBlockMs \(500 ms\)/)

  const long = setupLongBlock(t)
  const other = watchedRecord({ at: Date.now() })
  long.buffer.admission.push(other.record)
  mock.timers.tick(1100)
  await settle()
  assert.equal(code(errorOf(other)), 'KAFKIT_SEND_TIMEOUT', 'maxBlockMs beyond deliveryTimeoutMs')
  assert.match(errorOf(other)?.message ?? '', /waited 11\d\d ms without being sent/)
  const older = watchedRecord({ at: Date.now() - 6000 })
  long.buffer.admission.push(older.record)
  mock.timers.tick(100)
  await settle()
  assert.equal(code(errorOf(older)), 'KAFKIT_SEND_TIMEOUT', 'also past maxBlockMs: the delivery timeout came first')
})

/** A second tracker on the same fake clock, with maxBlockMs over deliveryTimeoutMs. */
function setupLongBlock(t: TestContext) {
  const buffer = {
    admission: new Fifo<PendingRecord>(),
    ready: [] as Batch[],
    open: undefined,
    release: () => undefined,
    afterRelease: () => undefined
  }
  const tracker = new DeliveryTracker(
    { deliveryTimeoutMs: 1000, maxBlockMs: 5000 },
    new ProducerCounters(),
    undefined,
    { listening: () => false, failed: () => undefined },
    () => Date.now()
  )
  tracker.start({ buffer, inFlight: [], deadLettering: [] })
  t.after(() => tracker.stop())
  return { buffer }
}

test('stop() ends the sweeps', async t => {
  const { tracker, buffer } = setup(t)
  const batched = watchedRecord({ at: 0 })
  buffer.open = batchOf([batched.record])
  tracker.stop()
  mock.timers.tick(5000)
  await settle()
  assert.equal(errorOf(batched), undefined)
})

test('a failure is settled once: counted, reported, told to its transaction, its group and a probe', async t => {
  const { tracker, events, counters, breakerReleases } = setup(t)
  const { record, outcome } = watchedRecord({ partition: 4, eventId: 'e-1' })
  const failures: { message: unknown; error: Error }[] = []
  record.tx = { client: undefined, handle: undefined, failures, sent: false }
  record.probe = true
  const error = Object.assign(new Error('rejected'), { code: 'KAFKIT_PRODUCE_FAILED' })
  tracker.fail(record, error)
  tracker.fail(record, new Error('again'))
  await settle()
  assert.equal(outcome.error, error)
  assert.equal(record.state, SETTLED)
  assert.equal(record.error, error)
  assert.equal(counters.messagesFailed, 1)
  assert.deepEqual(
    events.map(e => [e.topic, e.partition, e.eventId, e.error.message]),
    [['t', 4, 'e-1', 'rejected']]
  )
  assert.deepEqual(failures, [{ message: record.message, error }])
  assert.equal(breakerReleases(), 1, 'a probe that failed for a non-retriable reason frees the breaker')

  const group = new SendGroup(2)
  const [a, b] = [pendingRecord(), pendingRecord()]
  a.group = group
  b.group = group
  b.index = 1
  tracker.fail(b, new Error('b failed'))
  tracker.fail(a, new Error('a failed'))
  const outcomes = await group.promise
  assert.deepEqual(
    outcomes.map(o => (o.ok ? 'ok' : o.error.message)),
    ['a failed', 'b failed']
  )

  const queued = pendingRecord()
  queued.queued = Promise.withResolvers()
  tracker.fail(queued, new Error('async mode'))
  await assert.rejects(queued.queued.promise, /async mode/)
})

test('waitSettled resolves once every record given is settled, and rejects when its signal aborts', async t => {
  const { tracker } = setup(t)
  const [a, b] = [pendingRecord(), pendingRecord()]
  let done = false
  const waiting = tracker.waitSettled([a, b]).then(() => (done = true))
  tracker.fail(a, new Error('a'))
  await settle()
  assert.equal(done, false)
  b.state = SETTLED
  tracker.notifySettled()
  await waiting
  assert.equal(done, true)

  const controller = new AbortController()
  const aborted = tracker.waitSettled([pendingRecord()], controller.signal)
  controller.abort(new Error('gave up'))
  await assert.rejects(aborted, /gave up/)
})

test('pending() lists what is not settled: waiting, in flight, batched, open, being dead-lettered', t => {
  const { tracker, buffer, inFlight, deadLettering } = setup(t)
  const [waiting, sent, ready, open, dlq, done] = Array.from({ length: 6 }, (_, i) => pendingRecord({ size: i }))
  done!.state = SETTLED
  buffer.admission.push(waiting!)
  inFlight.add(batchOf([sent!, done!]))
  buffer.ready.push(batchOf([ready!]))
  buffer.open = batchOf([open!])
  deadLettering.add(dlq!)
  assert.deepEqual(
    tracker.pending().map(r => r.size),
    [0, 1, 2, 3, 4]
  )
})

test('an aborted record fails; its memory is freed unless it is in flight', async t => {
  const { tracker, released, afterReleases } = setup(t)
  const batched = watchedRecord()
  batched.record.state = 1
  const sent = watchedRecord()
  sent.record.state = IN_FLIGHT
  tracker.abort(batched.record, new Error('stop'))
  tracker.abort(sent.record, new Error('stop'))
  await settle()
  assert.equal(errorOf(batched)?.message, 'stop')
  assert.equal(errorOf(sent)?.message, 'stop')
  assert.deepEqual(released, [batched.record])
  assert.equal(afterReleases(), 2)
})
