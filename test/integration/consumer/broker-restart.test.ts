/**
 * The consumer across a SIGKILL + restart of its only broker (a single-node cluster of its own, see
 * test/helpers/ports.ts), down for 12 s: the client's stream ends while the broker is gone, Kafkit fetches again on a
 * new stream once it is back, and the worker goes on without a restart of its own. Every record is handled, the group
 * commits every partition to its end, and the consumer stays healthy.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { startKafka, stopKafka, stopNode, type LocalKafkaCluster } from '../../../src/testing/local-kafka.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { restartWhenPortFree } from '../../helpers/restart-nodes.ts'
import { busyWorker, committedSum, produceKeyed, sleep, waitFor } from './helpers.ts'
import { TEST_PORTS } from '../../helpers/ports.ts'

const PORT = TEST_PORTS.consumerBrokerRestart
const RECORDS = 3000
let cluster: LocalKafkaCluster

before(async () => {
  cluster = await startKafka({ port: PORT, fresh: true })
})
after(async () => {
  await stopKafka({ port: PORT })
})

test(
  'SIGKILL + restart of the broker mid-run: the worker goes on, every record handled and committed',
  { timeout: 300_000 },
  async t => {
    const brokers = cluster.brokers
    const { topic } = await createTestTopic({ brokers, partitions: 3 })
    await produceKeyed(brokers, topic, RECORDS, { keys: 60 })
    const groupId = uniqueName('group')
    const { consumer, handled } = busyWorker(brokers, topic, groupId)
    const health: string[] = []
    consumer.on('health', change => health.push(change.to))
    t.after(() => consumer.stop())
    await consumer.start()
    await waitFor(() => consumer.metrics().processed >= 300, 60_000, 'the worker to be busy')
    await stopNode(cluster, 1, 'SIGKILL')
    t.diagnostic(`killed the broker after ${consumer.metrics().processed} records`)
    // Down for longer than the client's own fetch retries last (3 retries, 1 s apart), so its stream ends.
    await sleep(12_000)
    await restartWhenPortFree(cluster)

    await waitFor(() => handled.size >= RECORDS, 180_000, 'every record handled')
    const committed = await committedSum(brokers, groupId, topic, RECORDS, 90_000)
    const metrics = consumer.metrics()
    t.diagnostic(`commits ${metrics.commits}, commit failures ${metrics.commitFailures}, health ${health.join(' > ')}`)
    assert.equal(consumer.health, 'running')
    assert.ok(!health.includes('failed'), 'the consumer never failed')
    assert.equal(committed, BigInt(RECORDS), 'the group committed every partition to its end')
  }
)
