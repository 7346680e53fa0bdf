import assert from 'node:assert/strict'
import { test } from 'node:test'
import { laneOf, PartitionQueue } from '../../../src/consumer/partition-queue.ts'

const item = (offset: number, key: string | null) => ({
  offset: BigInt(offset),
  key: key === null ? null : Buffer.from(key)
})

test('partition mode: one at a time, in offset order; batches take consecutive records', () => {
  const queue = new PartitionQueue<ReturnType<typeof item>>('partition')
  for (let i = 0; i < 5; i++) queue.push(item(i, `k${i}`))
  const first = queue.next()
  assert.equal(first?.offset, 0n)
  assert.equal(queue.next(), undefined, 'busy until released')
  queue.release(first)
  const batch = queue.nextBatch(3)
  assert.deepEqual(
    batch.map(r => r.offset),
    [1n, 2n, 3n]
  )
  assert.equal(queue.eligible, false)
  queue.release(batch[0] as ReturnType<typeof item>)
  assert.equal(queue.next()?.offset, 4n)
})

test('key mode: different keys in parallel, the same key in order, no key is one lane', () => {
  const queue = new PartitionQueue<ReturnType<typeof item>>('key')
  const keys = ['a', 'b', 'a', null, 'c', null, 'b']
  keys.forEach((key, i) => queue.push(item(i, key)))
  const started = []
  for (let next = queue.next(); next; next = queue.next()) started.push(next)
  assert.deepEqual(
    started.map(r => r.offset),
    [0n, 1n, 3n, 4n],
    'the first record of each key (a, b, none, c)'
  )
  queue.release(started[0] as ReturnType<typeof item>)
  assert.equal(queue.next()?.offset, 2n, 'the next a after the first a')
  queue.release(started[2] as ReturnType<typeof item>)
  assert.equal(queue.next()?.offset, 5n, 'the next keyless one after the first')
  assert.equal(queue.next(), undefined, 'b is still busy')
  queue.release(started[1] as ReturnType<typeof item>)
  assert.equal(queue.next()?.offset, 6n)
  assert.equal(queue.size, 0)
})

test('unordered mode: anything at any time; clear drops what waits', () => {
  const queue = new PartitionQueue<ReturnType<typeof item>>('unordered')
  for (let i = 0; i < 4; i++) queue.push(item(i, 'same'))
  assert.equal(queue.next()?.offset, 0n)
  assert.equal(queue.next()?.offset, 1n)
  assert.equal(queue.inFlight, 2)
  assert.equal(queue.clear(), 2)
  assert.equal(queue.eligible, false)
})

test('key lanes: equal keys share a lane, keyless records have their own, distinct keys rarely collide', () => {
  assert.equal(laneOf(Buffer.from('order-42')), laneOf(Buffer.from('order-42')))
  assert.equal(laneOf(null), laneOf(undefined))
  assert.ok(laneOf(null) < 0 && laneOf(Buffer.alloc(0)) >= 0, 'an empty key is a key, not the keyless lane')
  const lanes = new Set<number>()
  for (let i = 0; i < 10_000; i++) lanes.add(laneOf(Buffer.from(`key-${i}`)))
  assert.ok(lanes.size >= 9_990, `${lanes.size} lanes for 10,000 keys`)
  // Long keys: the length and the first and last 32 bytes decide.
  const long = (middle: string) => Buffer.from(`${'a'.repeat(40)}${middle}${'z'.repeat(40)}`)
  assert.notEqual(laneOf(long('x')), laneOf(long('xy')))
})

test('key mode: two keys in one lane (a hash collision) still run each in order, one after the other', () => {
  // Keys long enough that only their middles differ, beyond what the lane hash reads: one lane.
  const a = `${'p'.repeat(40)}-a-${'q'.repeat(40)}`
  const b = `${'p'.repeat(40)}-b-${'q'.repeat(40)}`
  assert.equal(laneOf(Buffer.from(a)), laneOf(Buffer.from(b)))
  const queue = new PartitionQueue<ReturnType<typeof item>>('key')
  queue.push(item(0, a))
  queue.push(item(1, b))
  queue.push(item(2, a))
  const first = queue.next()
  assert.equal(first?.offset, 0n)
  assert.equal(queue.next(), undefined, 'the shared lane is busy')
  queue.release(first)
  const second = queue.next()
  assert.equal(second?.offset, 1n)
  queue.release(second)
  assert.equal(queue.next()?.offset, 2n)
})
