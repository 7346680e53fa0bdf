import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  buildDeadLetterRecord,
  DeadLetterHeader,
  DeadLetterRecordError,
  isDeadLetterRecord,
  originalHeaderEntries,
  originalHeaders,
  parseDeadLetterHeaders
} from '../../../src/handling/dead-letter.ts'
import { truncate } from '../../../src/handling/error-text.ts'
import { PermanentError, TransientError } from '../../../src/handling/errors.ts'
import type { FailureRecord } from '../../../src/handling/handler-executor.ts'
import { consumed } from './fixtures.ts'

const failure = (error: unknown, reason: 'transient' | 'permanent' = 'transient'): FailureRecord => ({
  reason,
  error,
  attempts: 4,
  firstFailureAt: new Date('2025-03-01T10:00:00.000Z'),
  lastFailureAt: new Date('2025-03-01T10:00:07.500Z')
})

const build = (message = consumed(), f = failure(new TransientError('db down')), extra = {}) =>
  buildDeadLetterRecord(message, f, {
    topic: 'orders.dlq',
    groupId: 'billing',
    now: Date.parse('2025-03-01T10:00:08Z'),
    ...extra
  })

test('the record keeps the original key, value and headers, byte for byte', () => {
  const raw = Buffer.from([0x00, 0xff, 0x10, 0x80])
  const message = consumed({
    key: 'order-7',
    rawValue: raw,
    headers: { 'event-id': 'e-7', 'event-type': 'orders.order.placed', bin: Buffer.from([1, 2, 3]) }
  })
  const record = build(message)
  assert.equal(record.topic, 'orders.dlq')
  assert.deepEqual(record.key, Buffer.from('order-7'))
  assert.deepEqual(record.value, raw)
  assert.deepEqual(record.headers.get('bin'), Buffer.from([1, 2, 3]))
  assert.equal(record.headers.get('event-id')?.toString(), 'e-7')
  const nullish = build(consumed({ key: null, value: null }))
  assert.equal(nullish.key, null)
  assert.equal(nullish.value, null)
})

test('repeated original headers are kept in order when the runtime gives headerEntries', () => {
  const message = {
    ...consumed({ headers: { hop: 'b' } }),
    headerEntries: [
      ['hop', Buffer.from('a')],
      ['x', Buffer.from('1')],
      ['hop', Buffer.from('b')]
    ] as [string, Buffer][]
  }
  const record = build(message)
  assert.deepEqual(
    originalHeaderEntries(record.headerEntries).map(([name, value]) => `${name}=${value.toString()}`),
    ['hop=a', 'x=1', 'hop=b']
  )
  assert.equal(record.headers.get('hop')?.toString(), 'b')
  assert.equal(record.headerEntries.filter(([name]) => name === DeadLetterHeader.originTopic).length, 1)
})

test('the headers say where the message came from and how it failed, and parse back to the same facts', () => {
  const message = consumed({ topic: 'orders', partition: 3, offset: 9_007_199_254_740_993n })
  const error = new TransientError('save failed', {
    cause: Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' })
  })
  const record = build(message, failure(error))
  const text = (name: string) => record.headers.get(name)?.toString()
  assert.equal(text(DeadLetterHeader.originTopic), 'orders')
  assert.equal(text(DeadLetterHeader.originOffset), '9007199254740993')
  assert.equal(text(DeadLetterHeader.errorClass), 'TransientError')
  assert.equal(text(DeadLetterHeader.errorCode), 'KAFKIT_HANDLER_TRANSIENT')
  assert.equal(
    text(DeadLetterHeader.errorMessage),
    'save failed; caused by Error: connect ECONNREFUSED 10.0.0.5:5432',
    'the cause chain is part of the message'
  )
  assert.match(text(DeadLetterHeader.errorStack) ?? '', /^TransientError: save failed\n\s+at /)

  const info = parseDeadLetterHeaders(record.headers)
  assert.deepEqual(
    { ...info, errorStack: info.errorStack?.split('\n')[0] },
    {
      version: 1,
      originTopic: 'orders',
      originPartition: 3,
      originOffset: 9_007_199_254_740_993n,
      originTimestamp: new Date('2025-01-02T03:04:05.678Z'),
      consumerGroup: 'billing',
      errorKind: 'transient',
      errorClass: 'TransientError',
      errorCode: 'KAFKIT_HANDLER_TRANSIENT',
      errorMessage: 'save failed; caused by Error: connect ECONNREFUSED 10.0.0.5:5432',
      errorStack: 'TransientError: save failed',
      attempts: 4,
      firstFailureAt: new Date('2025-03-01T10:00:00.000Z'),
      lastFailureAt: new Date('2025-03-01T10:00:07.500Z'),
      deadLetteredAt: new Date('2025-03-01T10:00:08.000Z')
    }
  )
})

test('headers as the client delivers them (Buffer names and values) parse too', () => {
  const record = build()
  const asClient = new Map([...record.headers].map(([name, value]) => [Buffer.from(name), value] as const))
  assert.equal(isDeadLetterRecord(asClient), true)
  assert.equal(parseDeadLetterHeaders(asClient).consumerGroup, 'billing')
  const asObject = Object.fromEntries([...record.headers].map(([name, value]) => [name, value.toString()]))
  assert.equal(parseDeadLetterHeaders(asObject).attempts, 4)
})

test('message and stack are cut to their bounds; the stack can be left out', () => {
  const error = new PermanentError('x'.repeat(5000))
  const record = build(consumed(), failure(error, 'permanent'), { maxErrorMessageLength: 100, maxStackLength: 300 })
  const message = record.headers.get(DeadLetterHeader.errorMessage)?.toString() ?? ''
  assert.equal(message.length, 100)
  assert.ok(message.endsWith('[truncated]'))
  assert.ok((record.headers.get(DeadLetterHeader.errorStack)?.toString().length ?? 0) <= 300)
  const noStack = build(consumed(), failure(error, 'permanent'), { maxStackLength: 0 })
  assert.equal(noStack.headers.has(DeadLetterHeader.errorStack), false)
  assert.equal(parseDeadLetterHeaders(noStack.headers).errorStack, undefined)
  assert.equal(truncate('a😀b', 15), 'a😀b')
  assert.equal(truncate(`a😀${'x'.repeat(20)}`, 15), 'a… [truncated]', 'never half a surrogate pair')
  assert.equal(truncate(`ab${'x'.repeat(20)}`, 15), 'ab… [truncated]')
})

test('thrown non-errors are recorded readably', () => {
  const record = build(consumed(), failure({ status: 503, big: 10n }))
  assert.equal(record.headers.get(DeadLetterHeader.errorClass)?.toString(), 'object')
  assert.equal(record.headers.get(DeadLetterHeader.errorMessage)?.toString(), '{"status":503,"big":"10"}')
  const plain = build(consumed(), failure('boom'))
  assert.equal(plain.headers.get(DeadLetterHeader.errorClass)?.toString(), 'string')
  assert.equal(plain.headers.get(DeadLetterHeader.errorMessage)?.toString(), 'boom')
  class QuotaError extends Error {}
  const custom = build(consumed(), failure(new QuotaError('quota')))
  assert.equal(custom.headers.get(DeadLetterHeader.errorClass)?.toString(), 'QuotaError')
})

test('a dead-lettered record that fails again gets fresh DLQ headers; originalHeaders strips them for replay', () => {
  const first = build(consumed({ headers: { 'event-id': 'e-1' } }))
  const replayed = consumed({ headers: Object.fromEntries(first.headers) })
  const second = build(
    replayed,
    { ...failure(new PermanentError('still bad'), 'permanent'), attempts: 1 },
    { groupId: 'audit' }
  )
  const info = parseDeadLetterHeaders(second.headers)
  assert.equal(info.consumerGroup, 'audit')
  assert.equal(info.errorKind, 'permanent')
  assert.equal(info.attempts, 1)
  const original = originalHeaders(second.headers)
  assert.deepEqual([...original.keys()], ['event-id'])
})

test('records without or with broken DLQ headers are rejected with the header named', () => {
  assert.equal(isDeadLetterRecord(new Map()), false)
  assert.throws(
    () => parseDeadLetterHeaders(new Map([['event-id', Buffer.from('x')]])),
    (error: unknown) =>
      error instanceof DeadLetterRecordError &&
      error.code === 'KAFKIT_DLQ_RECORD_INVALID' &&
      /kafkit-dlq-origin-offset is missing/.test(error.message)
  )
  const record = build()
  record.headers.set(DeadLetterHeader.attempts, Buffer.from('many'))
  assert.throws(() => parseDeadLetterHeaders(record.headers), /kafkit-dlq-attempts is "many", expected a whole number/)
  const badTime = build()
  badTime.headers.set(DeadLetterHeader.lastFailureAt, Buffer.from('yesterday'))
  assert.throws(() => parseDeadLetterHeaders(badTime.headers), /expected an ISO 8601 time/)
  const badKind = build()
  badKind.headers.set(DeadLetterHeader.errorKind, Buffer.from('business'))
  assert.throws(() => parseDeadLetterHeaders(badKind.headers), /expected transient or permanent/)
})
