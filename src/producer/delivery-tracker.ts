/**
 * Delivery tracking: the records between send() and their outcome. It settles a record that failed
 * (counted, reported as a `failed` event and to its transaction, handed to its promise, its
 * sendBatch slot or its `queued` promise), waits until given records are settled (flush, close,
 * transactions), and sweeps: a record that waited for room longer than `maxBlockMs`, or is pending
 * longer than `deliveryTimeoutMs`, fails.
 */
import { isRetriable } from '../kafka/errors.ts'
import type { Fifo } from '../util/fifo.ts'
import { BufferFullError, SendTimeoutError } from './errors.ts'
import type { ProducerCounters } from './metrics.ts'
import type { ProducerConfig } from './options.ts'
import { IN_FLIGHT, SETTLED, type Batch, type PendingRecord } from './record.ts'
import type { FailedMessage } from './types.ts'

/** Who hears of failed messages (the producer's `failed` event). */
export interface FailureListener {
  /** Whether anyone listens: the event is only built then. */
  listening(): boolean
  failed(failure: FailedMessage): void
}

/** Where the records not settled yet are. */
export interface RecordPlaces {
  /** Waiting for admission, and batched (the accumulator). */
  readonly buffer: {
    readonly admission: Fifo<PendingRecord>
    readonly ready: readonly Batch[]
    readonly open: Batch | undefined
    release(record: PendingRecord): void
    afterRelease(): void
  }
  /** Sent, not answered yet. */
  readonly inFlight: Iterable<Batch>
  /** Being written to the DLQ. */
  readonly deadLettering: Iterable<PendingRecord>
}

const noop = () => undefined

export class DeliveryTracker {
  readonly #config: Readonly<Pick<ProducerConfig, 'deliveryTimeoutMs' | 'maxBlockMs'>>
  readonly #counters: ProducerCounters
  readonly #breaker: { release(): void } | undefined
  readonly #listener: FailureListener
  readonly #now: () => number
  #places: RecordPlaces | undefined
  #sweeper: NodeJS.Timeout | undefined
  #settled: PromiseWithResolvers<void> | undefined

  constructor(
    config: Readonly<Pick<ProducerConfig, 'deliveryTimeoutMs' | 'maxBlockMs'>>,
    counters: ProducerCounters,
    breaker: { release(): void } | undefined,
    listener: FailureListener,
    now: () => number = () => performance.now()
  ) {
    this.#config = config
    this.#counters = counters
    this.#breaker = breaker
    this.#listener = listener
    this.#now = now
  }

  /** Tracks the records in `places`: sweeps them every so often (a tenth of the shortest timeout, 10 ms to 1 s). */
  start(places: RecordPlaces): void {
    this.#places = places
    const { deliveryTimeoutMs, maxBlockMs } = this.#config
    const every = Math.min(deliveryTimeoutMs, maxBlockMs || deliveryTimeoutMs)
    this.#sweeper = setInterval(() => this.sweep(), Math.max(10, Math.min(1000, Math.floor(every / 10))))
    this.#sweeper.unref()
  }

  stop(): void {
    clearInterval(this.#sweeper)
    this.#sweeper = undefined
  }

  /** Settles a record as failed (no-op when it is settled already); its memory is the caller's to release. */
  fail(record: PendingRecord, error: Error): void {
    if (record.state === SETTLED) return
    record.state = SETTLED
    record.error = error
    record.cleanup?.()
    if (record.probe && !isRetriable(error.cause ?? error)) this.#breaker?.release()
    this.#counters.failed(error)
    record.tx?.failures.push({ message: record.message, error })
    if (this.#listener.listening()) {
      this.#listener.failed({
        message: record.message,
        topic: record.topic,
        partition: record.partition < 0 ? undefined : record.partition,
        eventId: record.eventId,
        error
      })
    }
    if (record.group !== undefined) record.group.settle(record.index, { ok: false, error })
    else if (record.reject !== undefined) record.reject(error)
    else record.queued?.reject(error)
    this.notifySettled()
  }

  /** Drops a record the caller gave up on (its abort signal); one in flight may still be written. */
  abort(record: PendingRecord, reason: Error): void {
    if (record.state === SETTLED) return
    const inFlight = record.state === IN_FLIGHT
    this.fail(record, reason)
    const buffer = this.#buffer()
    // Memory of a message in flight is freed when its request completes.
    if (!inFlight) buffer.release(record)
    buffer.afterRelease()
  }

  /** Wakes whoever waits for records to settle. */
  notifySettled(): void {
    const waiter = this.#settled
    if (waiter !== undefined) {
      this.#settled = undefined
      waiter.resolve()
    }
  }

  /** Resolves once every record given is settled; rejects when the signal aborts first. */
  async waitSettled(records: PendingRecord[], signal?: AbortSignal): Promise<void> {
    let i = 0
    let aborted: Promise<never> | undefined
    let onAbort: (() => void) | undefined
    try {
      for (;;) {
        while (i < records.length && (records[i] as PendingRecord).state === SETTLED) i++
        if (i === records.length) return
        this.#settled ??= Promise.withResolvers<void>()
        if (signal === undefined) {
          await this.#settled.promise
        } else {
          if (aborted === undefined) {
            signal.throwIfAborted()
            aborted = new Promise<never>((_, reject) => {
              onAbort = () => reject(signal.reason as Error)
              signal.addEventListener('abort', onAbort, { once: true })
            })
            aborted.catch(noop)
          }
          await Promise.race([this.#settled.promise, aborted])
        }
      }
    } finally {
      if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
    }
  }

  /** Every record not settled yet: waiting, buffered, in flight or being dead-lettered. */
  pending(): PendingRecord[] {
    const places = this.#placesOrThrow()
    const out: PendingRecord[] = []
    for (const record of places.buffer.admission) if (record.state !== SETTLED) out.push(record)
    const add = (batch: Batch) => {
      for (const record of batch.records) if (record.state !== SETTLED) out.push(record)
    }
    for (const batch of places.inFlight) add(batch)
    for (const batch of places.buffer.ready) add(batch)
    if (places.buffer.open !== undefined) add(places.buffer.open)
    for (const record of places.deadLettering) if (record.state !== SETTLED) out.push(record)
    return out
  }

  /** Fails messages that waited or were pending too long (maxBlockMs, deliveryTimeoutMs). */
  sweep(): void {
    const places = this.#placesOrThrow()
    const buffer = places.buffer
    const now = this.#now()
    this.#sweepWaiting(buffer.admission, now)
    let released = false
    for (const batch of places.inFlight) this.#expire(batch, true, now)
    for (const batch of buffer.ready) released = this.#expire(batch, false, now) || released
    if (buffer.open !== undefined) released = this.#expire(buffer.open, false, now) || released
    if (released || buffer.admission.size > 0) buffer.afterRelease()
  }

  /** Fails records waiting for admission too long: for room (maxBlockMs) or at all (deliveryTimeoutMs). */
  #sweepWaiting(admission: Fifo<PendingRecord>, now: number): void {
    const { deliveryTimeoutMs, maxBlockMs } = this.#config
    for (const record of admission) {
      if (record.state === SETTLED) continue
      const waited = now - record.enqueuedAt
      if (waited <= Math.min(maxBlockMs, deliveryTimeoutMs)) break
      this.fail(
        record,
        waited > maxBlockMs && maxBlockMs <= deliveryTimeoutMs
          ? new BufferFullError(
              `no room in the producer's buffer within maxBlockMs (${maxBlockMs} ms); the message was not sent`,
              {
                details: { topic: record.topic, eventId: record.eventId }
              }
            )
          : new SendTimeoutError(
              `a message to ${record.topic} waited ${Math.round(waited)} ms without being sent (deliveryTimeoutMs ${deliveryTimeoutMs} ms)`,
              {
                details: { topic: record.topic, eventId: record.eventId, inFlight: false }
              }
            )
      )
    }
  }

  /** Fails a batch's records pending longer than deliveryTimeoutMs; true when it released memory. */
  #expire(batch: Batch, inFlight: boolean, now: number): boolean {
    const deliveryTimeoutMs = this.#config.deliveryTimeoutMs
    let released = false
    for (const record of batch.records) {
      if (record.state === SETTLED) continue
      const waited = now - record.enqueuedAt
      if (waited <= deliveryTimeoutMs) return released
      this.fail(
        record,
        new SendTimeoutError(
          inFlight
            ? `a message to ${record.topic}/${record.partition} was not acknowledged within deliveryTimeoutMs (${deliveryTimeoutMs} ms); it was sent and may still be written`
            : `a message to ${record.topic}/${record.partition} was not sent within deliveryTimeoutMs (${deliveryTimeoutMs} ms)`,
          { details: { topic: record.topic, partition: record.partition, eventId: record.eventId, inFlight } }
        )
      )
      if (!inFlight) {
        this.#buffer().release(record)
        released = true
      }
    }
    return released
  }

  #buffer(): RecordPlaces['buffer'] {
    return this.#placesOrThrow().buffer
  }

  #placesOrThrow(): RecordPlaces {
    if (this.#places === undefined) throw new Error('the delivery tracker was not started')
    return this.#places
  }
}
