/**
 * Running what the dispatcher started: one record (or one batch) decoded, through message handling
 * (src/handling: middleware, error kinds, in-place retries, breaker) to a verdict, and the verdict acted
 * on: settled at once, or first handed to failure routing (retry tier, dead-letter topic). Then the
 * work ends: the partition's queue is released, fetching may resume, the next record starts.
 *
 * The per-record path keeps one object per record: the common case makes the first attempt itself,
 * without an async frame or a promise of its own (bench/consumer/hot-path.ts).
 */
import type { EventEmitter } from 'node:events'
import type {
  BatchExecutionContext,
  BatchOutcome,
  HandlerExecutor,
  HandlingOutcome
} from '../handling/handler-executor.ts'
import type { HandlingLogger } from '../handling/logger.ts'
import type { ConsumedMessage } from '../handling/types.ts'
import type { Serde } from '../message/serde.ts'
import { REPLAY_GROUP_HEADER } from '../message/wire-format.ts'
import type { CommitCoordinator } from './commit-coordinator.ts'
import { DecodeFailure, decodeRecord, type RawRecord } from './decode.ts'
import type { Dispatcher } from './dispatcher.ts'
import type { FailureRouter } from './failure-router.ts'
import type { ConsumerMetricsRecorder } from './metrics.ts'
import type { PartitionState } from './partition-state.ts'
import type { ConsumerEvents, FailureRoute, SettledOutcome } from './types.ts'
import type { CallWatchdog } from './watchdog.ts'

const REPLAY_GROUP_NAME = Buffer.from(REPLAY_GROUP_HEADER)

/**
 * Whether a fetched record names a replay group, read off the wire headers. (Asking the decoded
 * message's header map instead, even the shared empty one, made the per-record path about 15 % slower
 * in bench/consumer/hot-path.ts.)
 */
export function hasReplayHeader(record: RawRecord): boolean {
  const entries = record.headerEntries
  for (let i = 0; i < entries.length; i++) {
    const name = (entries[i] as [Buffer, Buffer])[0]
    // The length first: no standard header name is as long, and equals() is a native call.
    if (name.length === REPLAY_GROUP_NAME.length && name.equals(REPLAY_GROUP_NAME)) return true
  }
  return false
}

/** The records buffered, and fetching resumed when they are few enough again (StreamSupervisor). */
export interface Backpressure {
  buffered: number
  maybeResume(): void
}

export interface RecordRunnerInit<V> {
  groupId: string
  serde: Serde<V>
  executor: HandlerExecutor<V>
  route: FailureRoute<V> | undefined
  watchdog: CallWatchdog
  dispatcher: Dispatcher
  commits: CommitCoordinator
  backpressure: Backpressure
  failures: FailureRouter<V>
  metrics: ConsumerMetricsRecorder
  logger: HandlingLogger
  /** Where 'settled' is emitted (the consumer). */
  events: Pick<EventEmitter<ConsumerEvents>, 'emit' | 'listenerCount'>
}

export class RecordRunner<V> {
  readonly #groupId: string
  readonly #serde: Serde<V>
  readonly #executor: HandlerExecutor<V>
  readonly #route: FailureRoute<V> | undefined
  readonly #calls: CallWatchdog
  readonly #dispatcher: Dispatcher
  readonly #commits: CommitCoordinator
  readonly #backpressure: Backpressure
  readonly #failures: FailureRouter<V>
  readonly #metrics: ConsumerMetricsRecorder
  readonly #logger: HandlingLogger
  readonly #events: RecordRunnerInit<V>['events']

  constructor(init: RecordRunnerInit<V>) {
    this.#groupId = init.groupId
    this.#serde = init.serde
    this.#executor = init.executor
    this.#route = init.route
    this.#calls = init.watchdog
    this.#dispatcher = init.dispatcher
    this.#commits = init.commits
    this.#backpressure = init.backpressure
    this.#failures = init.failures
    this.#metrics = init.metrics
    this.#logger = init.logger
    this.#events = init.events
  }

  /**
   * Runs one record (counted in flight by the dispatcher). The common case (it decodes, no rerouting to
   * ask, no breaker) makes the first attempt here and follows it with two callbacks: no async frame, no
   * promise of its own and none for the watchdog (the call it is given is watched directly), which with
   * a no-op handler was most of Kafkit's cost per record. Anything else goes through #runSlow.
   */
  runOne(state: PartitionState, record: RawRecord): void {
    const decoded = decodeRecord(record, this.#serde)
    const context = state.context
    const handler =
      decoded instanceof DecodeFailure || this.#route?.intercept !== undefined || hasReplayHeader(record)
        ? undefined
        : this.#executor.directHandler(context)
    if (handler === undefined) {
      void this.#runSlow(state, record, decoded)
      return
    }
    const message = decoded as ConsumedMessage<V>
    const calls = this.#calls
    let over = false
    const failed = (error: unknown): void => {
      if (over) return
      over = true
      calls.end(call)
      void this.#conclude(state, record, message, this.#executor.afterFirstFailure(message, context, error))
    }
    const call = calls.begin(message, context, false, failed)
    // Middleware sees the partition's context, as on any attempt; the watchdog middleware, innermost,
    // hands the handler this call instead of beginning one of its own.
    calls.direct = call
    let running: Promise<void>
    try {
      // Promise.resolve: a handler that returns nothing still ends on a later turn, never inside this call.
      running = Promise.resolve(handler(message, context))
    } catch (error) {
      failed(error)
      return
    } finally {
      calls.direct = undefined
    }
    running.then(() => {
      if (over) return
      over = true
      calls.end(call)
      try {
        void this.#act(state, message, this.#executor.firstAttemptDone(message, context))
      } catch (error) {
        // A 'settled' listener that throws, say: logged, and the record's turn still ends.
        this.#unexpected(state, record, error)
      }
      this.#finish(state, record, 1)
    }, failed)
  }

  /** Runs a batch of consecutive records of one partition (counted in flight once by the dispatcher). */
  runBatch(state: PartitionState, records: RawRecord[]): void {
    void this.#runBatch(state, records)
  }

  /** One record reached its verdict: its offset may be committed once the records before it settled too. */
  #settle(state: PartitionState, offset: bigint, outcome: SettledOutcome): void {
    state.tracker.settle(offset)
    this.#metrics.recordSettled(outcome)
    this.#commits.counted()
    if (this.#events.listenerCount('settled') > 0) {
      this.#events.emit('settled', { topic: state.topic, partition: state.partition, offset, outcome })
    }
    this.#commits.afterSettle()
  }

  /** The work that began with `first` (`count` records) ended, settled or not. */
  #finish(state: PartitionState, first: RawRecord, count: number): void {
    this.#backpressure.buffered -= count
    state.queue.release(first)
    if (state.queue.inFlight === 0) {
      state.onIdle?.()
      this.#commits.partitionIdle(state)
    }
    this.#backpressure.maybeResume()
    this.#dispatcher.ended(state)
  }

  /** The per-record path for the rest: decode failures, replays for other groups, rerouting, a breaker. */
  async #runSlow(
    state: PartitionState,
    record: RawRecord,
    decoded: ConsumedMessage<V> | DecodeFailure<V>
  ): Promise<void> {
    try {
      const message = decoded instanceof DecodeFailure ? decoded.message : decoded
      const error = decoded instanceof DecodeFailure ? decoded.error : undefined
      const context = state.context
      if (this.#replayedElsewhere(record, message)) {
        this.#settle(state, record.offset, 'skipped')
        return
      }
      if (
        error === undefined &&
        this.#route?.intercept &&
        (await this.#route.intercept(message, context)) === 'rerouted'
      ) {
        this.#settle(state, record.offset, 'rerouted')
        return
      }
      const outcome =
        error === undefined
          ? await this.#executor.execute(message, context)
          : this.#executor.rejectUndeserializable(message, error, context)
      await this.#act(state, message, outcome)
    } catch (error) {
      this.#unexpected(state, record, error)
    } finally {
      this.#finish(state, record, 1)
    }
  }

  /** A replayed dead-letter record meant for another group (`kafkit dlq replay --group`): skipped here. */
  #replayedElsewhere(record: RawRecord, message: ConsumedMessage<V>): boolean {
    if (!hasReplayHeader(record)) return false
    return message.headers.get(REPLAY_GROUP_HEADER)?.toString() !== this.#groupId
  }

  /** A first attempt made by runOne failed: the executor's retries and verdict, then the record's end. */
  async #conclude(
    state: PartitionState,
    record: RawRecord,
    message: ConsumedMessage<V>,
    verdict: Promise<HandlingOutcome>
  ): Promise<void> {
    try {
      await this.#act(state, message, await verdict)
    } catch (error) {
      this.#unexpected(state, record, error)
    } finally {
      this.#finish(state, record, 1)
    }
  }

  /** Settles a done record at once; any other verdict goes through #apply. */
  #act(state: PartitionState, message: ConsumedMessage<V>, outcome: HandlingOutcome): Promise<boolean> | undefined {
    if (outcome.kind !== 'done') return this.#apply(state, message, outcome)
    this.#metrics.recordAttempts(outcome)
    this.#settle(state, message.offset, 'done')
    return undefined
  }

  /**
   * Only a bug gets here (the executor never rejects), or a failure route stopped by a revoke or a stop
   * (its signal aborted: no news then); the record stays unsettled and is redelivered.
   */
  #unexpected(state: PartitionState, record: RawRecord, error: unknown): void {
    const fields = {
      topic: record.topic,
      partition: record.partition,
      offset: String(record.offset),
      err: String(error)
    }
    if (state.controller.signal.aborted)
      this.#logger.debug(fields, 'consumer: a record was left unsettled on stop or revoke')
    else this.#logger.error(fields, 'consumer: unexpected failure handling a record')
  }

  async #runBatch(state: PartitionState, records: RawRecord[]): Promise<void> {
    try {
      // Messages the handler dead-lettered itself (context.deadLetter), by offset: how each settles, once
      // known (undefined: not acknowledged, so it stays unsettled), awaited even if the handler did not.
      let diverted: Map<bigint, Promise<SettledOutcome | undefined>> | undefined
      const context: BatchExecutionContext<V> = {
        signal: state.controller.signal,
        groupId: this.#groupId,
        deadLetter: (message, error) => {
          const divert = this.#failures.divertFromBatch(state, message, error)
          ;(diverted ??= new Map()).set(
            message.offset,
            divert.catch(() => undefined)
          )
          return divert.then(() => undefined)
        }
      }
      const apply = async (message: ConsumedMessage<V>, outcome: HandlingOutcome): Promise<boolean> => {
        const divert = outcome.kind === 'aborted' ? undefined : diverted?.get(message.offset)
        if (divert === undefined) return this.#apply(state, message, outcome)
        const settled = await divert
        if (settled === undefined) return false
        this.#metrics.recordAttempts(outcome)
        this.#settle(state, message.offset, settled)
        return true
      }
      const messages: ConsumedMessage<V>[] = []
      for (const record of records) {
        const decoded = decodeRecord(record, this.#serde)
        const message = decoded instanceof DecodeFailure ? decoded.message : decoded
        if (this.#replayedElsewhere(record, message)) this.#settle(state, record.offset, 'skipped')
        else if (decoded instanceof DecodeFailure) {
          // Dead-lettered before the handler sees the records after it; not acknowledged: nothing after it runs.
          const outcome = this.#executor.rejectUndeserializable(message, decoded.error, context)
          if (!(await this.#apply(state, message, outcome))) return
        } else messages.push(decoded)
      }
      if (messages.length > 0) {
        const outcome: BatchOutcome = await this.#executor.executeBatch(messages, context, (index, single) =>
          apply(messages[index] as ConsumedMessage<V>, single)
        )
        if (outcome.kind === 'done' && diverted === undefined) {
          // The common verdict, settled without an await per message (#apply's async frame).
          for (const message of messages) {
            this.#metrics.recordAttempts(outcome)
            this.#settle(state, message.offset, 'done')
          }
        } else if (outcome.kind !== 'split') {
          for (const message of messages) {
            if (!(await apply(message, outcome))) break
          }
        }
      }
      this.#commits.afterBatch()
    } catch (error) {
      this.#logger.error(
        { topic: state.topic, partition: state.partition, err: String(error) },
        'consumer: unexpected failure handling a batch'
      )
    } finally {
      this.#finish(state, records[0] as RawRecord, records.length)
    }
  }

  /** Acts on one verdict; resolves false when the record stays unsettled (aborted, DLQ write failed). */
  async #apply(state: PartitionState, message: ConsumedMessage<V>, outcome: HandlingOutcome): Promise<boolean> {
    this.#metrics.recordAttempts(outcome)
    switch (outcome.kind) {
      case 'done':
        this.#settle(state, message.offset, 'done')
        return true
      case 'business': {
        const told = this.#failures.business(state, message)
        if (told !== undefined && !(await told)) return false
        this.#settle(state, message.offset, 'business')
        return true
      }
      case 'dead-letter': {
        let settled: SettledOutcome
        try {
          settled = await this.#failures.divert(state, message, outcome)
        } catch {
          return false
        }
        this.#settle(state, message.offset, settled)
        return true
      }
      case 'aborted':
        return false
    }
  }
}
