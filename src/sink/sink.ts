/**
 * The sink runner: Kafka to a database, seed 000's pipeline as a component. It consumes `topics`,
 * decodes and maps each record to a row (or to no row), collects consecutive records of one partition
 * into a batch (`batchSize`, `lingerMs`), hands the batch to a `SinkWriter` (`kafkit/postgres`,
 * `kafkit/clickhouse`, or the user's) and commits the partition's Kafka offset only after the write
 * resolved (and after any dead-letter record was acknowledged).
 *
 * Failures go through message handling's pieces (src/handling): the HandlerExecutor retries a failed
 * write in place; a write the database rejects because of the data is split into single records so the
 * bad one is found; the ConsumerCircuitBreaker opens after consecutive failed writes of an unavailable
 * database, and then fetching pauses and the batch in flight waits (nothing committed, dead-lettered or
 * lost) until a probe write succeeds. Bad records (undecodable, mapping threw, row rejected) stop the
 * sink (`errorsTolerance: 'none'`) or go to the DLQ topic (`'all'`) through the DeadLetterWriter.
 *
 * Exactly-once writers store offsets themselves; the runner loads them after every (re)assignment and
 * drops records below them before writing, so the database, not the Kafka group, says where a
 * partition resumes. The Kafka commit after each write keeps the group's lag meaningful.
 *
 * Built directly on @platformatic/kafka's consumer (one stream, manual commits); see docs/sinks.md.
 */
import { EventEmitter } from 'node:events'
import {
  Consumer,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  Producer,
  type Message,
  type MessagesStream
} from '@platformatic/kafka'
import { toClientOptions } from '../config/connection.ts'
import { isKafkitError } from '../errors/kafkit-error.ts'
import { ConsumerCircuitBreaker } from '../handling/consumer-breaker.ts'
import { DeadLetterWriter } from '../handling/dead-letter-writer.ts'
import { DeserializationError, type ErrorKind } from '../handling/errors.ts'
import {
  HandlerExecutor,
  undeserializableOutcome,
  type DeadLetterOutcome,
  type HandlingOutcome
} from '../handling/handler-executor.ts'
import { defaultLogger, type HandlingLogger } from '../handling/logger.ts'
import type { ConsumedMessage } from '../handling/types.ts'
import { readStandardHeaders } from '../message/headers.ts'
import { jsonSerde, utf8Strict, type Serde } from '../message/serde.ts'
import { SinkMappingError, SinkStoppedError } from './errors.ts'
import { sinkOptions, type SinkConfig, type SinkOptions } from './options.ts'
import type { SinkRecord, SinkWriteResult, SinkWriter } from './types.ts'

type RawRecord = Message<Buffer, Buffer, Buffer, Buffer>

/** Maps one decoded record to its row; null (or undefined) stores nothing for it; throwing makes it a bad record. */
export type SinkMapping<V, Row> = (
  message: ConsumedMessage<V>
) => Row | null | undefined | Promise<Row | null | undefined>

export interface SinkInit<V, Row> extends SinkOptions {
  writer: SinkWriter<Row>
  map: SinkMapping<V, Row>
  /** Decodes record values; default JSON (strict UTF-8). */
  valueSerde?: Serde<V>
  logger?: HandlingLogger
  /** Test hook (chaos fixture): called after a batch is stored and before its Kafka offset is committed. */
  afterWrite?: (batch: SinkBatchReport) => void | Promise<void>
}

/** What one processed batch did; emitted as `batch`. */
export interface SinkBatchReport {
  topic: string
  partition: number
  firstOffset: bigint
  lastOffset: bigint
  records: number
  written: number
  skipped: number
  deadLettered: number
  /** Records below the offsets stored by an exactly-once writer, dropped before the write. */
  alreadyStored: number
  path: string
}

export interface SinkStats {
  records: number
  written: number
  skipped: number
  deadLettered: number
  alreadyStored: number
  batches: number
  breakerTrips: number
}

interface Pending {
  records: RawRecord[]
  since: number
}

/** The dead-letter outcome of a bad record: the executor's own, or one for a decode / mapping failure. */
function deadLetterOutcome(error: unknown): DeadLetterOutcome {
  if ((error as DeadLetterOutcome | undefined)?.kind === 'dead-letter') return error as DeadLetterOutcome
  if (error instanceof DeserializationError) return undeserializableOutcome(error)
  const now = new Date()
  return { kind: 'dead-letter', reason: 'permanent', error, attempts: 1, firstFailureAt: now, lastFailureAt: now }
}

export class Sink<V = unknown, Row = Record<string, unknown>> extends EventEmitter<{
  batch: [SinkBatchReport]
  breaker: [{ from: string; to: string }]
  error: [Error]
}> {
  readonly config: Readonly<SinkConfig>
  readonly writer: SinkWriter<Row>
  readonly breaker: ConsumerCircuitBreaker
  readonly #map: SinkMapping<V, Row>
  readonly #serde: Serde<V>
  readonly #logger: HandlingLogger
  readonly #afterWrite: SinkInit<V, Row>['afterWrite']
  readonly #executor: HandlerExecutor<V>
  readonly #rows = new WeakMap<ConsumedMessage<V>, Row | null>()
  readonly #stats: SinkStats = {
    records: 0,
    written: 0,
    skipped: 0,
    deadLettered: 0,
    alreadyStored: 0,
    batches: 0,
    breakerTrips: 0
  }
  readonly #pending = new Map<string, Pending>()
  readonly #accepted = new Map<string, bigint>()
  readonly #controller = new AbortController()
  #consumer: Consumer<Buffer, Buffer, Buffer, Buffer> | undefined
  #producer: Producer<Buffer, Buffer, Buffer, Buffer> | undefined
  #dlq: DeadLetterWriter | undefined
  #stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined
  #stored: Map<string, bigint> | undefined
  #wake: (() => void) | undefined
  #buffered = 0
  #running: Promise<void> | undefined
  /** What the writes of the batch in flight on each partition stored (one batch per partition at a time). */
  readonly #batchWrites = new Map<string, SinkWriteResult>()

  constructor(init: SinkInit<V, Row>) {
    super()
    const { writer, map, valueSerde, logger, afterWrite, ...options } = init
    this.config = sinkOptions.resolve(options)
    this.writer = writer
    this.#map = map
    this.#serde = valueSerde ?? jsonSerde<V>()
    this.#logger = logger ?? defaultLogger()
    this.#afterWrite = afterWrite
    this.breaker = new ConsumerCircuitBreaker(this.config.breaker)
    this.breaker.on('state', change => {
      if (change.to === 'open') this.#stats.breakerTrips++
      this.#logger.warn({ sink: writer.name, from: change.from, to: change.to }, `sink circuit breaker ${change.to}`)
      // Open: stop fetching (the batch in flight waits in the executor). Closed: fetch again.
      if (change.to === 'open') this.#stream?.pause()
      if (change.to === 'closed' && this.#buffered < this.#highWater) this.#stream?.resume()
      this.emit('breaker', { from: change.from, to: change.to })
    })
    this.#executor = new HandlerExecutor<V>({
      batchHandler: messages => this.#writeMessages(messages),
      maxRetries: this.config.maxRetries,
      retryBackoff: this.config.retryBackoff,
      batchFailure: 'split',
      breaker: this.breaker,
      classify: error => this.#classify(error),
      logger: this.#logger
    })
  }

  get stats(): Readonly<SinkStats> {
    return { ...this.#stats, breakerTrips: this.breaker.trips }
  }

  get #highWater(): number {
    return this.config.batchSize * 8
  }

  /** Starts consuming; resolves once the consumer stream is open. `done()` settles when the sink stops. */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.#running) throw new SinkStoppedError('the sink was started already')
    signal?.addEventListener('abort', () => this.#controller.abort(signal.reason), { once: true })
    const client = toClientOptions(this.config)
    this.#consumer = new Consumer({
      ...client,
      groupId: this.config.groupId,
      maxWaitTime: this.config.fetchMaxWaitMs,
      autocommit: false,
      sessionTimeout: this.config.sessionTimeoutMs,
      rebalanceTimeout: this.config.sessionTimeoutMs,
      heartbeatInterval: this.config.heartbeatIntervalMs,
      ...(this.config.groupInstanceId === undefined ? {} : { groupInstanceId: this.config.groupInstanceId })
    })
    // Every (re)assignment re-reads the offsets an exactly-once writer stored.
    this.#consumer.on('consumer:group:join', () => {
      this.#stored = undefined
    })
    if (this.config.dlqTopic !== undefined) {
      this.#producer = new Producer({ ...client, acks: -1 })
      this.#dlq = new DeadLetterWriter({
        producer: this.#producer,
        topic: this.config.dlqTopic,
        groupId: this.config.groupId,
        logger: this.#logger
      })
    }
    this.#stream = await this.#consumer.consume({
      topics: [...this.config.topics],
      mode: MessagesStreamModes.COMMITTED,
      fallbackMode: this.config.fromBeginning
        ? MessagesStreamFallbackModes.EARLIEST
        : MessagesStreamFallbackModes.LATEST,
      autocommit: false
    })
    this.#stream.on('data', (record: RawRecord) => this.#accept(record))
    this.#stream.on('error', (error: Error) => this.#fail(error))
    this.#running = this.#loop().finally(() => this.#shutdown())
    // Whoever cares awaits done(); a stop nobody awaits must not become an unhandled rejection.
    this.#running.catch(() => undefined)
  }

  /** Settles when the sink stopped: resolves after `stop()`, rejects with what stopped it otherwise. */
  done(): Promise<void> {
    return this.#running ?? Promise.resolve()
  }

  /** Stops after the batch in flight (an aborted write is not committed: it is redelivered). */
  async stop(): Promise<void> {
    this.#controller.abort(new SinkStoppedError('the sink was stopped'))
    this.#wake?.()
    await this.#running?.catch(() => undefined)
  }

  async close(): Promise<void> {
    await this.stop()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /** Records not yet committed by this group on the sink's topics (end offset - committed offset, summed). */
  async lag(): Promise<number> {
    const consumer = this.#consumer
    if (!consumer) return 0
    const ends = await consumer.listOffsets({ topics: [...this.config.topics] })
    const committed = await consumer.listCommittedOffsets({
      topics: [...ends.entries()].map(([topic, offsets]) => ({ topic, partitions: offsets.map((_o, p) => p) }))
    })
    let lag = 0n
    for (const [topic, offsets] of ends) {
      const done = committed.get(topic) ?? []
      offsets.forEach((end, partition) => {
        const at = done[partition] ?? -1n
        lag += end - (at < 0n ? 0n : at)
      })
    }
    return Number(lag)
  }

  #accept(record: RawRecord): void {
    const id = `${record.partition}:${record.topic}`
    // The stream fetches a range again when the group rejoins before our first commit; a record at or
    // below one already accepted is a repeat (it is in a batch or stored already), not new data.
    const highest = this.#accepted.get(id)
    if (highest !== undefined && record.offset <= highest) return
    this.#accepted.set(id, record.offset)
    const pending = this.#pending.get(id)
    if (pending) pending.records.push(record)
    else this.#pending.set(id, { records: [record], since: Date.now() })
    this.#buffered++
    // Bounded buffer: stop reading when a few batches wait (the stream then stops fetching).
    if (this.#buffered >= this.#highWater) this.#stream?.pause()
    this.#wake?.()
  }

  #fail(error: Error): void {
    if (!this.#controller.signal.aborted) this.#controller.abort(error)
    this.#wake?.()
  }

  /** The next partition buffer that is due: full, or older than lingerMs; else how long to wait. */
  #due(busy: ReadonlyMap<string, unknown>): { id: string; pending: Pending } | number {
    const now = Date.now()
    let wait = Number.POSITIVE_INFINITY
    for (const [id, pending] of this.#pending) {
      if (busy.has(id)) continue
      if (pending.records.length >= this.config.batchSize || now - pending.since >= this.config.lingerMs) {
        return { id, pending }
      }
      wait = Math.min(wait, pending.since + this.config.lingerMs - now)
    }
    return wait
  }

  async #loop(): Promise<void> {
    const signal = this.#controller.signal
    // One batch per partition at a time (order within a partition), up to maxInFlight partitions at once.
    const inFlight = new Map<string, Promise<void>>()
    while (!signal.aborted) {
      const due = inFlight.size < this.config.maxInFlight ? this.#due(inFlight) : Number.POSITIVE_INFINITY
      if (typeof due === 'number') {
        await new Promise<void>(resolve => {
          const timer = Number.isFinite(due) ? setTimeout(resolve, Math.max(1, due)) : undefined
          this.#wake = () => {
            clearTimeout(timer)
            resolve()
          }
        })
        this.#wake = undefined
        continue
      }
      const batch = due.pending.records.splice(0, this.config.batchSize)
      if (due.pending.records.length === 0) this.#pending.delete(due.id)
      else due.pending.since = Date.now()
      this.#buffered -= batch.length
      const id = due.id
      inFlight.set(
        id,
        this.#process(batch, signal)
          .catch((error: unknown) => this.#fail(error instanceof Error ? error : new Error(String(error))))
          .finally(() => {
            inFlight.delete(id)
            if (this.#buffered < this.#highWater && this.breaker.state === 'closed') this.#stream?.resume()
            this.#wake?.()
          })
      )
    }
    await Promise.allSettled(inFlight.values())
    const reason: unknown = signal.reason
    if (!(
      isKafkitError(reason) &&
      reason.code === 'KAFKIT_SINK_STOPPED' &&
      reason.message === 'the sink was stopped'
    )) {
      throw reason instanceof Error ? reason : new Error(String(reason))
    }
  }

  async #shutdown(): Promise<void> {
    await this.#stream?.close().catch(() => undefined)
    await this.#consumer?.close(true).catch(() => undefined)
    await this.#producer?.close().catch(() => undefined)
  }

  /** Decodes and maps one record; a failure makes it a bad record with the reason. */
  async #prepare(record: RawRecord): Promise<{ message: ConsumedMessage<V>; error?: unknown }> {
    const headerEntries = record.headerEntries.map(([name, value]) => [name.toString(), value] as const)
    const headers = new Map(headerEntries)
    const raw = { key: record.key ?? null, value: record.value ?? null }
    const base = {
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      timestamp: new Date(Number(record.timestamp)),
      headers,
      headerEntries,
      meta: readStandardHeaders(headers),
      raw
    }
    let message: ConsumedMessage<V>
    try {
      const key = raw.key === null ? null : utf8Strict(raw.key)
      const value = raw.value === null ? (null as V) : this.#serde.deserialize(raw.value)
      message = { ...base, key, value }
    } catch (error) {
      return {
        message: { ...base, key: null, value: undefined as V },
        error: new DeserializationError(`record value could not be decoded: ${(error as Error).message}`, {
          cause: error
        })
      }
    }
    try {
      this.#rows.set(message, (await this.#map(message)) ?? null)
      return { message }
    } catch (error) {
      return {
        message,
        error: isKafkitError(error)
          ? error
          : new SinkMappingError(`mapping failed: ${(error as Error).message}`, { cause: error })
      }
    }
  }

  async #storedOffsets(signal: AbortSignal): Promise<Map<string, bigint>> {
    if (this.#stored) return this.#stored
    const stored = new Map<string, bigint>()
    if (this.writer.storesOffsets && this.writer.loadOffsets) {
      for (const entry of await this.writer.loadOffsets(this.config.groupId, this.config.topics, signal)) {
        stored.set(`${entry.partition}:${entry.topic}`, entry.nextOffset)
      }
    }
    this.#stored = stored
    return stored
  }

  async #process(batch: RawRecord[], signal: AbortSignal): Promise<void> {
    const first = batch[0]
    const last = batch.at(-1)
    if (!first || !last) return
    const report: SinkBatchReport = {
      topic: first.topic,
      partition: first.partition,
      firstOffset: first.offset,
      lastOffset: last.offset,
      records: batch.length,
      written: 0,
      skipped: 0,
      deadLettered: 0,
      alreadyStored: 0,
      path: 'none'
    }
    const from = (await this.#storedOffsets(signal).catch(() => new Map<string, bigint>())).get(
      `${first.partition}:${first.topic}`
    )
    const good: ConsumedMessage<V>[] = []
    const bad: { message: ConsumedMessage<V>; error: unknown }[] = []
    let stopAt: RawRecord | undefined
    // The record just before `offset` in this batch (what to commit when stopping at `offset`).
    const before = (offset: bigint) => {
      const index = batch.findIndex(record => record.offset === offset)
      return index > 0 ? batch[index - 1] : undefined
    }
    for (const record of batch) {
      if (from !== undefined && record.offset < from) {
        report.alreadyStored++
        continue
      }
      const prepared = await this.#prepare(record)
      if (prepared.error === undefined) good.push(prepared.message)
      else if (this.config.errorsTolerance === 'all') bad.push({ message: prepared.message, error: prepared.error })
      else {
        stopAt = record
        bad.push({ message: prepared.message, error: prepared.error })
        break
      }
    }
    const partitionId = `${first.partition}:${first.topic}`
    this.#batchWrites.set(partitionId, { written: 0, skipped: 0, path: 'none' })
    const context = { signal, groupId: this.config.groupId }
    if (good.length > 0) {
      const outcome = await this.#executor.executeBatch(good, context)
      if (outcome.kind === 'aborted') return
      if (outcome.kind === 'split') {
        for (const [index, single] of outcome.outcomes.entries()) {
          if (single.kind === 'aborted') return
          const message = good[index] as ConsumedMessage<V>
          if (single.kind === 'dead-letter') {
            if (this.config.errorsTolerance === 'none') {
              // Everything before it is stored: commit up to it, then stop.
              await this.#commit(before(message.offset), signal)
              throw this.#stop(message, single)
            }
            bad.push({ message, error: single })
          }
        }
      } else if (outcome.kind === 'dead-letter') {
        for (const message of good) bad.push({ message, error: outcome })
      }
    }
    const written = this.#batchWrites.get(partitionId)
    this.#batchWrites.delete(partitionId)
    report.written = written?.written ?? 0
    report.skipped = written?.skipped ?? 0
    report.path = written?.path ?? 'none'
    if (stopAt) {
      const failed = bad.at(-1)
      await this.#commit(before(stopAt.offset), signal)
      throw this.#stop(failed?.message, failed?.error)
    }
    for (const { message, error } of bad) {
      const dlq = this.#dlq
      if (!dlq) throw this.#stop(message, error)
      await dlq.write(message, deadLetterOutcome(error), { signal })
      report.deadLettered++
    }
    if (this.writer.storesOffsets && bad.length > 0) {
      // Dead-lettered records still advance the stored offsets, so a restart does not dead-letter them again.
      const records: SinkRecord<Row>[] = [
        { topic: last.topic, partition: last.partition, offset: last.offset, row: null }
      ]
      await this.writer.write(records, context)
    }
    if (signal.aborted) return
    await this.#afterWrite?.(report)
    await this.#commit(last, signal)
    this.#stats.records += report.records
    this.#stats.written += report.written
    this.#stats.skipped += report.skipped
    this.#stats.deadLettered += report.deadLettered
    this.#stats.alreadyStored += report.alreadyStored
    this.#stats.batches++
    this.emit('batch', report)
  }

  /** The batch handler the executor drives: write the rows of `messages` in one transaction. */
  async #writeMessages(messages: ConsumedMessage<V>[]): Promise<void> {
    const records: SinkRecord<Row>[] = messages.map(message => ({
      topic: message.topic,
      partition: message.partition,
      offset: message.offset,
      row: this.#rows.get(message) ?? null
    }))
    const result = await this.writer.write(records, { signal: this.#controller.signal, groupId: this.config.groupId })
    const first = messages[0]
    if (!first) return
    const id = `${first.partition}:${first.topic}`
    const sum = this.#batchWrites.get(id) ?? { written: 0, skipped: 0, path: 'none' }
    this.#batchWrites.set(id, {
      written: sum.written + result.written,
      skipped: sum.skipped + result.skipped,
      path: result.path
    })
  }

  #classify(error: unknown): ErrorKind | undefined {
    if (isKafkitError(error)) {
      if (error.code === 'KAFKIT_SINK_MAPPING_FAILED') return 'permanent'
      if (error.code === 'KAFKIT_SINK_WRITE_FAILED' || error.code === 'KAFKIT_SINK_FEATURE_UNSUPPORTED') {
        return error.retryable ? 'transient' : 'permanent'
      }
    }
    return this.writer.isTransient(error) ? 'transient' : 'permanent'
  }

  /** Commits up to and including `record` (the last one settled); a failure is logged, not fatal. */
  async #commit(record: RawRecord | undefined, signal: AbortSignal): Promise<void> {
    if (!record || signal.aborted) return
    const { topic, partition, offset } = record
    try {
      await record.commit()
    } catch (error) {
      // The rows are stored; a lost commit means a redelivery, which the writer's idempotence absorbs.
      this.#logger.warn(
        { sink: this.writer.name, topic, partition, offset: String(offset), err: (error as Error).message },
        'sink offset commit failed (the batch will be redelivered and skipped by the writer)'
      )
    }
  }

  #stop(message: ConsumedMessage<V> | undefined, error: unknown): SinkStoppedError {
    const outcome = error as HandlingOutcome | undefined
    const cause =
      outcome && typeof outcome === 'object' && 'kind' in outcome && outcome.kind === 'dead-letter'
        ? outcome.error
        : error
    const where = message ? `${message.topic}/${message.partition}@${message.offset}` : 'a record'
    const stopped = new SinkStoppedError(
      `${this.writer.name}: stopped at ${where}: ${(cause as Error | undefined)?.message ?? String(cause)} (errorsTolerance is none; set it to all with a dlqTopic to dead-letter bad records)`,
      {
        cause,
        details: message ? { topic: message.topic, partition: message.partition, offset: String(message.offset) } : {}
      }
    )
    this.#controller.abort(stopped)
    return stopped
  }
}
