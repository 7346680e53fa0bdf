/**
 * The sink runner: Kafka to a database, the log pipeline as a component, on Kafkit's consumer
 * runtime (src/consumer). The runtime fetches, collects consecutive records of one partition into a
 * batch (`batchSize` → `maxPollRecords`, `lingerMs` → `batchLingerMs`), retries a failed batch in
 * place, runs the circuit breaker, dead-letters, and commits a partition's offset only after the batch
 * settled (`commitStrategy: 'batch'`). The sink is its batch handler: it decodes each record
 * (`valueSerde`), maps it to a row (or to no row) and hands the batch to a `SinkWriter`
 * (`kafkit/postgres`, `kafkit/clickhouse`, or the user's), which stores it in one transaction.
 *
 * Bad records (undecodable, mapping threw, row rejected by the database) are dead-lettered
 * (`errorsTolerance: 'all'`) or stop the sink before them (`'none'`, Connect's errors.tolerance=none).
 * The order of operations is what keeps every record stored or dead-lettered across crashes: the sink
 * dead-letters a batch's bad records through the runtime (`context.deadLetter`, which resolves once
 * the dead-letter topic acknowledged them) before it writes the batch, and an exactly-once write
 * stores an offset past a bad record only after that. A batch the database rejects is halved, and
 * each half written in turn, down to the rows it rejects; each of those is dead-lettered before the
 * next write. Kafka offsets are committed by the runtime only after the handler resolved.
 *
 * Exactly-once writers store offsets themselves. The runtime cannot seek, so the sink loads the stored
 * offsets whenever partitions are (re)assigned and drops records below them inside the batch handler
 * before writing (`alreadyStored`); the writer checks again under a lock in its transaction.
 */
import { EventEmitter } from 'node:events'
import { Consumer } from '../consumer/consumer.ts'
import { isKafkitError } from '../errors/kafkit-error.ts'
import type { ConsumerCircuitBreaker } from '../handling/consumer-breaker.ts'
import { DeserializationError, type ErrorKind } from '../handling/errors.ts'
import { defaultLogger, type HandlingLogger } from '../handling/logger.ts'
import type { BatchContext, ConsumedMessage } from '../handling/types.ts'
import { bytesSerde, jsonSerde, type Serde } from '../message/serde.ts'
import { SinkMappingError, SinkStoppedError } from './errors.ts'
import { sinkOptions, type SinkConfig, type SinkOptions } from './options.ts'
import type { SinkRecord, SinkWriteResult, SinkWriter } from './types.ts'

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

/**
 * What the sink did between two Kafka commits of one partition (usually one batch); emitted as
 * `batch` once the commit is acknowledged. `afterWrite` gets one per database write, before the commit.
 */
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
  /** Records settled (stored, mapped to no row, dead-lettered) and committed to Kafka. */
  records: number
  written: number
  skipped: number
  deadLettered: number
  alreadyStored: number
  /** `batch` reports emitted (one per partition commit). */
  batches: number
  breakerTrips: number
}

/** The sink's memory of one partition, for as long as the runtime owns it (one per assignment). */
interface PartitionWork {
  /** Exactly-once: the next offset stored in the database at assignment (-1: none); undefined until loaded. */
  stored: bigint | undefined
  /** Records below this offset were handled by this process in this assignment (written, or known stored). */
  handledUpTo: bigint
  /** Bad records whose dead-letter record is acknowledged: a retried batch does not send them again. */
  deadLettered: Set<bigint>
  /** errorsTolerance none: the first bad record and why; nothing from it on is written. */
  stop: { offset: bigint; error: Error } | undefined
}

/** What the handler did with a run of records of one partition, counted once a Kafka commit covers it. */
type Handled = Omit<SinkBatchReport, 'topic' | 'partition'>

function partitionKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`
}

function isPromiseLike<T>(value: unknown): value is PromiseLike<T> {
  return typeof (value as PromiseLike<T> | null)?.then === 'function'
}

/** A mapping failure as a bad record's error (Kafkit errors keep their code). */
function mappingError(error: unknown): Error {
  return isKafkitError(error)
    ? error
    : new SinkMappingError(`mapping failed: ${(error as Error).message}`, { cause: error })
}

function mappingErrorThrown(error: unknown): never {
  throw mappingError(error)
}

export class Sink<V = unknown, Row = Record<string, unknown>> extends EventEmitter<{
  batch: [SinkBatchReport]
  breaker: [{ from: string; to: string }]
  error: [Error]
}> {
  readonly config: Readonly<SinkConfig>
  readonly writer: SinkWriter<Row>
  readonly breaker: ConsumerCircuitBreaker
  /** The consumer runtime the sink runs on. */
  readonly consumer: Consumer<Buffer>
  readonly #map: SinkMapping<V, Row>
  readonly #serde: Serde<V>
  readonly #logger: HandlingLogger
  readonly #afterWrite: SinkInit<V, Row>['afterWrite']
  readonly #stats: SinkStats = {
    records: 0,
    written: 0,
    skipped: 0,
    deadLettered: 0,
    alreadyStored: 0,
    batches: 0,
    breakerTrips: 0
  }
  /** Per runtime partition state (its handler signal is unique to one assignment of one partition). */
  readonly #work = new WeakMap<AbortSignal, PartitionWork>()
  /** Per partition: what was handled and is not yet covered by a Kafka commit, in offset order. */
  readonly #uncommitted = new Map<string, Handled[]>()
  /** Exactly-once: the stored offsets, loaded once per (re)assignment and shared by its partitions. */
  #storedLoad: Promise<Map<string, bigint>> | undefined
  #started = false

  constructor(init: SinkInit<V, Row>) {
    super()
    const { writer, map, valueSerde, logger, afterWrite, ...options } = init
    this.config = sinkOptions.resolve(options)
    this.writer = writer
    this.#map = map
    this.#serde = valueSerde ?? jsonSerde<V>()
    this.#logger = logger ?? defaultLogger()
    this.#afterWrite = afterWrite
    const config = this.config
    this.consumer = new Consumer<Buffer>({
      brokers: config.brokers,
      clientId: config.clientId,
      connectTimeoutMs: config.connectTimeoutMs,
      requestTimeoutMs: config.requestTimeoutMs,
      ...(config.sasl ? { sasl: config.sasl } : {}),
      ...(config.tls ? { tls: config.tls } : {}),
      groupId: config.groupId,
      topics: [...config.topics],
      ...(config.groupInstanceId === undefined ? {} : { groupInstanceId: config.groupInstanceId }),
      sessionTimeoutMs: config.sessionTimeoutMs,
      rebalanceTimeoutMs: config.sessionTimeoutMs,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      startOffset: config.startOffset,
      maxWaitMs: config.maxWaitMs,
      maxBytes: config.maxBytes,
      // One batch per partition at a time, up to concurrency.limit partitions written at once.
      concurrency: { mode: 'partition', limit: config.concurrency.limit },
      maxPollRecords: config.batchSize,
      batchLingerMs: config.lingerMs,
      maxBufferedRecords: config.maxBufferedRecords ?? config.batchSize * (config.concurrency.limit + 2),
      commitStrategy: 'batch',
      maxRetries: config.maxRetries,
      retryBackoff: config.retryBackoff,
      breaker: config.breaker,
      onDeadLetter: config.errorsTolerance === 'all' ? 'dlq' : 'stop',
      ...(config.dlqTopic === undefined ? {} : { dlqTopic: config.dlqTopic }),
      // The sink decodes values itself (so a bad value is a bad record of its batch, not a gap in it).
      valueSerde: bytesSerde,
      batchHandler: (messages, context) => this.#handle(messages, context),
      classify: error => this.#classify(error),
      logger: this.#logger,
      // Everything comes from the sink's own options (KAFKA_SINK_*), not KAFKA_CONSUMER_*.
      env: {}
    })
    this.breaker = this.consumer.breaker as ConsumerCircuitBreaker
    this.breaker.on('state', change => {
      this.#logger.warn({ sink: writer.name, from: change.from, to: change.to }, `sink circuit breaker ${change.to}`)
      this.emit('breaker', { from: change.from, to: change.to })
    })
    this.consumer.on('assigned', partitions => {
      // New owners re-read what an exactly-once writer stored; uncommitted leftovers of an earlier
      // assignment are not ours to count any more.
      this.#storedLoad = undefined
      for (const { topic, partition } of partitions) this.#uncommitted.delete(partitionKey(topic, partition))
    })
    this.consumer.on('commit', ({ offsets }) => {
      for (const { topic, partition, offset } of offsets) this.#committed(topic, partition, offset)
    })
  }

  get stats(): Readonly<SinkStats> {
    return { ...this.#stats, breakerTrips: this.breaker.trips }
  }

  /** Starts consuming; resolves once the consumer stream is open. `done()` settles when the sink stops. */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.#started) throw new SinkStoppedError('the sink was started already')
    this.#started = true
    await this.consumer.start(signal ? { signal } : {})
  }

  /** Settles when the sink stopped: resolves after `stop()`, rejects with what stopped it otherwise. */
  done(): Promise<void> {
    if (!this.#started) return Promise.resolve()
    return this.consumer.done().catch((error: unknown) => {
      throw this.#stopError(error)
    })
  }

  /** Stops: the batches in flight may finish (an aborted write is not committed: it is redelivered). */
  async stop(): Promise<void> {
    await this.consumer.stop()
  }

  async close(): Promise<void> {
    await this.stop()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /** Records not yet committed by this group on the sink's topics (end offset - committed offset, summed). */
  async lag(): Promise<number> {
    let lag = 0n
    for (const partition of await this.consumer.lag()) lag += partition.lag
    return Number(lag)
  }

  // ---- the batch handler -------------------------------------------------------------------------

  async #handle(messages: ConsumedMessage<Buffer>[], context: BatchContext<Buffer>): Promise<void> {
    const first = messages[0]
    const last = messages.at(-1)
    if (!first || !last) return
    const work = this.#workOf(context.signal)
    const stop = work.stop
    if (stop !== undefined && last.offset >= stop.offset) {
      // errorsTolerance none, the runtime running the failed batch again one record at a time.
      if (first.offset <= stop.offset) throw stop.error
      throw new SinkStoppedError(
        `${this.writer.name}: ${first.topic}/${first.partition}@${first.offset} not written: the sink stops at offset ${stop.offset} (errorsTolerance is none)`
      )
    }
    if (last.offset < work.handledUpTo) return

    const from = this.writer.storesOffsets ? await this.#storedFrom(work, first, context.signal) : -1n
    const records: SinkRecord<Row>[] = []
    const bad: { message: ConsumedMessage<Buffer>; error: Error }[] = []
    let alreadyStored = 0
    let deadLetteredBefore = 0
    let stopAt: { message: ConsumedMessage<Buffer>; error: Error } | undefined
    for (const message of messages) {
      if (message.offset < from) {
        alreadyStored++
        continue
      }
      let row: Row | null = null
      // Dead-lettered by an earlier attempt at this batch (which then failed): not again.
      if (work.deadLettered.has(message.offset)) deadLetteredBefore++
      else {
        try {
          // Only an asynchronous mapping is awaited (an await per record costs a microtask turn).
          const prepared = this.#prepare(message)
          row = (isPromiseLike(prepared) ? await Promise.resolve(prepared).catch(mappingErrorThrown) : prepared) ?? null
        } catch (error) {
          if (this.config.errorsTolerance === 'none') {
            stopAt = { message, error: error as Error }
            break
          }
          bad.push({ message, error: error as Error })
        }
      }
      // A bad record stays in as a record without a row: an exactly-once writer stores its offset too.
      records.push({ topic: message.topic, partition: message.partition, offset: message.offset, row })
    }
    // Bad records first: their dead-letter records are acknowledged before any write stores an offset past them.
    await Promise.all(bad.map(({ message, error }) => this.#deadLetter(work, message, error, context)))
    const written = await this.#write(records, messages, work, context)
    if (stopAt !== undefined) {
      work.stop = { offset: stopAt.message.offset, error: stopAt.error }
      work.handledUpTo = stopAt.message.offset
    } else work.handledUpTo = last.offset + 1n
    const report: SinkBatchReport = {
      topic: first.topic,
      partition: first.partition,
      firstOffset: first.offset,
      lastOffset: stopAt === undefined ? last.offset : stopAt.message.offset - 1n,
      // Up to the stop point, the bad record itself excluded (it is never committed).
      records: records.length + alreadyStored,
      written: written.written,
      skipped: written.skipped,
      deadLettered: bad.length + written.rejected + deadLetteredBefore,
      alreadyStored,
      path: written.path
    }
    this.#handled(report)
    await this.#afterWrite?.(report)
    if (stopAt !== undefined) throw stopAt.error
  }

  /**
   * Writes `records` (consecutive, of one partition) in one transaction. When the database rejects
   * them for good, it halves them and writes each half in turn, down to the one record it rejects:
   * that record is dead-lettered (acknowledged) before the next write can store an offset past it, or
   * it is where the sink stops (errorsTolerance none).
   */
  async #write(
    records: SinkRecord<Row>[],
    messages: readonly ConsumedMessage<Buffer>[],
    work: PartitionWork,
    context: BatchContext<Buffer>
  ): Promise<SinkWriteResult & { rejected: number }> {
    if (records.length === 0 || (!this.writer.storesOffsets && records.every(record => record.row === null))) {
      return { written: 0, skipped: 0, path: 'none', rejected: 0 }
    }
    try {
      const result = await this.writer.write(records, { signal: context.signal, groupId: this.config.groupId })
      return { ...result, rejected: 0 }
    } catch (error) {
      const only = records.length === 1 ? records[0] : undefined
      if (this.#classify(error) !== 'permanent' || context.signal.aborted || only?.row === null) throw error
      if (only === undefined) {
        const half = records.length >>> 1
        const left = await this.#write(records.slice(0, half), messages, work, context)
        const right = await this.#write(records.slice(half), messages, work, context)
        return {
          written: left.written + right.written,
          skipped: left.skipped + right.skipped,
          path: right.path === 'none' ? left.path : right.path,
          rejected: left.rejected + right.rejected
        }
      }
      const message = messages.find(candidate => candidate.offset === only.offset) as ConsumedMessage<Buffer>
      // Dead-lettered with the writer's own error (its code and the database's reason).
      const rejected = error as Error
      if (this.config.errorsTolerance === 'none') {
        // Everything before it in this batch was written (halves go left to right).
        work.stop = { offset: only.offset, error: rejected }
        work.handledUpTo = only.offset
        throw rejected
      }
      await this.#deadLetter(work, message, rejected, context)
      // Exactly-once: its offset is stored now, with no row, in case no later write passes it.
      const passed = this.writer.storesOffsets
        ? await this.#write([{ ...only, row: null }], messages, work, context)
        : undefined
      return { written: 0, skipped: 0, path: passed?.path ?? 'none', rejected: 1 }
    }
  }

  /** A bad record to the dead-letter topic through the runtime; resolves once the broker acknowledged it. */
  async #deadLetter(
    work: PartitionWork,
    message: ConsumedMessage<Buffer>,
    error: Error,
    context: BatchContext<Buffer>
  ): Promise<void> {
    await context.deadLetter(message, error)
    work.deadLettered.add(message.offset)
  }

  /** Decodes and maps one record; throws (a bad record) when either fails. */
  #prepare(message: ConsumedMessage<Buffer>): Row | null | undefined | PromiseLike<Row | null | undefined> {
    const raw = message.raw.value
    let value: V
    try {
      value = raw === null ? (null as V) : this.#serde.deserialize(raw)
    } catch (error) {
      throw new DeserializationError(`record value could not be decoded: ${(error as Error).message}`, {
        cause: error
      })
    }
    const decoded = message as unknown as ConsumedMessage<V>
    decoded.value = value
    try {
      return this.#map(decoded)
    } catch (error) {
      throw mappingError(error)
    }
  }

  #workOf(signal: AbortSignal): PartitionWork {
    let work = this.#work.get(signal)
    if (!work) {
      work = { stored: undefined, handledUpTo: -1n, deadLettered: new Set(), stop: undefined }
      this.#work.set(signal, work)
    }
    return work
  }

  /** Exactly-once: the offset the database says this partition resumes from (-1 when none is stored). */
  async #storedFrom(work: PartitionWork, first: ConsumedMessage<Buffer>, signal: AbortSignal): Promise<bigint> {
    if (work.stored !== undefined) return work.stored
    const load = (this.#storedLoad ??= this.#loadStored(signal))
    let stored: Map<string, bigint>
    try {
      stored = await load
    } catch (error) {
      // Not loaded (the database is down): the batch fails like a failed write and is retried.
      if (this.#storedLoad === load) this.#storedLoad = undefined
      throw error
    }
    work.stored = stored.get(partitionKey(first.topic, first.partition)) ?? -1n
    return work.stored
  }

  async #loadStored(signal: AbortSignal): Promise<Map<string, bigint>> {
    const stored = new Map<string, bigint>()
    for (const entry of (await this.writer.loadOffsets?.(this.config.groupId, this.config.topics, signal)) ?? []) {
      stored.set(partitionKey(entry.topic, entry.partition), entry.nextOffset)
    }
    return stored
  }

  #classify(error: unknown): ErrorKind | undefined {
    if (isKafkitError(error)) {
      // Not acknowledged yet by the dead-letter topic: tried again, the records after it unwritten.
      if (error.code === 'KAFKIT_DLQ_WRITE_FAILED') return 'transient'
      if (
        error.code === 'KAFKIT_SINK_MAPPING_FAILED' ||
        error.code === 'KAFKIT_SINK_STOPPED' ||
        error.code === 'KAFKIT_DESERIALIZATION_FAILED'
      ) {
        return 'permanent'
      }
      if (error.code === 'KAFKIT_SINK_WRITE_FAILED' || error.code === 'KAFKIT_SINK_FEATURE_UNSUPPORTED') {
        return error.retryable ? 'transient' : 'permanent'
      }
    }
    return this.writer.isTransient(error) ? 'transient' : 'permanent'
  }

  // ---- accounting ----------------------------------------------------------------------------------

  #handled(report: SinkBatchReport): void {
    const { topic, partition, ...handled } = report
    const key = partitionKey(topic, partition)
    const list = this.#uncommitted.get(key)
    if (list) list.push(handled)
    else this.#uncommitted.set(key, [handled])
  }

  /** A Kafka commit of `offset` (the next to read) landed: count and report what it covers. */
  #committed(topic: string, partition: number, offset: bigint): void {
    const list = this.#uncommitted.get(partitionKey(topic, partition))
    let count = 0
    while (list && count < list.length && (list[count] as Handled).lastOffset < offset) count++
    if (!list || count === 0) return
    const covered = list.splice(0, count)
    const report: SinkBatchReport = {
      topic,
      partition,
      firstOffset: (covered[0] as Handled).firstOffset,
      lastOffset: (covered.at(-1) as Handled).lastOffset,
      records: 0,
      written: 0,
      skipped: 0,
      deadLettered: 0,
      alreadyStored: 0,
      path: 'none'
    }
    for (const handled of covered) {
      report.records += handled.records
      report.written += handled.written
      report.skipped += handled.skipped
      report.deadLettered += handled.deadLettered
      report.alreadyStored += handled.alreadyStored
      if (handled.path !== 'none') report.path = handled.path
    }
    this.#stats.records += report.records
    this.#stats.written += report.written
    this.#stats.skipped += report.skipped
    this.#stats.deadLettered += report.deadLettered
    this.#stats.alreadyStored += report.alreadyStored
    this.#stats.batches++
    this.emit('batch', report)
  }

  /** The runtime's stop verdict (onDeadLetter 'stop') in the sink's terms. */
  #stopError(error: unknown): unknown {
    if (!isKafkitError(error) || error.code !== 'KAFKIT_CONSUMER_STOPPED' || error.cause === undefined) return error
    const { cause, details } = error
    const { topic, partition, offset } = details as { topic?: string; partition?: number; offset?: string }
    const where = topic === undefined ? 'a record' : `${topic}/${partition}@${offset}`
    const reason = cause instanceof Error ? cause.message : JSON.stringify(cause)
    return new SinkStoppedError(
      `${this.writer.name}: stopped at ${where}: ${reason} (errorsTolerance is none; set it to all with a dlqTopic to dead-letter bad records)`,
      { cause, details }
    )
  }
}
