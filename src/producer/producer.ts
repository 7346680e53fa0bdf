/**
 * Kafkit's producer, on the Kafka client's Producer (src/kafka; it does the wire protocol, idempotence,
 * transactions and compression). Kafkit adds what a production service needs around it:
 *
 * - messages in (a plain object or the builder), serialized by a serde, standard headers stamped;
 * - its own accumulator: messages are batched up to `batchSize`/`batchBytes` or `lingerMs`, and one
 *   batch (all its partitions) goes out as one `send` of the client, with up to `maxInFlight`
 *   batches outstanding; `send()` never awaits per message, so the hot path stays a few objects;
 * - bounded memory (`bufferMemory`): a send waits for room (`maxBlockMs`) or fails at once;
 * - partitions chosen here (Java-compatible murmur2, sticky for keyless, round-robin, custom), so
 *   each message's partition and offset come back in its own result;
 * - retries only of retriable errors, with Kafkit's backoff plugged into the client's retry loop:
 *   a retry re-sends the same batch with the same sequence numbers, so with idempotence the broker
 *   drops duplicates (a Kafkit-level re-send would need a new producer id and could duplicate);
 * - per-partition outcomes of a failed batch (`kafka/produce-outcome.ts`): written partitions succeed, a batch
 *   the broker finds too large is split so only the oversized message fails;
 * - a circuit breaker that fails sends fast while the cluster keeps failing, a DLQ topic for
 *   messages whose retries ran out, a send timeout, metrics, transactions, and a close() that
 *   flushes or reports exactly which messages failed.
 *
 * The Producer coordinates the parts that do this, one file each: prepare.ts (message to record),
 * topic-metadata.ts (partition counts), accumulator.ts (admission, memory, batches, linger),
 * sender.ts (requests in flight and their outcomes), delivery-tracker.ts (settling, waiting,
 * timeouts), dead-letters.ts (the DLQ) and transactions.ts; record.ts has what they pass around.
 */
import { EventEmitter } from 'node:events'
import { ClientProducer } from '../kafka/client.ts'
import { toClientOptions } from '../kafka/connection.ts'
import { isKafkitError } from '../errors/kafkit-error.ts'
import { MESSAGE_PARTS, MessageBuilder, MessageParts, type OutgoingMessage } from '../message/builder.ts'
import { jsonSerde, type Serde } from '../message/serde.ts'
import { CircuitBreaker, type BreakerStateChange } from '../resilience/circuit-breaker.ts'
import { RecordAccumulator } from './accumulator.ts'
import { DeadLetters } from './dead-letters.ts'
import { DeliveryTracker } from './delivery-tracker.ts'
import { deliveryRetries, retriesWithin } from './delivery-policy.ts'
import { CircuitOpenError, ProduceError, ProducerClosedError, TransactionStateError } from './errors.ts'
import { ProducerCounters, type ProducerMetrics } from './metrics.ts'
import { producerOptions, type ProducerConfig, type ProducerOptions } from './options.ts'
import { OutageDetector } from './outage.ts'
import { PartitionChooser, type PartitionerFunction, type PartitionerName } from './partitioners.ts'
import { RecordPreparer } from './prepare.ts'
import { IN_FLIGHT, SETTLED, SendGroup, type PendingRecord } from './record.ts'
import { BatchSender } from './sender.ts'
import { TopicMetadata } from './topic-metadata.ts'
import type { ProducerTransaction } from './transaction.ts'
import { Transactions } from './transactions.ts'
import type { CloseOptions, CloseReport, FailedMessage, SendOptions, SendOutcome, SendResult } from './types.ts'

export interface ProducerInit<V = unknown> extends Omit<ProducerOptions, 'partitioner' | 'brokers'> {
  /** Bootstrap brokers; from KAFKA_BROKERS when absent. */
  brokers?: string[]
  /** Turns values into bytes; JSON by default. */
  valueSerde?: Serde<V>
  /** `murmur2` (default), `round-robin`, or a function (message, key bytes, partitions) => partition. */
  partitioner?: PartitionerName | PartitionerFunction
  /** The environment to read `KAFKA_*` from (default `process.env`). */
  env?: NodeJS.ProcessEnv
}

export type ProducerEvents<V> = {
  /** Every change of the circuit breaker's state (closed → open → half-open → closed/open). */
  breaker: [BreakerStateChange]
  /** A message failed for good (also in async mode, where no caller awaits it). */
  failed: [FailedMessage<V>]
}

const noop = () => undefined

export class Producer<V = unknown> extends EventEmitter<ProducerEvents<V>> {
  /** The resolved options (frozen; secrets included, so never log it: use `producerOptions.redact`). */
  readonly config: Readonly<ProducerConfig>
  readonly #client: ClientProducer<Buffer, Buffer, Buffer, Buffer>
  readonly #breaker: CircuitBreaker | undefined
  readonly #outage: OutageDetector | undefined
  readonly #counters = new ProducerCounters()
  readonly #preparer: RecordPreparer<V>
  readonly #topics: TopicMetadata
  readonly #tracker: DeliveryTracker
  readonly #accumulator: RecordAccumulator
  readonly #deadLetters: DeadLetters
  readonly #sender: BatchSender
  readonly #transactions: Transactions
  #closing = false
  #closePromise: Promise<CloseReport<V>> | undefined

  constructor(init: ProducerInit<V> = {}) {
    super()
    const { valueSerde, partitioner, env, ...options } = init
    const source = env ?? process.env
    const profile = options.profile ?? (source.KAFKA_PRODUCER_PROFILE || undefined)
    const resolved = producerOptions.resolve(
      { ...options, ...(typeof partitioner === 'string' ? { partitioner } : {}) },
      { env: source, profile }
    )
    this.config = resolved
    if (resolved.breaker.enabled) {
      // Opened by the outage rule (no acknowledgement for openAfterMs), at its first failure() call.
      this.#breaker = new CircuitBreaker({ threshold: 1, cooldownMs: resolved.breaker.cooldownMs })
      this.#breaker.on('state', change => this.emit('breaker', change))
      this.#outage = new OutageDetector(this.#breaker, resolved.breaker.openAfterMs)
    }
    this.#client = this.#newClient(resolved)
    this.#preparer = new RecordPreparer(resolved, valueSerde ?? jsonSerde<V>())
    this.#topics = new TopicMetadata(
      this.#client,
      resolved,
      retriesWithin(resolved.maxBlockMs, resolved.retryBackoff),
      {
        loadFailed: (topic, failure) => {
          if (failure.retryable) this.#outage?.failed(failure.cause)
          this.#accumulator.failWaiting(topic, failure)
        },
        loadEnded: () => this.#accumulator.drain()
      }
    )
    const counters = this.#counters
    const tracker = new DeliveryTracker(resolved, counters, this.#breaker, {
      listening: () => this.listenerCount('failed') > 0,
      failed: failure => this.emit('failed', failure as FailedMessage<V>)
    })
    this.#tracker = tracker
    const chooser = new PartitionChooser(typeof partitioner === 'function' ? partitioner : resolved.partitioner)
    const accumulator = new RecordAccumulator(resolved, chooser, this.#topics, {
      fail: (record, error) => tracker.fail(record, error),
      pump: () => this.#sender.pump()
    })
    this.#accumulator = accumulator
    const preparer = this.#preparer
    this.#deadLetters = new DeadLetters(this.#client, resolved, {
      buffer: accumulator,
      tracker,
      counters,
      headerName: name => preparer.headerName(name)
    })
    this.#sender = new BatchSender(resolved, {
      client: this.#client,
      accumulator,
      tracker,
      deadLetters: this.#deadLetters,
      topics: this.#topics,
      counters,
      outage: this.#outage
    })
    this.#transactions = new Transactions(this.#client, {
      flushWhere: predicate => this.#flushWhere(predicate),
      failWhere: (predicate, error) => this.#failWhere(predicate, error),
      pump: () => this.#sender.pump()
    })
    tracker.start({ buffer: accumulator, inFlight: this.#sender.inFlight, deadLettering: this.#deadLetters.records })
  }

  /** The underlying Kafka client producer (for what Kafkit does not wrap; do not close it). */
  get client(): ClientProducer<Buffer, Buffer, Buffer, Buffer> {
    return this.#client
  }

  get closed(): boolean {
    return this.#closing
  }

  /** The open transaction, if any. */
  get transactionInProgress(): ProducerTransaction<V> | undefined {
    return this.#transactions.current?.handle
  }

  /**
   * Resolves when the buffer has room again (at once when it has). Await it in a loop that sends
   * without awaiting each acknowledgement, so the loop cannot get ahead of `bufferMemory`:
   * `for (const m of many) { await producer.ready; void producer.send(m).catch(onError) }`.
   */
  get ready(): Promise<void> {
    return this.#accumulator.whenReady()
  }

  /**
   * Sends one message. Resolves once the broker acknowledged it (`status: 'sent'`, with partition
   * and offset), once buffered in async mode (`queued`), or once written to the DLQ after its
   * retries ran out (`dead-lettered`). Rejects with a coded KafkitError otherwise.
   */
  send(input: OutgoingMessage<V> | MessageBuilder<V>, options?: SendOptions): Promise<SendResult> {
    return this.#submit(input, options?.signal, undefined, 0, performance.now()) as Promise<SendResult>
  }

  /**
   * Sends many messages (in order, batched like single sends) and resolves once all are settled,
   * with one outcome per message in the given order; never rejects for a message's failure. One
   * promise for the whole call, so it is the cheapest way to send in bulk. Always waits for the
   * acknowledgements, also in async mode.
   */
  sendBatch(
    inputs: readonly (OutgoingMessage<V> | MessageBuilder<V>)[],
    options?: SendOptions
  ): Promise<SendOutcome[]> {
    if (inputs.length === 0) return Promise.resolve([])
    const group = new SendGroup(inputs.length)
    const signal = options?.signal
    if (signal !== undefined && !signal.aborted) {
      const onAbort = () => {
        for (const record of group.records ?? []) this.#tracker.abort(record, signal.reason as Error)
      }
      signal.addEventListener('abort', onAbort, { once: true })
      group.cleanup = () => signal.removeEventListener('abort', onAbort)
      group.records = []
    }
    // One clock reading for the whole call: its messages are all sent at this instant.
    const now = performance.now()
    for (let i = 0; i < inputs.length; i++) {
      // With a group, #submit reports into it and returns nothing to await.
      void this.#submit(inputs[i] as OutgoingMessage<V>, signal?.aborted ? signal : undefined, group, i, now)
    }
    return group.promise
  }

  /** Sends everything buffered now, without waiting for the linger, and waits until it is settled. */
  async flush(options: { signal?: AbortSignal } = {}): Promise<void> {
    options.signal?.throwIfAborted()
    const pending = this.#tracker.pending()
    if (pending.length === 0) return
    const accumulator = this.#accumulator
    accumulator.flushing++
    try {
      accumulator.seal()
      this.#sender.pump()
      await this.#tracker.waitSettled(pending, options.signal)
    } finally {
      accumulator.flushing--
    }
  }

  /** A copy of the counters now. */
  metrics(): ProducerMetrics {
    const accumulator = this.#accumulator
    return this.#counters.snapshot({
      breakerTrips: this.#breaker?.trips ?? 0,
      breakerState: this.#breaker?.state ?? 'closed',
      buffered: {
        messages: accumulator.bufferedMessages + accumulator.admission.size,
        bytes: accumulator.bufferedBytes
      },
      inFlight: this.#sender.inFlight.size
    })
  }

  /**
   * Opens a transaction: messages already buffered are flushed first, everything sent until
   * commit/abort belongs to it. One transaction at a time per producer.
   */
  async beginTransaction(): Promise<ProducerTransaction<V>> {
    if (this.#closing) throw new ProducerClosedError('the producer is closed')
    return this.#transactions.begin<V>({
      send: (message, options) => this.send(message, options),
      sendBatch: (messages, options) => this.sendBatch(messages, options)
    })
  }

  /** Commits the open transaction (see ProducerTransaction.commit). */
  async commitTransaction(): Promise<void> {
    const handle = this.#transactions.current?.handle
    if (handle === undefined) throw new TransactionStateError('no transaction is open')
    await handle.commit()
  }

  /** Aborts the open transaction (see ProducerTransaction.abort). */
  async abortTransaction(): Promise<void> {
    const handle = this.#transactions.current?.handle
    if (handle === undefined) throw new TransactionStateError('no transaction is open')
    await handle.abort()
  }

  /**
   * Runs `fn` in a transaction: commits when it resolves (after every message sent in it was
   * written), aborts when it throws or a message of it failed, and rethrows.
   */
  async transaction<T>(
    fn: (tx: ProducerTransaction<V>) => Promise<T> | T,
    options: { signal?: AbortSignal } = {}
  ): Promise<T> {
    options.signal?.throwIfAborted()
    const tx = await this.beginTransaction()
    let result: T
    try {
      result = await fn(tx)
      options.signal?.throwIfAborted()
    } catch (error) {
      // The caller's error is what matters; a failed abort leaves it to the broker's transaction timeout.
      if (tx.state === 'open') await tx.abort().catch(noop)
      throw error
    }
    await tx.commit()
    return result
  }

  /**
   * Stops accepting messages, sends everything pending (an open transaction is aborted), closes the
   * connections, and reports: `flushed` messages delivered, `failed` the ones that were not, each
   * with its error. With `timeoutMs`/`signal`, messages still pending then fail with
   * KAFKIT_PRODUCER_CLOSED. Calling it again returns the same report.
   */
  close(options: CloseOptions = {}): Promise<CloseReport<V>> {
    this.#closePromise ??= this.#close(options)
    return this.#closePromise
  }

  /** `await using producer = new Producer(...)`: closes; throws when messages pending then failed. */
  async [Symbol.asyncDispose](): Promise<void> {
    const report = await this.close()
    if (report.failed.length > 0) {
      throw new ProduceError(
        `${report.failed.length} message(s) pending when the producer was disposed were not delivered (first: ${report.failed[0]?.error.message})`,
        {
          details: {
            failed: report.failed.map(f => ({
              topic: f.topic,
              partition: f.partition,
              eventId: f.eventId,
              code: isKafkitError(f.error) ? f.error.code : undefined
            }))
          }
        }
      )
    }
  }

  // ---- admitting ----------------------------------------------------------------------------------

  /**
   * Takes one message in. For send() (no group) returns its promise: the acknowledgement, or in
   * async mode the "queued" answer. For sendBatch() reports into the group and returns undefined.
   */
  #submit(
    input: OutgoingMessage<V> | MessageBuilder<V>,
    signal: AbortSignal | undefined,
    group: SendGroup | undefined,
    index: number,
    now: number
  ): Promise<SendResult> | undefined {
    // A builder is read, not built: the preparer stamps its `event-id` and `timestamp` as bytes.
    const message = input instanceof MessageBuilder ? input[MESSAGE_PARTS]() : input
    if (this.#closing) {
      return this.#refuse(
        message,
        new ProducerClosedError('the producer is closed; the message was not accepted'),
        undefined,
        group,
        index
      )
    }
    const tx = this.#transactions.current
    if (tx?.handle !== undefined && tx.handle.state !== 'open') {
      return this.#refuse(
        message,
        new TransactionStateError(`the producer's transaction is ${tx.handle.state}; no more messages can join it`),
        undefined,
        group,
        index
      )
    }
    let record: PendingRecord
    try {
      record = this.#preparer.prepare(message, now)
    } catch (error) {
      return this.#refuse(message, error as Error, undefined, group, index)
    }
    const breaker = this.#breaker
    if (breaker !== undefined && breaker.state !== 'closed') {
      if (!breaker.canPass()) {
        const error = new CircuitOpenError(
          `the producer's circuit breaker is open after repeated delivery failures; next probe in ${breaker.retryInMs} ms`,
          breaker.retryInMs,
          { details: { topic: record.topic, eventId: record.eventId } }
        )
        return this.#refuse(message, error, undefined, group, index)
      }
      record.probe = true
    }
    if (signal?.aborted) return this.#refuse(message, signal.reason as Error, record, group, index)
    record.tx = tx
    let answer: Promise<SendResult> | undefined
    if (group !== undefined) {
      record.group = group
      record.index = index
      group.records?.push(record)
    } else if (this.config.async) {
      record.queued = Promise.withResolvers<SendResult>()
      answer = record.queued.promise
    } else {
      answer = record.promise()
      if (signal !== undefined) {
        const onAbort = () => this.#tracker.abort(record, signal.reason as Error)
        signal.addEventListener('abort', onAbort, { once: true })
        record.cleanup = () => signal.removeEventListener('abort', onAbort)
      }
    }
    this.#accumulator.admit(record)
    return answer
  }

  /** A message refused before it was buffered. */
  #refuse(
    message: OutgoingMessage<V> | MessageParts<V>,
    error: Error,
    record: PendingRecord | undefined,
    group: SendGroup | undefined,
    index: number
  ): Promise<SendResult> | undefined {
    if (record?.probe) this.#breaker?.release()
    this.#counters.failed(error)
    if (this.listenerCount('failed') > 0) {
      this.emit('failed', {
        message:
          (record?.message as OutgoingMessage<V> | undefined) ??
          (message instanceof MessageParts ? message.message() : message),
        topic: record?.topic ?? message.topic ?? this.config.topic ?? '',
        partition: undefined,
        eventId: record?.eventId,
        error
      })
    }
    if (group !== undefined) {
      group.settle(index, { ok: false, error })
      return undefined
    }
    return Promise.reject(error)
  }

  // ---- flushing and closing -----------------------------------------------------------------------

  async #flushWhere(predicate: (record: PendingRecord) => boolean): Promise<void> {
    const pending = this.#tracker.pending().filter(predicate)
    if (pending.length === 0) return
    const accumulator = this.#accumulator
    accumulator.flushing++
    try {
      // Seal only batches of those records: the open batch may already hold others.
      if (accumulator.open !== undefined && accumulator.open.records.some(predicate)) accumulator.seal()
      this.#sender.pump()
      await this.#tracker.waitSettled(pending)
    } finally {
      accumulator.flushing--
    }
  }

  #failWhere(predicate: (record: PendingRecord) => boolean, error: Error): void {
    for (const record of this.#tracker.pending()) {
      if (!predicate(record) || record.state === IN_FLIGHT) continue
      this.#tracker.fail(record, error)
      this.#accumulator.release(record)
    }
    this.#accumulator.afterRelease()
  }

  async #close(options: CloseOptions): Promise<CloseReport<V>> {
    this.#closing = true
    this.#accumulator.closing = true
    const handle = this.#transactions.current?.handle
    if (handle !== undefined && handle.state === 'open') await handle.abort().catch(noop)
    const pending = this.#tracker.pending()
    this.#accumulator.seal()
    this.#sender.pump()
    const all = this.#tracker.waitSettled(pending)
    const { timeoutMs, signal } = options
    if (timeoutMs !== undefined || signal !== undefined) {
      await this.#settleBy(all, pending, timeoutMs, signal)
    } else {
      await all
    }
    this.#tracker.stop()
    this.#accumulator.stopLinger()
    // The connections go either way; a failing close must not hide the report.
    await this.#client.close(true).catch(noop)
    const failed: FailedMessage<V>[] = []
    for (const record of pending) {
      if (record.error === undefined) continue
      failed.push({
        message: record.message as OutgoingMessage<V>,
        topic: record.topic,
        partition: record.partition < 0 ? undefined : record.partition,
        eventId: record.eventId,
        error: record.error
      })
    }
    return { flushed: pending.length - failed.length, failed }
  }

  /** Waits for `all` until the close deadline; what is still pending then fails. */
  async #settleBy(
    all: Promise<void>,
    pending: PendingRecord[],
    timeoutMs: number | undefined,
    signal: AbortSignal | undefined
  ): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    let onAbort: (() => void) | undefined
    const deadline = new Promise<void>(resolve => {
      if (timeoutMs !== undefined) timer = setTimeout(resolve, timeoutMs)
      if (signal !== undefined) {
        if (signal.aborted) resolve()
        onAbort = () => resolve()
        signal.addEventListener('abort', onAbort, { once: true })
      }
    })
    await Promise.race([all, deadline])
    clearTimeout(timer)
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
    for (const record of pending) {
      if (record.state === SETTLED) continue
      const inFlight = record.state === IN_FLIGHT
      this.#tracker.fail(
        record,
        new ProducerClosedError(
          inFlight
            ? `close() stopped waiting for this message at its deadline; it was sent and may still be written`
            : `close() stopped waiting at its deadline; this message was not sent`,
          { details: { topic: record.topic, partition: record.partition, eventId: record.eventId, inFlight } }
        )
      )
      if (!inFlight) this.#accumulator.release(record)
    }
  }

  #newClient(config: Readonly<ProducerConfig>): ClientProducer<Buffer, Buffer, Buffer, Buffer> {
    const counters = this.#counters
    return new ClientProducer<Buffer, Buffer, Buffer, Buffer>({
      ...toClientOptions(config),
      idempotent: config.idempotent,
      acks: config.acks,
      compression: config.compression,
      ...deliveryRetries({
        deliveryTimeoutMs: config.deliveryTimeoutMs,
        maxRetries: config.maxRetries,
        backoff: config.retryBackoff,
        onRetry: (operationId, error) => {
          if (operationId === 'produce') counters.retries++
          this.#outage?.failed(error)
        }
      }),
      // The broker-side produce timeout and, for transactions, the transaction timeout.
      timeout: config.requestTimeoutMs,
      autocreateTopics: config.autocreateTopics,
      // InitProducerId with id -1 / epoch -1 asks the coordinator for the transactional id's current
      // producer and a bumped epoch (fencing older instances). The client's default (0 / 0) claims to
      // be producer 0, which the broker answers with PRODUCER_FENCED once the id was used before.
      ...(config.transactionalId === undefined
        ? {}
        : { transactionalId: config.transactionalId, producerId: -1n, producerEpoch: -1 })
    })
  }
}
