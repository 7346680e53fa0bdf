/**
 * PostgresProcessedIdStore against the real PostgreSQL, a fresh table per test: claim, complete and
 * release; a lease that expires lets another worker take over; the TTL is honoured; of 20 concurrent
 * claimers exactly one wins; the idempotent consumer over it runs a redelivered event once (also across
 * two store instances); expired rows are purged; and a database that cannot be reached (or a missing
 * table) fails with KAFKIT_STORE_UNAVAILABLE without running the handler.
 */
import assert from 'node:assert/strict'
import { after, test, type TestContext } from 'node:test'
import pg from 'pg'
import { PostgresProcessedIdStore } from '../../../src/postgres/index.ts'
import { idempotentConsumer } from '../../../src/handling/middleware/idempotent-consumer.ts'
import { InMemoryProcessedIdStore, type ProcessedIdStore } from '../../../src/handling/processed-id-store.ts'
import { ConfigError, isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { explicitKind } from '../../../src/handling/errors.ts'
import { uniqueName } from '../../../src/testing/topics.ts'
import { databaseUrl } from '../../helpers/env.ts'
import { sleep, waitFor } from '../../helpers/wait.ts'
import { consumed } from '../../unit/handling/fixtures.ts'

/** Drops the tables of the tests (their own pools are ended first: after-hooks run in order). */
const admin = new pg.Pool({ connectionString: databaseUrl(), max: 1 })
admin.on('error', () => undefined)
after(() => admin.end())
const dropAfter = (t: TestContext, table: string) => t.after(() => admin.query(`DROP TABLE IF EXISTS "${table}"`))

function testPool(t: TestContext, max = 4): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl(), max, connectionTimeoutMillis: 5000 })
  pool.on('error', () => undefined)
  t.after(() => pool.end())
  return pool
}

/** A store on a table of this test's own (created, and dropped after the test). */
async function freshStore(
  t: TestContext,
  options: { ttl?: number | string; pool?: pg.Pool } = {}
): Promise<{ store: PostgresProcessedIdStore; pool: pg.Pool; table: string }> {
  const pool = options.pool ?? testPool(t)
  const table = uniqueName('kafkit_pids').replaceAll('-', '_')
  const store = new PostgresProcessedIdStore({
    pool,
    table,
    ...(options.ttl === undefined ? {} : { ttl: options.ttl })
  })
  await store.createTable()
  dropAfter(t, table)
  return { store, pool, table }
}

const ctx = () => ({ signal: new AbortController().signal, groupId: 'billing', attempt: 1 })

function unavailable(error: unknown, retryable = true): boolean {
  return isKafkitError(error) && error.code === 'KAFKIT_STORE_UNAVAILABLE' && error.retryable === retryable
}

test('claim, complete and release: one claimer, processed ids stay processed, scopes are apart', async t => {
  const { store } = await freshStore(t)
  assert.equal(await store.claim('billing', 'evt-1', 60_000), 'claimed')
  assert.equal(await store.claim('billing', 'evt-1', 60_000), 'in-progress')
  assert.equal(await store.claim('shipping', 'evt-1', 60_000), 'claimed', 'another scope has its own ids')
  await store.release('billing', 'evt-1')
  assert.equal(await store.claim('billing', 'evt-1', 60_000), 'claimed', 'a released claim is claimable again')
  await store.complete('billing', 'evt-1')
  assert.equal(await store.claim('billing', 'evt-1', 60_000), 'processed')
  await store.release('billing', 'evt-1')
  assert.equal(await store.claim('billing', 'evt-1', 60_000), 'processed', 'release never forgets a processed id')
  await store.release('billing', 'never-claimed')
  await store.complete('billing', 'never-claimed')
  assert.equal(await store.claim('billing', 'never-claimed', 60_000), 'processed')
})

test('an expired lease lets another claimer take over', async t => {
  const { store } = await freshStore(t)
  const started = Date.now()
  assert.equal(await store.claim('billing', 'evt-lease', 300), 'claimed')
  assert.equal(await store.claim('billing', 'evt-lease', 300), 'in-progress')
  await waitFor(async () => (await store.claim('billing', 'evt-lease', 60_000)) === 'claimed', 5000, 'takeover', 50)
  assert.ok(Date.now() - started >= 250, `taken over after ${Date.now() - started} ms, before the 300 ms lease ended`)
  assert.equal(await store.claim('billing', 'evt-lease', 300), 'in-progress', 'the new claim has its own lease')
})

test('ttl: a processed id is remembered for the ttl, then claimable again', async t => {
  const { store, pool, table } = await freshStore(t, { ttl: 300 })
  assert.equal(store.config.ttl, 300)
  assert.equal(await store.claim('billing', 'evt-ttl', 60_000), 'claimed')
  await store.complete('billing', 'evt-ttl')
  const [row] = (
    await pool.query<{ state: string; left_ms: number }>(
      `SELECT state, extract(epoch FROM expires_at - now()) * 1000 AS left_ms FROM "${table}" WHERE id = 'evt-ttl'`
    )
  ).rows
  assert.equal(row?.state, 'processed')
  assert.ok(row.left_ms > 0 && row.left_ms <= 300, `expires in ${row.left_ms} ms`)
  assert.equal(await store.claim('billing', 'evt-ttl', 60_000), 'processed')
  await sleep(350)
  assert.equal(await store.claim('billing', 'evt-ttl', 60_000), 'claimed', 'remembered no longer than the ttl')

  const week = new PostgresProcessedIdStore({ pool, table })
  assert.equal(week.config.ttl, 7 * 24 * 3600 * 1000, 'default 7 days')
  assert.equal(new PostgresProcessedIdStore({ pool, table, ttl: '5m' }).config.ttl, 300_000)
})

test('20 concurrent claims of one id: exactly one is claimed (10 ids, 20 connections)', async t => {
  const { store } = await freshStore(t, { pool: testPool(t, 20) })
  for (let round = 0; round < 10; round++) {
    const id = `evt-race-${round}`
    const results = await Promise.all(Array.from({ length: 20 }, () => store.claim('billing', id, 60_000)))
    assert.equal(results.filter(r => r === 'claimed').length, 1, `round ${round}: ${results.join(',')}`)
    assert.equal(results.filter(r => r === 'in-progress').length, 19)
    await store.complete('billing', id)
    const after = await Promise.all(Array.from({ length: 20 }, () => store.claim('billing', id, 60_000)))
    assert.deepEqual(new Set(after), new Set(['processed']))
  }
})

test('idempotent consumer over the store: a redelivered event runs once, also on another worker', async t => {
  const { store, pool, table } = await freshStore(t)
  const other = new PostgresProcessedIdStore({ pool, table })
  const runs: string[] = []
  const handler = (s: ProcessedIdStore) =>
    idempotentConsumer({ store: s })(m => {
      runs.push(m.meta.eventId ?? '')
      return Promise.resolve()
    })
  const message = consumed({ headers: { 'event-id': 'evt-mw' } })
  await handler(store)(message, ctx())
  await handler(store)(message, ctx())
  await handler(other)(message, ctx())
  assert.deepEqual(runs, ['evt-mw'])
  assert.equal(await store.claim('billing', 'evt-mw', 1000), 'processed')
})

test('createTable is idempotent and safe from several workers at once; purgeExpired deletes expired rows', async t => {
  const pool = testPool(t)
  const table = uniqueName('kafkit_pids').replaceAll('-', '_')
  dropAfter(t, table)
  // Five workers creating the same new table at once, then once more.
  await Promise.all(Array.from({ length: 5 }, () => new PostgresProcessedIdStore({ pool, table }).createTable()))
  const store = new PostgresProcessedIdStore({ pool, table, ttl: 100 })
  await store.createTable()
  const columns = await pool.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`,
    [table]
  )
  assert.deepEqual(
    columns.rows.map(r => r.column_name),
    ['scope', 'id', 'state', 'expires_at']
  )
  const indexes = await pool.query<{ indexdef: string }>(`SELECT indexdef FROM pg_indexes WHERE tablename = $1`, [
    table
  ])
  assert.ok(
    indexes.rows.some(r => /\(expires_at\)/.test(r.indexdef)),
    'an index on expires_at'
  )

  for (let i = 0; i < 5; i++) {
    await store.claim('billing', `done-${i}`, 60_000)
    await store.complete('billing', `done-${i}`)
  }
  for (let i = 0; i < 3; i++) await store.claim('billing', `busy-${i}`, 60_000)
  await store.claim('billing', 'crashed', 50)
  await sleep(150)
  assert.equal(await store.purgeExpired(), 6, '5 processed past their ttl and 1 claim past its lease')
  assert.equal(await store.purgeExpired(), 0)
  const left = await pool.query<{ id: string }>(`SELECT id FROM "${table}" ORDER BY id`)
  assert.deepEqual(
    left.rows.map(r => r.id),
    ['busy-0', 'busy-1', 'busy-2']
  )
})

test('a missing table fails with KAFKIT_STORE_UNAVAILABLE, not retryable, saying to call createTable()', async t => {
  const pool = testPool(t)
  const store = new PostgresProcessedIdStore({ pool, table: uniqueName('missing').replaceAll('-', '_') })
  const error = await store.claim('billing', 'evt', 1000).then(
    () => assert.fail('claimed on a missing table'),
    (e: unknown) => e
  )
  assert.ok(unavailable(error, false), String(error))
  assert.match((error as Error).message, /does not exist; call createTable\(\)/)
})

test('an unreachable database: KAFKIT_STORE_UNAVAILABLE, retryable, and the handler does not run', async t => {
  const pool = new pg.Pool({
    connectionString: 'postgres://kafkit:s3cret-pass@127.0.0.1:1/test',
    connectionTimeoutMillis: 2000
  })
  pool.on('error', () => undefined)
  t.after(() => pool.end())
  const store = new PostgresProcessedIdStore({ pool })
  for (const call of [
    () => store.claim('billing', 'evt-down', 1000),
    () => store.complete('billing', 'evt-down'),
    () => store.release('billing', 'evt-down'),
    () => store.createTable()
  ]) {
    const started = Date.now()
    const error = await call().then(
      () => assert.fail('answered without a database'),
      (e: unknown) => e
    )
    assert.ok(Date.now() - started < 3000, `failed after ${Date.now() - started} ms`)
    assert.ok(unavailable(error), String(error))
    assert.doesNotMatch((error as Error).message, /s3cret-pass/)
  }
  const error = await store.claim('billing', 'evt-down', 1000).catch((e: unknown) => e)
  assert.equal(explicitKind(error), 'transient', 'a TransientError: the consumer retries the message')

  // The same message through the middleware: over the unreachable store the handler never runs, over
  // the in-memory store (the control) it does, so the first check could fail.
  for (const [s, expected] of [
    [store, 0],
    [new InMemoryProcessedIdStore(), 1]
  ] as const) {
    let runs = 0
    const handler = idempotentConsumer({ store: s })(() => Promise.resolve(void runs++))
    const outcome = await handler(consumed({ headers: { 'event-id': 'evt-down' } }), ctx()).then(
      () => 'ok',
      (e: unknown) => e
    )
    assert.equal(runs, expected)
    if (expected === 0) assert.ok(unavailable(outcome), String(outcome))
    else assert.equal(outcome, 'ok')
  }
})

test('options are validated: bad table name, unknown option, bad lease', async t => {
  const pool = testPool(t)
  assert.throws(() => new PostgresProcessedIdStore({ pool, table: 'a.b.c' }), ConfigError)
  assert.throws(() => new PostgresProcessedIdStore({ pool, ttl: 'forever' }), /ttl/)
  assert.throws(() => new PostgresProcessedIdStore({ pool, ...({ tll: 5 } as object) }), /unknown option `tll`/)
  const { store } = await freshStore(t, { pool })
  assert.throws(() => store.claim('billing', 'evt', Number.NaN), ConfigError)
  await store.close()
  await assert.rejects(store.claim('billing', 'evt', 1000), (e: unknown) => unavailable(e))
})
