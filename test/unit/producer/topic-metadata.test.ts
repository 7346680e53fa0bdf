/**
 * Topic metadata on a fake clock: one load per topic however many records wait for it, the partition
 * count kept with the time it gets old, background refreshes, and coded failures.
 */
import assert from 'node:assert/strict'
import { mock, test, type TestContext } from 'node:test'
import { NetworkError } from '@platformatic/kafka'
import type { ProduceError } from '../../../src/producer/errors.ts'
import { TopicMetadata, type MetadataClient } from '../../../src/producer/topic-metadata.ts'
import { settle } from './records.ts'

type Answer = Awaited<ReturnType<MetadataClient['metadata']>>

function setup(t: TestContext) {
  mock.timers.enable({ apis: ['Date'], now: 1000 })
  t.after(() => mock.timers.reset())
  const calls: { options: Parameters<MetadataClient['metadata']>[0]; answer: PromiseWithResolvers<Answer> }[] = []
  const client: MetadataClient = {
    metadata: options => {
      const answer = Promise.withResolvers<Answer>()
      calls.push({ options, answer })
      return answer.promise
    }
  }
  const failed: [string, ProduceError][] = []
  const ended: string[] = []
  const topics = new TopicMetadata(
    client,
    { autocreateTopics: false, metadataMaxAgeMs: 300_000 },
    7,
    { loadFailed: (topic, failure) => failed.push([topic, failure]), loadEnded: topic => ended.push(topic) },
    () => Date.now()
  )
  return { topics, calls, failed, ended }
}

const answer = (partitions: number, brokers = 1): Answer => ({
  brokers: { size: brokers },
  topics: new Map([['orders', { partitionsCount: partitions }]])
})

test('a topic is loaded once however often it is asked for, and its count kept until metadataMaxAgeMs', async t => {
  const { topics, calls, ended } = setup(t)
  topics.load('orders')
  topics.load('orders')
  assert.equal(calls.length, 1)
  assert.deepEqual(calls[0]?.options, { topics: ['orders'], autocreateTopics: false, retries: 7 })
  assert.equal(topics.get('orders'), undefined)
  mock.timers.tick(250)
  calls[0]?.answer.resolve(answer(6, 3))
  await settle()
  assert.deepEqual(topics.get('orders'), { partitions: 6, refreshAt: 1250 + 300_000, refreshing: false })
  assert.equal(topics.severalBrokers, true)
  assert.deepEqual(ended, ['orders'])
  topics.load('orders')
  assert.equal(calls.length, 2, 'a new load once the last one ended')
})

test('a refresh reads the count again in the background; a failed one keeps the old count', async t => {
  const { topics, calls } = setup(t)
  topics.load('orders')
  calls[0]?.answer.resolve(answer(2))
  await settle()
  const info = topics.get('orders')
  assert.ok(info !== undefined)
  assert.equal(topics.severalBrokers, false)
  mock.timers.tick(300_001)
  topics.refresh('orders', info)
  topics.refresh('orders', info)
  assert.equal(calls.length, 2, 'one refresh at a time')
  assert.deepEqual(calls[1]?.options, { topics: ['orders'], forceUpdate: true })
  assert.equal(info.refreshing, true)
  calls[1]?.answer.resolve(answer(4))
  await settle()
  assert.deepEqual(info, { partitions: 4, refreshAt: 301_001 + 300_000, refreshing: false })
  mock.timers.tick(1000)
  topics.refresh('orders', info)
  calls[2]?.answer.reject(new NetworkError('Connection closed'))
  await settle()
  assert.deepEqual(info, { partitions: 4, refreshAt: 302_001 + 300_000, refreshing: false })
})

test('a failed load fails its waiting records with a coded error, retryable when the cluster was the problem', async t => {
  const { topics, calls, failed, ended } = setup(t)
  topics.load('orders')
  calls[0]?.answer.reject(new NetworkError('Connection refused'))
  await settle()
  assert.equal(failed.length, 1)
  const [topic, failure] = failed[0] ?? []
  assert.equal(topic, 'orders')
  assert.equal(failure?.code, 'KAFKIT_PRODUCE_FAILED')
  assert.equal(failure?.retryable, true)
  assert.match(failure?.message ?? '', /could not read the partitions of topic orders: Connection refused/)
  assert.deepEqual(ended, ['orders'], 'ended after the failure was reported')

  topics.load('orders')
  calls[1]?.answer.resolve(answer(0))
  await settle()
  assert.equal(failed[1]?.[1].retryable, false)
  assert.match(failed[1]?.[1].message ?? '', /topic orders has no partitions in the metadata/)
  assert.equal(topics.get('orders'), undefined)
})
