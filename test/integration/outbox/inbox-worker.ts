/**
 * A consumer process for the inbox kill tests. Each event's effect is a row in EFFECTS_TABLE and one
 * more on the counter in COUNTER_TABLE. MODE=inbox (default) applies them in the inbox transaction;
 * MODE=plain applies them without it (the control: a redelivery applies them again). Env: KAFKA_BROKERS,
 * DATABASE_URL, TOPIC, GROUP, INBOX_TABLE, EFFECTS_TABLE, COUNTER_TABLE.
 */
import pg from 'pg'
import { Consumer } from '../../../src/consumer/consumer.ts'
import type { ConsumedMessage } from '../../../src/handling/types.ts'
import { Inbox } from '../../../src/postgres/inbox.ts'

const env = process.env
const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 8, connectionTimeoutMillis: 5000 })
pool.on('error', () => undefined)
const effects = env.EFFECTS_TABLE as string
const counter = env.COUNTER_TABLE as string

async function apply(tx: pg.PoolClient | pg.Pool, message: ConsumedMessage): Promise<void> {
  await tx.query(`INSERT INTO ${effects} (event_id) VALUES ($1)`, [message.meta.eventId])
  await new Promise(resolve => setTimeout(resolve, Math.random() * 3))
  await tx.query(`UPDATE ${counter} SET n = n + 1 WHERE id = 1`)
}

const inbox = new Inbox({ pool, table: env.INBOX_TABLE as string })
const handler =
  env.MODE === 'plain'
    ? (message: ConsumedMessage) => apply(pool, message)
    : inbox.handler((message, tx) => apply(tx, message))

const consumer = new Consumer({
  brokers: (env.KAFKA_BROKERS as string).split(','),
  groupId: env.GROUP as string,
  topics: [env.TOPIC as string],
  startOffset: 'earliest',
  ensureTopics: false,
  concurrency: { mode: 'key', limit: 8 },
  commitIntervalMs: 200,
  sessionTimeoutMs: 6000,
  heartbeatIntervalMs: 500,
  handleSignals: true,
  maxRetries: 1000,
  env: {},
  logger: { debug() {}, info() {}, warn() {}, error: (fields, message) => console.error(message, fields) },
  handler
})
await consumer.start()
await consumer.done().finally(() => pool.end())
