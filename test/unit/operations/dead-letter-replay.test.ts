import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DeadLetterHeader, buildDeadLetterRecord, parseDeadLetterHeaders } from '../../../src/handling/dead-letter.ts'
import { PermanentError } from '../../../src/handling/errors.ts'
import { matchesFilter, snapshotScope, type DeadLetterEntry } from '../../../src/operations/dead-letter-inspector.ts'
import {
  ReplayHeader,
  replayLedgerTopic,
  replayMessage,
  replayOfValue,
  type ReplayItem
} from '../../../src/operations/dead-letter-replay.ts'
import { consumed } from '../handling/fixtures.ts'

function entryFrom(headerEntries: [string, Buffer][], init: Partial<DeadLetterEntry> = {}): DeadLetterEntry {
  const headers = new Map(headerEntries)
  let info: DeadLetterEntry['info']
  try {
    info = parseDeadLetterHeaders(headers)
  } catch {
    info = null
  }
  return {
    partition: 0,
    offset: 5n,
    key: Buffer.from('k'),
    value: Buffer.from('v'),
    headers,
    headerEntries,
    info,
    ...init
  }
}

function deadLetter(extraHeaders: [string, Buffer][] = [], group = 'billing'): [string, Buffer][] {
  const message = consumed({ topic: 'orders.order.placed', partition: 2, offset: 9n })
  const record = buildDeadLetterRecord(
    { ...message, headerEntries: extraHeaders },
    {
      reason: 'permanent',
      error: new PermanentError('bad'),
      attempts: 1,
      firstFailureAt: new Date(0),
      lastFailureAt: new Date(0)
    },
    { topic: 'orders.order.placed.dlq', groupId: group }
  )
  return record.headerEntries
}

const names = (headers: Map<Buffer, Buffer> | undefined) =>
  [...(headers ?? new Map<Buffer, Buffer>())].map(([n, v]) => [n.toString(), v.toString()])

test('a replayed record: original headers in order with repeats, DLQ headers gone, replay-of last', () => {
  const entry = entryFrom(
    deadLetter([
      ['trace', Buffer.from('a')],
      ['event-type', Buffer.from('orders.order.placed')],
      ['trace', Buffer.from('b')]
    ])
  )
  assert.ok(entry.headerEntries.some(([n]) => n === DeadLetterHeader.errorClass))
  const item: ReplayItem = { entry, status: 'replay', target: 'orders.order.placed', targetPartition: 2 }
  const message = replayMessage(item, 'orders.order.placed.dlq', undefined)
  assert.equal(message.topic, 'orders.order.placed')
  assert.equal(message.partition, 2)
  assert.deepEqual(message.key, Buffer.from('k'))
  assert.deepEqual(message.value, Buffer.from('v'))
  assert.deepEqual(names(message.headers as Map<Buffer, Buffer>), [
    ['trace', 'a'],
    ['event-type', 'orders.order.placed'],
    ['trace', 'b'],
    [ReplayHeader.replayOf, 'orders.order.placed.dlq/0@5']
  ])
})

test('a record replayed before and dead-lettered again carries only the new replay headers', () => {
  const entry = entryFrom(
    deadLetter([
      ['x', Buffer.from('1')],
      [ReplayHeader.replayOf, Buffer.from('orders.order.placed.dlq/0@1')],
      [ReplayHeader.group, Buffer.from('old-group')]
    ]),
    { partition: 3, offset: 77n }
  )
  const message = replayMessage(
    { entry, status: 'replay', target: 'orders.order.placed', targetPartition: 0 },
    'orders.order.placed.dlq',
    'billing'
  )
  assert.deepEqual(names(message.headers as Map<Buffer, Buffer>), [
    ['x', '1'],
    [ReplayHeader.replayOf, 'orders.order.placed.dlq/3@77'],
    [ReplayHeader.group, 'billing']
  ])
})

test('null key and null value stay null; names of the ledger and the replay-of value', () => {
  const entry = entryFrom(deadLetter(), { key: null, value: null })
  const message = replayMessage({ entry, status: 'replay', target: 't', targetPartition: 0 }, 'd', undefined)
  assert.equal('key' in message, false)
  assert.equal(message.value, null)
  assert.equal(replayLedgerTopic('orders.order.placed.dlq'), 'orders.order.placed.dlq.replayed')
  assert.equal(replayOfValue('a.b.c.dlq', 4, 1234567890123n), 'a.b.c.dlq/4@1234567890123')
})

test('filters by consumer group, partition and offset range; foreign records never match a group', () => {
  const billing = entryFrom(deadLetter([], 'billing'), { partition: 1, offset: 10n })
  const shipping = entryFrom(deadLetter([], 'shipping'), { partition: 0, offset: 3n })
  const foreign = entryFrom([['source', Buffer.from('legacy')]], { partition: 1, offset: 11n })
  assert.equal(foreign.info, null)
  const pick = (filter: Parameters<typeof matchesFilter>[1]) =>
    [billing, shipping, foreign].filter(e => matchesFilter(e, filter)).map(e => `${e.partition}@${e.offset}`)
  assert.deepEqual(pick({ groupId: 'billing' }), ['1@10'])
  assert.deepEqual(pick({ partitions: [1] }), ['1@10', '1@11'])
  assert.deepEqual(pick({ fromOffset: 10n }), ['1@10', '1@11'])
  assert.deepEqual(pick({ toOffset: 10n }), ['1@10', '0@3'])
  assert.deepEqual(pick({ fromOffset: 4n, toOffset: 10n }), ['1@10'])
  assert.deepEqual(pick({}), ['1@10', '0@3', '1@11'])
})

test('the read is narrowed to the filter: partitions and the offset range (to-offset inclusive)', () => {
  const base = { client: { bootstrapBrokers: ['127.0.0.1:9092'] }, topic: 'd' }
  assert.deepEqual(snapshotScope(base, {}), base)
  assert.deepEqual(snapshotScope(base, { partitions: [2], fromOffset: 5n, toOffset: 9n }), {
    ...base,
    partitions: [2],
    from: 5n,
    until: 10n
  })
})
