import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Fifo } from '../../../src/util/fifo.ts'

test('first in, first out across compactions; take returns the oldest in order', () => {
  const fifo = new Fifo<number>()
  for (let i = 0; i < 5000; i++) fifo.push(i)
  for (let i = 0; i < 3000; i++) assert.equal(fifo.shift(), i)
  assert.equal(fifo.size, 2000)
  assert.equal(fifo.peek(), 3000)
  assert.deepEqual(fifo.take(3), [3000, 3001, 3002])
  assert.deepEqual([...fifo].slice(0, 2), [3003, 3004])
  assert.equal(fifo.take(10_000).length, 1997)
  assert.equal(fifo.size, 0)
  assert.equal(fifo.shift(), undefined)
  assert.equal(fifo.peek(), undefined)
  fifo.push(7)
  assert.deepEqual([...fifo], [7])
})

test('iterating while the loop shifts, pushes and compacts skips what left and sees what came', () => {
  const fifo = new Fifo<number>()
  for (let i = 0; i < 3000; i++) fifo.push(i)
  const seen: number[] = []
  for (const item of fifo) {
    seen.push(item)
    // Item 10's callback admits 2,000 items ahead of the loop (a compaction), then one more arrives.
    if (item === 10) {
      for (let i = 0; i < 2000; i++) fifo.shift()
      fifo.push(3000)
    }
  }
  assert.deepEqual(
    seen.slice(0, 11),
    Array.from({ length: 11 }, (_, i) => i)
  )
  assert.equal(seen[11], 2000, 'resumes at the new head')
  assert.equal(seen.at(-1), 3000)
  assert.equal(seen.length, 11 + 1001)
  // Emptied by the loop's own callback: the iteration ends.
  const other = new Fifo<string>()
  other.push('a')
  other.push('b')
  const got: string[] = []
  for (const item of other) {
    got.push(item)
    other.clear()
  }
  assert.deepEqual(got, ['a'])
})
