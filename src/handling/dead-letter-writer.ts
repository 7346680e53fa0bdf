/**
 * Produces dead-letter records and resolves only once the DLQ topic acknowledged them (acks=all by
 * default): the consumer runtime commits a dead-lettered message's offset only after that. A failed
 * write is retried with backoff until acknowledged or the signal aborts (or `maxWriteAttempts` is
 * reached), because giving up would mean either losing the message or stalling silently; every failed
 * write is logged and published on `kafkit:handler`. The writer borrows its producer (any object with
 * the Kafka client's promise `send`, with Buffer serializers) and does not close it.
 */
import type { MessageToProduce, ProduceResult } from '../kafka/client.ts'
import { KafkitError, type KafkitErrorOptions } from '../errors/kafkit-error.ts'
import { backoffDelay, sleep } from '../resilience/backoff.ts'
import { buildDeadLetterRecord, type DeadLetterRecord } from './dead-letter.ts'
import { positionOf, publishHandlerEvent, type MessagePosition } from './diagnostics.ts'
import type { FailureRecord } from './handler-executor.ts'
import { defaultLogger, type HandlingLogger } from './logger.ts'
import { deadLetterOptions, type DeadLetterWriterOptions } from './options.ts'
import type { ConsumedMessage } from './types.ts'

/** The part of the Kafka client's Producer<Buffer, Buffer, Buffer, Buffer> the writer uses. */
export interface DeadLetterProducer {
  send(options: { messages: MessageToProduce<Buffer, Buffer, Buffer, Buffer>[]; acks?: number }): Promise<ProduceResult>
}

export interface DeadLetterWriterInit extends DeadLetterWriterOptions {
  producer: DeadLetterProducer
  /** The consumer group whose messages this writer dead-letters (recorded in each record). */
  groupId: string
  logger?: HandlingLogger
  now?: () => number
  random?: () => number
}

/** Where the DLQ record landed. */
export interface DeadLetterReceipt {
  topic: string
  partition: number | undefined
  offset: bigint | undefined
  /** Writes it took (1 when the first was acknowledged). */
  writeAttempts: number
}

/** The DLQ write was not acknowledged within `maxWriteAttempts`. */
export class DeadLetterWriteError extends KafkitError {
  constructor(message: string, options: KafkitErrorOptions = {}) {
    super('KAFKIT_DLQ_WRITE_FAILED', message, { retryable: true, ...options })
  }
}

function describeError(error: unknown): { name?: string; code?: unknown; message: string } {
  if (!(error instanceof Error)) return { message: String(error) }
  return { name: error.name, code: (error as { code?: unknown }).code, message: error.message }
}

/** The record as the producer takes it. */
function toProduce(record: DeadLetterRecord): MessageToProduce<Buffer, Buffer, Buffer, Buffer> {
  // Each name is its own Buffer object, so a repeated original header stays repeated in the Map.
  const headers = new Map<Buffer, Buffer>()
  for (const [name, value] of record.headerEntries) headers.set(Buffer.from(name, 'utf8'), value)
  // A null value must stay null (tombstone-like poison pills): the client encodes null as "no bytes",
  // while `undefined` would fail its "value is required" check.
  return {
    topic: record.topic,
    value: record.value as Buffer,
    headers,
    ...(record.key === null ? {} : { key: record.key })
  }
}

export class DeadLetterWriter {
  readonly #producer: DeadLetterProducer
  readonly #groupId: string
  readonly #logger: HandlingLogger
  readonly #now: () => number
  readonly #random: (() => number) | undefined
  readonly #config: ReturnType<typeof deadLetterOptions.resolve>

  constructor(init: DeadLetterWriterInit) {
    const { producer, groupId, logger, now, random, ...options } = init
    this.#config = deadLetterOptions.resolve(options)
    this.#producer = producer
    this.#groupId = groupId
    this.#logger = logger ?? defaultLogger()
    this.#now = now ?? Date.now
    this.#random = random
  }

  get topic(): string {
    return this.#config.topic
  }

  /** The record `write` would produce (for inspection and tests). */
  build(message: ConsumedMessage<unknown, unknown>, failure: FailureRecord): DeadLetterRecord {
    return buildDeadLetterRecord(message, failure, {
      topic: this.#config.topic,
      groupId: this.#groupId,
      maxErrorMessageLength: this.#config.maxErrorMessageLength,
      maxStackLength: this.#config.maxStackLength,
      now: this.#now()
    })
  }

  /** Produces the DLQ record for `message`; resolves once acknowledged; rejects on abort. */
  async write(
    message: ConsumedMessage<unknown, unknown>,
    failure: FailureRecord,
    options: {
      signal?: AbortSignal
      /** Told of each failed write (after it was logged), before the next one is tried. */
      onWriteFailure?: (attempt: number, error: unknown) => void
    } = {}
  ): Promise<DeadLetterReceipt> {
    const { signal, onWriteFailure } = options
    const record = this.build(message, failure)
    const produce = toProduce(record)
    const position = positionOf(message, this.#groupId)
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted()
      try {
        const result = await this.#producer.send({ messages: [produce], acks: this.#config.acks })
        return this.#acknowledged(message, failure, record.topic, position, result, attempt)
      } catch (error) {
        this.#writeFailed(message, record.topic, position, attempt, error)
        onWriteFailure?.(attempt, error)
        const max = this.#config.maxWriteAttempts
        if (max !== undefined && attempt >= max) {
          throw new DeadLetterWriteError(
            `dead-letter record for ${message.topic}/${message.partition}@${message.offset} was not acknowledged by ${record.topic} after ${attempt} write(s)`,
            { cause: error, details: { dlqTopic: record.topic, attempts: attempt } }
          )
        }
        await sleep(
          backoffDelay(attempt, { ...this.#config.writeBackoff, ...(this.#random ? { random: this.#random } : {}) }),
          signal
        )
      }
    }
  }

  /** The receipt of an acknowledged write, logged and published as the message's dead-lettering. */
  #acknowledged(
    message: ConsumedMessage<unknown, unknown>,
    failure: FailureRecord,
    dlqTopic: string,
    position: MessagePosition,
    result: ProduceResult,
    attempt: number
  ): DeadLetterReceipt {
    const landed = result.offsets?.find(o => o.topic === dlqTopic)
    const receipt: DeadLetterReceipt = {
      topic: dlqTopic,
      partition: landed?.partition,
      offset: landed?.offset,
      writeAttempts: attempt
    }
    this.#logger.error(
      {
        ...position,
        offset: String(message.offset),
        dlqTopic,
        dlqPartition: receipt.partition,
        dlqOffset: receipt.offset === undefined ? undefined : String(receipt.offset),
        reason: failure.reason,
        attempts: failure.attempts,
        err: describeError(failure.error)
      },
      `message failed: it is in the dead-letter topic ${dlqTopic}`
    )
    publishHandlerEvent(() => ({
      type: 'dead-lettered',
      ...position,
      dlqTopic,
      dlqPartition: receipt.partition,
      dlqOffset: receipt.offset,
      writeAttempts: attempt
    }))
    return receipt
  }

  /** Publishes and logs a failed write. */
  #writeFailed(
    message: ConsumedMessage<unknown, unknown>,
    dlqTopic: string,
    position: MessagePosition,
    attempt: number,
    error: unknown
  ): void {
    publishHandlerEvent(() => ({
      type: 'dead-letter-write-failed',
      ...position,
      dlqTopic,
      writeAttempt: attempt,
      error
    }))
    this.#logger.warn(
      {
        ...position,
        offset: String(message.offset),
        dlqTopic,
        writeAttempt: attempt,
        err: error instanceof Error ? { name: error.name, message: error.message } : String(error)
      },
      'dead-letter write failed: retrying (the message stays uncommitted)'
    )
  }
}
