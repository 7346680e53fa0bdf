/**
 * The message a producer sends, and the fluent builder for it: key, value, headers and the
 * standard headers (`event-type`, `correlation-id`, `conversation-id`, `source`, `schema-version`,
 * `retry-count`), with `event-id` (a UUIDv7) and `timestamp` (RFC 3339) filled in at `build()` when
 * absent. Consumers read the standard headers back typed with `readStandardHeaders`. The value keeps
 * its type parameter, so the producer's serde checks it at compile time.
 *
 * ```ts
 * const msg = message({ action: 'create_booking' })
 *   .key('booking-12345')
 *   .eventType('booking.create.requested')
 *   .correlationId('corr-abc-123')
 *   .source('pipeline-executor')
 *   .build()
 * ```
 */
import { StandardHeader, type HeaderValue } from './headers.ts'
import { newEventId } from './uuid.ts'
import { KafkitError } from '../errors/kafkit-error.ts'

/** A message being built is incomplete or has an invalid field; nothing was sent. */
export class InvalidMessageError extends KafkitError {
  constructor(message: string) {
    super('KAFKIT_MESSAGE_INVALID', message)
  }
}

/** Header values are UTF-8 text or raw bytes; names are text. */
export type MessageHeaders = Readonly<Record<string, HeaderValue>> | ReadonlyMap<string, HeaderValue>

/** What `producer.send` takes: a plain object or the result of the builder. */
export interface OutgoingMessage<V = unknown> {
  /** The topic; the producer's `topic` option when absent. */
  topic?: string | undefined
  /** Partitioning key (UTF-8 text or bytes); `null`/absent: no key. */
  key?: string | Buffer | null | undefined
  value: V
  headers?: MessageHeaders | undefined
  /** An explicit partition; the partitioner picks one when absent. */
  partition?: number | undefined
  /** The record timestamp (CreateTime); the send time when absent. */
  timestamp?: Date | number | undefined
}

const NO_VALUE: unique symbol = Symbol('no value')

/**
 * Internal (not exported from the package): the key of the method a producer reads a builder's fields
 * with at send, so sending a builder does not build a frozen message first.
 */
export const MESSAGE_PARTS: unique symbol = Symbol('kafkit.messageParts')

/**
 * Internal: a builder's fields at the instant it was sent. `headers` is the builder's own map, shared:
 * the builder copies it before its next change, so later changes to the builder do not reach a message
 * already sent. `message()` gives what build() would have returned for the same instant.
 */
export class MessageParts<V = unknown> {
  readonly topic: string | undefined
  readonly key: string | Buffer | null | undefined
  readonly value: V
  readonly partition: number | undefined
  readonly timestamp: Date | number | undefined
  readonly headers: ReadonlyMap<string, HeaderValue>
  /** The `timestamp` header from an explicit timestamp (made at once: an invalid one throws as build() does). */
  readonly stamp: string | undefined

  constructor(
    topic: string | undefined,
    key: string | Buffer | null | undefined,
    value: V,
    partition: number | undefined,
    timestamp: Date | number | undefined,
    headers: ReadonlyMap<string, HeaderValue>
  ) {
    this.topic = topic
    this.key = key
    this.value = value
    this.partition = partition
    this.timestamp = timestamp
    this.headers = headers
    this.stamp =
      timestamp === undefined || headers.get(StandardHeader.timestamp) !== undefined
        ? undefined
        : new Date(timestamp).toISOString()
  }

  /**
   * The frozen message build() returns: the headers given, then `event-id` and `timestamp` when absent
   * (`eventId` and `timestamp` when given: what the producer stamped; else a new id and now).
   */
  message(eventId?: string, timestamp?: string): Readonly<OutgoingMessage<V>> {
    const headers: Record<string, HeaderValue> = Object.fromEntries(this.headers)
    headers[StandardHeader.eventId] ??= eventId ?? newEventId()
    if (headers[StandardHeader.timestamp] === undefined) {
      headers[StandardHeader.timestamp] = this.stamp ?? timestamp ?? new Date().toISOString()
    }
    const built: OutgoingMessage<V> = { value: this.value, headers: Object.freeze(headers) }
    if (this.topic !== undefined) built.topic = this.topic
    if (this.key !== undefined) built.key = this.key
    if (this.partition !== undefined) built.partition = this.partition
    if (this.timestamp !== undefined) built.timestamp = this.timestamp
    return Object.freeze(built)
  }
}

/**
 * Builds one message. Each setter returns the builder; `build()` returns a frozen message and may be
 * called again (each call stamps a fresh `event-id` unless one was set explicitly).
 */
export class MessageBuilder<V = unknown> {
  #topic: string | undefined
  #key: string | Buffer | null | undefined
  #value: V | typeof NO_VALUE = NO_VALUE
  #partition: number | undefined
  #timestamp: Date | number | undefined
  #headers = new Map<string, HeaderValue>()
  /** The header map was handed to a message sent: copy it before changing it. */
  #shared = false

  /** Sets the value, and with it the value type. */
  value<T>(value: T): MessageBuilder<T> {
    const self = this as unknown as MessageBuilder<T>
    self.#value = value
    return self
  }

  key(key: string | Buffer | null): this {
    this.#key = key
    return this
  }

  topic(topic: string): this {
    this.#topic = topic
    return this
  }

  partition(partition: number): this {
    if (!Number.isInteger(partition) || partition < 0) {
      throw new InvalidMessageError(`partition must be a whole number >= 0, got ${String(partition)}`)
    }
    this.#partition = partition
    return this
  }

  /** The record timestamp (CreateTime). The `timestamp` header is set at build() from the same instant. */
  timestamp(timestamp: Date | number): this {
    this.#timestamp = timestamp
    return this
  }

  /** One header; a later call with the same name replaces it. */
  header(name: string, value: HeaderValue): this {
    this.#ownHeaders().set(name, value)
    return this
  }

  /** Several headers at once (merged over the ones set so far). */
  headers(headers: MessageHeaders): this {
    const own = this.#ownHeaders()
    const entries = headers instanceof Map ? headers.entries() : Object.entries(headers)
    for (const [name, value] of entries as Iterable<[string, HeaderValue]>) own.set(name, value)
    return this
  }

  #ownHeaders(): Map<string, HeaderValue> {
    if (this.#shared) {
      this.#headers = new Map(this.#headers)
      this.#shared = false
    }
    return this.#headers
  }

  /** `event-id`; a UUIDv7 is generated at build() when none is set. */
  eventId(id: string): this {
    return this.header(StandardHeader.eventId, id)
  }

  eventType(type: string): this {
    return this.header(StandardHeader.eventType, type)
  }

  correlationId(id: string): this {
    return this.header(StandardHeader.correlationId, id)
  }

  conversationId(id: string): this {
    return this.header(StandardHeader.conversationId, id)
  }

  source(source: string): this {
    return this.header(StandardHeader.source, source)
  }

  schemaVersion(version: string): this {
    return this.header(StandardHeader.schemaVersion, version)
  }

  retryCount(count: number): this {
    if (!Number.isInteger(count) || count < 0) {
      throw new InvalidMessageError(`retry count must be a whole number >= 0, got ${String(count)}`)
    }
    return this.header(StandardHeader.retryCount, String(count))
  }

  build(): Readonly<OutgoingMessage<V>> {
    return this.#parts().message()
  }

  /** Internal: the fields as they are now, for a producer sending this builder (see MessageParts). */
  [MESSAGE_PARTS](): MessageParts<V> {
    const parts = this.#parts()
    this.#shared = true
    return parts
  }

  #parts(): MessageParts<V> {
    if (this.#value === NO_VALUE) throw new InvalidMessageError('message has no value: call .value(...) first')
    return new MessageParts(this.#topic, this.#key, this.#value, this.#partition, this.#timestamp, this.#headers)
  }
}

/** Starts a message: `message(value).key(k).eventType(t).build()`, or `message().value(v)...`. */
export function message(): MessageBuilder
export function message<V>(value: V): MessageBuilder<V>
export function message<V>(...args: [] | [V]): MessageBuilder<V> | MessageBuilder {
  const builder = new MessageBuilder()
  return args.length === 0 ? builder : builder.value(args[0])
}
