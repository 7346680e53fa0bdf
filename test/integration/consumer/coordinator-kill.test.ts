/**
 * The consumer on a three-node cluster (started by the test, see test/helpers/ports.ts) when the JVM of the group's
 * coordinator is SIGKILLed mid-run. Kafkit sends its offset commits itself (src/kafka/commit-in-generation.ts),
 * so this checks that they find the new coordinator: every record is handled, and the group's
 * committed offsets reach the end of every partition while the worker runs on the two survivors.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Admin, FindCoordinatorKeyTypes } from '@platformatic/kafka'
import { startKafka, stopKafka, stopNode, type LocalKafkaCluster } from '../../../src/testing/local-kafka.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { busyWorker, committedSum, produceKeyed, waitFor } from './helpers.ts'
import { TEST_PORTS } from '../../helpers/ports.ts'

const PORT = TEST_PORTS.consumerCoordinatorKill
const RECORDS = 3000
let cluster: LocalKafkaCluster

before(async () => {
  cluster = await startKafka({ nodes: 3, port: PORT, fresh: true })
})
after(async () => {
  await stopKafka({ port: PORT })
})

async function coordinatorOf(brokers: string[], groupId: string): Promise<number> {
  const admin = new Admin({ clientId: 'kafkit-test-admin', bootstrapBrokers: brokers })
  try {
    const [found] = await admin.findCoordinator({ keyType: FindCoordinatorKeyTypes.GROUP, keys: [groupId] })
    assert.ok(found !== undefined && found.nodeId >= 1, 'the group has a coordinator')
    return found.nodeId
  } finally {
    await admin.close()
  }
}

test(
  'SIGKILL of the group coordinator mid-run: commits move to the new coordinator, every partition is committed to its end',
  { timeout: 300_000 },
  async t => {
    const brokers = cluster.brokers
    const { topic } = await createTestTopic({
      brokers,
      partitions: 3,
      replicas: 3,
      configs: { 'min.insync.replicas': '2' }
    })
    await produceKeyed(brokers, topic, RECORDS, { keys: 60 })
    const groupId = uniqueName('group')
    const { consumer, handled, warnings } = busyWorker(brokers, topic, groupId)
    const started = Date.now()
    t.after(() => consumer.stop())
    await consumer.start()
    await waitFor(() => consumer.metrics().processed >= 300, 60_000, 'the worker to be busy')
    const coordinator = await coordinatorOf(brokers, groupId)
    await waitFor(() => consumer.metrics().commits > 0, 30_000, 'a first commit')
    await stopNode(cluster, coordinator, 'SIGKILL')
    const survivors = brokers.filter((_, i) => i + 1 !== coordinator)
    t.diagnostic(`killed node ${coordinator} (the coordinator) after ${consumer.metrics().processed} records`)

    try {
      await waitFor(() => handled.size >= RECORDS, 120_000, 'every record handled')
    } catch (error) {
      const m = consumer.metrics()
      t.diagnostic(
        `stuck: handled ${handled.size}, health ${consumer.health}, assignments ${JSON.stringify(consumer.assignments())}, metrics ${JSON.stringify({ ...m, partitions: undefined, commitLatencyMs: undefined }, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`
      )
      throw error
    }
    const committed = await committedSum(survivors, groupId, topic, RECORDS, 90_000)
    const metrics = consumer.metrics()
    const commitWarnings = warnings.filter(m => m === 'consumer: offset commit failed').length
    t.diagnostic(`commits ${metrics.commits}, commit failures ${metrics.commitFailures}, warnings ${commitWarnings}`)
    // One warning per 5 s at most, however many commits fail while the coordinator moves.
    assert.ok(
      commitWarnings <= 1 + Math.ceil((Date.now() - started) / 5000),
      `${commitWarnings} commit warnings in ${Date.now() - started} ms`
    )
    assert.notEqual(await coordinatorOf(survivors, groupId), coordinator, 'the group moved to another coordinator')
    assert.equal(committed, BigInt(RECORDS), 'the group committed every partition to its end')
  }
)
