/**
 * Preparing a record on a fake clock: bytes of key, value and headers, the stamped `event-id` and
 * `timestamp` headers (from the clock), the size held to maxMessageBytes, and the refusals.
 */
import assert from 'node:assert/strict'
import { mock, test, type TestContext } from 'node:test'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { message, MESSAGE_PARTS } from '../../../src/message/builder.ts'
import { jsonSerde, stringSerde } from '../../../src/message/serde.ts'
import { RecordPreparer } from '../../../src/producer/prepare.ts'

const WALL = Date.parse('2030-01-02T03:04:05.678Z')

function clock(t: TestContext): void {
  mock.timers.enable({ apis: ['Date'], now: WALL })
  t.after(() => mock.timers.reset())
}

const headerText = (headers: Map<Buffer, Buffer> | undefined) =>
  Object.fromEntries([...(headers ?? [])].map(([name, value]) => [name.toString(), value.toString()]))

test('key, value and headers become bytes; the size counts them with the framing', t => {
  clock(t)
  const preparer = new RecordPreparer<string>(
    { topic: 'default', stampHeaders: false, maxMessageBytes: 1000 },
    stringSerde
  )
  const record = preparer.prepare(
    {
      key: 'k1',
      value: 'hello',
      headers: { a: 'xy', skipped: undefined as unknown as string, b: Buffer.from('z') },
      timestamp: 1234.9
    },
    42
  )
  assert.equal(record.topic, 'default')
  assert.deepEqual(record.key, Buffer.from('k1'))
  assert.deepEqual(record.value, Buffer.from('hello'))
  assert.deepEqual(headerText(record.headers), { a: 'xy', b: 'z' })
  assert.equal(record.size, 16 + 2 + 5 + (1 + 2 + 2) + (1 + 1 + 2))
  assert.equal(record.timestamp, 1234n)
  assert.equal(record.enqueuedAt, 42)
  assert.equal(record.eventId, undefined)
  const tombstone = preparer.prepare({ topic: 'other', value: null as unknown as string }, 0)
  assert.equal(tombstone.value, null)
  assert.equal(tombstone.size, 16)
  assert.equal(tombstone.headers, undefined)
})

test('stamped headers: an event id and the timestamp of the clock, unless the message has them', t => {
  clock(t)
  const preparer = new RecordPreparer({ topic: 't', stampHeaders: true, maxMessageBytes: 1000 }, jsonSerde())
  const record = preparer.prepare({ value: 1 }, 0)
  const headers = headerText(record.headers)
  assert.equal(headers.timestamp, '2030-01-02T03:04:05.678Z')
  assert.match(headers['event-id'] ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  assert.equal(parseInt((headers['event-id'] ?? '').replace('-', '').slice(0, 12), 16), WALL, 'a UUIDv7 of now')
  assert.equal(record.eventId, headers['event-id'])
  assert.equal(record.size, 16 + 1 + (8 + 36 + 2) + (9 + 24 + 2))
  const own = preparer.prepare({ value: 1, headers: { 'event-id': 'mine', timestamp: 'then' } }, 0)
  assert.deepEqual(headerText(own.headers), { 'event-id': 'mine', timestamp: 'then' })
  assert.equal(own.eventId, 'mine')
  mock.timers.tick(1)
  assert.equal(headerText(preparer.prepare({ value: 1 }, 0).headers).timestamp, '2030-01-02T03:04:05.679Z')
})

test('what cannot be sent is refused with a coded error', () => {
  const preparer = new RecordPreparer({ topic: undefined, stampHeaders: false, maxMessageBytes: 64 }, jsonSerde())
  const refusal = (message: unknown) => {
    try {
      preparer.prepare(message as never, 0)
    } catch (error) {
      assert.ok(isKafkitError(error))
      return `${error.code}: ${error.message}`
    }
    assert.fail('expected a refusal')
  }
  assert.match(refusal(null), /SERIALIZATION_FAILED: a message must be an object with a value, got null/)
  assert.match(refusal({ value: 1 }), /PRODUCE_FAILED: the message names no topic/)
  assert.match(refusal({ topic: 't', value: 1, key: 5 }), /SERIALIZATION_FAILED: the key .* got number/)
  assert.match(refusal({ topic: 't' }), /SERIALIZATION_FAILED: .* has no value/)
  assert.match(refusal({ topic: 't', value: 1n }), /SERIALIZATION_FAILED: the value .* could not be serialized/)
  assert.match(refusal({ topic: 't', value: 1, headers: { h: 1 } }), /header "h" .* must be a string or a Buffer/)
  assert.match(refusal({ topic: 't', value: 1, timestamp: new Date(NaN) }), /invalid timestamp/)
  assert.match(
    refusal({ topic: 't', value: 'x'.repeat(60) }),
    /MESSAGE_TOO_LARGE: .* is 78 bytes .* maxMessageBytes \(64\)/
  )
  const noBuffer = new RecordPreparer(
    { topic: 't', stampHeaders: false, maxMessageBytes: 64 },
    { contentType: 'odd', serialize: () => 'text' as unknown as Buffer, deserialize: () => 0 }
  )
  assert.throws(() => noBuffer.prepare({ value: 1 }, 0), /the odd serde returned no Buffer/)
})

test('header names are encoded once and the cache stays bounded', () => {
  const preparer = new RecordPreparer({ topic: 't', stampHeaders: false, maxMessageBytes: 1000 }, jsonSerde())
  const first = preparer.headerName('trace')
  assert.equal(preparer.headerName('trace'), first, 'the same Buffer')
  for (let i = 0; i < 600; i++) preparer.headerName(`unique-${i}`)
  assert.notEqual(preparer.headerName('trace'), first, 'dropped when the cache was full')
  assert.deepEqual(preparer.headerName('trace'), first)
})

test("a builder's parts: event-id and timestamp always stamped (as build() would), its message made when asked", t => {
  clock(t)
  const preparer = new RecordPreparer<string>({ topic: 't', stampHeaders: false, maxMessageBytes: 1000 }, stringSerde)
  const builder = message('hello').eventType('made').source('here')
  const record = preparer.prepare(builder[MESSAGE_PARTS](), 0)
  const headers = headerText(record.headers)
  assert.deepEqual(Object.keys(headers), ['event-type', 'source', 'event-id', 'timestamp'])
  assert.equal(headers.timestamp, '2030-01-02T03:04:05.678Z')
  assert.equal(record.eventId, headers['event-id'])
  assert.equal(record.size, 16 + 5 + (10 + 4 + 2) + (6 + 4 + 2) + (8 + 36 + 2) + (9 + 24 + 2))
  assert.deepEqual(record.message, {
    value: 'hello',
    headers: { 'event-type': 'made', source: 'here', 'event-id': headers['event-id'], timestamp: headers.timestamp }
  })
  assert.equal(record.message, record.message, 'made once')
  const at = Date.parse('2020-05-06T07:08:09.010Z')
  const own = preparer.prepare(message('x').eventId('mine').timestamp(at)[MESSAGE_PARTS](), 0)
  assert.deepEqual(headerText(own.headers), { 'event-id': 'mine', timestamp: '2020-05-06T07:08:09.010Z' })
  assert.equal(own.eventId, 'mine')
  assert.equal(own.timestamp, BigInt(at))
  const kept = preparer.prepare(message('x').header('timestamp', 'then')[MESSAGE_PARTS](), 0)
  assert.equal(headerText(kept.headers).timestamp, 'then')
})

test('a header value that repeats is encoded once; a new value gets its own bytes', () => {
  const preparer = new RecordPreparer({ topic: 't', stampHeaders: false, maxMessageBytes: 1000 }, jsonSerde())
  const valueOf = (headers: Record<string, string>) => {
    const record = preparer.prepare({ value: 1, headers }, 0)
    return record.headers?.get(preparer.headerName('type'))
  }
  const first = valueOf({ type: 'a' })
  assert.equal(valueOf({ type: 'a' }), first, 'the same Buffer')
  const other = valueOf({ type: 'b' })
  assert.deepEqual(other, Buffer.from('b'))
  assert.deepEqual(first, Buffer.from('a'), 'bytes handed out before are not changed')
  assert.deepEqual(valueOf({ type: 'a' }), Buffer.from('a'))
})
