import assert from 'node:assert/strict'
import { test } from 'node:test'
import { REPLAY_GROUP_HEADER } from '../../../src/consumer/consumer.ts'
import { TransientError } from '../../../src/handling/errors.ts'
import {
  readRetryHeaders,
  retryHeaderEntries,
  RetryHeader,
  withoutRetryHeaders,
  type RetryHop
} from '../../../src/retry/retry-headers.ts'

const b = (text: string) => Buffer.from(text)

const hop: RetryHop = {
  attempt: 2,
  tier: 2,
  delayMs: 600_000,
  dueAt: new Date('2026-11-22T10:10:00.000Z'),
  consumerGroup: 'orders-workers',
  origin: { topic: 'shop.order.created', partition: 3, offset: 42n, timestamp: new Date('2026-11-22T09:59:00.000Z') },
  handlerAttempts: 5,
  firstFailureAt: new Date('2026-11-22T10:00:00.000Z'),
  lastFailureAt: new Date('2026-11-22T10:00:00.000Z'),
  error: new TransientError('payment service down', { cause: new Error('connect ECONNREFUSED') }),
  keyOrder: true
}

test('retry headers: the original headers first, in order with repeats, then the retry headers; read back as written', () => {
  const entries: [string, Buffer][] = [
    ['trace', b('a')],
    ['x', b('1')],
    ['x', b('2')],
    [RetryHeader.attempt, b('1')],
    [REPLAY_GROUP_HEADER, b('orders-workers')]
  ]
  const out = retryHeaderEntries({ headers: new Map(entries), headerEntries: entries }, hop)
  assert.deepEqual(
    out.slice(0, 3).map(([n, v]) => `${n}=${v.toString()}`),
    ['trace=a', 'x=1', 'x=2'],
    'original headers kept in order, repeats included'
  )
  assert.equal(out.filter(([n]) => n === RetryHeader.attempt).length, 1, 'an earlier retry header is replaced')
  assert.ok(!out.some(([n]) => n === REPLAY_GROUP_HEADER), 'a replay-group mark does not follow the record to a tier')
  const info = readRetryHeaders(out)
  assert.ok(info)
  assert.equal(info.attempt, 2)
  assert.equal(info.tier, 2)
  assert.equal(info.delayMs, 600_000)
  assert.equal(info.dueAt.toISOString(), '2026-11-22T10:10:00.000Z')
  assert.equal(info.originTopic, 'shop.order.created')
  assert.equal(info.originPartition, 3)
  assert.equal(info.originOffset, 42n)
  assert.equal(info.originTimestamp?.toISOString(), '2026-11-22T09:59:00.000Z')
  assert.equal(info.consumerGroup, 'orders-workers')
  assert.equal(info.handlerAttempts, 5)
  assert.equal(info.firstFailureAt?.toISOString(), '2026-11-22T10:00:00.000Z')
  assert.equal(info.errorClass, 'TransientError')
  assert.equal(info.errorCode, 'KAFKIT_HANDLER_TRANSIENT')
  assert.equal(info.errorMessage, 'payment service down; caused by Error: connect ECONNREFUSED')
  assert.equal(info.keyOrder, true)
})

test('retry headers: a long error message is cut; a non-Error is printed; no key order flag unless asked', () => {
  const out = retryHeaderEntries(
    { headers: new Map() },
    { ...hop, error: { reason: 'x'.repeat(5000) }, keyOrder: false, firstFailureAt: undefined }
  )
  const info = readRetryHeaders(out)
  assert.ok(info)
  assert.ok((info.errorMessage ?? '').length <= 1024)
  assert.ok(info.errorMessage?.startsWith('{"reason":"xxx'))
  assert.equal(info.errorClass, 'object')
  assert.equal(info.keyOrder, false)
  assert.equal(info.firstFailureAt, undefined)
})

test('retry headers: a record without a readable origin is not a retry record', () => {
  assert.equal(readRetryHeaders(new Map([['trace', b('a')]])), undefined)
  assert.equal(
    readRetryHeaders(
      new Map([
        [RetryHeader.originTopic, b('t')],
        [RetryHeader.originPartition, b('0')],
        [RetryHeader.originOffset, b('not-a-number')]
      ])
    ),
    undefined
  )
})

test('withoutRetryHeaders keeps everything else in order', () => {
  const out = withoutRetryHeaders([
    ['a', b('1')],
    [RetryHeader.tier, b('1')],
    ['a', b('2')]
  ])
  assert.deepEqual(
    out.map(([n, v]) => `${n}=${v.toString()}`),
    ['a=1', 'a=2']
  )
})
