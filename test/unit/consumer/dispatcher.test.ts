import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { RawRecord } from '../../../src/consumer/decode.ts'
import { Dispatcher, type DispatchOptions } from '../../../src/consumer/dispatcher.ts'
import type { PartitionState } from '../../../src/consumer/partition-state.ts'
import { fakeClock, partition, partitions, record, take } from './fakes.ts'

interface Started {
  state: PartitionState
  records: RawRecord[]
}

/** A dispatcher whose runner only notes what started; `end` finishes a call the way the runner does. */
function harness(states: Map<string, PartitionState>, options: Partial<DispatchOptions> = {}) {
  const running: Started[] = []
  const started: string[] = []
  const gate = { open: true }
  const dispatcher = new Dispatcher(
    states,
    { limit: 16, batch: false, lingerMs: 0, maxPollRecords: 500, ...options },
    () => gate.open
  )
  dispatcher.runWith({
    runOne: (state, one) => {
      running.push({ state, records: [one] })
      started.push(`${state.partition}@${one.offset}`)
    },
    runBatch: (state, records) => {
      running.push({ state, records })
      started.push(`${state.partition}@${records.map(r => r.offset).join(',')}`)
    }
  })
  const end = (index = 0) => {
    const [call] = running.splice(index, 1)
    if (!call) throw new Error('nothing running')
    call.state.queue.release(call.records[0] as RawRecord)
    dispatcher.ended(call.state)
  }
  return { dispatcher, running, started, gate, end }
}

test('partition and key modes: never more than the limit in flight, a partition (or key) one at a time and in order, everything runs', () => {
  for (const mode of ['partition', 'key'] as const) {
    const states = [0, 1, 2].map(p => partition(p, 12, { mode, keys: i => `k${i % 3}` }))
    const { dispatcher, running, end } = harness(partitions(...states), { limit: 4 })
    const done: string[] = []
    dispatcher.pump()
    let step = 0
    while (running.length > 0) {
      assert.ok(dispatcher.inFlight <= 4 && dispatcher.inFlight === running.length, `${mode}: at most the limit`)
      const lanes = running.map(c => `${c.state.partition}/${mode === 'key' ? c.records[0]?.key?.toString() : ''}`)
      assert.equal(new Set(lanes).size, lanes.length, `${mode}: one call per partition (or key) at a time`)
      // End calls in a scrambled order.
      const call = running[(step++ * 7) % running.length] as Started
      done.push(`${call.state.partition}/${call.records[0]?.key?.toString()}@${call.records[0]?.offset}`)
      end(running.indexOf(call))
    }
    assert.equal(done.length, 36, `${mode}: every record ran`)
    for (const p of [0, 1, 2]) {
      for (const key of ['k0', 'k1', 'k2']) {
        const offsets = done.filter(d => d.startsWith(`${p}/${key}@`)).map(d => Number(d.split('@')[1]))
        assert.deepEqual(
          offsets,
          [...offsets].sort((a, b) => a - b),
          `${mode}: ${p}/${key} in order`
        )
      }
    }
  }
})

test('key mode: records of different keys of one partition run at once', () => {
  const state = partition(0, 6, { mode: 'key', keys: i => `k${i % 3}` })
  const { dispatcher, started } = harness(partitions(state))
  dispatcher.pump()
  assert.deepEqual(started, ['0@0', '0@1', '0@2'], 'one per key; the second of each key waits')
})

test('the gate: nothing starts while it is shut; partitions being let go or held start nothing', () => {
  const [a, b, c] = [partition(0, 2), partition(1, 2), partition(2, 2)] as [
    PartitionState,
    PartitionState,
    PartitionState
  ]
  const { dispatcher, started, gate, end } = harness(partitions(a, b, c))
  gate.open = false
  dispatcher.pump()
  assert.deepEqual(started, [])
  b.revokedIn = 3
  c.held = true
  gate.open = true
  dispatcher.pump()
  assert.deepEqual(started, ['0@0'])
  gate.open = false
  end()
  assert.deepEqual(started, ['0@0'], 'an end with the gate shut starts nothing either')
  c.held = false
  gate.open = true
  dispatcher.pump()
  assert.deepEqual(started, ['0@0', '0@1', '2@0'])
})

test('a partition left behind by the concurrency limit gets its turn when another partition`s call ends', () => {
  const { dispatcher, started, end } = harness(partitions(partition(0, 1), partition(1, 1)), { limit: 1 })
  dispatcher.pump()
  assert.deepEqual(started, ['0@0'])
  // Partition 0 has nothing more: the end must look at the others (it scans because one starved).
  end()
  assert.deepEqual(started, ['0@0', '1@0'])
})

test('after an end, the same partition`s next record starts at once (limit permitting)', () => {
  const { dispatcher, started, end } = harness(partitions(partition(0, 3)), { limit: 1 })
  dispatcher.pump()
  end()
  end()
  assert.deepEqual(started, ['0@0', '0@1', '0@2'])
  assert.equal(dispatcher.inFlight, 1)
  end()
  assert.equal(dispatcher.inFlight, 0)
})

test('batch: up to maxPollRecords consecutive records; with a linger a batch waits to fill up, at most lingerMs (fake clock)', t => {
  const clock = fakeClock(t)
  const state = partition(0, 0)
  const { dispatcher, started, end } = harness(partitions(state), { batch: true, lingerMs: 100, maxPollRecords: 3 })
  state.queuedSince = Date.now()
  take(state, record(0, 0))
  take(state, record(0, 1))
  dispatcher.pump()
  assert.deepEqual(started, [], 'waits for more')
  clock.tick(99)
  assert.deepEqual(started, [])
  clock.tick(1)
  assert.deepEqual(started, ['0@0,1'], 'the linger ran out: what is there goes')
  for (let i = 2; i < 7; i++) take(state, record(0, i))
  end()
  assert.deepEqual(started, ['0@0,1', '0@2,3,4'], 'a full batch goes at once')
  end()
  assert.deepEqual(started, ['0@0,1', '0@2,3,4'], 'the rest waits again')
  clock.tick(100)
  assert.deepEqual(started, ['0@0,1', '0@2,3,4', '0@5,6'])
})

test('waitForIdle: at once when idle, when the last call ends, or after the budget (fake clock)', async t => {
  const clock = fakeClock(t)
  const first = partition(0, 1)
  const { dispatcher, end } = harness(partitions(first, partition(1, 1)))
  await dispatcher.waitForIdle(1000)
  dispatcher.pump()
  let idle = false
  void dispatcher.waitForIdle(1000).then(() => (idle = true))
  end()
  await Promise.resolve()
  assert.equal(idle, false, 'one call still running')
  end()
  await Promise.resolve()
  assert.equal(idle, true)

  take(first, record(0, 1))
  dispatcher.pump()
  let gaveUp = false
  void dispatcher.waitForIdle(1000).then(() => (gaveUp = true))
  clock.tick(999)
  await Promise.resolve()
  assert.equal(gaveUp, false)
  clock.tick(1)
  await Promise.resolve()
  assert.equal(gaveUp, true, 'the budget ran out')
})
