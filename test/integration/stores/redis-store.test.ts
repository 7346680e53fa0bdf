/**
 * RedisProcessedIdStore against a real Redis (started by the test when none answers on 6379), a fresh
 * key prefix per test: claim, complete and release; lease and TTL as key expiries (PTTL); of 20
 * concurrent claimers exactly one wins; the idempotent consumer over it runs a redelivered event once;
 * and a Redis that cannot be reached (a closed port, or a server killed with SIGKILL mid-run) fails
 * every call with KAFKIT_STORE_UNAVAILABLE within seconds, never runs the handler unclaimed, never
 * shows the password, and recovers when the server is back.
 */
import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { after, before, test, type TestContext } from 'node:test'
import { Redis } from 'ioredis'
import { RedisProcessedIdStore, type RedisProcessedIdStoreInit } from '../../../src/redis/index.ts'
import { idempotentConsumer } from '../../../src/handling/middleware/idempotent-consumer.ts'
import { InMemoryProcessedIdStore, type ProcessedIdStore } from '../../../src/handling/processed-id-store.ts'
import { ConfigError, isKafkitError } from '../../../src/errors/kafkit-error.ts'
import { explicitKind } from '../../../src/handling/errors.ts'
import { uniqueName } from '../../../src/testing/topics.ts'
import { ensureRedis, redisUrl, startRedisServer } from '../../helpers/redis.ts'
import { sleep, waitFor } from '../../helpers/wait.ts'
import { consumed } from '../../unit/handling/fixtures.ts'

let admin: Redis

before(async () => {
  await ensureRedis()
  admin = new Redis(redisUrl())
})
after(() => admin.quit())

/** A store with a key prefix of this test's own; its keys are deleted after the test. */
function freshStore(t: TestContext, options: Partial<RedisProcessedIdStoreInit> = {}): RedisProcessedIdStore {
  const keyPrefix = `${uniqueName('kafkit-test')}:`
  const store = new RedisProcessedIdStore({ url: redisUrl(), keyPrefix, ...options } as RedisProcessedIdStoreInit)
  t.after(async () => {
    await store.close()
    const keys = await admin.keys(`${keyPrefix}*`)
    if (keys.length > 0) await admin.del(...keys)
  })
  return store
}

const ctx = () => ({ signal: new AbortController().signal, groupId: 'billing', attempt: 1 })

function unavailable(error: unknown, retryable = true): boolean {
  return isKafkitError(error) && error.code === 'KAFKIT_STORE_UNAVAILABLE' && error.retryable === retryable
}

/** The messages of an error and its causes, to look for a secret in. */
function allText(error: unknown): string {
  const parts: string[] = []
  for (let e = error, depth = 0; e && depth < 8; depth++, e = (e as { cause?: unknown }).cause) {
    const { message, details } = e as { message?: unknown; details?: unknown }
    parts.push(String(message), JSON.stringify(details ?? null))
  }
  return parts.join('\n')
}

/** Runs `call`, answering its outcome and how long it took. */
async function timed(call: () => Promise<unknown>): Promise<{ ms: number; error: unknown; value: unknown }> {
  const started = Date.now()
  try {
    const value = await call()
    return { ms: Date.now() - started, error: undefined, value }
  } catch (error) {
    return { ms: Date.now() - started, error, value: undefined }
  }
}

test('claim, complete and release: one claimer, processed ids stay processed, scopes are apart', async t => {
  const store = freshStore(t)
  assert.equal(await store.claim('billing', 'evt-1', 60_000), 'claimed')
  assert.equal(await store.claim('billing', 'evt-1', 60_000), 'in-progress')
  assert.equal(await store.claim('shipping', 'evt-1', 60_000), 'claimed', 'another scope has its own ids')
  await store.release('billing', 'evt-1')
  assert.equal(await store.claim('billing', 'evt-1', 60_000), 'claimed', 'a released claim is claimable again')
  await store.complete('billing', 'evt-1')
  assert.equal(await store.claim('billing', 'evt-1', 60_000), 'processed')
  await store.release('billing', 'evt-1')
  assert.equal(await store.claim('billing', 'evt-1', 60_000), 'processed', 'release never forgets a processed id')
  assert.equal(await admin.get(store.keyFor('billing', 'evt-1')), 'processed')
  // `:` in a scope cannot make two (scope, id) pairs share a key.
  assert.notEqual(store.keyFor('a:b', 'c'), store.keyFor('a', 'b:c'))
  assert.equal(await store.claim('a:b', 'c', 60_000), 'claimed')
  assert.equal(await store.claim('a', 'b:c', 60_000), 'claimed')
  assert.equal(store.keyFor('billing', 'evt-1'), `${store.config.keyPrefix}billing:evt-1`)
})

test('an expired lease lets another claimer take over; the claim key expires with the lease', async t => {
  const store = freshStore(t)
  const started = Date.now()
  assert.equal(await store.claim('billing', 'evt-lease', 300), 'claimed')
  const pttl = await admin.pttl(store.keyFor('billing', 'evt-lease'))
  assert.ok(pttl > 0 && pttl <= 300, `PTTL ${pttl}`)
  assert.equal(await store.claim('billing', 'evt-lease', 300), 'in-progress')
  await waitFor(async () => (await store.claim('billing', 'evt-lease', 60_000)) === 'claimed', 5000, 'takeover', 50)
  assert.ok(Date.now() - started >= 250, `taken over after ${Date.now() - started} ms, before the 300 ms lease ended`)
  assert.equal(await store.claim('billing', 'evt-lease', 300), 'in-progress', 'the new claim has its own lease')
})

test('ttl: a processed id is remembered for the ttl (PTTL), then claimable again', async t => {
  const store = freshStore(t, { ttl: 300 })
  assert.equal(await store.claim('billing', 'evt-ttl', 60_000), 'claimed')
  await store.complete('billing', 'evt-ttl')
  const pttl = await admin.pttl(store.keyFor('billing', 'evt-ttl'))
  assert.ok(pttl > 0 && pttl <= 300, `PTTL ${pttl}`)
  assert.equal(await store.claim('billing', 'evt-ttl', 60_000), 'processed')
  await sleep(350)
  assert.equal(await store.claim('billing', 'evt-ttl', 60_000), 'claimed', 'remembered no longer than the ttl')

  const week = freshStore(t)
  assert.equal(week.config.ttl, 7 * 24 * 3600 * 1000, 'default 7 days')
  await week.complete('billing', 'evt-week')
  const weekPttl = await admin.pttl(week.keyFor('billing', 'evt-week'))
  assert.ok(weekPttl > 7 * 24 * 3600 * 1000 - 5000, `PTTL ${weekPttl}`)
  assert.equal(freshStore(t, { ttl: '5m' }).config.ttl, 300_000)
})

test('20 concurrent claims of one id: exactly one is claimed (one client, and 20 workers of their own)', async t => {
  const store = freshStore(t)
  const workers = Array.from(
    { length: 20 },
    () => new RedisProcessedIdStore({ url: redisUrl(), keyPrefix: store.config.keyPrefix })
  )
  t.after(() => Promise.all(workers.map(w => w.close())))
  for (let round = 0; round < 10; round++) {
    const id = `evt-race-${round}`
    const claimers = round % 2 === 0 ? workers : workers.map(() => store)
    const results = await Promise.all(claimers.map(w => w.claim('billing', id, 60_000)))
    assert.equal(results.filter(r => r === 'claimed').length, 1, `round ${round}: ${results.join(',')}`)
    assert.equal(results.filter(r => r === 'in-progress').length, 19)
    await store.complete('billing', id)
    const again = await Promise.all(claimers.map(w => w.claim('billing', id, 60_000)))
    assert.deepEqual(new Set(again), new Set(['processed']))
  }
})

test('idempotent consumer over the store: a redelivered event runs once, also on another worker', async t => {
  const store = freshStore(t)
  const client = new Redis(redisUrl())
  t.after(() => client.quit())
  const other = new RedisProcessedIdStore({ client, keyPrefix: store.config.keyPrefix })
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
  await other.close()
  assert.equal(client.status, 'ready', 'closing the store leaves a borrowed client open')
  assert.equal(await store.claim('billing', 'evt-mw', 1000), 'processed')
})

test('the scripts survive a flushed script cache; keys of other data fail, not retryable', async t => {
  const store = freshStore(t)
  assert.equal(await store.claim('billing', 'evt-a', 60_000), 'claimed')
  await admin.script('FLUSH')
  assert.equal(await store.claim('billing', 'evt-b', 60_000), 'claimed')
  await admin.script('FLUSH')
  await store.release('billing', 'evt-b')
  assert.equal(await store.claim('billing', 'evt-b', 60_000), 'claimed')

  await admin.hset(store.keyFor('billing', 'a-hash'), 'field', 'value')
  const wrongType = await store.claim('billing', 'a-hash', 1000).catch((e: unknown) => e)
  assert.ok(unavailable(wrongType, false), String(wrongType))
  assert.match(String(wrongType), /WRONGTYPE.*keyPrefix/)
  await admin.set(store.keyFor('billing', 'a-string'), 'someone else')
  const foreign = await store.claim('billing', 'a-string', 1000).catch((e: unknown) => e)
  assert.ok(unavailable(foreign, false), String(foreign))
})

test('Redis unreachable (closed port): KAFKIT_STORE_UNAVAILABLE within seconds, no password, handler not run', async t => {
  const owned = new RedisProcessedIdStore({ url: 'redis://kafkit:s3cret-pass@127.0.0.1:1/0' })
  // A borrowed client with ioredis defaults (offline queue, 20 retries per request): still bounded.
  const client = new Redis({ host: '127.0.0.1', port: 1, password: 's3cret-pass', lazyConnect: true })
  client.on('error', () => undefined)
  const borrowed = new RedisProcessedIdStore({ client })
  t.after(async () => {
    await owned.close()
    client.disconnect()
  })
  for (const store of [owned, borrowed]) {
    for (const call of [
      () => store.claim('billing', 'evt-down', 1000),
      () => store.complete('billing', 'evt-down'),
      () => store.release('billing', 'evt-down')
    ]) {
      const { ms, error } = await timed(call)
      assert.ok(ms < 3000, `failed after ${ms} ms`)
      assert.ok(unavailable(error), String(error))
      assert.equal(explicitKind(error), 'transient')
      assert.doesNotMatch(allText(error), /s3cret-pass/)
    }
  }

  // The same message through the middleware: over the unreachable stores the handler never runs, over
  // the in-memory store (the control) it does, so the first check could fail.
  for (const [store, expected] of [
    [owned, 0],
    [borrowed, 0],
    [new InMemoryProcessedIdStore(), 1]
  ] as const) {
    let runs = 0
    const handler = idempotentConsumer({ store })(() => Promise.resolve(void runs++))
    const { ms, error } = await timed(() => handler(consumed({ headers: { 'event-id': 'evt-down' } }), ctx()))
    assert.equal(runs, expected)
    assert.ok(ms < 3000, `settled after ${ms} ms`)
    if (expected === 0) assert.ok(unavailable(error), String(error))
    else assert.equal(error, undefined)
  }
})

test('Redis killed with SIGKILL mid-run: every call settles within seconds, the handler never runs unclaimed; then it recovers', async t => {
  const server = await startRedisServer()
  t.after(() => server.kill('SIGKILL'))
  const owned = new RedisProcessedIdStore({ url: server.url, keyPrefix: 'kill:' })
  const client = new Redis(server.url)
  client.on('error', () => undefined)
  const borrowed = new RedisProcessedIdStore({ client, keyPrefix: 'kill:' })
  t.after(async () => {
    await owned.close()
    client.disconnect()
  })

  const ran = new Set<string>()
  const handlers = [owned, borrowed].map(store =>
    idempotentConsumer({ store })(m => Promise.resolve(void ran.add(m.meta.eventId ?? '')))
  )
  let killedAt = 0
  let serial = 0
  const outcomes: { id: string; ms: number; error: unknown; afterKill: boolean }[] = []
  // Two workers (one per store) handle fresh events in a loop; the server dies under them.
  const worker = async (handler: (typeof handlers)[number]) => {
    while (outcomes.filter(o => o.afterKill).length < 12) {
      const id = `evt-${serial++}`
      const afterKill = killedAt > 0
      const { ms, error } = await timed(() => handler(consumed({ headers: { 'event-id': id } }), ctx()))
      outcomes.push({ id, ms, error, afterKill })
    }
  }
  const running = Promise.all(handlers.map(worker))
  await waitFor(() => outcomes.length >= 40, 10_000, '40 events handled while Redis is up')
  await server.kill('SIGKILL')
  killedAt = Date.now()
  await running

  const before = outcomes.filter(o => !o.afterKill)
  const afterKill = outcomes.filter(o => o.afterKill)
  assert.ok(before.filter(o => o.error === undefined).length >= 40)
  for (const outcome of outcomes) {
    assert.ok(outcome.ms < 3500, `${outcome.id} settled after ${outcome.ms} ms`)
    if (outcome.error !== undefined) assert.ok(unavailable(outcome.error), (outcome.error as Error).message)
  }
  assert.ok(afterKill.length >= 12)
  t.diagnostic(`after the kill: ${afterKill.map(o => o.ms).join(', ')} ms`)
  for (const outcome of afterKill) {
    assert.ok(outcome.error !== undefined, `${outcome.id} succeeded with Redis dead`)
    assert.equal(ran.has(outcome.id), false, `the handler ran for ${outcome.id} without a claim`)
  }
  // The control: the same events over the in-memory store do run.
  const control = idempotentConsumer({ store: new InMemoryProcessedIdStore() })(m =>
    Promise.resolve(void ran.add(`control:${m.meta.eventId ?? ''}`))
  )
  for (const outcome of afterKill) await control(consumed({ headers: { 'event-id': outcome.id } }), ctx())
  assert.equal([...ran].filter(id => id.startsWith('control:')).length, afterKill.length)

  // Back: the store's own client reconnects by itself and claims again.
  await server.restart()
  await waitFor(
    async () => (await owned.claim('billing', 'evt-back', 60_000).catch(() => 'down')) === 'claimed',
    10_000,
    'a claim after the restart'
  )
})

test('close() quits the client the store created; later calls fail as unavailable', async () => {
  const store = new RedisProcessedIdStore({ url: redisUrl(), keyPrefix: `${uniqueName('kafkit-test')}:` })
  assert.equal(await store.claim('billing', 'evt-close', 1000), 'claimed')
  await store.close()
  await store.close()
  const { ms, error } = await timed(() => store.claim('billing', 'evt-close', 1000))
  assert.ok(ms < 100, `${ms} ms`)
  assert.ok(unavailable(error), String(error))
})

test('options are validated; the url is never printed', () => {
  const client = new Redis({ lazyConnect: true })
  assert.throws(
    () => new RedisProcessedIdStore({ client, url: redisUrl() } as unknown as RedisProcessedIdStoreInit),
    /exactly one of `client`/
  )
  assert.throws(() => new RedisProcessedIdStore({} as RedisProcessedIdStoreInit), ConfigError)
  assert.throws(
    () => new RedisProcessedIdStore({ url: 'http://user:s3cret-pass@example' }),
    (e: unknown) => e instanceof ConfigError && !allText(e).includes('s3cret-pass')
  )
  assert.throws(() => new RedisProcessedIdStore({ client, ttl: 0 }), /ttl/)
  assert.throws(() => new RedisProcessedIdStore({ client, ...({ prefix: 'x' } as object) }), /unknown option `prefix`/)
  const store = new RedisProcessedIdStore({ client, timeout: '1s' })
  assert.deepEqual({ ...store.config }, { keyPrefix: 'kafkit:processed:', ttl: 604_800_000, timeout: 1000 })
  assert.throws(() => store.claim('billing', 'evt', -1), ConfigError)
  client.disconnect()
})

test('nothing in src/ outside src/redis imports ioredis', async () => {
  const root = new URL('../../../src/', import.meta.url)
  const files = (await readdir(root, { recursive: true })).filter(f => f.endsWith('.ts') && !f.startsWith('redis'))
  const offenders: string[] = []
  for (const file of files) {
    if (/from ['"]ioredis['"]|import\(['"]ioredis['"]\)/.test(await readFile(new URL(file, root), 'utf8'))) {
      offenders.push(file)
    }
  }
  assert.ok(files.length > 50)
  assert.deepEqual(offenders, [])
})
