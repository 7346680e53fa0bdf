/**
 * The client's record stream closing by itself while the consumer runs (src/consumer/consume-stream.ts).
 * Nothing else reports it: the stream just stops fetching, and once the client has nothing scheduled
 * the process can exit with the consumer still "running" (seen once with KIP-848 after a coordinator
 * kill). The streams are the client's own, reached through its public `plt:kafka:instances`
 * diagnostics channel, and closed with their own close().
 */
import assert from 'node:assert/strict'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { test, type TestContext } from 'node:test'
import type { Consumer as ClientConsumer, MessagesStream } from '@platformatic/kafka'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers } from '../../helpers/env.ts'
import { busyWorker, committedSum, produceKeyed, waitFor } from './helpers.ts'

const RECORDS = 900

/** Every record stream and group consumer client created in this process from now until the test ends. */
function captureInstances(t: TestContext): {
  streams: MessagesStream<unknown, unknown, unknown, unknown>[]
  clients: ClientConsumer[]
} {
  const streams: MessagesStream<unknown, unknown, unknown, unknown>[] = []
  const clients: ClientConsumer[] = []
  const listener = (message: unknown) => {
    const { type, instance } = message as { type: string; instance: unknown }
    if (type === 'messages-stream') streams.push(instance as MessagesStream<unknown, unknown, unknown, unknown>)
    if (type === 'consumer') clients.push(instance as ClientConsumer)
  }
  subscribe('plt:kafka:instances', listener)
  t.after(() => unsubscribe('plt:kafka:instances', listener))
  return { streams, clients }
}

test('a stream the client closed mid-run is replaced: every record is handled and committed, health stays running', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 3 })
  t.after(drop)
  await produceKeyed(brokers, topic, RECORDS, { keys: 30 })
  const { streams } = captureInstances(t)
  const groupId = uniqueName('group')
  const { consumer, handled } = busyWorker(brokers, topic, groupId)
  t.after(() => consumer.stop())
  await consumer.start()
  await waitFor(() => handled.size >= 200, 60_000, 'the worker to be busy')
  assert.equal(streams.length, 1)
  await streams[0]?.close()

  await waitFor(() => handled.size >= RECORDS, 60_000, 'every record handled after the stream closed')
  assert.equal(streams.length, 2, 'a new stream replaced the closed one')
  assert.equal(consumer.health, 'running')
  assert.equal(await committedSum(brokers, groupId, topic, RECORDS, 30_000), BigInt(RECORDS))
})

test('a stream closed with its client: the consumer fails loudly (done() rejects), it does not go quiet', async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 2 })
  t.after(drop)
  await produceKeyed(brokers, topic, 600, { keys: 20 })
  const { clients } = captureInstances(t)
  const { consumer, handled } = busyWorker(brokers, topic, uniqueName('group'))
  t.after(() => consumer.stop())
  await consumer.start()
  await waitFor(() => handled.size >= 100, 60_000, 'the worker to be busy')
  assert.equal(clients.length, 1)
  // The client closes its streams first (the stream's end is heard), then itself.
  await clients[0]?.close(true)

  await assert.rejects(consumer.done(), (error: Error) => {
    assert.match(error.message, /closed/i)
    return true
  })
  assert.equal(consumer.health, 'failed')
})
