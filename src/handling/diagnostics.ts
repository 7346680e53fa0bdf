/**
 * Handling publishes what happens to messages on the `kafkit:handler` diagnostics channel (undici's and
 * the Kafka client's pattern): publishing costs nothing while nobody subscribes, and metrics, logs or
 * tracing subscribe without sitting on the hot path. `HandlerMetrics` (metrics.ts) is one subscriber.
 */
import diagnostics from 'node:diagnostics_channel'
import type { ErrorKind } from './errors.ts'

export const HANDLER_CHANNEL = 'kafkit:handler'

/** Where a message came from, on every event. */
export interface MessagePosition {
  groupId: string
  topic: string
  partition: number
  offset: bigint
  eventType: string | undefined
}

export type HandlerEvent =
  /** One handler attempt ended (published by the metrics middleware). */
  | (MessagePosition & {
      type: 'attempt'
      attempt: number
      durationMs: number
      ok: boolean
      kind?: ErrorKind | undefined
      error?: unknown
    })
  /** The executor decided a message's (or a batch's) fate; `count` is 1 for single messages. */
  | (MessagePosition & {
      type: 'outcome'
      outcome: 'done' | 'business' | 'dead-letter' | 'aborted' | 'split'
      count: number
      attempts: number
      reason?: ErrorKind | undefined
      error?: unknown
    })
  /** A transient failure will be retried in place after `delayMs`. */
  | (MessagePosition & { type: 'retry'; attempt: number; delayMs: number; error: unknown })
  /** The consumer circuit breaker is not closed: the message waits instead of being retried or dead-lettered. */
  | (MessagePosition & { type: 'suspended'; attempt: number; error: unknown })
  /** The router found no handler; `action` is what its fallback did. */
  | (MessagePosition & { type: 'unrouted'; action: 'skip' | 'business' | 'dead-letter' | 'handler' })
  /** The idempotent consumer skipped an event already processed. */
  | (MessagePosition & { type: 'duplicate'; id: string })
  /** A dead-letter record was acknowledged by the DLQ topic. */
  | (MessagePosition & {
      type: 'dead-lettered'
      dlqTopic: string
      dlqPartition: number | undefined
      dlqOffset: bigint | undefined
      writeAttempts: number
    })
  /** Producing a dead-letter record failed; the writer retries (the message stays uncommitted). */
  | (MessagePosition & { type: 'dead-letter-write-failed'; dlqTopic: string; writeAttempt: number; error: unknown })

export const handlerChannel = diagnostics.channel(HANDLER_CHANNEL)

/** Publishes when someone listens; the event is built only then. */
export function publishHandlerEvent(build: () => HandlerEvent): void {
  if (handlerChannel.hasSubscribers) handlerChannel.publish(build())
}

/** The position fields of an event for a consumed message. */
export function positionOf(
  message: { topic: string; partition: number; offset: bigint; meta: { eventType?: string | undefined } },
  groupId: string
): MessagePosition {
  return {
    groupId,
    topic: message.topic,
    partition: message.partition,
    offset: message.offset,
    eventType: message.meta.eventType
  }
}
