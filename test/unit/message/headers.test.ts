import assert from 'node:assert/strict'
import { test } from 'node:test'
import { readStandardHeaders } from '../../../src/message/headers.ts'

test('the timestamp header reads as Date would read it, by the fast path or the parser', () => {
  const texts = [
    '2026-12-07T00:22:45.123Z',
    '2024-02-29T23:59:59.999Z',
    '2026-02-30T00:00:00.000Z', // rolled over to March 2nd by Date's parser; the same here
    '0050-01-01T00:00:00.000Z', // a two-digit year: not Date.UTC's 1950
    '2026-12-07T24:00:00.000Z',
    '2026-00-07T00:22:45.123Z',
    '2026-13-07T00:22:45.123Z',
    '2026-12-07T00:60:45.123Z',
    '2026-12-07T00:22:45+01:00',
    '2026-12-07T00:22:45.1234Z',
    '2026-12-07 00:22:45.123Z',
    'garbage-garbage-garbage!',
    ''
  ]
  for (const text of texts) {
    const expected = new Date(text)
    for (const value of [Buffer.from(text), text]) {
      const { timestamp } = readStandardHeaders(new Map([['timestamp', value]]))
      if (Number.isNaN(expected.getTime())) assert.equal(timestamp, undefined, text)
      else assert.equal(timestamp?.getTime(), expected.getTime(), text)
    }
  }
})

test('every standard header from a Map, a plain object or wire-order entries; the last of a repeated name wins', () => {
  const wire: [string, Buffer][] = [
    ['event-id', Buffer.from('e-1')],
    ['event-type', Buffer.from('order.created')],
    ['correlation-id', Buffer.from('c-1')],
    ['conversation-id', Buffer.from('v-1')],
    ['schema-version', Buffer.from('2')],
    ['source', Buffer.from('orders')],
    ['timestamp', Buffer.from('2026-12-07T00:22:45.123Z')],
    ['retry-count', Buffer.from('3')],
    ['x-other', Buffer.from('ignored')],
    ['event-type', Buffer.from('order.updated')]
  ]
  const expected = {
    eventId: 'e-1',
    eventType: 'order.updated',
    correlationId: 'c-1',
    conversationId: 'v-1',
    schemaVersion: '2',
    source: 'orders',
    timestamp: new Date('2026-12-07T00:22:45.123Z'),
    retryCount: 3
  }
  assert.deepEqual(readStandardHeaders(wire), expected)
  assert.deepEqual(readStandardHeaders(new Map(wire)), expected)
  assert.deepEqual(
    readStandardHeaders(Object.fromEntries(wire.map(([name, value]) => [name, value.toString()]))),
    expected
  )
  // Repeated values (event type, source) come from the intern table: still equal, whatever came before.
  for (let i = 0; i < 5000; i++) {
    const type = `type-${i}`
    assert.equal(readStandardHeaders([['event-type', Buffer.from(type)]]).eventType, type)
  }
  assert.equal(readStandardHeaders([['source', Buffer.from('café')]]).source, 'café', 'UTF-8 beyond ASCII')
  assert.deepEqual(readStandardHeaders(new Map()), {
    eventId: undefined,
    eventType: undefined,
    correlationId: undefined,
    conversationId: undefined,
    schemaVersion: undefined,
    source: undefined,
    timestamp: undefined,
    retryCount: 0
  })
  for (const bad of ['-1', '1.5', 'x', '']) {
    assert.equal(readStandardHeaders([['retry-count', bad]]).retryCount, 0, `retry-count ${JSON.stringify(bad)}`)
  }
})
