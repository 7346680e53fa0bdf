import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  ParkedKeys,
  PARKED_TIMESTAMP_HEADER,
  decodeParkedValue,
  encodeParkedValue,
  encodeResolution,
  encodeTrain,
  entryKeys,
  keyIdOf
} from '../../../src/retry/parked-keys.ts'

const keys = entryKeys('orders-workers')
const trainEntryKey = keys.train
const parkedEntryKey = keys.parked
const resolutionEntryKey = keys.resolution
const parseEntryKey = keys.parse

const k = keyIdOf(Buffer.from('customer-7'))

function withTrain(head: bigint, parked: bigint[] = []): ParkedKeys {
  const state = new ParkedKeys('orders-workers')
  state.apply(0, trainEntryKey(k), encodeTrain(head))
  for (const offset of parked) {
    state.apply(0, parkedEntryKey(k, offset), encodeParkedValue(Buffer.from(`v${offset}`)), [
      ['trace', Buffer.from('t')],
      [PARKED_TIMESTAMP_HEADER, Buffer.from('2026-11-22T10:00:00.000Z')]
    ])
  }
  return state
}

test('entry keys and values round-trip; a null value is not a tombstone', () => {
  assert.deepEqual(parseEntryKey(trainEntryKey(k)), { kind: 't', keyId: k })
  assert.deepEqual(parseEntryKey(parkedEntryKey(k, 12n)), { kind: 'p', keyId: k, offset: 12n })
  assert.deepEqual(parseEntryKey(resolutionEntryKey(k, 3n)), { kind: 'r', keyId: k, offset: 3n })
  assert.equal(parseEntryKey('x|y'), undefined)
  assert.equal(parseEntryKey(parkedEntryKey(k, 12n).replace(/\|12$/, '|abc')), undefined)
  assert.equal(entryKeys('analytics').parse(trainEntryKey(k)), undefined, "another group's entry is not ours")
  assert.equal(decodeParkedValue(encodeParkedValue(null)), null)
  assert.deepEqual(decodeParkedValue(encodeParkedValue(Buffer.from('abc'))), Buffer.from('abc'))
  assert.deepEqual(decodeParkedValue(encodeParkedValue(Buffer.alloc(0))), Buffer.alloc(0))
  assert.equal(Buffer.from(keyIdOf(Buffer.from([0xff, 0x00, 0x7c])), 'base64url').toString('hex'), 'ff007c')
  assert.ok(!keyIdOf(Buffer.from('a|b')).includes('|'), 'a key id never contains the separator')
})

test('decide: a free key is handled; behind a head, later records park, earlier and held ones are left alone', () => {
  const free = new ParkedKeys('orders-workers')
  assert.equal(free.decide(0, k, 5n), 'handle')
  const state = withTrain(10n, [12n])
  assert.equal(state.decide(0, k, 8n), 'held', 'settled before the head failed (a redelivery)')
  assert.equal(state.decide(0, k, 10n), 'held', 'the head itself, redelivered')
  assert.equal(state.decide(0, k, 12n), 'held', 'parked already')
  assert.equal(state.decide(0, k, 14n), 'park')
  assert.equal(state.decide(1, k, 14n), 'handle', 'partitions are separate')
  assert.equal(state.decide(0, keyIdOf(Buffer.from('other')), 14n), 'handle', 'other keys are free')
})

test('step: nothing to do until the head resolves; then the first parked record is released, and the train ends', () => {
  const state = withTrain(10n, [14n, 12n])
  assert.deepEqual(state.step(0, k), { kind: 'idle' })
  state.apply(0, resolutionEntryKey(k, 10n), encodeResolution('done', new Date()))
  const release = state.step(0, k)
  assert.equal(release.kind, 'release')
  assert.ok(release.kind === 'release')
  assert.equal(release.next.offset, 12n, 'the earliest parked record first')
  assert.deepEqual(release.next.value, Buffer.from('v12'))
  assert.deepEqual(release.next.headers, [['trace', Buffer.from('t')]], 'kafkit-park headers are not original')
  assert.equal(release.next.timestamp?.toISOString(), '2026-11-22T10:00:00.000Z')
  assert.deepEqual(release.drop, [10n])
  // The owner writes: train → 12, parked 12 gone, resolution 10 gone.
  state.apply(0, trainEntryKey(k), encodeTrain(12n))
  state.apply(0, parkedEntryKey(k, 12n), null)
  state.apply(0, resolutionEntryKey(k, 10n), undefined)
  assert.deepEqual(state.step(0, k), { kind: 'idle' })
  assert.equal(state.decide(0, k, 16n), 'park', 'still held back behind the new head')
  state.apply(0, resolutionEntryKey(k, 12n), encodeResolution('dead-letter', new Date()))
  const next = state.step(0, k)
  assert.ok(next.kind === 'release' && next.next.offset === 14n)
  state.apply(0, trainEntryKey(k), encodeTrain(14n))
  state.apply(0, parkedEntryKey(k, 14n), null)
  state.apply(0, resolutionEntryKey(k, 12n), null)
  state.apply(0, resolutionEntryKey(k, 14n), encodeResolution('done', new Date()))
  assert.deepEqual(state.step(0, k), { kind: 'end', drop: [14n] })
  state.apply(0, trainEntryKey(k), null)
  state.apply(0, resolutionEntryKey(k, 14n), null)
  assert.equal(state.blocked(0, k), false)
  assert.deepEqual(state.keys(0), [], 'nothing left of the key')
  assert.deepEqual(state.counts(), { blockedKeys: 0, parkedRecords: 0 })
})

test("another group's entries on the same parked-keys topic are ignored", () => {
  const state = new ParkedKeys('orders-workers')
  assert.equal(state.apply(0, entryKeys('analytics').train(k), encodeTrain(10n)), undefined)
  assert.equal(state.decide(0, k, 12n), 'handle')
})

test('step: resolutions of earlier heads (duplicates after a crash) are dropped; parked records without a train are released', () => {
  const state = withTrain(20n)
  state.apply(0, resolutionEntryKey(k, 10n), encodeResolution('done', new Date()))
  assert.deepEqual(state.step(0, k), { kind: 'gc', drop: [10n] })
  const orphan = new ParkedKeys('orders-workers')
  orphan.apply(0, parkedEntryKey(k, 5n), encodeParkedValue(null))
  const step = orphan.step(0, k)
  assert.ok(step.kind === 'release' && step.next.offset === 5n && step.next.value === null)
  assert.equal(orphan.blocked(0, k), true)
})
