/**
 * Every write of the retry flow (a record to a tier, a parked record, a key's state, a resolution) must
 * be acknowledged by all in-sync replicas before the record it moves is settled: otherwise a crash
 * could commit past a record that exists nowhere. A failed write is retried with backoff until it is
 * acknowledged or the signal aborts; giving up would mean losing the record or stalling silently.
 */
import type { MessageToProduce, ProduceResult } from '@platformatic/kafka'
import type { HandlingLogger } from '../handling/logger.ts'
import { backoffDelay, sleep } from '../resilience/backoff.ts'

export type OutgoingRecord = MessageToProduce<Buffer, Buffer, Buffer, Buffer>

/** The part of a @platformatic/kafka Producer<Buffer, Buffer, Buffer, Buffer> the retry flow uses. */
export interface RetryProducer {
  send(options: { messages: OutgoingRecord[]; acks?: number }): Promise<ProduceResult>
}

export async function sendAcknowledged(
  producer: RetryProducer,
  messages: OutgoingRecord[],
  options: { signal: AbortSignal; logger: HandlingLogger; what: string }
): Promise<ProduceResult> {
  for (let attempt = 1; ; attempt++) {
    options.signal.throwIfAborted()
    try {
      return await producer.send({ messages, acks: -1 })
    } catch (error) {
      options.logger.warn(
        {
          what: options.what,
          topics: [...new Set(messages.map(m => m.topic))],
          writeAttempt: attempt,
          err: error instanceof Error ? error.message : String(error)
        },
        'retry flow: write not acknowledged, retrying (the record it carries stays uncommitted)'
      )
      await sleep(backoffDelay(attempt, { baseMs: 200, maxMs: 10_000 }), options.signal)
    }
  }
}

/** A Kafka header map as the client wants it: one Buffer name per entry, so repeated names survive. */
export function headerMap(entries: Iterable<readonly [string, Buffer]>): Map<Buffer, Buffer> {
  const headers = new Map<Buffer, Buffer>()
  for (const [name, value] of entries) headers.set(Buffer.from(name, 'utf8'), value)
  return headers
}
