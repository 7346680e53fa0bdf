/**
 * Every write of the retry flow (a record to a tier, a parked record, a key's state, a resolution) must
 * be acknowledged by all in-sync replicas before the record it moves is settled: otherwise a crash
 * could commit past a record that exists nowhere. A failed write is retried with backoff until it is
 * acknowledged or the signal aborts; giving up would mean losing the record or stalling silently.
 */
import type { MessageToProduce, ProduceResult } from '../kafka/client.ts'
import type { HandlingLogger } from '../handling/logger.ts'
import { PartitionLanes, sendPerPartition } from '../producer/partition-sends.ts'
import { backoffDelay, sleep } from '../resilience/backoff.ts'

export type OutgoingRecord = MessageToProduce<Buffer, Buffer, Buffer, Buffer>

/** The part of the Kafka client's Producer<Buffer, Buffer, Buffer, Buffer> the retry flow uses. */
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

/**
 * Coalesces sends into fewer produce requests: while one request is in flight, records sent meanwhile
 * wait and go out together in the next one (up to `maxBatch`). Under load, a record routed to a tier
 * then costs a share of a request rather than a request of its own; when idle it goes out at once.
 * Resolves each caller once its records are acknowledged; a failed request fails every caller in it
 * (each retries on its own). Offsets are not reported back.
 */
interface PendingSend {
  messages: OutgoingRecord[]
  resolve: (result: ProduceResult) => void
  reject: (error: unknown) => void
}

export class CoalescingSender implements RetryProducer {
  readonly #producer: RetryProducer
  readonly #maxInFlight: number
  readonly #maxBatch: number
  readonly #perPartition: () => boolean
  readonly #lanes = new PartitionLanes()
  #queue: PendingSend[] = []
  #inFlight = 0

  constructor(
    producer: RetryProducer,
    options: {
      maxInFlight?: number
      maxBatch?: number
      /** True when records must go out one send per partition (more than one broker: see partition-sends.ts). */
      perPartition?: () => boolean
    } = {}
  ) {
    this.#producer = producer
    this.#maxInFlight = options.maxInFlight ?? 1
    this.#maxBatch = options.maxBatch ?? 500
    this.#perPartition = options.perPartition ?? (() => false)
  }

  send(options: { messages: OutgoingRecord[]; acks?: number }): Promise<ProduceResult> {
    return new Promise<ProduceResult>((resolve, reject) => {
      this.#queue.push({ messages: options.messages, resolve, reject })
      this.#pump()
    })
  }

  #pump(): void {
    while (this.#inFlight < this.#maxInFlight && this.#queue.length > 0) {
      const batch: PendingSend[] = []
      let count = 0
      while (
        this.#queue.length > 0 &&
        (batch.length === 0 || count + (this.#queue[0]?.messages.length ?? 0) <= this.#maxBatch)
      ) {
        const next = this.#queue.shift() as PendingSend
        batch.push(next)
        count += next.messages.length
      }
      this.#inFlight++
      const messages = batch.flatMap(entry => entry.messages)
      const send = (options: { messages: OutgoingRecord[]; acks: number }) => this.#producer.send(options)
      ;(this.#perPartition() ? sendPerPartition(send, messages, -1, this.#lanes) : send({ messages, acks: -1 }))
        .then(
          () => {
            for (const entry of batch) entry.resolve({})
          },
          (error: unknown) => {
            for (const entry of batch) entry.reject(error)
          }
        )
        .finally(() => {
          this.#inFlight--
          this.#pump()
        })
    }
  }
}
