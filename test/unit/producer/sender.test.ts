/**
 * The sender on a fake clock, with the accumulator and a client whose sends the test answers: at most
 * maxInFlight requests, offsets per record, latency from the clock, and what becomes of a failed
 * batch (written partitions sent, a too-large batch re-sent one by one, the DLQ, coded failures).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { MultipleErrors, ProtocolError, type ProduceResult } from '@platformatic/kafka'
import { RecordAccumulator } from '../../../src/producer/accumulator.ts'
import type { ProduceError } from '../../../src/producer/errors.ts'
import { ProducerCounters } from '../../../src/producer/metrics.ts'
import { PartitionSendsFailure } from '../../../src/producer/partition-sends.ts'
import { PartitionChooser } from '../../../src/producer/partitioners.ts'
import type { Bytes, PendingRecord } from '../../../src/producer/record.ts'
import { BatchSender } from '../../../src/producer/sender.ts'
import type { TxState } from '../../../src/producer/transactions.ts'
import { FailLog, settle, watchedRecord, type RecordSpec } from './records.ts'

interface Call {
  messages: Bytes[]
  answer: PromiseWithResolvers<ProduceResult>
}

function setup(config: { maxInFlight?: number; dlqTopic?: string; batchSize?: number } = {}) {
  let clock = 0
  const calls: Call[] = []
  const client = {
    send: (options: { messages: Bytes[]; acks: number }) => {
      const answer = Promise.withResolvers<ProduceResult>()
      calls.push({ messages: options.messages, answer })
      return answer.promise
    }
  }
  const log = new FailLog()
  const counters = new ProducerCounters()
  const outage: string[] = []
  const deadLettered: { group: PendingRecord[]; error: ProduceError; topic: string }[] = []
  const topics = { severalBrokers: false }
  const accumulator = new RecordAccumulator(
    { bufferMemory: 1e6, bufferFullBehavior: 'wait', batchSize: config.batchSize ?? 2, batchBytes: 1e6, lingerMs: 10 },
    new PartitionChooser('round-robin'),
    { get: () => ({ partitions: 8, refreshAt: Infinity, refreshing: false }), load: () => 0, refresh: () => 0 },
    { fail: (record, error) => log.fail(record, error), pump: () => sender.pump() }
  )
  const sender: BatchSender = new BatchSender(
    { maxInFlight: config.maxInFlight ?? 2, acks: -1, dlqTopic: config.dlqTopic },
    {
      client,
      accumulator,
      tracker: log,
      deadLetters: { write: (group, error, topic) => deadLettered.push({ group, error, topic }) },
      topics,
      counters,
      outage: { failed: () => outage.push('failed'), acknowledged: () => outage.push('acknowledged') }
    },
    () => clock
  )
  const send = (spec: RecordSpec) => {
    const watched = watchedRecord(spec)
    accumulator.admit(watched.record)
    return watched
  }
  return {
    sender,
    accumulator,
    calls,
    log,
    counters,
    outage,
    deadLettered,
    topics,
    send,
    tick: (ms: number) => (clock += ms)
  }
}

const partitions = (call: Call | undefined) => call?.messages.map(m => m.partition)

test('at most maxInFlight batches are outstanding; an answer gives offsets, latency, and sends the next', async () => {
  const { calls, send, accumulator, counters, tick, outage } = setup()
  const records = Array.from({ length: 6 }, () => send({ partition: 0, size: 10 }))
  assert.equal(calls.length, 2, 'two full batches went at once')
  assert.equal(accumulator.ready.length, 1, 'the third waits for a slot')
  assert.equal(calls[0]?.messages[0], records[0]?.record, 'the record is the message: no copy')
  tick(7)
  calls[0]?.answer.resolve({ offsets: [{ topic: 't', partition: 0, offset: 100n }] })
  await settle()
  assert.deepEqual(
    records.slice(0, 2).map(r => [r.outcome.result?.status, r.outcome.result?.offset]),
    [
      ['sent', 100n],
      ['sent', 101n]
    ]
  )
  assert.equal(calls.length, 3)
  assert.equal(counters.messagesSent, 2)
  assert.equal(counters.batchesSent, 1)
  assert.equal(counters.bytesSent, 20)
  assert.equal(counters.latency.max, 7000, 'µs from send to acknowledgement on the clock')
  assert.equal(accumulator.bufferedBytes, 40)
  assert.deepEqual(outage, ['acknowledged'])
})

test('a batch over several partitions: each record gets the offset of its place in its partition', async () => {
  const { calls, send, accumulator, sender } = setup({ batchSize: 10 })
  const records = [0, 1, 0, 1, 0].map(partition => send({ partition }))
  accumulator.seal()
  sender.pump()
  calls[0]?.answer.resolve({
    offsets: [
      { topic: 't', partition: 0, offset: 10n },
      { topic: 't', partition: 1, offset: 20n }
    ]
  })
  await settle()
  assert.deepEqual(
    records.map(r => r.outcome.result?.offset),
    [10n, 20n, 11n, 21n, 12n]
  )
})

test('a failed batch: written partitions are sent, a too-large one is re-sent one at a time, the rest fail', async () => {
  const { calls, send, accumulator, sender, log, outage, counters } = setup({ batchSize: 10 })
  const records = [0, 1, 0, 1, 2].map(partition => send({ partition }))
  accumulator.seal()
  sender.pump()
  send({ partition: 5 })
  accumulator.seal()
  sender.pump()
  assert.equal(calls.length, 2, 'a second batch is in flight')
  const failure = new PartitionSendsFailure(
    {
      written: new Map([['t:0', 5n]]),
      failed: new Map<string, Error>([
        ['t:1', new ProtocolError('MESSAGE_TOO_LARGE')],
        ['t:2', new ProtocolError('TOPIC_AUTHORIZATION_FAILED')]
      ])
    },
    new ProtocolError('MESSAGE_TOO_LARGE')
  )
  calls[0]?.answer.reject(failure)
  await settle()
  assert.deepEqual(
    [records[0], records[2]].map(r => r?.outcome.result?.offset),
    [5n, 6n]
  )
  assert.equal(counters.messagesSent, 2)
  assert.deepEqual(log.codes(), ['KAFKIT_PRODUCE_FAILED'])
  assert.match(log.failures[0]?.error.message ?? '', /1 message\(s\) to t\/2 rejected by the broker/)
  assert.deepEqual(outage, ['acknowledged'], 'the cluster answered: not an outage')
  assert.equal(calls.length, 2, 'a split record goes alone: not while another batch is in flight')
  calls[1]?.answer.resolve({ offsets: [{ topic: 't', partition: 5, offset: 0n }] })
  await settle()
  assert.equal(calls.length, 3)
  assert.deepEqual(partitions(calls[2]), [1])
  send({ partition: 3 })
  accumulator.seal()
  sender.pump()
  assert.equal(calls.length, 3, 'nothing else goes while it is in flight')
  calls[2]?.answer.reject(new ProtocolError('MESSAGE_TOO_LARGE'))
  await settle()
  assert.equal(log.codes()[1], 'KAFKIT_MESSAGE_TOO_LARGE')
  assert.match(log.failures[1]?.error.message ?? '', /only this message failed/)
  assert.deepEqual(partitions(calls[3]), [1], 'then the second, alone')
  calls[3]?.answer.resolve({ offsets: [{ topic: 't', partition: 1, offset: 9n }] })
  await settle()
  assert.equal(records[3]?.outcome.result?.offset, 9n)
  assert.deepEqual(partitions(calls[4]), [3], 'and then the rest')
})

test('retries that ran out: to the DLQ when there is one, else a retryable failure naming the attempts', async () => {
  const exhausted = () =>
    new MultipleErrors('produce failed 3 times.', [
      new ProtocolError('NOT_ENOUGH_REPLICAS'),
      new ProtocolError('NOT_ENOUGH_REPLICAS'),
      new ProtocolError('NOT_ENOUGH_REPLICAS')
    ])
  const withDlq = setup({ dlqTopic: 'dlq' })
  withDlq.send({ partition: 0 })
  withDlq.send({ partition: 0 })
  withDlq.calls[0]?.answer.reject(exhausted())
  await settle()
  assert.equal(withDlq.deadLettered.length, 1)
  const { group, error, topic } = withDlq.deadLettered[0] ?? {}
  assert.equal(topic, 'dlq')
  assert.equal(group?.length, 2)
  assert.equal(error?.retryable, true)
  assert.equal(error?.details.attempts, 3)
  assert.match(error?.message ?? '', /2 message\(s\) to t\/0 not acknowledged after 3 attempt\(s\)/)
  assert.deepEqual(withDlq.outage, ['failed'])

  const without = setup()
  without.send({ partition: 0 })
  without.send({ partition: 0 })
  without.calls[0]?.answer.reject(exhausted())
  await settle()
  assert.deepEqual(without.log.codes(), ['KAFKIT_PRODUCE_FAILED', 'KAFKIT_PRODUCE_FAILED'])
  assert.equal(without.accumulator.bufferedMessages, 0, 'their memory is freed')
})

test("a transaction's batch waits until the client's transaction has begun, and goes through it", async () => {
  const { calls, send, accumulator, sender } = setup()
  const txCalls: Bytes[][] = []
  const tx: TxState = { client: undefined, handle: undefined, failures: [], sent: false }
  const first = watchedRecord({ partition: 0 })
  first.record.tx = tx
  accumulator.admit(first.record)
  accumulator.seal()
  sender.pump()
  assert.equal(calls.length + txCalls.length, 0)
  tx.client = {
    send: (options: { messages: Bytes[] }) => {
      txCalls.push(options.messages)
      return Promise.resolve({ offsets: [{ topic: 't', partition: 0, offset: 3n }] })
    }
  } as unknown as TxState['client']
  sender.pump()
  await settle()
  assert.equal(txCalls.length, 1)
  assert.equal(calls.length, 0)
  assert.equal(tx.sent, true)
  assert.equal(first.outcome.result?.offset, 3n)
  send({ partition: 0 })
  send({ partition: 0 })
  assert.equal(calls.length, 1, 'outside the transaction: the producer client')
})

test('with several brokers a batch goes as one send per partition', async () => {
  const { calls, send, accumulator, sender, topics } = setup({ batchSize: 10 })
  topics.severalBrokers = true
  const records = [0, 1, 0].map(partition => send({ partition }))
  accumulator.seal()
  sender.pump()
  await settle()
  assert.deepEqual(calls.map(partitions), [[0, 0], [1]])
  calls[0]?.answer.resolve({ offsets: [{ topic: 't', partition: 0, offset: 1n }] })
  calls[1]?.answer.resolve({ offsets: [{ topic: 't', partition: 1, offset: 2n }] })
  await settle()
  await settle()
  assert.deepEqual(
    records.map(r => r.outcome.result?.offset),
    [1n, 2n, 2n]
  )
})
