/**
 * The producer's DLQ on a fake clock: what is written (the record with the dead-letter headers, the
 * time from the clock), records resolving as `dead-lettered` with their DLQ offsets, memory freed,
 * and a failed DLQ write failing them with both errors.
 */
import assert from 'node:assert/strict'
import { mock, test, type TestContext } from 'node:test'
import type { ProduceResult } from '@platformatic/kafka'
import { DeadLetters } from '../../../src/producer/dead-letters.ts'
import { ProduceError } from '../../../src/producer/errors.ts'
import { ProducerCounters } from '../../../src/producer/metrics.ts'
import { SETTLED, type Bytes, type PendingRecord } from '../../../src/producer/record.ts'
import { FailLog, settle, watchedRecord } from './records.ts'

function setup(t: TestContext) {
  mock.timers.enable({ apis: ['Date'], now: Date.parse('2030-05-06T07:08:09.010Z') })
  t.after(() => mock.timers.reset())
  const sends: { messages: Bytes[]; acks: number; answer: PromiseWithResolvers<ProduceResult> }[] = []
  const client = {
    send: (options: { messages: Bytes[]; acks: number }) => {
      const answer = Promise.withResolvers<ProduceResult>()
      sends.push({ ...options, answer })
      return answer.promise
    }
  }
  const released: PendingRecord[] = []
  let afterReleases = 0
  const tracker = new FailLog()
  const counters = new ProducerCounters()
  const deadLetters = new DeadLetters(
    client,
    { acks: -1, clientId: 'orders-service' },
    {
      buffer: { release: record => released.push(record), afterRelease: () => afterReleases++ },
      tracker,
      counters,
      headerName: name => Buffer.from(name)
    }
  )
  return { deadLetters, sends, released, tracker, counters, afterReleases: () => afterReleases }
}

const exhausted = () =>
  new ProduceError('2 message(s) to orders/3 not acknowledged after 4 attempt(s): NOT_ENOUGH_REPLICAS', {
    retryable: true,
    details: { topic: 'orders', partition: 3, messages: 2, attempts: 4 }
  })

const headerText = (headers: Bytes['headers']) =>
  Object.fromEntries([...(headers as Map<Buffer, Buffer>)].map(([n, v]) => [n.toString(), v.toString()]))

test('the messages go to the DLQ topic with their key, value, headers and the dead-letter headers', async t => {
  const { deadLetters, sends, released, counters, afterReleases, tracker } = setup(t)
  const records = [
    watchedRecord({
      topic: 'orders',
      partition: 3,
      key: Buffer.from('k'),
      value: Buffer.from('v1'),
      headers: new Map([[Buffer.from('trace'), Buffer.from('abc')]])
    }),
    watchedRecord({ topic: 'orders', partition: 3, value: Buffer.from('v2') })
  ]
  const error = exhausted()
  deadLetters.write(
    records.map(r => r.record),
    error,
    'orders.dlq'
  )
  assert.equal(deadLetters.records.size, 2, 'being dead-lettered')
  assert.equal(sends.length, 1)
  const [first, second] = sends[0]?.messages ?? []
  assert.equal(sends[0]?.acks, -1)
  assert.equal(first?.topic, 'orders.dlq')
  assert.deepEqual(first?.key, Buffer.from('k'))
  assert.equal(second?.key, undefined)
  assert.deepEqual(first?.value, Buffer.from('v1'))
  assert.deepEqual(headerText(first?.headers), {
    trace: 'abc',
    'kafkit-dlq-version': '1',
    'kafkit-dlq-origin-topic': 'orders',
    'kafkit-dlq-origin-partition': '3',
    'kafkit-dlq-error-kind': 'transient',
    'kafkit-dlq-error-class': 'ProduceError',
    'kafkit-dlq-error-code': 'KAFKIT_PRODUCE_FAILED',
    'kafkit-dlq-error-message': error.message,
    'kafkit-dlq-attempts': '4',
    'kafkit-dlq-dead-lettered-at': '2030-05-06T07:08:09.010Z',
    'kafkit-dlq-producer': 'orders-service'
  })
  sends[0]?.answer.resolve({ offsets: [{ topic: 'orders.dlq', partition: 0, offset: 40n }] })
  await settle()
  assert.deepEqual(
    records.map(r => [r.outcome.result?.status, r.outcome.result?.offset, r.outcome.result?.deadLetter?.offset]),
    [
      ['dead-lettered', undefined, 40n],
      ['dead-lettered', undefined, 41n]
    ]
  )
  assert.equal(records[0]?.outcome.result?.deadLetter?.error, error)
  assert.equal(counters.messagesDeadLettered, 2)
  assert.equal(counters.lastError?.at.toISOString(), '2030-05-06T07:08:09.010Z')
  assert.equal(released.length, 2)
  assert.equal(afterReleases(), 1)
  assert.equal(tracker.settledWakeups, 1)
  assert.equal(deadLetters.records.size, 0)
})

test('when the DLQ write fails too, the records fail with both errors; settled ones are only released', async t => {
  const { deadLetters, sends, released, tracker } = setup(t)
  const done = watchedRecord({ topic: 'orders', partition: 3 })
  done.record.state = SETTLED
  const live = watchedRecord({ topic: 'orders', partition: 3 })
  deadLetters.write([done.record, live.record], exhausted(), 'orders.dlq')
  assert.deepEqual(released, [done.record])
  assert.equal(sends[0]?.messages.length, 1)
  sends[0]?.answer.reject(new Error('UNKNOWN_TOPIC_OR_PARTITION'))
  await settle()
  assert.deepEqual(tracker.codes(), ['KAFKIT_PRODUCE_FAILED'])
  const failure = tracker.failures[0]?.error as ProduceError
  assert.match(failure.message, /writing it to the DLQ topic orders\.dlq failed too: UNKNOWN_TOPIC_OR_PARTITION/)
  assert.equal(failure.retryable, true)
  assert.equal(failure.details.dlqTopic, 'orders.dlq')
  assert.deepEqual(released, [done.record, live.record])
  assert.equal(deadLetters.records.size, 0)

  deadLetters.write([done.record], exhausted(), 'orders.dlq')
  assert.equal(sends.length, 1, 'nothing left to write')
})
