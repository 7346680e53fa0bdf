/**
 * The relay under fire: two relay processes (one leads, one stands by) are SIGKILLed again and again
 * while 8 concurrent writers commit outbox rows, some transactions held open for seconds (their ids
 * taken long before they commit) and 10 % rolled back. Checks against what the writers know committed:
 * every committed row published, none from a rolled-back transaction, and each key's first copies in
 * Kafka in the key's commit order. A control reader polling `id > last_seen` in the same run must skip
 * rows, so the check is known to catch the bug it is about.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { Outbox } from '../../../src/postgres/outbox.ts'
import { createTestTopic, uniqueName } from '../../../src/testing/topics.ts'
import { bootstrapServers, databaseUrl } from '../../helpers/env.ts'
import { headerOf, readTopic } from '../../helpers/read-topic.ts'
import { sleep, waitFor } from '../../helpers/wait.ts'

const rows = Number(process.env.OUTBOX_KILL_ROWS ?? 50_000)
const kills = Number(process.env.OUTBOX_KILLS ?? 20)
const writers = 8
const keys = 200
const workerFile = fileURLToPath(new URL('./relay-worker.ts', import.meta.url))

interface Relay {
  child: ChildProcess
  state: string
  exited: Promise<unknown>
}

function startRelay(table: string, alive: Set<Relay>): Relay {
  const child = spawn(process.execPath, ['--conditions=development', workerFile], {
    env: { ...process.env, RELAY_TABLE: table, RELAY_RETENTION: '1h', DATABASE_URL: databaseUrl() },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  const relay: Relay = { child, state: 'starting', exited: once(child, 'exit') }
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) if (line.startsWith('state ')) relay.state = line.slice(6)
  })
  alive.add(relay)
  void relay.exited.then(() => alive.delete(relay))
  return relay
}

interface WriterLedger {
  committed: Set<string>
  rolledBack: Set<string>
  /** Per key, event ids in the order their transactions took the key's lock, i.e. commit order. */
  order: Map<string, string[]>
  written: number
}

async function writer(outbox: Outbox, ledger: WriterLedger, id: number): Promise<void> {
  let n = 0
  while (ledger.written < rows) {
    n++
    // Writer 0 holds every transaction open for seconds after taking its id: the late commits the relay
    // must not skip. Its keys are its own, so no other writer queues behind its key locks. The others
    // share 200 keys and write 1-19 rows per transaction with addMany (keys locked in one order, so
    // writers never deadlock).
    const hold = id === 0 ? 1000 + Math.random() * 2000 : 0
    const size = hold > 0 ? 1 : 1 + Math.floor(Math.random() * 19)
    const rollback = Math.random() < 0.1
    const events = Array.from({ length: size }, (_, i) => ({
      key: hold > 0 ? `held-${n % 5}` : `key-${Math.floor(Math.random() * keys)}`,
      type: 'test.row',
      data: { writer: id, n, i }
    }))
    const ids: string[] = []
    ledger.written += size
    await outbox
      .transaction(async tx => {
        const entries = await outbox.addMany(tx, events)
        entries.forEach((entry, i) => {
          const key = (events[i] as { key: string }).key
          ids.push(entry.eventId)
          const list = ledger.order.get(key) ?? []
          list.push(entry.eventId)
          ledger.order.set(key, list)
        })
        if (hold > 0) await sleep(hold)
        if (rollback) throw new Error('rolled back on purpose')
      })
      .then(
        () => ids.forEach(eventId => ledger.committed.add(eventId)),
        () => ids.forEach(eventId => ledger.rolledBack.add(eventId))
      )
  }
}

/** The classic bug: remembers the highest id it saw and asks only for rows after it. */
async function naiveReader(pool: pg.Pool, table: string, done: () => boolean): Promise<Set<string>> {
  const seen = new Set<string>()
  let last = '0'
  while (!done()) {
    const result = await pool.query<{ id: string; event_id: string }>(
      `SELECT id, event_id FROM ${table} WHERE id > $1 ORDER BY id LIMIT 1000`,
      [last]
    )
    for (const row of result.rows) {
      seen.add(row.event_id)
      last = row.id
    }
    if (result.rows.length < 1000) await sleep(50)
  }
  return seen
}

test(`relays SIGKILLed ${kills} times while ${writers} writers commit ${rows} outbox rows: none skipped, none from a rollback, keys in order`, async t => {
  const brokers = bootstrapServers()
  const { topic, delete: drop } = await createTestTopic({ brokers, partitions: 3 })
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: writers + 2 })
  const table = uniqueName('outbox_kill')
    .replaceAll(/[^A-Za-z0-9_]/g, '_')
    .slice(0, 40)
  const outbox = new Outbox({ pool, table, topic })
  await outbox.createTable()
  const alive = new Set<Relay>()
  t.after(async () => {
    for (const relay of alive) relay.child.kill('SIGKILL')
    await pool.query(`DROP TABLE IF EXISTS ${table}, ${table}_dead_letters`)
    await pool.end()
    await drop()
  })

  const ledger: WriterLedger = { committed: new Set(), rolledBack: new Set(), order: new Map(), written: 0 }
  startRelay(table, alive)
  startRelay(table, alive)
  let writing = true
  const startedAt = Date.now()
  const naive = naiveReader(pool, table, () => !writing)
  const writing$ = Promise.all(Array.from({ length: writers }, (_, id) => writer(outbox, ledger, id))).finally(
    () => (writing = false)
  )

  let killed = 0
  const leaderKills = { leader: 0, other: 0 }
  const takeovers: number[] = []
  while (killed < kills) {
    await sleep(writing ? 600 + Math.random() * 600 : 300)
    const relays = [...alive]
    const leader = relays.find(relay => relay.state === 'leading')
    const victim = leader ?? relays[Math.floor(Math.random() * relays.length)]
    if (victim === undefined) continue
    victim.child.kill('SIGKILL')
    await victim.exited
    killed++
    leaderKills[leader ? 'leader' : 'other']++
    const killedAt = Date.now()
    startRelay(table, alive)
    if (leader) {
      // A standby (or the replacement) must lead within seconds of the leader's death.
      await waitFor(() => [...alive].some(relay => relay.state === 'leading'), 10_000, 'a new leader')
      takeovers.push(Date.now() - killedAt)
    }
  }
  await writing$
  const seenByNaive = await naive
  const wroteMs = Date.now() - startedAt

  const unpublished = async () =>
    (
      (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE published_at IS NULL`))
        .rows[0] as { n: number }
    ).n
  await waitFor(async () => (await unpublished()) === 0, 120_000, 'the relays to publish every row')
  const records = await readTopic(brokers, topic, ledger.committed.size, { timeoutMs: 120_000, quietMs: 2000 })

  const firstIndex = new Map<string, number>()
  records.forEach((record, index) => {
    const eventId = headerOf(record, 'event-id')
    if (!firstIndex.has(eventId)) firstIndex.set(eventId, index)
  })
  const lost = [...ledger.committed].filter(eventId => !firstIndex.has(eventId))
  const fromRollback = [...ledger.rolledBack].filter(eventId => firstIndex.has(eventId))
  const skippedByNaive = [...ledger.committed].filter(eventId => !seenByNaive.has(eventId))
  let outOfOrder = 0
  for (const [, ids] of ledger.order) {
    const committedIds = ids.filter(eventId => ledger.committed.has(eventId))
    const offsets = committedIds.map(eventId => recordsOffset(records, firstIndex, eventId))
    for (let i = 1; i < offsets.length; i++) if ((offsets[i] as bigint) < (offsets[i - 1] as bigint)) outOfOrder++
  }
  const duplicates = records.length - firstIndex.size
  t.diagnostic(
    `wrote for ${wroteMs} ms, committed ${ledger.committed.size}, rolled back ${ledger.rolledBack.size}, records ${records.length} ` +
      `(${duplicates} duplicates), kills ${killed} (leader ${leaderKills.leader}, new leader after at most ` +
      `${Math.max(...takeovers)} ms), naive reader skipped ${skippedByNaive.length}`
  )
  assert.equal(killed, kills)
  assert.ok(ledger.rolledBack.size > 0 && ledger.committed.size > rows * 0.8, 'the run wrote and rolled back')
  assert.deepEqual(lost.slice(0, 5), [], `${lost.length} committed rows never published`)
  assert.deepEqual(fromRollback.slice(0, 5), [], `${fromRollback.length} rolled-back rows published`)
  assert.equal(outOfOrder, 0, 'each key in commit order (first copies)')
  assert.ok(skippedByNaive.length > 0, 'the control (`id > last_seen`) skipped rows in the same run')
})

/** Records of one key share a partition; the first copy's offset orders them. */
function recordsOffset(records: { offset: bigint }[], firstIndex: Map<string, number>, eventId: string): bigint {
  return (records[firstIndex.get(eventId) as number] as { offset: bigint }).offset
}
