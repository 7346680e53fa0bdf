/**
 * What the producer hands back: the result of one send, the outcome of each message of a batch, the
 * report of `close()`, and the options a single call takes.
 */
import type { OutgoingMessage } from '../message/builder.ts'

export interface SendResult {
  /**
   * `sent`: acknowledged by the broker (with acks 0: handed to the socket); `queued`: accepted into
   * the buffer (async mode, not yet acknowledged); `dead-lettered`: the retries ran out and the
   * message was written to the producer DLQ instead (see `deadLetter`).
   */
  status: 'sent' | 'queued' | 'dead-lettered'
  topic: string
  partition: number
  /** The message's offset; undefined with acks 0, for `queued`, and for `dead-lettered`. */
  offset: bigint | undefined
  /** The `event-id` header, when the message has one. */
  eventId: string | undefined
  deadLetter?: { topic: string; partition: number | undefined; offset: bigint | undefined; error: Error }
}

/** One entry per message of `sendBatch`, in the order given. */
export type SendOutcome = { ok: true; result: SendResult } | { ok: false; error: Error }

export interface SendOptions {
  /** Abandons the send: a message not yet in flight is dropped; one in flight may still be written. */
  signal?: AbortSignal
}

/** A message that was pending when close() began and was not delivered. */
export interface FailedMessage<V = unknown> {
  message: OutgoingMessage<V>
  topic: string
  partition: number | undefined
  eventId: string | undefined
  error: Error
}

export interface CloseReport<V = unknown> {
  /** Messages pending at close() that were acknowledged (or dead-lettered) before it returned. */
  flushed: number
  /** Messages pending at close() that failed, each with its error. Empty when everything was flushed. */
  failed: FailedMessage<V>[]
}

export interface CloseOptions {
  /** Stop waiting for pending messages after this long; the rest fail with KAFKIT_PRODUCER_CLOSED. */
  timeoutMs?: number
  signal?: AbortSignal
}
