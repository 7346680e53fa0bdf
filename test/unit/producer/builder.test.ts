/** The message builder: standard headers (seed 004), generated UUIDv7 event ids, RFC 3339 timestamps. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parse, stringify, validate, version } from 'uuid'
import { InvalidMessageError, message, MESSAGE_PARTS, MessageBuilder } from '../../../src/message/builder.ts'
import { readStandardHeaders } from '../../../src/message/headers.ts'
import { newEventId, newEventIdBytes } from '../../../src/message/uuid.ts'

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/

test('build() sets every standard header given and reads back typed', () => {
  const built = message({ action: 'create_booking' })
    .key('booking-12345')
    .eventType('booking.create.requested')
    .correlationId('corr-abc-123')
    .conversationId('conv-1')
    .source('pipeline-executor')
    .schemaVersion('v1')
    .retryCount(2)
    .header('region', 'us-east-1')
    .build()
  assert.deepEqual(built.value, { action: 'create_booking' })
  assert.equal(built.key, 'booking-12345')
  const headers = built.headers as Record<string, string>
  assert.equal(headers.region, 'us-east-1')
  const meta = readStandardHeaders(headers)
  assert.equal(meta.eventType, 'booking.create.requested')
  assert.equal(meta.correlationId, 'corr-abc-123')
  assert.equal(meta.conversationId, 'conv-1')
  assert.equal(meta.source, 'pipeline-executor')
  assert.equal(meta.schemaVersion, 'v1')
  assert.equal(meta.retryCount, 2)
  assert.ok(meta.eventId && validate(meta.eventId) && version(meta.eventId) === 7, 'event-id is a UUIDv7')
  assert.match(headers.timestamp ?? '', RFC3339)
  assert.ok(meta.timestamp && Math.abs(meta.timestamp.getTime() - Date.now()) < 5000)
  assert.ok(Object.isFrozen(built) && Object.isFrozen(built.headers))
})

test('an explicit event id and timestamp are kept; each build() of a plain builder gets a new id', () => {
  const at = new Date('2025-11-18T15:00:00.000Z')
  const built = message('x').eventId('my-id').timestamp(at).topic('t').partition(3).build()
  assert.equal((built.headers as Record<string, string>)['event-id'], 'my-id')
  assert.equal((built.headers as Record<string, string>).timestamp, '2025-11-18T15:00:00.000Z')
  assert.equal(built.timestamp, at)
  assert.equal(built.topic, 't')
  assert.equal(built.partition, 3)
  const builder = message('y')
  const a = builder.build().headers as Record<string, string>
  const b = builder.build().headers as Record<string, string>
  assert.notEqual(a['event-id'], b['event-id'])
})

test('headers() merges, value() retypes, and invalid input is refused', () => {
  const built = message()
    .value(42)
    .headers({ a: '1' })
    .headers(new Map([['b', Buffer.from('2')]]))
    .build()
  assert.equal(built.value, 42)
  const headers = built.headers as Record<string, string | Buffer>
  assert.equal(headers.a, '1')
  assert.deepEqual(headers.b, Buffer.from('2'))
  assert.throws(() => new MessageBuilder().build(), /no value/)
  assert.throws(() => message(1).partition(-1), InvalidMessageError)
  assert.throws(() => message(1).retryCount(1.5), InvalidMessageError)
})

test('UUIDv7 ids are valid, unique and sort in creation order', () => {
  const ids = Array.from({ length: 20_000 }, newEventId)
  assert.equal(new Set(ids).size, ids.length)
  for (let i = 1; i < ids.length; i++)
    assert.ok((ids[i - 1] as string) < (ids[i] as string), `id ${i} sorts after ${i - 1}`)
  assert.ok(ids.every(id => validate(id) && version(id) === 7))
  // The text is written byte by byte here: it must be the package's own canonical (lower-case) form.
  assert.ok(ids.every(id => stringify(parse(id)) === id))
  const bytes = newEventIdBytes()
  assert.equal(bytes.length, 36)
  assert.ok(validate(bytes.toString('latin1')) && bytes.toString('latin1') > (ids.at(-1) as string))
})

test('a sent builder (its parts) is unaffected by later changes; its message is what build() gives', () => {
  const at = new Date('2025-11-18T15:00:00.000Z')
  const builder = message('v').key('k').topic('t').partition(1).eventType('made').header('h', Buffer.from('b'))
  const parts = builder[MESSAGE_PARTS]()
  builder.eventType('changed').header('later', 'x').timestamp(at).value('w')
  assert.deepEqual([...parts.headers.keys()], ['event-type', 'h'])
  assert.equal(parts.value, 'v')
  assert.equal(parts.stamp, undefined, 'no explicit timestamp when it was sent')
  const built = parts.message('id-1', '2030-01-01T00:00:00.000Z')
  assert.deepEqual(built, {
    value: 'v',
    topic: 't',
    key: 'k',
    partition: 1,
    headers: { 'event-type': 'made', h: Buffer.from('b'), 'event-id': 'id-1', timestamp: '2030-01-01T00:00:00.000Z' }
  })
  assert.ok(Object.isFrozen(built) && Object.isFrozen(built.headers))
  // The builder itself carries on with its own copy of the headers.
  const later = builder[MESSAGE_PARTS]()
  assert.deepEqual([...later.headers.keys()], ['event-type', 'h', 'later'])
  assert.equal(later.headers.get('event-type'), 'changed')
  assert.equal(later.stamp, '2025-11-18T15:00:00.000Z', 'the timestamp header of an explicit timestamp')
  assert.deepEqual(Object.keys(builder.build().headers ?? {}), ['event-type', 'h', 'later', 'event-id', 'timestamp'])
  assert.throws(() => new MessageBuilder()[MESSAGE_PARTS](), /no value/)
  assert.throws(() => message(1).timestamp(NaN)[MESSAGE_PARTS](), RangeError, 'as build() throws')
})
