/**
 * The producer's DLQ (`dlqTopic`): messages whose retries ran out are written there with their key,
 * value and headers plus the dead-letter headers (where they came from, which error, how many
 * attempts) and then resolve as `dead-lettered`. When that write fails too, they fail with both
 * errors.
 */
import type { ProduceResult } from '../kafka/client.ts'
import { DEAD_LETTER_FORMAT_VERSION, DeadLetterHeader } from '../message/wire-format.ts'
import { describe } from './error-text.ts'
import { ProduceError } from './errors.ts'
import type { ProducerCounters } from './metrics.ts'
import type { ProducerConfig } from './options.ts'
import { SETTLED, type Bytes, type PendingRecord } from './record.ts'

/** The client's send, as far as this part uses it. */
export interface DeadLetterClient {
  send(options: { messages: Bytes[]; acks: number }): Promise<ProduceResult>
}

/** What the dead letters settle through: the accumulator's memory and the delivery tracker. */
export interface DeadLetterParts {
  buffer: { release(record: PendingRecord): void; afterRelease(): void }
  tracker: { fail(record: PendingRecord, error: Error): void; notifySettled(): void }
  counters: ProducerCounters
  /** A header name's bytes (cached). */
  headerName(name: string): Buffer
}

export class DeadLetters {
  /** Records being written to the DLQ. */
  readonly records = new Set<PendingRecord>()
  readonly #client: DeadLetterClient
  readonly #config: Readonly<Pick<ProducerConfig, 'acks' | 'clientId'>>
  readonly #parts: DeadLetterParts

  constructor(
    client: DeadLetterClient,
    config: Readonly<Pick<ProducerConfig, 'acks' | 'clientId'>>,
    parts: DeadLetterParts
  ) {
    this.#client = client
    this.#config = config
    this.#parts = parts
  }

  /** Writes messages whose retries ran out to `dlqTopic`; they resolve as `dead-lettered`. */
  write(group: PendingRecord[], error: ProduceError, dlqTopic: string): void {
    const live = group.filter(record => record.state !== SETTLED)
    for (const record of group) if (record.state === SETTLED) this.#parts.buffer.release(record)
    if (live.length === 0) return
    for (const record of live) this.records.add(record)
    const at = Buffer.from(new Date().toISOString(), 'latin1')
    const messages = live.map(record => this.#message(record, error, dlqTopic, at))
    this.#client.send({ messages, acks: this.#config.acks }).then(
      result => this.#written(live, error, dlqTopic, result),
      (dlqError: unknown) => this.#failed(live, error, dlqTopic, dlqError)
    )
  }

  #message(record: PendingRecord, error: ProduceError, dlqTopic: string, at: Buffer): Bytes {
    const headers = new Map<Buffer, Buffer>(record.headers)
    const add = (name: string, value: string | Buffer) =>
      headers.set(this.#parts.headerName(name), typeof value === 'string' ? Buffer.from(value, 'utf8') : value)
    add(DeadLetterHeader.version, String(DEAD_LETTER_FORMAT_VERSION))
    add(DeadLetterHeader.originTopic, record.topic)
    add(DeadLetterHeader.originPartition, String(record.partition))
    add(DeadLetterHeader.errorKind, 'transient')
    add(DeadLetterHeader.errorClass, error.name)
    add(DeadLetterHeader.errorCode, error.code)
    add(DeadLetterHeader.errorMessage, error.message.slice(0, 1024))
    add(DeadLetterHeader.attempts, String((error.details as { attempts?: number } | undefined)?.attempts ?? 1))
    add(DeadLetterHeader.deadLetteredAt, at)
    add(DeadLetterHeader.producer, this.#config.clientId)
    const out: Bytes = { topic: dlqTopic, value: record.value as Buffer, headers }
    if (record.key !== undefined) out.key = record.key
    return out
  }

  #written(live: PendingRecord[], error: ProduceError, dlqTopic: string, result: ProduceResult): void {
    const { buffer, tracker, counters } = this.#parts
    const offsets = result.offsets ?? []
    const onePartition = offsets.length === 1 ? offsets[0] : undefined
    live.forEach((record, i) => {
      this.records.delete(record)
      buffer.release(record)
      if (record.state === SETTLED) return
      record.state = SETTLED
      record.cleanup?.()
      counters.messagesDeadLettered++
      counters.lastError = { code: error.code, message: error.message, at: new Date() }
      record.deliver({
        status: 'dead-lettered',
        topic: record.topic,
        partition: record.partition,
        offset: undefined,
        eventId: record.eventId,
        deadLetter: {
          topic: dlqTopic,
          partition: onePartition?.partition,
          offset: onePartition === undefined ? undefined : onePartition.offset + BigInt(i),
          error
        }
      })
    })
    buffer.afterRelease()
    tracker.notifySettled()
  }

  #failed(live: PendingRecord[], error: ProduceError, dlqTopic: string, dlqError: unknown): void {
    const { buffer, tracker } = this.#parts
    const failure = new ProduceError(
      `${error.message}; writing it to the DLQ topic ${dlqTopic} failed too: ${describe(dlqError)}`,
      {
        cause: error,
        retryable: true,
        details: { ...error.details, dlqTopic }
      }
    )
    for (const record of live) {
      this.records.delete(record)
      buffer.release(record)
      tracker.fail(record, failure)
    }
    buffer.afterRelease()
  }
}
