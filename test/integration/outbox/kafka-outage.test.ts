/**
 * Kafka down under the relay: the test starts its own one-node cluster, SIGKILLs the broker while
 * writers keep committing outbox rows, and restarts it. The relay reports `waiting-for-kafka`, keeps
 * every row, and once the broker is back publishes all of them; `leading` again at the end.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import pg from 'pg'
import { Outbox } from '../../../src/postgres/outbox.ts'
import { OutboxRelay, type OutboxRelayState } from '../../../src/postgres/outbox-relay.ts'
import { startKafka, stopKafka, stopNode, type LocalKafkaCluster } from '../../../src/testing/local-kafka.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { databaseUrl } from '../../helpers/env.ts'
import { TEST_PORTS } from '../../helpers/ports.ts'
import { headerOf, readTopic } from '../../helpers/read-topic.ts'
import { restartWhenPortFree } from '../../helpers/restart-nodes.ts'
import { waitFor } from '../../helpers/wait.ts'

const PORT = TEST_PORTS.outboxKafkaOutage
const quiet = { debug() {}, info() {}, warn() {}, error() {} }
let cluster: LocalKafkaCluster

before(async () => {
  cluster = await startKafka({ port: PORT, fresh: true })
})
after(async () => {
  await stopKafka({ port: PORT })
})

test(
  'Kafka killed and restarted under the relay: it waits, reports it, and publishes every row',
  { timeout: 240_000 },
  async t => {
    const brokers = cluster.brokers
    const { topic } = await createTestTopic({ brokers, partitions: 3 })
    const pool = new pg.Pool({ connectionString: databaseUrl(), max: 2 })
    const table = uniqueName('outbox_kafka_down')
      .replaceAll(/[^A-Za-z0-9_]/g, '_')
      .slice(0, 40)
    const outbox = new Outbox({ pool, table, topic })
    await outbox.createTable()
    const relay = new OutboxRelay({
      database: databaseUrl(),
      brokers,
      table,
      env: {},
      logger: quiet,
      retryBackoffMs: 100,
      maxRetryBackoffMs: 1000,
      // Sends give up after 8 s of outage; the relay then retries the round after its backoff.
      producer: { deliveryTimeoutMs: 8000 }
    })
    t.after(async () => {
      await relay.stop()
      await pool.query(`DROP TABLE IF EXISTS ${table}, ${table}_dead_letters`)
      await pool.end()
    })
    const states: OutboxRelayState[] = []
    relay.on('health', health => states.push(health.state))
    relay.start()
    const committed: string[] = []
    const write = async (from: number, count: number) => {
      for (let n = from; n < from + count; n++) {
        const entry = await outbox.transaction(tx => outbox.add(tx, { key: `k-${n % 10}`, type: 't', data: { n } }))
        committed.push(entry.eventId)
      }
    }
    await write(0, 100)
    await waitFor(() => relay.health.published === 100, 30_000, 'the first rows published')

    const nodeId = cluster.nodes[0]?.nodeId as number
    await stopNode(cluster, nodeId, 'SIGKILL')
    await write(100, 200)
    await waitFor(() => relay.health.state === 'waiting-for-kafka', 30_000, 'the relay to report Kafka down')
    const pending = (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0]?.n
    assert.equal(pending, 200, 'the rows written during the outage wait in the table')

    await restartWhenPortFree(cluster)
    await waitFor(() => relay.health.published >= 300, 120_000, 'every row published after the restart')
    await waitFor(() => relay.health.state === 'leading', 30_000, 'the relay to lead again')
    const records = await readTopic(brokers, topic, 300, { quietMs: 1000 })
    const published = new Set(records.map(record => headerOf(record, 'event-id')))
    t.diagnostic(`records ${records.length}, states ${states.join(' > ')}`)
    assert.deepEqual(
      committed.filter(id => !published.has(id)),
      [],
      'every committed row published'
    )
  }
)
