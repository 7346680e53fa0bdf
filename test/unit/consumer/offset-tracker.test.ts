import assert from 'node:assert/strict'
import { test } from 'node:test'
import { OffsetTracker } from '../../../src/consumer/offset-tracker.ts'

test('commits only past a contiguous settled prefix, whatever the completion order', () => {
  const tracker = new OffsetTracker()
  for (const offset of [10n, 11n, 12n, 13n]) tracker.track(offset, 3)
  assert.equal(tracker.pending(), undefined, 'nothing settled yet')
  tracker.settle(12n)
  tracker.settle(11n)
  assert.equal(tracker.pending(), undefined, '10 is still in flight')
  tracker.settle(10n)
  assert.deepEqual(tracker.pending(), { offset: 13n, leaderEpoch: 3 })
  tracker.committed(13n)
  assert.equal(tracker.pending(), undefined, 'nothing new since the commit')
  assert.equal(tracker.firstUnsettled, 13n)
  tracker.settle(13n)
  assert.deepEqual(tracker.pending(), { offset: 14n, leaderEpoch: 3 })
})

test('gaps in offsets (compaction, transaction markers) do not hold the position back', () => {
  const tracker = new OffsetTracker()
  tracker.track(5n)
  tracker.track(9n)
  tracker.settle(5n)
  assert.equal(tracker.pending()?.offset, 6n)
  tracker.settle(9n)
  assert.equal(tracker.pending()?.offset, 10n)
})

test('an unsettled record holds the position for ever (a crash redelivers from it), and memory is reclaimed behind it', () => {
  const tracker = new OffsetTracker()
  for (let offset = 0n; offset < 5000n; offset++) tracker.track(offset)
  for (let offset = 0n; offset < 5000n; offset++) if (offset !== 4000n) tracker.settle(offset)
  assert.equal(tracker.pending()?.offset, 4000n)
  assert.equal(tracker.unsettled, 1)
  tracker.settle(4000n)
  assert.equal(tracker.pending()?.offset, 5000n)
  assert.equal(tracker.unsettled, 0)
})

test('offsets must increase; settling an unknown offset is ignored', () => {
  const tracker = new OffsetTracker()
  tracker.track(3n)
  assert.throws(() => tracker.track(3n), /must increase/)
  tracker.settle(99n)
  assert.equal(tracker.pending(), undefined)
})
