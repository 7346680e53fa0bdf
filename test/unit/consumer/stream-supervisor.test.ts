import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { test } from 'node:test'
import { NetworkError } from '@platformatic/kafka'
import type { consumeStream } from '../../../src/consumer/consume-stream.ts'
import type { RawRecord } from '../../../src/consumer/decode.ts'
import { ConsumerStreamClosedError } from '../../../src/consumer/errors.ts'
import { consumerOptions } from '../../../src/consumer/options.ts'
import { STREAM_RESTARTS, StreamSupervisor } from '../../../src/consumer/stream-supervisor.ts'
import type { ClientConsumer } from '../../../src/kafka/client.ts'
import { fakeClock, record, recordingLogger, turns } from './fakes.ts'

/** A record stream: emits what the test pushes, remembers whether it is paused or closed. */
class FakeStream extends EventEmitter {
  paused = false
  closed = false
  pause(): this {
    this.paused = true
    return this
  }
  resume(): this {
    this.paused = false
    return this
  }
  close(): Promise<void> {
    this.closed = true
    return Promise.resolve()
  }
}

/** What the client ends a stream with when a broker is lost. */
const retriable = () => new NetworkError('connection lost')

function harness(options: { failCalls?: number[] } = {}) {
  const config = consumerOptions.resolve(
    { brokers: ['b:9092'], groupId: 'g', topics: ['t'], maxBufferedRecords: 10 },
    { env: {} }
  )
  const streams: FakeStream[] = []
  const ends: ((error: Error) => void)[] = []
  let calls = 0
  const consume = ((_client: unknown, _options: unknown, onEnd: (error: Error) => void) => {
    if (options.failCalls?.includes(++calls)) return Promise.reject(retriable())
    const stream = new FakeStream()
    streams.push(stream)
    ends.push(onEnd)
    return Promise.resolve(stream)
  }) as unknown as typeof consumeStream
  const accepted: bigint[] = []
  const failures: Error[] = []
  const state = { health: 'running', ending: false }
  const { logger, lines } = recordingLogger()
  const supervisor = new StreamSupervisor({
    config,
    logger,
    consume,
    host: {
      accept: (raw: RawRecord) => accepted.push(raw.offset),
      fail: error => failures.push(error),
      ending: () => state.ending,
      active: () => state.health === 'running' || state.health === 'paused',
      running: () => state.health === 'running'
    }
  })
  const client = {} as ClientConsumer<Buffer, Buffer, Buffer, Buffer>
  /** Ends the newest stream as the client would. */
  const end = (error: Error) => (ends[ends.length - 1] as (error: Error) => void)(error)
  return { supervisor, client, streams, accepted, failures, state, lines, end }
}

test('the first stream is read once listened to', async () => {
  const { supervisor, client, streams, accepted } = harness()
  await supervisor.open(client)
  streams[0]?.emit('data', record(0, 0))
  assert.deepEqual(accepted, [])
  supervisor.listen()
  streams[0]?.emit('data', record(0, 1))
  assert.deepEqual(accepted, [1n])
})

test('a retriable end: a new stream after 1, 2, 3, 4, then 5 s, for as long as it lasts; a record resets the pause (fake clock)', async t => {
  const clock = fakeClock(t)
  const { supervisor, client, streams, accepted, failures, lines, end } = harness()
  await supervisor.open(client)
  supervisor.listen()
  const pauses: number[] = []
  for (let i = 1; i <= 12; i++) {
    end(retriable())
    const before = streams.length
    let waited = 0
    while (streams.length === before) {
      clock.tick(500)
      waited += 500
      await turns()
      assert.ok(waited <= 5000, 'never more than 5 s')
    }
    pauses.push(waited)
  }
  assert.deepEqual(pauses, [1000, 2000, 3000, 4000, 5000, 5000, 5000, 5000, 5000, 5000, 5000, 5000])
  assert.deepEqual(failures, [])
  assert.equal(lines.filter(l => l.message.includes('fetching again on a new stream')).length, 12)
  const newest = streams[streams.length - 1] as FakeStream
  newest.emit('data', record(0, 7))
  assert.deepEqual(accepted, [7n], 'the new stream is read')
  assert.equal(streams[0]?.listenerCount('data'), 0, 'the old one is not')
  end(retriable())
  clock.tick(1000)
  await turns()
  assert.equal(streams.length, 14, 'after a record the pause is 1 s again')
})

test('a stream that keeps closing by itself fails the consumer after STREAM_RESTARTS restarts in a row (fake clock)', async t => {
  const clock = fakeClock(t)
  const { supervisor, client, streams, failures, end } = harness()
  await supervisor.open(client)
  for (let i = 0; i < STREAM_RESTARTS; i++) {
    end(new ConsumerStreamClosedError('closed'))
    clock.tick(5000)
    await turns()
  }
  assert.equal(streams.length, STREAM_RESTARTS + 1)
  assert.equal(failures.length, 0)
  end(new ConsumerStreamClosedError('closed'))
  assert.equal(failures.length, 1)
  assert.ok(failures[0] instanceof ConsumerStreamClosedError)
})

test('an error that is not retriable, or any end while not running, fails the consumer; ends while it ends are ignored', async () => {
  const { supervisor, client, failures, state, end } = harness()
  await supervisor.open(client)
  const fatal = new Error('SASL authentication failed')
  end(fatal)
  assert.deepEqual(failures, [fatal])
  state.health = 'starting'
  const early = retriable()
  end(early)
  assert.deepEqual(failures, [fatal, early])
  state.health = 'running'
  state.ending = true
  end(new Error('after stop'))
  assert.equal(failures.length, 2)
})

test('a restart that cannot open a stream counts as another end (fake clock)', async t => {
  const clock = fakeClock(t)
  const { supervisor, client, streams, failures, end } = harness({ failCalls: [2] })
  await supervisor.open(client)
  end(retriable())
  clock.tick(1000)
  await turns()
  assert.equal(streams.length, 1, 'the first restart failed to open a stream')
  clock.tick(1999)
  await turns()
  assert.equal(streams.length, 1)
  clock.tick(1)
  await turns()
  assert.equal(streams.length, 2, 'tried again 2 s later')
  assert.deepEqual(failures, [])
})

test('stop() cancels a pending restart and pauses the stream (fake clock)', async t => {
  const clock = fakeClock(t)
  const { supervisor, client, streams, end } = harness()
  await supervisor.open(client)
  end(retriable())
  supervisor.stop()
  clock.tick(10_000)
  await turns()
  assert.equal(streams.length, 1, 'no restart after stop()')
  assert.equal(streams[0]?.paused, true, 'and no more records')
  await supervisor.close()
  assert.equal(streams[0]?.closed, true)
})

test('backpressure: paused at once, resumed only when running and down to half; a new stream starts paused while fetching is (fake clock)', async t => {
  const clock = fakeClock(t)
  const { supervisor, client, streams, state, end } = harness()
  await supervisor.open(client)
  supervisor.buffered = 10
  supervisor.pause()
  assert.equal(streams[0]?.paused, true)
  supervisor.buffered = 6
  supervisor.maybeResume()
  assert.equal(streams[0]?.paused, true, 'above half of maxBufferedRecords')
  supervisor.buffered = 5
  state.health = 'paused'
  supervisor.maybeResume()
  assert.equal(streams[0]?.paused, true, 'not while the consumer is paused (breaker)')
  end(retriable())
  clock.tick(1000)
  await turns()
  assert.equal(streams[1]?.paused, true, 'the new stream is paused too')
  state.health = 'running'
  supervisor.maybeResume()
  assert.equal(streams[1]?.paused, false)
})
