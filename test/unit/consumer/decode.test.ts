import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DecodeFailure, decodeRecord, type RawRecord } from '../../../src/consumer/decode.ts'
import { jsonSerde, stringSerde } from '../../../src/message/serde.ts'

function record(fields: Record<string, unknown>): RawRecord {
  return {
    topic: 't',
    partition: 0,
    offset: 0n,
    leaderEpoch: 0,
    timestamp: 1_764_000_000_000n,
    key: Buffer.from('k'),
    value: Buffer.from('v'),
    headers: new Map(),
    headerEntries: [],
    metadata: {},
    ...fields
  } as unknown as RawRecord
}

function keyOf(bytes: Buffer | undefined): string | null {
  const decoded = decodeRecord(record({ key: bytes }), stringSerde)
  assert.ok(!(decoded instanceof DecodeFailure), `key ${String(bytes)} decodes`)
  return decoded.key
}

test('keys: strict UTF-8, ASCII or not, any length; null stays null', () => {
  for (let i = 0; i < 2000; i++) assert.equal(keyOf(Buffer.from(`key-${i}`)), `key-${i}`)
  assert.equal(keyOf(Buffer.alloc(0)), '')
  assert.equal(keyOf(undefined), null)
  assert.equal(keyOf(Buffer.from('clé-ü-日本')), 'clé-ü-日本')
  const long = 'x'.repeat(65) + 'é'
  assert.equal(keyOf(Buffer.from(long)), long)
})

test('a key or value that does not decode is a DecodeFailure carrying the raw bytes', () => {
  const badKey = decodeRecord(record({ key: Buffer.from([0x6b, 0xff]) }), stringSerde)
  assert.ok(badKey instanceof DecodeFailure)
  assert.match(badKey.error.message, /key is not valid UTF-8/)
  assert.deepEqual(badKey.message.raw.key, Buffer.from([0x6b, 0xff]))

  const badValue = decodeRecord(record({ value: Buffer.from('{nope') }), jsonSerde())
  assert.ok(badValue instanceof DecodeFailure)
  assert.match(badValue.error.message, /value could not be deserialized/)
  assert.equal(badValue.message.value, undefined)
  assert.deepEqual(badValue.message.raw.value, Buffer.from('{nope'))
})

test('timestamps: each record gets its own Date, right when consecutive records share or change it', () => {
  const stamps = [1_000n, 1_000n, 2_000n, 1_000n, 1_000n]
  const dates = stamps.map(timestamp => {
    const decoded = decodeRecord(record({ timestamp }), stringSerde)
    assert.ok(!(decoded instanceof DecodeFailure))
    return decoded.timestamp
  })
  assert.deepEqual(
    dates.map(date => date.getTime()),
    [1000, 1000, 2000, 1000, 1000]
  )
  assert.notEqual(dates[0], dates[1], 'never one Date object shared by two messages')
})

test('headers: the map, wire order with repeats, and the standard headers typed', () => {
  const decoded = decodeRecord(
    record({
      headerEntries: [
        [Buffer.from('event-type'), Buffer.from('order.created')],
        [Buffer.from('x'), Buffer.from('1')],
        [Buffer.from('x'), Buffer.from('2')]
      ]
    }),
    stringSerde
  )
  assert.ok(!(decoded instanceof DecodeFailure))
  assert.equal(decoded.meta.eventType, 'order.created')
  assert.equal(decoded.headers.get('x')?.toString(), '2')
  assert.deepEqual(
    decoded.headerEntries?.map(([name, value]) => `${name}=${value.toString()}`),
    ['event-type=order.created', 'x=1', 'x=2']
  )
})
