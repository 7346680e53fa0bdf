import assert from 'node:assert/strict'
import { test } from 'node:test'
import { internAscii, MAX_INTERNED } from '../../../src/util/ascii-intern.ts'

test('every run reads back as itself, though its slot is shared with others and rewritten', () => {
  // 20,000 distinct runs over a 4,096-slot table: most slots change hands, and each answer must be exact.
  const texts = Array.from({ length: 20_000 }, (_, i) => `name-${i}`)
  for (let round = 0; round < 3; round++) {
    for (const text of texts) assert.equal(internAscii(Buffer.from(text)), text)
  }
  assert.equal(internAscii(Buffer.alloc(0)), '')
})

test('not ASCII, or longer than MAX_INTERNED: undefined, for the caller to decode', () => {
  assert.equal(internAscii(Buffer.from('café')), undefined)
  assert.equal(internAscii(Buffer.from([0x61, 0xff])), undefined)
  assert.equal(internAscii(Buffer.alloc(MAX_INTERNED, 'a')), 'a'.repeat(MAX_INTERNED))
  assert.equal(internAscii(Buffer.alloc(MAX_INTERNED + 1, 'a')), undefined)
})
