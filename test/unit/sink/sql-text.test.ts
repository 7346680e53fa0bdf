/** The one value conversion both Postgres write paths use, and COPY's text-format escaping. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  copyChunks,
  copyField,
  copyLine,
  isoTimestamp,
  quoteIdent,
  quoteQualified,
  toSqlText
} from '../../../src/postgres/sql-text.ts'

test('values become PostgreSQL text input', () => {
  assert.equal(toSqlText(null), null)
  assert.equal(toSqlText(undefined), null)
  assert.equal(toSqlText(12.5), '12.5')
  assert.equal(toSqlText(Number.NaN), 'NaN')
  assert.equal(toSqlText(Number.NEGATIVE_INFINITY), '-Infinity')
  assert.equal(toSqlText(2n ** 70n), '1180591620717411303424')
  assert.equal(toSqlText(false), 'false')
  assert.equal(toSqlText(new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6))), '2024-01-02T03:04:05.006Z')
  assert.deepEqual(toSqlText(Buffer.from([1, 255])), Buffer.from([1, 255]))
  assert.equal(toSqlText({ a: 1, big: 5n }), '{"a":1,"big":"5"}')
  assert.equal(toSqlText(['a', null, 'q"uote', ['x']]), '{"a",NULL,"q\\"uote",{"x"}}')
})

test('COPY fields escape backslash, tab, newline and carriage return, and NULL is \\N', () => {
  assert.equal(copyField(null), '\\N')
  assert.equal(copyField('plain'), 'plain')
  assert.equal(copyField('a\tb\nc\rd\\e'), 'a\\tb\\nc\\rd\\\\e')
  assert.equal(copyField(Buffer.from([0xde, 0xad])), '\\\\xdead')
  assert.equal(copyLine({ a: 'x', b: null, c: 3 }, ['a', 'b', 'c']), 'x\t\\N\t3\n')
})

test('identifiers are quoted, also schema-qualified', () => {
  assert.equal(quoteIdent('log"id'), '"log""id"')
  assert.equal(quoteQualified('audit.logs'), '"audit"."logs"')
})

test('timestamps format like toISOString, also across seconds, out of order and outside years 1000-9999', () => {
  const dates = [
    ...Array.from({ length: 3000 }, (_, i) => new Date(1_700_000_000_000 + i * 7)),
    new Date(Date.UTC(2024, 1, 29, 23, 59, 59, 999)),
    new Date(Date.UTC(2024, 2, 1, 0, 0, 0, 0)),
    new Date(1_700_000_000_005),
    new Date(Date.UTC(1000, 0, 1)),
    new Date(Date.UTC(9999, 11, 31, 23, 59, 59, 999)),
    new Date(-62_198_755_200_000),
    new Date(8.64e15),
    new Date(-1),
    new Date(0)
  ]
  for (const date of dates) assert.equal(isoTimestamp(date), date.toISOString())
  assert.throws(() => isoTimestamp(new Date(Number.NaN)), RangeError)
})

test('COPY text comes in chunks of whole lines', () => {
  const rows = Array.from({ length: 100 }, (_, i) => ({ a: `row ${i}`, b: i }))
  const chunks = [...copyChunks(rows, ['a', 'b'], 100)]
  assert.ok(chunks.length > 1)
  assert.ok(chunks.every(chunk => chunk.endsWith('\n')))
  assert.equal(chunks.join(''), rows.map(row => copyLine(row, ['a', 'b'])).join(''))
})
