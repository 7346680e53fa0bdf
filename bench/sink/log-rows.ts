/**
 * Seed 000's log event as a Postgres row, generated deterministically from an index, for the sink
 * benchmarks (the same rows for every contender in a run).
 */
import { Producer, ProduceAcks } from '@platformatic/kafka'

export interface PgLogRow extends Record<string, unknown> {
  log_id: string
  timestamp: Date
  service: string
  environment: string
  level: string
  message: string
  trace_id: string
  user_id: string
  request_id: string
  stack_trace: string
}

export const logColumns = [
  'log_id',
  'timestamp',
  'service',
  'environment',
  'level',
  'message',
  'trace_id',
  'user_id',
  'request_id',
  'stack_trace'
]

const services = ['api-gateway', 'auth', 'billing', 'search', 'checkout']
const levels = ['debug', 'info', 'info', 'info', 'warn', 'error']

export function logRowAt(i: number, runId = 'bench'): PgLogRow {
  const level = levels[i % levels.length] ?? 'info'
  return {
    log_id: `${runId}-${i.toString(36).padStart(8, '0')}`,
    timestamp: new Date(1_700_000_000_000 + i * 7),
    service: services[i % services.length] ?? 'api',
    environment: i % 10 === 0 ? 'staging' : 'production',
    level,
    message: `request ${i} handled in ${(i * 37) % 1000} ms by worker ${i % 16}`,
    trace_id: `trace-${(i * 2654435761) % 4294967296}`,
    user_id: `user-${i % 5000}`,
    request_id: `req-${i}`,
    stack_trace: level === 'error' ? `Error: boom ${i}\n    at handler (app.js:10:5)\n    at next (router.js:42:3)` : ''
  }
}

export function postgresLogsDdl(table: string, options: { unique: boolean }): string {
  return `CREATE TABLE ${table} (
    log_id text ${options.unique ? 'PRIMARY KEY' : 'NOT NULL'},
    timestamp timestamptz NOT NULL,
    service text NOT NULL,
    environment text NOT NULL,
    level text NOT NULL,
    message text NOT NULL,
    trace_id text NOT NULL DEFAULT '',
    user_id text NOT NULL DEFAULT '',
    request_id text NOT NULL DEFAULT '',
    stack_trace text NOT NULL DEFAULT ''
  )`
}

/** A log row as the topic holds it (JSON: the timestamp is an ISO 8601 string). */
export type LogEventJson = Omit<PgLogRow, 'timestamp'> & { timestamp: string }

/**
 * The bench's mappings from a consumed event to its row. `row` (the default): the event is the row,
 * as is; Postgres parses the ISO timestamp itself, like it parses the COPY ceiling's. `date`: a copy of
 * the event with the timestamp parsed into a Date in JavaScript first (and formatted again for COPY),
 * what a mapping that validates timestamps costs. Chosen with MAP=row|date.
 */
export const logMappings = {
  row: (message: { value: LogEventJson }): Record<string, unknown> => message.value,
  date: (message: { value: LogEventJson }): Record<string, unknown> => ({
    ...message.value,
    timestamp: new Date(message.value.timestamp)
  })
}

export function logMapping(
  name = process.env.MAP ?? 'row'
): (message: { value: LogEventJson }) => Record<string, unknown> {
  if (name !== 'row' && name !== 'date') throw new Error(`MAP must be row or date, got ${name}`)
  return logMappings[name]
}

/** Produces rows 0..count-1 as JSON records keyed by service (idempotent producer, acks all). */
export async function fillTopic(brokers: string[], topic: string, count: number): Promise<void> {
  const producer = new Producer({
    clientId: 'kafkit-bench',
    bootstrapBrokers: brokers,
    idempotent: true,
    acks: ProduceAcks.ALL
  })
  try {
    for (let from = 0; from < count; from += 2000) {
      const messages = []
      for (let i = from; i < Math.min(count, from + 2000); i++) {
        const row = logRowAt(i)
        messages.push({ topic, key: Buffer.from(row.service), value: Buffer.from(JSON.stringify(row)) })
      }
      await producer.send({ messages })
    }
  } finally {
    await producer.close()
  }
}
