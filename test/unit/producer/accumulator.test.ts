/**
 * The accumulator on a fake clock: batches sealed at batchSize / batchBytes, after lingerMs or on
 * the next turn, per transaction; admission in order within bufferMemory, `ready`, fail-fast when
 * full; records waiting for their topic's partitions; partitions checked.
 */
import assert from 'node:assert/strict'
import { mock, test, type TestContext } from 'node:test'
import { RecordAccumulator } from '../../../src/producer/accumulator.ts'
import { PartitionChooser } from '../../../src/producer/partitioners.ts'
import { BUFFERED, type PendingRecord } from '../../../src/producer/record.ts'
import type { TopicInfo } from '../../../src/producer/topic-metadata.ts'
import type { TxState } from '../../../src/producer/transactions.ts'
import { FailLog, pendingRecord, settle } from './records.ts'

const defaults: ConstructorParameters<typeof RecordAccumulator>[0] = {
  bufferMemory: 10_000,
  bufferFullBehavior: 'wait',
  batchSize: 3,
  batchBytes: 1000,
  lingerMs: 50
}

function setup(t: TestContext, config: Partial<typeof defaults> = {}) {
  mock.timers.enable({ apis: ['setTimeout', 'setImmediate'] })
  t.after(() => mock.timers.reset())
  const topics = new Map<string, TopicInfo>([['t', { partitions: 3, refreshAt: Infinity, refreshing: false }]])
  const loads: string[] = []
  const refreshes: string[] = []
  const log = new FailLog()
  let pumps = 0
  const accumulator = new RecordAccumulator(
    { ...defaults, ...config },
    new PartitionChooser('round-robin'),
    {
      get: topic => topics.get(topic),
      load: topic => loads.push(topic),
      refresh: topic => refreshes.push(topic)
    },
    { fail: (record, error) => log.fail(record, error), pump: () => pumps++ }
  )
  return { accumulator, topics, loads, refreshes, log, pumps: () => pumps }
}

const sizes = (records: PendingRecord[]) => records.map(r => r.size)

test('a batch is sealed once it holds batchSize records, and the sender is woken at once', t => {
  const { accumulator, pumps } = setup(t)
  for (let i = 0; i < 3; i++) accumulator.admit(pendingRecord({ partition: 0, size: 10 + i }))
  assert.equal(accumulator.open, undefined)
  assert.deepEqual(
    accumulator.ready.map(b => sizes(b.records)),
    [[10, 11, 12]]
  )
  assert.equal(accumulator.ready[0]?.single, true)
  assert.equal(pumps(), 1)
  assert.equal(accumulator.bufferedBytes, 33)
  assert.equal(accumulator.bufferedMessages, 3)
})

test('a batch is sealed at batchBytes: a record that would go over starts the next one', t => {
  const { accumulator } = setup(t)
  accumulator.admit(pendingRecord({ partition: 0, size: 600 }))
  accumulator.admit(pendingRecord({ partition: 1, size: 500 }))
  assert.deepEqual(
    accumulator.ready.map(b => sizes(b.records)),
    [[600]]
  )
  assert.deepEqual(sizes(accumulator.open?.records ?? []), [500])
  accumulator.admit(pendingRecord({ partition: 1, size: 500 }))
  assert.deepEqual(
    accumulator.ready.map(b => sizes(b.records)),
    [[600], [500, 500]],
    'exactly batchBytes seals it'
  )
})

test('an open batch becomes due after lingerMs on the fake clock', t => {
  const { accumulator, pumps } = setup(t)
  accumulator.admit(pendingRecord({ partition: 0 }))
  accumulator.admit(pendingRecord({ partition: 2 }))
  assert.equal(accumulator.next(), undefined, 'lingering')
  mock.timers.tick(49)
  assert.equal(pumps(), 0)
  assert.equal(accumulator.next(), undefined)
  mock.timers.tick(1)
  assert.equal(pumps(), 1)
  const batch = accumulator.next()
  assert.equal(batch?.records.length, 2)
  assert.equal(batch.single, false, 'two partitions')
  assert.equal(accumulator.open, undefined, 'sealed for the sender')
  assert.equal(accumulator.ready.length, 1, 'next() leaves it in place')
})

test('without linger a batch is due on the next turn', t => {
  const { accumulator, pumps } = setup(t, { lingerMs: 0 })
  accumulator.admit(pendingRecord({ partition: 0 }))
  accumulator.admit(pendingRecord({ partition: 0 }))
  assert.equal(pumps(), 0)
  mock.timers.tick(0)
  assert.equal(pumps(), 1, 'one wake-up for both')
  assert.equal(accumulator.next()?.records.length, 2)
})

test('while flushing or closing a batch does not linger', t => {
  const { accumulator, pumps } = setup(t)
  accumulator.flushing++
  accumulator.admit(pendingRecord({ partition: 0 }))
  mock.timers.tick(0)
  assert.equal(pumps(), 1)
  assert.equal(accumulator.next()?.records.length, 1)
  accumulator.ready.shift()
  accumulator.flushing--
  accumulator.admit(pendingRecord({ partition: 0 }))
  assert.equal(accumulator.next(), undefined, 'lingers again')
  accumulator.closing = true
  assert.equal(accumulator.next()?.records.length, 1)
})

test("another transaction's record seals the open batch", t => {
  const { accumulator } = setup(t)
  const tx = { client: undefined, handle: undefined, failures: [], sent: false } satisfies TxState
  accumulator.admit(pendingRecord({ partition: 0 }))
  const joined = pendingRecord({ partition: 0 })
  joined.tx = tx
  accumulator.admit(joined)
  assert.equal(accumulator.ready.length, 1)
  assert.equal(accumulator.ready[0]?.tx, undefined)
  assert.equal(accumulator.open?.tx, tx)
})

test('a record waits for room, in order; released memory admits it and resolves `ready`', async t => {
  const { accumulator } = setup(t, { bufferMemory: 250 })
  const first = pendingRecord({ partition: 0, size: 200 })
  const second = pendingRecord({ partition: 0, size: 100 })
  const third = pendingRecord({ partition: 0, size: 10 })
  accumulator.admit(first)
  accumulator.admit(second)
  accumulator.admit(third)
  assert.equal(accumulator.admission.size, 2, 'the small one waits behind the big one')
  assert.equal(third.state, 0)
  assert.equal(accumulator.hasRoom(), false)
  let ready = false
  void accumulator.whenReady().then(() => (ready = true))
  await settle()
  assert.equal(ready, false)
  accumulator.release(first)
  accumulator.release(first)
  assert.equal(accumulator.bufferedBytes, 0, 'released once')
  accumulator.afterRelease()
  assert.equal(accumulator.admission.size, 0)
  assert.equal(second.state, BUFFERED)
  assert.equal(third.state, BUFFERED)
  await settle()
  assert.equal(ready, true)
  assert.equal(accumulator.bufferedBytes, 110)
})

test('a record larger than bufferMemory is admitted once the buffer is empty, even with bufferFullBehavior fail', t => {
  const { accumulator, log } = setup(t, { bufferMemory: 100, bufferFullBehavior: 'fail' })
  const big = pendingRecord({ partition: 0, size: 300 })
  accumulator.admit(big)
  assert.equal(big.state, BUFFERED)
  accumulator.admit(pendingRecord({ partition: 0, size: 300 }))
  assert.deepEqual(log.codes(), ['KAFKIT_PRODUCER_BUFFER_FULL'], 'not while another is buffered')
  accumulator.release(big)
  const next = pendingRecord({ partition: 0, size: 300 })
  accumulator.admit(next)
  assert.equal(next.state, BUFFERED)
})

test('with bufferFullBehavior fail a record that finds no room fails at once', t => {
  const { accumulator, log } = setup(t, { bufferMemory: 250, bufferFullBehavior: 'fail' })
  accumulator.admit(pendingRecord({ partition: 0, size: 200 }))
  accumulator.admit(pendingRecord({ partition: 0, size: 100 }))
  assert.deepEqual(log.codes(), ['KAFKIT_PRODUCER_BUFFER_FULL'])
  assert.equal(accumulator.admission.size, 0)
  assert.equal(accumulator.bufferedMessages, 1)
})

test("a record waits until its topic's partitions are loaded, and fails when they cannot be", t => {
  const { accumulator, topics, loads, log } = setup(t)
  const waiting = pendingRecord({ topic: 'new' })
  const other = pendingRecord({ topic: 'other' })
  accumulator.admit(waiting)
  accumulator.admit(other)
  assert.deepEqual([...new Set(loads)], ['new'], 'the first in line is loaded; the rest wait behind it')
  topics.set('new', { partitions: 2, refreshAt: Infinity, refreshing: false })
  accumulator.drain()
  assert.equal(waiting.state, BUFFERED)
  assert.ok(waiting.partition >= 0 && waiting.partition < 2)
  assert.deepEqual([...new Set(loads)], ['new', 'other'])
  accumulator.failWaiting(
    'other',
    Object.assign(new Error('no such topic'), { code: 'KAFKIT_PRODUCE_FAILED' }) as never
  )
  assert.deepEqual(log.codes(), ['KAFKIT_PRODUCE_FAILED'])
  accumulator.drain()
  assert.equal(accumulator.admission.size, 0, 'the failed record leaves the line')
})

test('a stale partition count is refreshed when a record is admitted', t => {
  const { accumulator, topics, refreshes } = setup(t)
  topics.set('t', { partitions: 3, refreshAt: 5, refreshing: false })
  accumulator.admit(pendingRecord({ partition: 0, at: 5 }))
  assert.deepEqual(refreshes, [])
  accumulator.admit(pendingRecord({ partition: 0, at: 6 }))
  assert.deepEqual(refreshes, ['t'])
})

test('a partition that does not exist, or a partitioner that throws, fails the record', t => {
  const { accumulator, log } = setup(t)
  accumulator.admit(pendingRecord({ partition: 3 }))
  const throwing = new RecordAccumulator(
    defaults,
    {
      choose: () => {
        throw new Error('bad partitioner')
      }
    },
    { get: () => ({ partitions: 1, refreshAt: Infinity, refreshing: false }), load: () => 0, refresh: () => 0 },
    { fail: (record, error) => log.fail(record, error), pump: () => 0 }
  )
  throwing.admit(pendingRecord())
  assert.deepEqual(log.codes(), ['KAFKIT_INVALID_PARTITION', 'KAFKIT_INVALID_PARTITION'])
  assert.match(log.failures[0]?.error.message ?? '', /partition 3 does not exist: topic t has 3 partition/)
  assert.match(log.failures[1]?.error.message ?? '', /the partitioner threw .*bad partitioner/)
  assert.equal(accumulator.bufferedMessages, 0)
})

test('records of a batch the broker found too large go back in front, each alone and in order', t => {
  const { accumulator } = setup(t)
  accumulator.admit(pendingRecord({ partition: 0, size: 1 }))
  accumulator.seal()
  const split = [pendingRecord({ partition: 1, size: 2 }), pendingRecord({ partition: 1, size: 3 })]
  accumulator.requeueAlone(split, undefined)
  assert.deepEqual(
    accumulator.ready.map(b => [sizes(b.records), b.exclusive, b.due]),
    [
      [[2], true, true],
      [[3], true, true],
      [[1], false, false]
    ]
  )
  assert.equal(split[0]?.state, BUFFERED)
})
