/**
 * The contract between the consumer runtime (which fetches, orders, commits) and message handling
 * (routing, middleware, error kinds, dead-lettering). A handler resolves when the message is done;
 * it steers failures by throwing (src/handling/errors.ts: transient, permanent, business). How the
 * runtime drives handlers is described at the top of src/handling/handler-executor.ts.
 */
import type { StandardHeaders } from '../message/headers.ts'

export interface ConsumedMessage<V = unknown, K = string | null> {
  topic: string
  partition: number
  offset: bigint
  /** Broker or producer timestamp of the record. */
  timestamp: Date
  /** The key decoded as UTF-8, or null. */
  key: K
  /** The value after deserialization. */
  value: V
  /** Raw record headers, as on the wire. */
  headers: ReadonlyMap<string, Buffer>
  /**
   * Every header in wire order, repeated names included (Kafka allows them; `headers` keeps the last).
   * Optional: when the runtime provides it, dead-letter records copy the headers from here exactly.
   */
  headerEntries?: readonly (readonly [string, Buffer])[]
  /** The standard headers, typed. */
  meta: StandardHeaders
  /** The undecoded key and value, kept for dead-lettering. */
  raw: { key: Buffer | null; value: Buffer | null }
}

export interface HandlerContext {
  /** Aborted when the worker stops or the partition is revoked; long handlers should honour it. */
  signal: AbortSignal
  /** The consumer group this worker belongs to. */
  groupId: string
  /** 1 on the first attempt of this message in this process, then 2, 3, ... for in-place retries. */
  attempt: number
}

export type MessageHandler<V = unknown> = (message: ConsumedMessage<V>, context: HandlerContext) => Promise<void>

/** What a batch handler gets besides its messages. */
export interface BatchContext<V = unknown> extends HandlerContext {
  /**
   * Takes one message of the batch out of it as failed for good: resolves once its dead-letter record
   * (or, with retry tiers, its retry record) is acknowledged by the broker; rejects when it is not
   * (the consumer stops, or `onDeadLetter` is 'stop'), and then the handler should fail the batch. When
   * the handler resolves, that message settles as dead-lettered, the others as done. A handler that
   * stores offsets itself (in its own database) must call this before it stores an offset past the
   * message, so no offset ever passes a record whose failure is not yet durable.
   */
  deadLetter(message: ConsumedMessage<V>, error: unknown): Promise<void>
}

/** A batch handler gets consecutive messages of one partition; throwing fails the whole batch. */
export type BatchHandler<V = unknown> = (messages: ConsumedMessage<V>[], context: BatchContext<V>) => Promise<void>

/** Middleware wraps a handler (undici `compose`, watermill router): `(next) => handler`. */
export type Middleware<V = unknown> = (next: MessageHandler<V>) => MessageHandler<V>

/** Composes middleware once; the first in the list is the outermost. */
export function compose<V>(handler: MessageHandler<V>, middleware: readonly Middleware<V>[]): MessageHandler<V> {
  return middleware.reduceRight<MessageHandler<V>>((next, wrap) => wrap(next), handler)
}
