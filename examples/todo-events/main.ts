/**
 * A todo service on Kafkit, end to end: an HTTP API writes each change of a todo and the event that
 * says so in one PostgreSQL transaction (the transactional outbox), the outbox relay publishes the
 * committed events to Kafka, and two consumers act on them: a projection that keeps per-user counts
 * with exactly-once effects (the inbox), and a notifier whose undeliverable notifications end in its
 * dead-letter topic. A load driver in the same process sends the requests (some of them invalid) and
 * keeps what it expects; the run ends with a reconciliation and exits with 1 when anything is
 * unaccounted for.
 *
 * One topic, `todos.task.events`, keyed by the todo's id, carries all three event types
 * (todos.task.created, todos.task.completed, todos.task.deleted). Kafka keeps order within a partition
 * only, so a todo's events stay in order across their types only when they share a partition: one
 * topic per event type would let a consumer see a todo deleted before it was created.
 *
 * PostgreSQL at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test), not the embedded
 * PGlite the log pipeline falls back to: the relay holds a session of its own beside the writers'
 * transactions (its leader lock and its LISTEN for the outbox's NOTIFY), and PGlite is one session.
 * Kafka at KAFKA_BROKERS, or the embedded local Kafka when none is set. Every run has its own topic and
 * schema (dropped at the end unless `--keep` or the run does not balance).
 *
 *   npm run example:todo-events -- --requests 1000 --invalid-every 10 --undeliverable-every 20
 */
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import pg from 'pg'
import {
  Consumer,
  EventRouter,
  PermanentError,
  ensureTopics,
  readTopicSnapshot,
  type MessageHandler,
  type SettledOutcome
} from 'kafkit'
import { Inbox, Outbox, OutboxRelay, type OutboxRelayState } from 'kafkit/postgres'
import { useKafka } from 'kafkit/testing'
import {
  createTodosTable,
  eventTypes,
  startTodoApi,
  type TodoEvent,
  type TodoEventType,
  type TodoEvents
} from './api.ts'
import { UNDELIVERABLE, runLoad, type Counts, type LoadResult } from './load.ts'

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '300' },
    'invalid-every': { type: 'string', default: '10' },
    'undeliverable-every': { type: 'string', default: '20' },
    connections: { type: 'string', default: '4' },
    keep: { type: 'boolean', default: false }
  }
})
function whole(name: keyof typeof values, min: number): number {
  const value = Number(values[name])
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`--${name} must be a whole number of at least ${min}, got "${String(values[name])}"`)
  }
  return value
}
const requests = whole('requests', 1)
const invalidEvery = whole('invalid-every', 0)
const undeliverableEvery = whole('undeliverable-every', 0)
const connections = whole('connections', 1)

const started = performance.now()
const say = (line: string) =>
  console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}`)
// Kafkit's components log through this: errors are printed, except a record that reached the dead-letter
// topic (its DLQ offset is known): those are expected here and counted in the reconciliation. The relay's
// state changes are printed below.
const logger = {
  debug() {},
  info() {},
  warn() {},
  error: (fields: object, message: string) => {
    if (!('dlqOffset' in fields)) console.error(`kafkit: ${message} ${JSON.stringify(fields)}`)
  }
}

const kafka = await useKafka({ log: line => console.error(line) })
const brokers = kafka.brokers
const databaseUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test'
const run = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`
const topic = `todos.task.events-${run}`
// The notifier's dead-letter topic. The projection never dead-letters (it stops instead), so it is the only one.
const dlqTopic = `${topic}.dlq`
const schema = `todo_events_${run}`
const tables = {
  todos: `${schema}.todos`,
  outbox: `${schema}.outbox`,
  inbox: `${schema}.inbox`,
  counts: `${schema}.user_todo_counts`
}
say(`Kafka ${brokers.join(',')}; PostgreSQL ${databaseUrl.replace(/\/\/[^@/]*@/, '//***@')}, schema ${schema}`)

// PostgreSQL: the run's schema and tables.
const pool = new pg.Pool({ connectionString: databaseUrl, max: 20 })
await pool.query(`CREATE SCHEMA ${schema}`)
await createTodosTable(pool, tables.todos)
const outbox = new Outbox({ pool, table: tables.outbox, topic, source: '/todos/api' })
await outbox.createTable()
// The inbox's scope is the projection (not the consumer group), so a second worker group applying the
// same events to the same table skips what the first one applied.
const inbox = new Inbox<TodoEvent>({ pool, table: tables.inbox, scope: () => 'user_todo_counts' })
await inbox.createTable()
await pool.query(`CREATE TABLE ${tables.counts} (
  user_id text PRIMARY KEY,
  created integer NOT NULL DEFAULT 0,
  completed integer NOT NULL DEFAULT 0,
  deleted integer NOT NULL DEFAULT 0
)`)

// Kafka: the events topic (the todo's id is the key, so each todo's events share one of the 6 partitions)
// and the notifier's dead-letter topic, with as many partitions (what the consumer would create).
await ensureTopics({ brokers }, [
  { name: topic, partitions: 6 },
  { name: dlqTopic, partitions: 6 }
])
say(`topics ${topic} (6 partitions) and ${dlqTopic}`)

// The relay: publishes committed outbox rows in commit order per todo. Published rows are kept an hour
// (marked published_at) instead of deleted, so the reconciliation can count them.
const relay = new OutboxRelay({ database: databaseUrl, brokers, table: tables.outbox, retentionMs: '1h', logger })
let relayState: OutboxRelayState = 'idle'
relay.on('health', health => {
  const why = health.state.startsWith('waiting') && health.lastError ? ` (${health.lastError.message})` : ''
  say(`relay: ${relayState} → ${health.state}${why}`)
  relayState = health.state
})
relay.start()

/** Which record of the topic reached which verdict, by partition and offset (a redelivery counts once). */
function settledOf(consumer: Consumer<TodoEvent>): Map<string, SettledOutcome> {
  const settled = new Map<string, SettledOutcome>()
  consumer.on('settled', ({ partition, offset, outcome }) => settled.set(`${partition}@${offset}`, outcome))
  return settled
}
const counted = (settled: Map<string, SettledOutcome>, outcome: SettledOutcome) =>
  [...settled.values()].filter(value => value === outcome).length

// Consumer 1, the projection: user_todo_counts, each event applied once (the inbox row and the count
// change commit together; a redelivered event finds its inbox row and is skipped).
const columnOf = new Map<string | undefined, keyof Counts>([
  ['todos.task.created', 'created'],
  ['todos.task.completed', 'completed'],
  ['todos.task.deleted', 'deleted']
])
const applied = { live: 0, replay: 0 }
const projection = (worker: keyof typeof applied) =>
  inbox.handler(async (message, tx) => {
    const column = columnOf.get(message.meta.eventType)
    if (column === undefined) return // not an event the counts are about
    await tx.query(
      `INSERT INTO ${tables.counts} AS c (user_id, ${column}) VALUES ($1, 1)
       ON CONFLICT (user_id) DO UPDATE SET ${column} = c.${column} + 1`,
      [message.value.userId]
    )
    applied[worker]++
  })
const projectionOptions = {
  brokers,
  topics: [topic],
  startOffset: 'earliest' as const,
  // A projection that skipped an event would be wrong from then on: it stops at an event it cannot apply.
  onDeadLetter: 'stop' as const,
  logger
}
const projector = new Consumer<TodoEvent>({
  ...projectionOptions,
  groupId: `todos.projection.${run}`,
  handler: projection('live')
})
const projected = settledOf(projector)

// Consumer 2, the notifier: one route per event type; a todo marked undeliverable cannot be notified
// about, a permanent failure, so its events go to the dead-letter topic and the others go on.
const notifications: { eventId: string; type: TodoEventType; text: string }[] = []
function notify<T extends TodoEventType>(
  type: T,
  text: (event: TodoEvents[T]) => string
): MessageHandler<TodoEvents[T]> {
  return ({ value, meta }) => {
    if (value.title.includes(UNDELIVERABLE)) {
      return Promise.reject(
        new PermanentError(`no way to reach ${value.userId} about todo ${value.todoId}: it is marked ${UNDELIVERABLE}`)
      )
    }
    notifications.push({ eventId: meta.eventId ?? '', type, text: text(value) }) // "sent"
    return Promise.resolve()
  }
}
const router = new EventRouter<TodoEvents>({ logger })
  .on(
    'todos.task.created',
    notify('todos.task.created', event => `${event.userId}: new todo "${event.title}"`)
  )
  .on(
    'todos.task.completed',
    notify('todos.task.completed', event => `${event.userId}: "${event.title}" is done`)
  )
  .on(
    'todos.task.deleted',
    notify('todos.task.deleted', event => `${event.userId}: "${event.title}" was deleted`)
  )
const notifier = new Consumer<TodoEvent>({
  brokers,
  groupId: `todos.notifier.${run}`,
  topics: [topic],
  startOffset: 'earliest',
  handler: router,
  dlqTopic,
  logger
})
const notified = settledOf(notifier)
await Promise.all([projector.start(), notifier.start()])

// The API and the load driver.
const api = await startTodoApi({ pool, outbox, todosTable: tables.todos })
say(
  `todo API on ${api.url}; sending ${requests} requests over ${connections} connections (every ${invalidEvery || '-'}th invalid)`
)
let load: LoadResult | undefined
let lastProgress = ''
const progress = () => {
  const accepted = load ? load.accepted.created + load.accepted.completed + load.accepted.deleted : 0
  const line =
    `requests ${load?.sent ?? 0}/${requests} (${accepted} accepted, ${load?.rejected ?? 0} refused) · ` +
    `relay published ${relay.health.published} · projection ${projected.size} · ` +
    `notifier ${counted(notified, 'done')} sent + ${counted(notified, 'dead-letter')} dead-lettered`
  if (line !== lastProgress) say(line)
  lastProgress = line
}
const ticker = setInterval(progress, 1000)
load = await runLoad(
  { url: api.url, requests, connections, invalidEvery, undeliverableEvery, users: 8 },
  result => (load = result)
)
await api.close()
const loadSeconds = load.seconds
const accepted = load.accepted.created + load.accepted.completed + load.accepted.deleted
progress()
say(`load done in ${loadSeconds.toFixed(2)} s (${Math.round(load.sent / loadSeconds)} requests/s)`)

/** Polls `condition` every 100 ms for at most `ms`; false when it timed out. */
async function waitFor(what: string, condition: () => boolean | Promise<boolean>, ms = 60_000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!(await condition())) {
    if (Date.now() > deadline) {
      say(`gave up waiting for ${what} after ${ms / 1000} s`)
      return false
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return true
}
const scalar = async (sql: string) => Number((await pool.query<{ n: string }>(sql)).rows[0]?.n ?? 0)

// Drain: the relay publishes every row, the consumers settle every record of the topic.
await waitFor(
  'the relay to publish every outbox row',
  async () => (await scalar(`SELECT count(*) AS n FROM ${tables.outbox} WHERE published_at IS NULL`)) === 0
)
const header = (headers: Map<Buffer, Buffer>, name: string) =>
  [...headers].find(([key]) => key.toString() === name)?.[1].toString()
const published: { eventId: string; type: string; key: string; partition: number }[] = []
for await (const record of readTopicSnapshot({ brokers, topic })) {
  published.push({
    eventId: header(record.headers, 'event-id') ?? '',
    type: header(record.headers, 'event-type') ?? '',
    key: record.key.toString(),
    partition: record.partition
  })
}
await waitFor(
  'the consumers to settle every event',
  () => projected.size >= published.length && notified.size >= published.length
)
clearInterval(ticker)
progress()
const lag = async (consumer: Consumer<TodoEvent>) => {
  await consumer.commit()
  return (await consumer.lag()).reduce((sum, partition) => sum + Number(partition.lag), 0)
}
const lags = { projection: await lag(projector), notifier: await lag(notifier) }

// A redelivery of everything: a second projection worker (another group, the same inbox scope) reads
// the whole topic again through the same handler. The inbox must skip every event.
const replayer = new Consumer<TodoEvent>({
  ...projectionOptions,
  groupId: `todos.projection-replay.${run}`,
  handler: projection('replay')
})
const replayed = settledOf(replayer)
await replayer.start()
await waitFor('the replay to settle every event', () => replayed.size >= published.length)
say(`replayed the topic through a second projection worker: ${replayed.size} events, ${applied.replay} applied again`)
await Promise.all([replayer.stop(), projector.stop(), notifier.stop()])
await relay.stop()
const projectorFailed = projector.health === 'failed'

const deadLetters: { eventId: string; type: string }[] = []
for await (const record of readTopicSnapshot({ brokers, topic: dlqTopic })) {
  deadLetters.push({
    eventId: header(record.headers, 'event-id') ?? '',
    type: header(record.headers, 'event-type') ?? ''
  })
}

// ---------------------------------------------------------------------------------------------------
// Reconciliation: the driver's expectations against what each stage holds, counted where it is kept.
const rowsOf = async <T extends pg.QueryResultRow>(sql: string) => (await pool.query<T>(sql)).rows
const perType = (items: { type: string; eventId: string }[]): Counts => {
  const seen = new Set<string>()
  const counts: Counts = { created: 0, completed: 0, deleted: 0 }
  for (const { type, eventId } of items) {
    const column = columnOf.get(type)
    if (column === undefined || seen.has(eventId)) continue
    seen.add(eventId)
    counts[column]++
  }
  return counts
}
type CountRow = Counts & { user_id: string }
const [todos] = await rowsOf<Counts>(
  `SELECT count(*)::int AS created, count(completed_at)::int AS completed,
     count(*) FILTER (WHERE deleted)::int AS deleted FROM ${tables.todos}`
)
const todosPerUser = await rowsOf<CountRow>(
  `SELECT user_id, count(*)::int AS created, count(completed_at)::int AS completed,
     count(*) FILTER (WHERE deleted)::int AS deleted FROM ${tables.todos} GROUP BY user_id`
)
const outboxRows = await rowsOf<{ event_id: string; event_type: string; published: boolean }>(
  `SELECT event_id, event_type, published_at IS NOT NULL AS published FROM ${tables.outbox}`
)
const outboxPublished = perType(
  outboxRows.filter(row => row.published).map(row => ({ type: row.event_type, eventId: row.event_id }))
)
const outboxDeadLetters = await scalar(`SELECT count(*) AS n FROM ${tables.outbox}_dead_letters`)
const inboxRows = await scalar(`SELECT count(*) AS n FROM ${tables.inbox}`)
const countRows = await rowsOf<CountRow>(`SELECT user_id, created, completed, deleted FROM ${tables.counts}`)
const counts: Counts = { created: 0, completed: 0, deleted: 0 }
for (const row of countRows)
  for (const column of ['created', 'completed', 'deleted'] as const) counts[column] += row[column]
const onTopic = perType(published)
const idsOnTopic = new Set(published.map(record => record.eventId))
const distinctOnTopic = idsOnTopic.size
const sent = perType(notifications)
const deadLettered = perType(deadLetters)

// Order: each todo's events in one partition, created before completed before deleted.
const rank = new Map(eventTypes.map((type, index) => [type as string, index]))
const byTodo = new Map<string, { partitions: Set<number>; ranks: number[]; seen: Set<string> }>()
for (const record of published) {
  const todo = byTodo.get(record.key) ?? { partitions: new Set(), ranks: [], seen: new Set() }
  todo.partitions.add(record.partition)
  if (!todo.seen.has(record.eventId)) todo.ranks.push(rank.get(record.type) ?? -1)
  todo.seen.add(record.eventId)
  byTodo.set(record.key, todo)
}
const outOfOrder = [...byTodo.values()].filter(
  todo =>
    todo.partitions.size !== 1 ||
    todo.ranks[0] !== 0 ||
    todo.ranks.some((r, i) => i > 0 && r <= (todo.ranks[i - 1] ?? 0))
).length

const total = (c: Counts) => c.created + c.completed + c.deleted
const same = (a: Counts, b: Counts) => a.created === b.created && a.completed === b.completed && a.deleted === b.deleted
const table: [string, Counts | undefined, number][] = [
  ['requests accepted (load driver)', load.accepted, accepted],
  ['todo changes (todos table)', todos, todos ? total(todos) : 0],
  ['outbox rows published', outboxPublished, total(outboxPublished)],
  ['events on the topic', onTopic, distinctOnTopic],
  ['projection (user_todo_counts)', counts, total(counts)],
  ['  inbox rows', undefined, inboxRows],
  ['notifier: notifications sent', sent, total(sent)],
  ['notifier: dead-lettered', deadLettered, total(deadLettered)]
]
console.log(`\nReconciliation (topic ${topic}, schema ${schema})`)
console.log(`  ${''.padEnd(34)}${['created', 'completed', 'deleted', 'total'].map(h => h.padStart(10)).join('')}`)
for (const [name, c, sum] of table) {
  const cells = c ? [c.created, c.completed, c.deleted] : ['', '', '']
  console.log(`  ${name.padEnd(34)}${[...cells, sum].map(v => String(v).padStart(10)).join('')}`)
}

const expectedPerUser = new Map([...load.perUser].map(([user, c]) => [user, c]))
const usersMatch = (rows: CountRow[]) =>
  rows.length === expectedPerUser.size &&
  rows.every(row => {
    const expected = expectedPerUser.get(row.user_id)
    return expected !== undefined && same(row, expected)
  })
const notifiedDone = counted(notified, 'done')
const notifiedDead = counted(notified, 'dead-letter')
/** One thing the run claims, and whether it holds. */
type Fact = [ok: boolean, text: string]
const equal = (a: number, what: string, b: number, expected: string): Fact => [
  a === b,
  `${a} ${what} ${a === b ? '=' : '≠'} ${b} ${expected}`
]
const none = (n: number, what: string): Fact => [n === 0, `${n} ${what}`]
const byType = (c: Counts) => `${c.created}/${c.completed}/${c.deleted}`
const acceptedCounts = load.accepted
const sameAs = (c: Counts, what: string): Fact =>
  same(c, acceptedCounts)
    ? [true, `${what} = accepted, by type`]
    : [false, `${what} ${byType(c)} ≠ ${byType(acceptedCounts)} accepted (created/completed/deleted)`]
const acceptedChanges = `accepted changes`
const checks: [string, Fact[]][] = [
  [
    'requests',
    [
      [
        load.sent === requests && load.sent === accepted + load.rejected,
        `${load.sent} sent = ${accepted} accepted + ${load.rejected} refused`
      ],
      equal(load.rejected, 'refused with the expected 4xx', load.invalid, 'invalid sent'),
      none(load.unexpectedCount, 'unexpected answers'),
      [
        api.stats.accepted === accepted && api.stats.rejected === load.rejected && api.stats.failed === 0,
        `the API counted ${api.stats.accepted} 2xx, ${api.stats.rejected} 4xx, ${api.stats.failed} 5xx`
      ]
    ]
  ],
  [
    'todo changes',
    [
      todos ? sameAs(todos, 'todos table') : [false, 'todos table unreadable'],
      [
        usersMatch(todosPerUser),
        `${todosPerUser.length} users, each ${usersMatch(todosPerUser) ? 'equal to' : 'NOT equal to'} the driver's`
      ]
    ]
  ],
  [
    'outbox',
    [
      equal(outboxRows.length, 'rows', accepted, acceptedChanges),
      sameAs(outboxPublished, 'published'),
      none(outboxRows.length - total(outboxPublished), 'waiting'),
      none(outboxDeadLetters, 'in its dead-letter table'),
      [true, `the relay counted ${relay.health.published} published`]
    ]
  ],
  [
    'topic',
    [
      equal(distinctOnTopic, `distinct events (${published.length} records)`, accepted, acceptedChanges),
      sameAs(onTopic, 'events'),
      none(outboxRows.filter(row => !idsOnTopic.has(row.event_id)).length, 'outbox rows missing')
    ]
  ],
  [
    'order',
    [
      equal(byTodo.size, 'todos on the topic', load.accepted.created, 'created'),
      none(outOfOrder, 'out of order or split over partitions')
    ]
  ],
  [
    'projection',
    [
      equal(inboxRows, 'inbox rows', accepted, 'events'),
      sameAs(counts, 'user_todo_counts sums'),
      [
        usersMatch(countRows),
        `${countRows.length} users, each ${usersMatch(countRows) ? 'equal to' : 'NOT equal to'} the driver's`
      ],
      equal(applied.live, 'applied', accepted, 'events'),
      [
        applied.replay === 0 && replayed.size === published.length,
        `replayed ${replayed.size} of ${published.length} records, ${applied.replay} applied again`
      ],
      [
        !projectorFailed && lags.projection === 0,
        `lag ${lags.projection}${projectorFailed ? ', STOPPED at an event' : ''}`
      ]
    ]
  ],
  [
    'notifier',
    [
      [
        notifiedDone + notifiedDead === distinctOnTopic && notifications.length === notifiedDone,
        `${notifiedDone} handled + ${notifiedDead} dead-lettered = ${notifiedDone + notifiedDead} of ${distinctOnTopic} events`
      ],
      equal(notifiedDead, 'dead-lettered', load.markedEvents, `events of todos marked ${UNDELIVERABLE}`),
      equal(deadLetters.length, `records in ${dlqTopic}`, notifiedDead, 'dead-lettered'),
      [lags.notifier === 0, `lag ${lags.notifier}`]
    ]
  ]
]
console.log('')
for (const [name, facts] of checks) {
  const ok = facts.every(([holds]) => holds)
  console.log(`  ${ok ? 'ok ' : 'NOT'} ${name.padEnd(13)}${facts.map(([, text]) => text).join('; ')}`)
}
for (const line of load.unexpected) console.log(`      unexpected: ${line}`)
const wrong = checks.flatMap(([name, facts]) => facts.filter(([holds]) => !holds).map(([, text]) => `${name}: ${text}`))
const seconds = (performance.now() - started) / 1000
console.log(
  `\n  timing: load ${loadSeconds.toFixed(2)} s (${Math.round(load.sent / loadSeconds)} requests/s), whole run ${seconds.toFixed(1)} s`
)
if (wrong.length === 0) {
  console.log(
    `  balanced: ${accepted} accepted = ${total(todos ?? counts)} todo changes = ${total(outboxPublished)} outbox rows published = ` +
      `${distinctOnTopic} events = ${inboxRows} applied once; ${load.invalid} invalid = ${load.rejected} rejected; ` +
      `notifier ${notifiedDone} handled + ${notifiedDead} dead-lettered = ${notifiedDone + notifiedDead}`
  )
} else {
  console.log(`  NOT BALANCED: ${wrong.join('; ')}`)
}
console.log(`  all accounted for: ${wrong.length === 0 ? 'yes' : 'NO'}`)

// The dead-letter topic stays, to look at; the schema goes unless asked to keep it or something is off.
console.log(`\nThe undeliverable notifications are in ${dlqTopic}:`)
const local = brokers.join(',') === '127.0.0.1:9092'
console.log(`  npx kafkit dlq list ${dlqTopic}${local ? '' : ` --brokers ${brokers.join(',')}`}`)
if (values.keep || wrong.length > 0) console.log(`The tables are kept in schema ${schema}.`)
else await pool.query(`DROP SCHEMA ${schema} CASCADE`)
await pool.end()
await kafka.release()
if (wrong.length > 0) process.exitCode = 1
