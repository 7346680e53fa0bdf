/**
 * One round of the relay on its leader session: read the oldest unpublished rows, publish them with
 * one `sendBatch`, then, in one transaction, delete (or mark) the rows Kafka acknowledged and move the
 * rows Kafka refused for good to the dead-letter table.
 *
 * A row is settled only when every earlier row of the same key in the round settled too: after a
 * transient failure of one row, the later rows of its key stay unpublished and are sent again, behind
 * it, in the next round (a duplicate with the same event id where they had been written), so each
 * key's first copies reach Kafka in id order, which is that key's commit order (see outbox.ts).
 */
import { isKafkitError } from '../errors/kafkit-error.ts'
import { message, type MessageBuilder } from '../message/builder.ts'
import type { Producer } from '../producer/producer.ts'
import type { SendOutcome } from '../producer/types.ts'
import type { OutboxNames, Queryable } from './outbox-schema.ts'

export interface OutboxRow {
  id: string
  event_id: string
  topic: string
  aggregate_id: string
  event_type: string
  source: string
  content_type: string
  payload: string
  headers: Record<string, string> | null
  occurred_at: Date
}

export interface RoundPlan {
  /** Ids of rows Kafka acknowledged, to delete or mark. */
  done: string[]
  /** Rows Kafka refused for good (too large, not serializable), with the reason. */
  deadLetters: { row: OutboxRow; reason: string; code: string | undefined }[]
  /** The first transient failure: the rows it held back stay for the next round. */
  transient: Error | undefined
}

export function selectUnpublished(names: OutboxNames): string {
  return `SELECT id, event_id, topic, aggregate_id, event_type, source, content_type, payload::text AS payload,
      headers, occurred_at
    FROM ${names.tableSql} WHERE published_at IS NULL ORDER BY id LIMIT $1`
}

/** The Kafka record of a row: key = aggregate id, the standard headers, CloudEvents' content type. */
export function recordOf(row: OutboxRow): MessageBuilder<Buffer> {
  return message(Buffer.from(row.payload))
    .topic(row.topic)
    .key(row.aggregate_id)
    .headers(row.headers ?? {})
    .eventId(row.event_id)
    .eventType(row.event_type)
    .source(row.source)
    .header('content-type', row.content_type)
    .timestamp(row.occurred_at)
}

/** Is this failure the row's own (it would fail again however often it is sent)? */
export function isPoison(error: Error): boolean {
  return isKafkitError(error) && !error.retryable && error.code !== 'KAFKIT_PRODUCER_CLOSED'
}

export function planRound(rows: readonly OutboxRow[], outcomes: readonly SendOutcome[]): RoundPlan {
  const plan: RoundPlan = { done: [], deadLetters: [], transient: undefined }
  const heldKeys = new Set<string>()
  rows.forEach((row, index) => {
    if (heldKeys.has(row.aggregate_id)) return
    const outcome = outcomes[index] as SendOutcome
    if (outcome.ok) plan.done.push(row.id)
    else if (isPoison(outcome.error)) {
      const code = isKafkitError(outcome.error) ? outcome.error.code : undefined
      plan.deadLetters.push({ row, reason: outcome.error.message, code })
    } else {
      heldKeys.add(row.aggregate_id)
      plan.transient ??= outcome.error
    }
  })
  return plan
}

/** How long a round waits for Kafka before the relay reports `waiting-for-kafka`. */
const STALL_MS = 5000

/** Publishes the rows; `onStall` runs when Kafka has not answered after STALL_MS. */
export async function publishRows(
  producer: Producer<Buffer>,
  rows: readonly OutboxRow[],
  signal: AbortSignal,
  onStall: () => void
): Promise<RoundPlan> {
  const timer = setTimeout(onStall, STALL_MS)
  try {
    const outcomes = await producer.sendBatch(rows.map(recordOf), { signal })
    return planRound(rows, outcomes)
  } finally {
    clearTimeout(timer)
  }
}

/** Settles a round in one transaction: acknowledged rows deleted (or marked), poison rows moved. */
export async function settleRound(
  session: Queryable,
  names: OutboxNames,
  plan: RoundPlan,
  retentionMs: number
): Promise<void> {
  if (plan.done.length === 0 && plan.deadLetters.length === 0) return
  await session.query('BEGIN')
  try {
    if (plan.done.length > 0) {
      await session.query(
        retentionMs === 0
          ? `DELETE FROM ${names.tableSql} WHERE id = ANY($1::bigint[])`
          : `UPDATE ${names.tableSql} SET published_at = now() WHERE id = ANY($1::bigint[])`,
        [plan.done]
      )
    }
    for (const { row, reason, code } of plan.deadLetters) {
      await session.query(
        `WITH moved AS (DELETE FROM ${names.tableSql} WHERE id = $1 RETURNING *)
         INSERT INTO ${names.deadLettersSql} SELECT moved.*, $2, $3, now() FROM moved`,
        [row.id, reason, code ?? null]
      )
    }
    await session.query('COMMIT')
  } catch (error) {
    await session.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}

/** Deletes up to 10,000 published rows older than the retention; returns how many. */
export async function deleteExpired(session: Queryable, names: OutboxNames, retentionMs: number): Promise<number> {
  const result = await session.query(
    `DELETE FROM ${names.tableSql} WHERE id IN (
       SELECT id FROM ${names.tableSql}
       WHERE published_at IS NOT NULL AND published_at < now() - $1::bigint * interval '1 millisecond' LIMIT 10000)`,
    [retentionMs]
  )
  return result.rowCount ?? 0
}
