/**
 * Broker failover on three nodes (a cluster the test starts, see test/helpers/ports.ts), with every
 * component on its defaults:
 * - a Producer sends numbered records at a steady pace while one node at a time is SIGKILLed and
 *   restarted, or SIGSTOPped past the brokers' session timeout and resumed; a Consumer and a Postgres
 *   Sink read the topic throughout. Checked: no send failed, no acknowledged record is missing from
 *   the topic, none is there twice, each key's records are in send order, the consumer saw and the sink
 *   stored every acknowledged record, their lag returned to 0, and the producer's breaker never
 *   opened (one node of three down is not an outage);
 * - the control: with a 1 s delivery timeout the same kind of fault fails sends, and every one of them
 *   is reported to its caller (each message ends acknowledged or failed, none silently dropped);
 * - with a node down, a topic that needs three in-sync replicas refuses writes with the retriable
 *   NOT_ENOUGH_REPLICAS: with maxRetries set, the messages whose retries ran out go to the producer DLQ.
 *
 * Sizes: KAFKIT_FAILOVER_FAULTS (default `kill,stop`), KAFKIT_FAILOVER_RATE (records/s, default 1000).
 * The full size (the issue's six faults): KAFKIT_FAILOVER_FAULTS=kill,stop,kill,stop,kill,stop
 * KAFKIT_FAILOVER_RATE=1500.
 */
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Consumer } from '../../../src/consumer/consumer.ts'
import { isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { stringSerde } from '../../../src/message/serde.ts'
import { PostgresWriter } from '../../../src/postgres/postgres-writer.ts'
import { Producer } from '../../../src/producer/producer.ts'
import { Sink } from '../../../src/sink/sink.ts'
import { startKafka, stopKafka, stopNode, type LocalKafkaCluster } from '../../../src/testing/local-kafka.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import {
  leaderOf,
  pacedSends,
  percentiles,
  readBack,
  runFaults,
  type FaultKind,
  type Numbered
} from '../../helpers/failover.ts'
import { readTopic } from '../../helpers/read-topic.ts'
import { restartWhenPortFree } from '../../helpers/restart-nodes.ts'
import { TEST_PORTS } from '../../helpers/ports.ts'
import { createTestSchema } from '../sink/postgres-schema.ts'
import { eventually } from '../../helpers/wait.ts'

const PORT = TEST_PORTS.producerLeaderKill
const FAULTS = (process.env.KAFKIT_FAILOVER_FAULTS ?? 'kill,stop').split(',') as FaultKind[]
const RATE = Number(process.env.KAFKIT_FAILOVER_RATE ?? 1000)
const quiet = { debug() {}, info() {}, warn() {}, error() {} }
let cluster: LocalKafkaCluster

before(async () => {
  cluster = await startKafka({ nodes: 3, port: PORT, fresh: true })
})
after(async () => {
  await stopKafka({ port: PORT })
})

type Row = { id: number; key: string }
const replicated = { partitions: 6, replicas: 3, configs: { 'min.insync.replicas': '2' } }

test(
  `defaults ride through ${FAULTS.join(', ')} of one node of three: 0 failed sends, 0 lost, 0 duplicates, order kept`,
  { timeout: 600_000 },
  async t => {
    const brokers = cluster.brokers
    const { topic } = await createTestTopic({ brokers, ...replicated })
    const db = await createTestSchema(t)
    const table = db.qualified('records')
    await db.query(`CREATE TABLE ${table} (id integer PRIMARY KEY, key text NOT NULL)`)

    const producer = new Producer<Numbered>({ brokers, topic, env: {} })
    t.after(() => producer.close({ timeoutMs: 5000 }))
    const seen = new Set<number>()
    const consumer = new Consumer<Numbered>({
      brokers,
      groupId: uniqueName('failover-consumer'),
      topics: [topic],
      startOffset: 'earliest',
      env: {},
      logger: quiet,
      handler: message => {
        seen.add(message.value.id)
        return Promise.resolve()
      }
    })
    const sink = new Sink<Numbered, Row>({
      brokers,
      groupId: uniqueName('failover-sink'),
      topics: [topic],
      writer: new PostgresWriter<Row>({ database: db.pool, table, columns: ['id', 'key'], key: ['id'] }),
      map: message => ({ id: message.value.id, key: message.value.key }),
      logger: {
        ...quiet,
        error: (fields: object, message: string) => t.diagnostic(`sink: ${message} ${JSON.stringify(fields)}`)
      }
    })
    let sinkEnded: unknown
    void sink.done().catch((error: unknown) => (sinkEnded = error))
    t.after(() => Promise.all([consumer.stop(), sink.close()]))
    await Promise.all([consumer.start(), sink.start()])

    const faults = runFaults(cluster, topic, { faults: FAULTS, gapMs: 4000, downMs: 8000 }, line => t.diagnostic(line))
    const ledger = await pacedSends(producer, { perSecond: RATE, batch: 250, keys: 60, until: faults })
    const schedule = await faults
    const failed = ledger.filter(entry => !entry.ok)
    const acknowledged = ledger.filter(entry => entry.ok)
    const latency = percentiles(ledger.map(entry => entry.doneAt - entry.sentAt))
    t.diagnostic(
      `${ledger.length} sent, ${failed.length} failed; latency p50 ${latency.p50.toFixed(0)} ms, p99 ${latency.p99.toFixed(0)} ms, max ${latency.max.toFixed(0)} ms; faults ${schedule.map(f => `${f.kind} node ${f.node} at ${f.at} ms`).join(', ')}`
    )
    assert.deepEqual(failed.slice(0, 3), [], `${failed.length} sends failed`)
    assert.equal(producer.metrics().breakerTrips, 0, 'one node down is not an outage: the breaker stayed closed')

    const check = await readBack(brokers, topic, ledger)
    assert.deepEqual(check.lost.slice(0, 5), [], `${check.lost.length} acknowledged records lost`)
    assert.deepEqual(check.duplicates.slice(0, 5), [], `${check.duplicates.length} records written twice`)
    assert.deepEqual(check.outOfOrderKeys.slice(0, 5), [], 'each key in send order')

    assert.ok(await eventually(() => seen.size === acknowledged.length, 120_000), `consumer saw ${seen.size}`)
    const stored = async () => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`))[0]?.n)
    assert.ok(
      await eventually(async () => (await stored()) === acknowledged.length, 120_000),
      `sink stored ${await stored()} of ${acknowledged.length}; health ${sink.consumer.health}${sinkEnded ? `, stopped: ${sinkEnded instanceof Error ? sinkEnded.message : JSON.stringify(sinkEnded)}` : ''}; ${JSON.stringify(sink.consumer.metrics(), (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`
    )
    assert.ok(await eventually(async () => (await sink.lag()) === 0, 60_000), 'sink lag 0')
    assert.ok(
      await eventually(async () => (await consumer.lag()).every(p => p.lag === 0n), 60_000),
      'consumer lag 0 (its commits caught up)'
    )
    assert.equal(consumer.health, 'running', 'the consumer never stopped')
  }
)

test(
  'control: a 1 s delivery timeout under a node kill fails sends, and reports every one',
  { timeout: 300_000 },
  async t => {
    const brokers = cluster.brokers
    const { topic } = await createTestTopic({ brokers, ...replicated })
    const producer = new Producer<Numbered>({ brokers, topic, env: {}, deliveryTimeoutMs: 1000 })
    t.after(() => producer.close({ timeoutMs: 5000 }))
    const faults = runFaults(cluster, topic, { faults: ['kill'], gapMs: 2000, downMs: 8000 })
    const ledger = await pacedSends(producer, { perSecond: 500, batch: 50, keys: 60, until: faults })
    const failed = ledger.filter(entry => !entry.ok)
    t.diagnostic(`${ledger.length} sent, ${failed.length} failed`)
    assert.ok(failed.length > 0, 'a 1 s delivery timeout cannot ride through a leader election')
    assert.ok(
      failed.every(entry => /KAFKIT|deliveryTimeoutMs|acknowledged/.test(entry.error ?? '')),
      failed[0]?.error
    )
    // Every message has its outcome, and nothing acknowledged is missing.
    assert.deepEqual(
      ledger.map(entry => entry.id),
      Array.from({ length: ledger.length }, (_v, i) => i)
    )
    assert.deepEqual((await readBack(brokers, topic, ledger)).lost, [], 'nothing acknowledged lost')
  }
)

test(
  'messages whose maxRetries run out (NOT_ENOUGH_REPLICAS) go to the producer DLQ',
  { timeout: 180_000 },
  async t => {
    const all = cluster.brokers
    const { topic: strict } = await createTestTopic({
      brokers: all,
      replicas: 3,
      configs: { 'min.insync.replicas': '3' }
    })
    const { topic: dlq } = await createTestTopic({
      brokers: all,
      replicas: 3,
      configs: { 'min.insync.replicas': '2' },
      prefix: 'kafkit-test-dlq'
    })
    const down = (await leaderOf(all, strict, 0)) === 3 ? 2 : 3
    const brokers = all.filter((_, i) => i + 1 !== down)
    const producer = new Producer<string>({
      brokers,
      topic: strict,
      env: {},
      valueSerde: stringSerde,
      maxRetries: 3,
      retryBackoff: { baseMs: 50, maxMs: 200 },
      dlqTopic: dlq,
      lingerMs: 0
    })
    t.after(() => producer.close({ timeoutMs: 5000 }))
    // Registered (producer id) and connected while all three nodes run: only the writes are under test.
    assert.equal((await producer.send({ value: 'warm-up' })).status, 'sent')
    await stopNode(cluster, down, 'SIGKILL')
    t.after(() => restartWhenPortFree(cluster))

    const results = await producer.sendBatch([
      { key: 'k1', value: 'first', headers: { origin: 'test' } },
      { key: 'k2', value: 'second' }
    ])
    for (const outcome of results) {
      assert.ok(outcome.ok, `dead-lettered, not failed: ${outcome.ok ? '' : outcome.error.message}`)
      assert.equal(outcome.result.status, 'dead-lettered')
      assert.equal(outcome.result.topic, strict)
      assert.equal(outcome.result.deadLetter?.topic, dlq)
      const error = outcome.result.deadLetter?.error
      assert.ok(isKafkitError(error) && error.code === 'KAFKIT_PRODUCE_FAILED' && error.retryable)
      assert.match(error.message, /not acknowledged after 4 attempt\(s\)/)
    }
    const metrics = producer.metrics()
    assert.equal(metrics.messagesDeadLettered, 2)
    assert.equal(metrics.messagesSent, 1, 'the warm-up only')
    assert.ok(metrics.retries >= 3)

    const records = await readTopic(brokers, dlq, 2, { quietMs: 500 })
    assert.deepEqual(records.map(r => r.value.toString()).sort(), ['first', 'second'])
    const first = records.find(r => r.value.toString() === 'first')
    const headers = new Map([...(first?.headers ?? [])].map(([name, value]) => [name.toString(), value.toString()]))
    const header = (name: string) => headers.get(name)
    assert.equal(first?.key.toString(), 'k1')
    assert.equal(header('origin'), 'test', 'original headers kept')
    assert.ok(header('event-id'), 'the standard headers too')
    assert.equal(header('kafkit-dlq-origin-topic'), strict)
    assert.equal(header('kafkit-dlq-error-code'), 'KAFKIT_PRODUCE_FAILED')
    assert.equal(header('kafkit-dlq-error-kind'), 'transient')
    assert.equal(header('kafkit-dlq-attempts'), '4', JSON.stringify([...headers]))
    assert.match(header('kafkit-dlq-error-message') ?? '', /NOT_ENOUGH_REPLICAS|fewer in-sync replicas/)
  }
)
