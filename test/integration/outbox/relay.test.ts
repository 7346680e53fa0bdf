/**
 * The outbox and its relay on the real PostgreSQL and Kafka: committed rows are published with the
 * standard headers and deleted, rolled-back rows never; a transaction that took its id early and
 * commits late is still published (NOTIFY wakes the relay); each key keeps its commit order under
 * concurrent writers; a poison row goes to the dead-letter table without holding back other keys; a
 * standby takes over when the leader stops; retention keeps published rows, then deletes them.
 */
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import pg from 'pg'
import { Outbox } from '../../../src/postgres/outbox.ts'
import { OutboxRelay } from '../../../src/postgres/outbox-relay.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers, databaseUrl } from '../../helpers/env.ts'
import { readTopic, type RawMessage } from '../../helpers/read-topic.ts'
import { waitFor } from '../../helpers/wait.ts'

const env = {}
const quiet = { debug() {}, info() {}, warn() {}, error() {} }

async function setUp(t: TestContext, partitions = 3) {
  // Cleanups run last-registered first (node:test runs `after` hooks in registration order).
  const cleanups: (() => Promise<unknown>)[] = []
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup()
  })
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions })
  cleanups.push(drop)
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: 10 })
  cleanups.push(() => pool.end())
  const table = uniqueName('outbox')
    .replaceAll(/[^A-Za-z0-9_]/g, '_')
    .slice(0, 40)
  const outbox = new Outbox({ pool, table, topic, source: '/tests' })
  await outbox.createTable()
  cleanups.push(() => pool.query(`DROP TABLE IF EXISTS ${table}, ${table}_dead_letters`))
  const relay = (options: Partial<ConstructorParameters<typeof OutboxRelay>[0]> = {}) => {
    const r = new OutboxRelay({ database: databaseUrl(), brokers, table, env, logger: quiet, ...options })
    cleanups.push(() => r.stop())
    return r
  }
  const count = async (sql = `SELECT count(*)::int AS n FROM ${table}`) =>
    ((await pool.query<{ n: number }>(sql)).rows[0] as { n: number }).n
  return { brokers, topic, pool, table, outbox, relay, count }
}

test('committed rows are published with their headers and deleted; rolled-back rows never', async t => {
  const { brokers, topic, outbox, relay, count, table } = await setUp(t)
  await outbox.transaction(async tx => {
    await outbox.add(tx, { key: 'todo-1', type: 'todos.task.created', data: { title: 'a' }, correlationId: 'c-1' })
    await outbox.addMany(tx, [
      { key: 'todo-1', type: 'todos.task.completed', data: { done: true } },
      { key: 'todo-2', type: 'todos.task.created', data: { title: 'b' }, headers: { tenant: 't1' } }
    ])
  })
  await assert.rejects(
    outbox.transaction(async tx => {
      await outbox.add(tx, { key: 'todo-3', type: 'todos.task.created', data: { title: 'never' } })
      throw new Error('the business rule said no')
    }),
    /the business rule said no/
  )
  const r = relay()
  r.start()
  await waitFor(async () => (await count()) === 0, 30_000, 'the outbox to drain')
  const records = await readTopic(brokers, topic, 3, { quietMs: 1000 })
  assert.equal(records.length, 3, 'the three committed events, not the rolled-back one')
  const headersOf = (record: RawMessage) => new Map([...record.headers].map(([k, v]) => [k.toString(), v.toString()]))
  const created = records.find(
    r => r.key.toString() === 'todo-1' && headersOf(r).get('event-type') === 'todos.task.created'
  )
  assert.ok(created)
  assert.equal(created.key.toString(), 'todo-1')
  assert.deepEqual(JSON.parse(created.value.toString()), { title: 'a' })
  assert.equal(headersOf(created).get('correlation-id'), 'c-1')
  assert.equal(headersOf(created).get('source'), '/tests')
  assert.equal(headersOf(created).get('content-type'), 'application/json')
  assert.match(headersOf(created).get('event-id') ?? '', /^[0-9a-f-]{36}$/)
  const second = records.find(r => r.key.toString() === 'todo-2')
  assert.equal(second && headersOf(second).get('tenant'), 't1')
  assert.equal(r.health.published, 3)
  assert.equal(r.health.state, 'leading')
  assert.equal(await count(`SELECT count(*)::int AS n FROM ${table}_dead_letters`), 0)
})

test('a transaction that took its id early and commits late is published; NOTIFY wakes the relay', async t => {
  const { brokers, topic, outbox, relay, pool, count } = await setUp(t)
  const r = relay({ pollIntervalMs: 60_000 })
  r.start()
  await waitFor(() => r.health.state === 'leading', 30_000, 'leadership')
  const early = await pool.connect()
  await early.query('BEGIN')
  const first = await outbox.add(early, { key: 'a', type: 't', data: { n: 1 } })
  const second = await outbox.transaction(tx => outbox.add(tx, { key: 'b', type: 't', data: { n: 2 } }))
  assert.ok(first.id < second.id, 'the early transaction holds the smaller id')
  await waitFor(() => r.health.published === 1, 10_000, 'the later transaction to be published (by NOTIFY)')
  await early.query('COMMIT')
  early.release()
  await waitFor(() => r.health.published === 2, 10_000, 'the early transaction to be published after its commit')
  assert.equal(await count(), 0)
  const records = await readTopic(brokers, topic, 2, { quietMs: 500 })
  assert.deepEqual(records.map(r => (JSON.parse(r.value.toString()) as { n: number }).n).sort(), [1, 2])
})

test('each key keeps its commit order under concurrent writers', async t => {
  const { brokers, topic, outbox, relay, count } = await setUp(t)
  const r = relay()
  r.start()
  const keys = ['k1', 'k2', 'k3', 'k4']
  const perWriter = 50
  // add() holds the key's lock until the transaction ends, so the order in which writers append to this
  // list (after add, before commit) is the order in which their transactions commit, per key.
  const committedOrder = new Map<string, string[]>(keys.map(key => [key, []]))
  await Promise.all(
    Array.from({ length: 8 }, (_, writer) =>
      (async () => {
        for (let i = 0; i < perWriter; i++) {
          const key = keys[(writer * 7 + i) % keys.length] as string
          const token = `${writer}-${i}`
          await outbox.transaction(async tx => {
            await outbox.add(tx, { key, type: 't', data: { token } })
            committedOrder.get(key)?.push(token)
            await new Promise(resolve => setTimeout(resolve, Math.random() * 5))
          })
        }
      })()
    )
  )
  await waitFor(async () => (await count()) === 0, 60_000, 'the outbox to drain')
  const records = await readTopic(brokers, topic, 8 * perWriter, { quietMs: 500 })
  assert.equal(records.length, 8 * perWriter)
  const published = new Map<string, string[]>(keys.map(key => [key, []]))
  for (const record of records.sort((a, b) => Number(a.offset - b.offset))) {
    published.get(record.key.toString())?.push((JSON.parse(record.value.toString()) as { token: string }).token)
  }
  for (const key of keys) assert.deepEqual(published.get(key), committedOrder.get(key), `order of ${key}`)
})

test('a row Kafka refuses for good goes to the dead-letter table and holds back no other key', async t => {
  const { brokers, topic, outbox, relay, count, table, pool } = await setUp(t, 1)
  await outbox.transaction(async tx => {
    await outbox.add(tx, { key: 'a', type: 't', data: { n: 1 } })
    await outbox.add(tx, { key: 'big', type: 't', data: { blob: 'x'.repeat(2_000_000) } })
    await outbox.add(tx, { key: 'b', type: 't', data: { n: 2 } })
    await outbox.add(tx, { key: 'big', type: 't', data: { n: 3 } })
  })
  const letters: string[] = []
  const r = relay()
  r.on('dead-letter', letter => letters.push(letter.code ?? ''))
  r.start()
  await waitFor(async () => (await count()) === 0, 30_000, 'the outbox to drain')
  assert.deepEqual(letters, ['KAFKIT_MESSAGE_TOO_LARGE'])
  const { rows } = await pool.query<{ aggregate_id: string; error_code: string; reason: string }>(
    `SELECT aggregate_id, error_code, reason FROM ${table}_dead_letters`
  )
  assert.equal(rows.length, 1)
  assert.equal(rows[0]?.aggregate_id, 'big')
  assert.equal(rows[0]?.error_code, 'KAFKIT_MESSAGE_TOO_LARGE')
  assert.match(rows[0]?.reason ?? '', /large|bytes/i)
  const records = await readTopic(brokers, topic, 3, { quietMs: 500 })
  assert.deepEqual(
    records.map(r => (JSON.parse(r.value.toString()) as { n: number }).n),
    [1, 2, 3],
    'the other rows in order, the later row of the poison key included'
  )
  assert.equal(r.health.deadLettered, 1)
})

test('with a retention, published rows keep published_at and are deleted once it passed', async t => {
  const { outbox, relay, count, table } = await setUp(t)
  const r = relay({ retentionMs: 1500, cleanupIntervalMs: 200 })
  r.start()
  await outbox.transaction(tx =>
    outbox.addMany(
      tx,
      [1, 2, 3].map(n => ({ key: `k${n}`, type: 't', data: { n } }))
    )
  )
  await waitFor(() => r.health.published === 3, 10_000, 'the rows published')
  assert.equal(await count(`SELECT count(*)::int AS n FROM ${table} WHERE published_at IS NOT NULL`), 3)
  await waitFor(async () => (await count()) === 0, 10_000, 'the rows deleted after the retention')
})

test('a standby takes over when the leader stops', async t => {
  const { outbox, relay } = await setUp(t)
  const first = relay()
  first.start()
  await waitFor(() => first.health.state === 'leading', 10_000, 'the first relay to lead')
  const second = relay({ leaderCheckIntervalMs: 200 })
  second.start()
  await waitFor(() => second.health.state === 'standby', 10_000, 'the second relay to stand by')
  await outbox.transaction(tx => outbox.add(tx, { key: 'a', type: 't', data: { n: 1 } }))
  await waitFor(() => first.health.published === 1, 10_000, 'the leader to publish')
  await first.stop()
  await waitFor(() => second.health.state === 'leading', 5_000, 'the standby to lead')
  await outbox.transaction(tx => outbox.add(tx, { key: 'a', type: 't', data: { n: 2 } }))
  await waitFor(() => second.health.published === 1, 10_000, 'the new leader to publish')
  assert.equal(second.health.healthy, true)
})

test('stop() returns promptly while Kafka is unreachable, and the rows stay', async t => {
  const { outbox, relay, count } = await setUp(t)
  await outbox.transaction(tx => outbox.add(tx, { key: 'a', type: 't', data: { n: 1 } }))
  // Nothing listens on port 1: every send waits for the delivery timeout (default 2 minutes).
  const r = relay({ brokers: ['127.0.0.1:1'] })
  r.start()
  await waitFor(() => r.health.state === 'waiting-for-kafka', 15_000, 'the relay to report Kafka down')
  const started = Date.now()
  await r.stop()
  assert.ok(Date.now() - started < 3000, `stop() took ${Date.now() - started} ms`)
  assert.equal(r.health.state, 'stopped')
  assert.equal(await count(), 1, 'the row is still there for the next relay')
})
