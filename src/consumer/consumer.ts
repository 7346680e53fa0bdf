/**
 * The consumer runtime: an at-least-once worker on the Kafka client's group consumer. It fetches
 * (one stream, auto-commit off), orders work per partition or per key, runs each record through
 * message handling (src/handling: router, middleware, error kinds, in-place retries, breaker), writes
 * dead-letter records and waits for their acknowledgement, and commits per partition only the offset
 * below which every record is settled (OffsetTracker).
 *
 * Rebalances (the client offers no hook that can delay a rejoin, so Kafkit works around it):
 * - eager (classic + roundrobin): when a rebalance starts, dispatching stops, settled offsets are
 *   committed at once (the group still accepts the old generation while it waits for members), work in
 *   flight may finish for up to `revokeDrainMs` and is committed again; after the new assignment,
 *   partitions kept go on where they were, partitions lost are dropped and their leftover work aborted;
 * - cooperative-sticky and the consumer protocol (KIP-848): only the partitions that move are revoked;
 *   they stop dispatching, their in-flight work may finish for up to `revokeDrainMs` and is committed
 *   while the generation has not moved on, then they are let go.
 * A commit is only ever sent for partitions the client owns (or is still giving up in the same
 * generation), so a worker never overwrites the new owner's position.
 */
import { EventEmitter } from 'node:events'
import {
  Admin,
  ClientConsumer,
  ClientProducer,
  FetchIsolationLevels,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  type ClientConsumerOptions,
  type ConsumeOptions,
  type MessagesStream
} from '../kafka/client.ts'
import { describeKafkaError, isMembershipLost, isRetriable } from '../kafka/errors.ts'
import { toClientOptions } from '../kafka/connection.ts'
import { ConfigError } from '../errors/kafkit-error.ts'
import { ConsumerCircuitBreaker } from '../handling/consumer-breaker.ts'
import { DeadLetterWriter } from '../handling/dead-letter-writer.ts'
import type { ErrorKind } from '../handling/errors.ts'
import {
  HandlerExecutor,
  type BatchExecutionContext,
  type BatchOutcome,
  type DeadLetterOutcome,
  type HandlingOutcome
} from '../handling/handler-executor.ts'
import { defaultLogger, type HandlingLogger } from '../handling/logger.ts'
import type { BatchHandler, ConsumedMessage, MessageHandler, Middleware } from '../handling/types.ts'
import { jsonSerde, type Serde } from '../message/serde.ts'
import { REPLAY_GROUP_HEADER } from '../message/wire-format.ts'
import { internalProducerRetries } from '../producer/delivery-policy.ts'
import { ensureTopics } from '../topology/topic-plan.ts'
import { commitInGeneration, type CommitIdentity } from '../kafka/commit-in-generation.ts'
import { closeGroupClient, consumeStream } from './consume-stream.ts'
import { DecodeFailure, decodeRecord, type RawRecord } from './decode.ts'
import { ConsumerStateError, PartitionRevokedError, ConsumerStoppedError, ConsumerStreamClosedError } from './errors.ts'
import { ConsumerMetricsRecorder, type ConsumerMetrics, type DeadLetterBlock, type PartitionLag } from './metrics.ts'
import { OffsetTracker } from './offset-tracker.ts'
import { consumerOptions, type ConsumerConfig, type ConsumerOptions } from './options.ts'
import { PartitionQueue } from './partition-queue.ts'
import { CallWatchdog } from './watchdog.ts'

export { REPLAY_GROUP_HEADER }
const REPLAY_GROUP_NAME = Buffer.from(REPLAY_GROUP_HEADER)

/**
 * Whether a fetched record names a replay group, read off the wire headers. (Asking the decoded
 * message's header map instead, even the shared empty one, made the per-record path about 15 % slower
 * in bench/consumer/hot-path.ts.)
 */
function hasReplayHeader(record: RawRecord): boolean {
  const entries = record.headerEntries
  for (let i = 0; i < entries.length; i++) {
    const name = (entries[i] as [Buffer, Buffer])[0]
    // The length first: no standard header name is as long, and equals() is a native call.
    if (name.length === REPLAY_GROUP_NAME.length && name.equals(REPLAY_GROUP_NAME)) return true
  }
  return false
}

export type ConsumerHealth = 'idle' | 'starting' | 'running' | 'paused' | 'stopping' | 'stopped' | 'failed'

/** Anything with a `handler()` (an EventRouter) works where a handler is expected. */
export interface HandlerSource<V> {
  handler(): MessageHandler<V>
}

export interface ConsumerInit<V = unknown> extends Partial<ConsumerOptions> {
  /** The per-message handler, or an EventRouter. One of handler and batchHandler is required. */
  handler?: MessageHandler<V> | HandlerSource<V>
  /** Consecutive records of one partition at a time (partition ordering only). */
  batchHandler?: BatchHandler<V>
  /** Wrapped around `handler`, the first outermost. */
  middleware?: readonly Middleware<V>[]
  /** Decodes record values; default JSON (strict UTF-8). */
  valueSerde?: Serde<V>
  /** Overrides the error classification; undefined falls back to the defaults (built-in message lists). */
  classify?: (error: unknown) => ErrorKind | undefined
  logger?: HandlingLogger
  /** Environment to read `KAFKA_*` from (default process.env). */
  env?: NodeJS.ProcessEnv
  /** Reroutes failed records before the dead-letter topic (retry tiers). */
  failureRoute?: FailureRoute<V>
}

/**
 * An extension point for what happens to failed records before the dead-letter topic (retry tiers use
 * it, src/retry). `route` runs for every dead-letter verdict; it resolves `rerouted` once the record is
 * durably elsewhere (e.g. produced to a retry topic and acknowledged: the origin offset may then be
 * committed), or `dead-letter` to let the runtime dead-letter it; a rejection leaves the record
 * unsettled (redelivered). `intercept` runs before the handler and may take a record away
 * (`rerouted`), e.g. to park it behind an earlier record of the same key that is waiting in retry.
 */
export interface FailureRoute<V = unknown> {
  route(
    message: ConsumedMessage<V>,
    outcome: DeadLetterOutcome,
    context: { signal: AbortSignal; groupId: string }
  ): Promise<'rerouted' | 'dead-letter'>
  intercept?(
    message: ConsumedMessage<V>,
    context: { signal: AbortSignal; groupId: string }
  ): Promise<'handle' | 'rerouted'>
  /**
   * A record refused by a business rule (committed, neither retried nor dead-lettered): told before it
   * is settled. When it rejects, the record stays uncommitted and is redelivered.
   */
  business?(message: ConsumedMessage<V>, context: { signal: AbortSignal; groupId: string }): Promise<void>
}

export interface ConsumerEvents {
  health: [{ from: ConsumerHealth; to: ConsumerHealth }]
  assigned: [{ topic: string; partition: number }[]]
  /** Partitions let go of (after their drain and last commit); no commit for them follows until assigned again. */
  revoked: [{ topic: string; partition: number }[]]
  commit: [{ offsets: { topic: string; partition: number; offset: bigint }[]; latencyMs: number }]
  /** One record reached a verdict (done, business, dead-letter after the DLQ acknowledged, skipped). */
  settled: [{ topic: string; partition: number; offset: bigint; outcome: SettledOutcome }]
  /** A dead-letter write failed and is being retried; the partition commits nothing past the record meanwhile. */
  blocked: [{ topic: string; partition: number } & DeadLetterBlock]
}

export type SettledOutcome = 'done' | 'business' | 'dead-letter' | 'skipped' | 'rerouted'

interface PartitionState {
  readonly id: string
  readonly topic: string
  readonly partition: number
  readonly queue: PartitionQueue<RawRecord>
  readonly tracker: OffsetTracker
  /** Aborts the handlers of this partition (revoke, stop). */
  readonly controller: AbortController
  highest: bigint
  /** When the oldest queued record arrived (batch linger). */
  queuedSince: number
  /** Set while the partition is being given up: the generation it is given up in. */
  revokedIn?: number | undefined
  /** Who commits for it while it is given up: that generation and the member id then (classic protocol). */
  revokedAs?: CommitIdentity | undefined
  /** Called when its last in-flight work ended. */
  onIdle?: (() => void) | undefined
  /**
   * Set while an earlier state of the same partition is still being let go (the partition was revoked
   * and assigned back to this member before that state's in-flight work ended): nothing of this one is
   * dispatched meanwhile, so a key's records never run in two states at once.
   */
  held?: boolean | undefined
  /** The execution context of this partition's records (one object, reused). */
  readonly context: { signal: AbortSignal; groupId: string; attempt: 1 }
  /** A record whose dead-letter write keeps failing: nothing of this partition commits past it meanwhile. */
  blocked?: DeadLetterBlock | undefined
}

/** A stream that keeps closing by itself is replaced this many times in a row (1, 2, 3, 4, then 5 s apart) before the consumer fails. */
const STREAM_RESTARTS = 10
/** At most one warning per this many ms for failed commits (a coordinator failover fails dozens). */
const COMMIT_WARN_MS = 5000

interface CommitEntry {
  state: PartitionState
  offset: bigint
  leaderEpoch: number
}

function partitionId(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`
}

function isHandlerSource<V>(value: unknown): value is HandlerSource<V> {
  return typeof value === 'object' && value !== null && typeof (value as HandlerSource<V>).handler === 'function'
}

export class Consumer<V = unknown> extends EventEmitter<ConsumerEvents> {
  readonly config: Readonly<ConsumerConfig>
  readonly breaker: ConsumerCircuitBreaker | undefined
  readonly #logger: HandlingLogger
  readonly #serde: Serde<V>
  readonly #executor: HandlerExecutor<V>
  readonly #batch: boolean
  /** A batch handler with a linger: a partition's queue remembers since when it holds records. */
  readonly #lingering: boolean
  readonly #route: FailureRoute<V> | undefined
  readonly #metrics = new ConsumerMetricsRecorder()
  readonly #partitions = new Map<string, PartitionState>()
  #owned = new Set<string>()
  /** The partition of the last record fetched (#accept's shortcut). */
  #lastAccepted: PartitionState | undefined
  #client: ClientConsumer<Buffer, Buffer, Buffer, Buffer> | undefined
  #stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined
  #producer: ClientProducer<Buffer, Buffer, Buffer, Buffer> | undefined
  readonly #dlqWriters = new Map<string, DeadLetterWriter>()
  #health: ConsumerHealth = 'idle'
  /** Queued + in flight records (what bounds memory). */
  #buffered = 0
  /** Handler calls in flight (a batch counts once). */
  #inFlight = 0
  #streamPaused = false
  /** Set when the concurrency limit left eligible work waiting. */
  #starved = false
  #rebalancing = false
  #sinceCommit = 0
  #commitRunning: Promise<void> | undefined
  readonly #commitsInFlight = new Set<Promise<boolean>>()
  /** Partitions being let go, by id: resolves once their 'revoked' event was emitted. */
  readonly #releasing = new Map<string, Promise<void>>()
  #commitAgain = false
  /** When a failed commit was last logged, and how many failed since without a warning. */
  #commitWarnedAt = 0
  #commitFailuresUnlogged = 0
  /** Stream restarts in a row without a record in between (#onStreamError). */
  #streamRestarts = 0
  #restartTimer: NodeJS.Timeout | undefined
  /**
   * The generation and member id of the client's last completed join (classic protocol): the commits of
   * owned partitions are sent in it, so a commit the group refuses for an older generation stays refused.
   */
  #commitAs: CommitIdentity | undefined
  #commitTimer: NodeJS.Timeout | undefined
  #lingerTimer: NodeJS.Timeout | undefined
  #stopping: Promise<void> | undefined
  #failure: Error | undefined
  #done: { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void }
  readonly #signalHandler = () => void this.stop()
  #drainWaiters: (() => void)[] = []
  /** The partitions' own signals: a call made with one of them needs no listener of its own. */
  readonly #partitionSignals = new WeakSet<AbortSignal>()
  readonly #calls: CallWatchdog

  constructor(init: ConsumerInit<V>) {
    super()
    const { handler, batchHandler, middleware, valueSerde, classify, logger, env, failureRoute, ...options } = init
    this.config = consumerOptions.resolve(options, { env: env ?? process.env })
    if ((handler === undefined) === (batchHandler === undefined)) {
      throw new ConfigError('consumer: pass exactly one of `handler` (or an EventRouter) and `batchHandler`', {
        details: { key: 'handler' }
      })
    }
    if (batchHandler && this.config.concurrency.mode !== 'partition') {
      throw new ConfigError(
        `consumer: a batchHandler gets consecutive records of one partition, so concurrency.mode must be 'partition' (got '${this.config.concurrency.mode}'); use a per-message handler for key or unordered concurrency`,
        { details: { key: 'concurrency.mode', value: this.config.concurrency.mode } }
      )
    }
    if (this.config.breaker && this.config.breaker.threshold > this.config.maxRetries + 1) {
      throw new ConfigError(
        `consumer: breaker.threshold ${this.config.breaker.threshold} is above maxRetries + 1 (${this.config.maxRetries + 1}); a failing record would be dead-lettered before an outage opens the breaker. Lower the threshold or raise maxRetries`,
        { details: { key: 'breaker.threshold', value: this.config.breaker.threshold } }
      )
    }
    this.#logger = logger ?? defaultLogger()
    this.#serde = valueSerde ?? jsonSerde<V>()
    this.#batch = batchHandler !== undefined
    this.#lingering = this.#batch && this.config.batchLingerMs > 0
    this.#route = failureRoute
    this.#calls = new CallWatchdog(this.config.maxPollIntervalMs)
    this.breaker = this.config.breaker ? new ConsumerCircuitBreaker(this.config.breaker) : undefined
    this.breaker?.on('state', change => this.#onBreaker(change.from, change.to))
    const perMessage = isHandlerSource<V>(handler) ? handler.handler() : handler
    this.#executor = new HandlerExecutor<V>({
      ...(perMessage ? { handler: perMessage } : {}),
      ...(batchHandler ? { batchHandler } : {}),
      // The max poll interval guards every call, innermost, under the user's middleware.
      middleware: [...(middleware ?? []), this.#watchdog()],
      maxRetries: this.config.maxRetries,
      retryBackoff: this.config.retryBackoff,
      ...(classify ? { classify } : {}),
      ...(this.breaker ? { breaker: this.breaker } : {}),
      logger: this.#logger
    })
    let resolve!: () => void
    let reject!: (error: Error) => void
    const promise = new Promise<void>((ok, fail) => {
      resolve = ok
      reject = fail
    })
    // Whoever cares awaits done(); a failure nobody awaits must not become an unhandled rejection.
    promise.catch(() => undefined)
    this.#done = { promise, resolve, reject }
  }

  get health(): ConsumerHealth {
    return this.#health
  }

  /** Joins the group and starts consuming; resolves once the stream is open. */
  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#health !== 'idle') throw new ConsumerStateError(`consumer: start() called while ${this.#health}`)
    this.#setHealth('starting')
    const { signal } = options
    if (signal?.aborted) {
      this.#setHealth('stopped')
      this.#done.resolve()
      return
    }
    signal?.addEventListener('abort', () => void this.stop(), { once: true })
    if (this.config.handleSignals) {
      process.once('SIGTERM', this.#signalHandler)
      process.once('SIGINT', this.#signalHandler)
    }
    const client = toClientOptions(this.config)
    try {
      if (this.config.ensureTopics && this.config.onDeadLetter === 'dlq') await this.#ensureDeadLetterTopics()
      this.#client = new ClientConsumer<Buffer, Buffer, Buffer, Buffer>(this.#clientOptions())
      this.#client.on('error', (error: Error) => {
        this.#logger.warn({ groupId: this.config.groupId, err: error.message }, 'consumer group error')
      })
      this.#client.on('consumer:group:rebalance', () => this.#onRebalance())
      this.#client.on('consumer:group:join', () => this.#onJoin())
      this.#client.on('consumer:heartbeat:end', () => this.#reconcile())
      this.#producer = new ClientProducer<Buffer, Buffer, Buffer, Buffer>({
        ...client,
        ...internalProducerRetries(),
        acks: -1,
        idempotent: true
      })
      this.#stream = await consumeStream(
        this.#client,
        this.#streamOptions(),
        // Ignored after stop() (the client closed under a pending join).
        (error: Error) => this.#onStreamError(error)
      )
    } catch (error) {
      await this.#closeClients()
      // stop() during start closed the client under the pending join: that is a stop, not a failure.
      if (this.#stopping) return
      this.#setHealth('failed')
      this.#failure = error instanceof Error ? error : new Error(String(error))
      this.#done.reject(this.#failure)
      throw error
    }
    if (this.#stopping) {
      // stop() came while joining; it may have closed the clients before the stream existed.
      await this.#closeClients()
      return
    }
    this.#calls.start()
    this.#stream.on('data', (record: RawRecord) => this.#accept(record))
    if (this.config.commitStrategy === 'interval') {
      this.#commitTimer = setInterval(() => void this.commit(), this.config.commitIntervalMs)
      this.#commitTimer.unref()
    }
    this.#reconcile()
    this.#setHealth(this.breaker && this.breaker.state !== 'closed' ? 'paused' : 'running')
  }

  /** Settles once the consumer stopped: resolves after stop(), rejects with what made it fail. */
  done(): Promise<void> {
    return this.#done.promise
  }

  /**
   * Graceful stop: stop fetching and dispatching, let in-flight work finish (up to shutdownTimeoutMs,
   * then abort it: it is redelivered), commit what settled, leave the group.
   */
  async stop(): Promise<void> {
    if (this.#health === 'idle') {
      this.#setHealth('stopped')
      this.#done.resolve()
      return
    }
    this.#stopping ??= this.#shutdown()
    await this.#stopping
  }

  async close(): Promise<void> {
    await this.stop()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }

  /** Commits the settled offsets of owned partitions now (coalesced with one in flight). */
  async commit(): Promise<void> {
    if (this.#commitRunning) {
      this.#commitAgain = true
      return this.#commitRunning
    }
    this.#commitRunning = this.#commitOnce()
      .then(() => undefined)
      .finally(() => {
        this.#commitRunning = undefined
        if (this.#commitAgain) {
          this.#commitAgain = false
          void this.commit()
        }
      })
    return this.#commitRunning
  }

  /** A snapshot of the counters, commit latency and per-partition state. */
  metrics(): ConsumerMetrics {
    const partitions = [...this.#partitions.values()].map(state => ({
      topic: state.topic,
      partition: state.partition,
      queued: state.queue.size,
      inFlight: state.queue.inFlight,
      position: state.tracker.position,
      committed: state.tracker.lastCommitted,
      ...(state.blocked ? { blocked: { ...state.blocked } } : {})
    }))
    return this.#metrics.snapshot({
      health: this.#health,
      inFlight: this.#inFlight,
      buffered: this.#buffered,
      breaker: this.breaker?.state ?? 'closed',
      partitions
    })
  }

  /** Lag in records per partition of the subscribed topics: end offset minus the group's committed offset. */
  async lag(): Promise<PartitionLag[]> {
    const client = this.#client
    if (!client) return []
    const isolationLevel =
      this.config.isolationLevel === 'read_committed'
        ? FetchIsolationLevels.READ_COMMITTED
        : FetchIsolationLevels.READ_UNCOMMITTED
    const ends = await client.listOffsets({ topics: [...this.config.topics], isolationLevel })
    const committed = await client.listCommittedOffsets({
      topics: [...ends.entries()].map(([topic, offsets]) => ({ topic, partitions: offsets.map((_o, p) => p) }))
    })
    const lags: PartitionLag[] = []
    for (const [topic, offsets] of ends) {
      const done = committed.get(topic) ?? []
      offsets.forEach((end, partition) => {
        const at = done[partition] ?? -1n
        const committedOffset = at < 0n ? undefined : at
        lags.push({ topic, partition, endOffset: end, committedOffset, lag: end - (committedOffset ?? 0n) })
      })
    }
    this.#metrics.recordLag(lags)
    return lags
  }

  /** The partitions the client owns now. */
  assignments(): { topic: string; partition: number }[] {
    return (this.#client?.assignments ?? []).flatMap(({ topic, partitions }) =>
      partitions.map(partition => ({ topic, partition }))
    )
  }

  /**
   * The max poll interval as a guard around every handler call, innermost (src/consumer/watchdog.ts).
   * The call's signal is made on first use and aborts with the partition's (revoke, stop).
   */
  #watchdog(): Middleware<V> {
    const calls = this.#calls
    return next => (message, context) => {
      // The call #runOne began for this very message and is watching: the handler gets it as is.
      const direct = calls.direct
      if (direct !== undefined && direct.message === message && direct.parent === context.signal) {
        calls.direct = undefined
        return next(message, direct)
      }
      return new Promise<void>((resolve, reject) => {
        const call = calls.begin(message, context, !this.#partitionSignals.has(context.signal), reject)
        let running: Promise<void>
        try {
          // Promise.resolve: a handler from plain JavaScript may return nothing at all.
          running = Promise.resolve(next(message, call))
        } catch (error) {
          // A handler that throws before returning a promise: the call is over (and the executor's
          // rejection handling sees the throw), so it leaves the watchdog's list now.
          calls.end(call)
          throw error
        }
        running.then(
          () => {
            calls.end(call)
            resolve()
          },
          (error: unknown) => {
            calls.end(call)
            // Passed on as thrown: the classifier looks at whatever the handler threw, Error or not.
            // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
            reject(error)
          }
        )
      })
    }
  }

  // ---- set-up --------------------------------------------------------------------------------------

  #clientOptions(): ClientConsumerOptions<Buffer, Buffer, Buffer, Buffer> {
    const config = this.config
    const base = {
      ...toClientOptions(config),
      groupId: config.groupId,
      autocommit: false,
      ...(config.groupInstanceId === undefined ? {} : { groupInstanceId: config.groupInstanceId })
    }
    if (config.groupProtocol === 'consumer') {
      // The client validates rebalanceTimeout >= sessionTimeout for both protocols (its default session is 60 s).
      return {
        ...base,
        groupProtocol: 'consumer',
        rebalanceTimeout: config.rebalanceTimeoutMs,
        ...({ sessionTimeout: Math.min(config.sessionTimeoutMs, config.rebalanceTimeoutMs) } as object)
      }
    }
    return {
      ...base,
      groupProtocol: 'classic',
      sessionTimeout: config.sessionTimeoutMs,
      rebalanceTimeout: config.rebalanceTimeoutMs,
      heartbeatInterval: config.heartbeatIntervalMs,
      protocols: [{ name: config.assignor, version: 1 }]
    }
  }

  #dlqTopicFor(topic: string): string {
    return this.config.dlqTopic ?? `${topic}.dlq`
  }

  /** Creates missing dead-letter topics: the origin's partition count (a shared DLQ: the largest). */
  async #ensureDeadLetterTopics(): Promise<void> {
    const admin = new Admin(toClientOptions(this.config))
    try {
      const metadata = await admin.metadata({ topics: [...this.config.topics] })
      const partitions = new Map<string, number>()
      for (const topic of this.config.topics) {
        const count = metadata.topics.get(topic)?.partitionsCount ?? 1
        const dlq = this.#dlqTopicFor(topic)
        partitions.set(dlq, Math.max(partitions.get(dlq) ?? 1, count))
      }
      await ensureTopics(
        admin,
        [...partitions].map(([name, count]) => ({ name, partitions: count }))
      )
    } finally {
      await admin.close().catch(() => undefined)
    }
  }

  #writerFor(topic: string): DeadLetterWriter {
    const dlq = this.#dlqTopicFor(topic)
    let writer = this.#dlqWriters.get(dlq)
    if (!writer) {
      writer = new DeadLetterWriter({
        producer: this.#producer as ClientProducer<Buffer, Buffer, Buffer, Buffer>,
        topic: dlq,
        groupId: this.config.groupId,
        logger: this.#logger
      })
      this.#dlqWriters.set(dlq, writer)
    }
    return writer
  }

  #setHealth(to: ConsumerHealth): void {
    const from = this.#health
    if (from === to) return
    this.#health = to
    this.emit('health', { from, to })
  }

  // ---- fetching ------------------------------------------------------------------------------------

  #accept(record: RawRecord): void {
    if (this.#health === 'stopping' || this.#health === 'stopped' || this.#health === 'failed') return
    // A fetch brings runs of one partition's records: the last record's state, while it is still the
    // partition's live state and owned, saves building the partition's id and looking it up per record.
    let state = this.#lastAccepted
    if (
      state === undefined ||
      state.partition !== record.partition ||
      state.topic !== record.topic ||
      state.revokedIn !== undefined ||
      !this.#owned.has(state.id)
    ) {
      state = this.#stateFor(record)
      if (state === undefined) return
      this.#lastAccepted = state
    }
    // After a rejoin the client fetches again from the committed offset; what was accepted already is
    // queued, in flight or settled here.
    if (record.offset <= state.highest) return
    state.highest = record.offset
    state.tracker.track(record.offset, record.leaderEpoch)
    if (this.#lingering && state.queue.size === 0) state.queuedSince = Date.now()
    state.queue.push(record)
    this.#buffered++
    this.#metrics.consumed++
    if (this.#buffered >= this.config.maxBufferedRecords) this.#pauseStream()
    // A record behind work in flight on its partition (or key) starts nothing now; it is picked up when
    // that work ends. Other partitions' eligible work never waits on a fetch: whatever made it
    // eligible pumped already.
    if (state.queue.eligible) this.#pump()
  }

  /** The live state of a fetched record's partition, created on its first record; undefined when not owned. */
  #stateFor(record: RawRecord): PartitionState | undefined {
    const id = partitionId(record.topic, record.partition)
    if (!this.#owned.has(id)) {
      this.#reconcile()
      // A fetch that was under way when the partition was revoked: not ours to handle.
      if (!this.#owned.has(id)) return undefined
    }
    const state = this.#partitions.get(id)
    return state === undefined || state.revokedIn !== undefined
      ? this.#newPartition(record.topic, record.partition)
      : state
  }

  #newPartition(topic: string, partition: number): PartitionState {
    const controller = new AbortController()
    const state: PartitionState = {
      id: partitionId(topic, partition),
      topic,
      partition,
      queue: new PartitionQueue<RawRecord>(this.config.concurrency.mode),
      tracker: new OffsetTracker(),
      controller,
      highest: -1n,
      queuedSince: 0,
      // attempt: 1 lets the executor hand this object to first attempts without copying it; frozen, as
      // middleware of every record of the partition sees the same object.
      context: Object.freeze({ signal: controller.signal, groupId: this.config.groupId, attempt: 1 as const })
    }
    // Revoke and stop abort the partition's controller; the running calls' own signals follow.
    state.controller.signal.addEventListener(
      'abort',
      () => this.#calls.abortCalls(state.controller.signal, state.controller.signal.reason),
      { once: true }
    )
    this.#partitionSignals.add(state.controller.signal)
    this.#partitions.set(state.id, state)
    const prior = this.#releasing.get(state.id)
    if (prior !== undefined) {
      state.held = true
      void prior.then(() => {
        state.held = false
        this.#pump()
      })
    }
    return state
  }

  /** What the client's stream is asked for (the first one and any after a restart). */
  #streamOptions(): ConsumeOptions<Buffer, Buffer, Buffer, Buffer> {
    return {
      topics: [...this.config.topics],
      mode: MessagesStreamModes.COMMITTED,
      fallbackMode:
        this.config.startOffset === 'earliest'
          ? MessagesStreamFallbackModes.EARLIEST
          : MessagesStreamFallbackModes.LATEST,
      autocommit: false,
      minBytes: this.config.minBytes,
      maxBytes: this.config.maxBytes,
      maxBytesPerPartition: this.config.maxBytesPerPartition,
      maxWaitTime: this.config.maxWaitMs,
      highWaterMark: this.config.maxPollRecords,
      isolationLevel:
        this.config.isolationLevel === 'read_committed'
          ? FetchIsolationLevels.READ_COMMITTED
          : FetchIsolationLevels.READ_UNCOMMITTED
    }
  }

  /**
   * The client's stream ended: with an error, or closed by itself (consumeStream). A broker lost
   * mid-run (the leaders of some partitions, or the group's coordinator, moving to the survivors) ends
   * it once the client's few fetch retries are spent, although the cluster is still usable: while the
   * error is one Kafka calls retriable, fetch again on a new stream (from the committed offsets; records
   * already taken in are recognised and dropped), with a growing pause up to 5 s, for as long as the
   * outage lasts. A stream that closes by itself is replaced up to STREAM_RESTARTS times in a row.
   * Anything else fails the consumer.
   */
  #onStreamError(error: Error): void {
    if (this.#failure || this.#stopping) return
    const running = this.#health === 'running' || this.#health === 'paused'
    // A stream that closed by itself (consumeStream) is treated as retriable too: a new one either
    // fetches again or fails loudly (a closed client), where the closed one would have gone quiet.
    // So is a lost membership: a new coordinator may not know the member (KIP-848 heartbeats answered
    // FENCED_MEMBER_EPOCH or UNKNOWN_MEMBER_ID after a coordinator kill), and the client joins again.
    const retriable = isRetriable(error) || error instanceof ConsumerStreamClosedError || isMembershipLost(error)
    const closedTooOften = error instanceof ConsumerStreamClosedError && this.#streamRestarts >= STREAM_RESTARTS
    if (!running || !retriable || closedTooOften) {
      this.#fail(error)
      return
    }
    this.#streamRestarts++
    const delayMs = Math.min(1000 * this.#streamRestarts, 5000)
    this.#logger.warn(
      { groupId: this.config.groupId, attempt: this.#streamRestarts, delayMs, err: describeKafkaError(error) },
      'consumer: fetching failed; fetching again on a new stream'
    )
    this.#restartTimer = setTimeout(() => void this.#restartStream(), delayMs)
  }

  async #restartStream(): Promise<void> {
    const client = this.#client
    if (this.#failure || this.#stopping || !client) return
    this.#stream?.removeAllListeners('data')
    let stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>
    try {
      stream = await consumeStream(client, this.#streamOptions(), (error: Error) => this.#onStreamError(error))
    } catch (error) {
      this.#onStreamError(error instanceof Error ? error : new Error(String(error)))
      return
    }
    if (this.#failure || this.#stopping) {
      await stream.close().catch(() => undefined)
      return
    }
    this.#stream = stream
    stream.once('data', () => (this.#streamRestarts = 0))
    stream.on('data', (record: RawRecord) => this.#accept(record))
    if (this.#streamPaused) stream.pause()
  }

  #pauseStream(): void {
    if (this.#streamPaused) return
    this.#streamPaused = true
    this.#stream?.pause()
  }

  #maybeResumeStream(): void {
    if (!this.#streamPaused || this.#health !== 'running') return
    if (this.#buffered > this.config.maxBufferedRecords / 2) return
    this.#streamPaused = false
    this.#stream?.resume()
  }

  #fail(error: Error): void {
    if (this.#failure || this.#stopping) return
    this.#failure = error
    this.#logger.error({ groupId: this.config.groupId, err: describeKafkaError(error) }, 'consumer failed; stopping')
    void this.stop()
  }

  // ---- dispatching ---------------------------------------------------------------------------------

  /**
   * Fast path after a per-message call ended: start the next record of the same partition when it is
   * the only thing that can be waiting (no starved partitions), without scanning every partition.
   */
  #next(state: PartitionState): void {
    if (
      this.#starved ||
      this.#batch ||
      this.#health !== 'running' ||
      this.#rebalancing ||
      (this.breaker && !this.breaker.mayDispatch())
    ) {
      this.#pump()
      return
    }
    if (state.revokedIn !== undefined || state.held || this.#inFlight >= this.config.concurrency.limit) return
    const record = state.queue.next()
    if (record) this.#runOne(state, record)
  }

  #pump(): void {
    if (this.#health !== 'running' || this.#rebalancing) return
    if (this.breaker && !this.breaker.mayDispatch()) return
    const limit = this.config.concurrency.limit
    const linger = this.#batch ? this.config.batchLingerMs : 0
    const now = linger > 0 ? Date.now() : 0
    let wakeIn = Number.POSITIVE_INFINITY
    let progressed = true
    while (progressed && this.#inFlight < limit) {
      progressed = false
      for (const state of this.#partitions.values()) {
        if (this.#inFlight >= limit) break
        if (state.revokedIn !== undefined || state.held || !state.queue.eligible) continue
        if (this.#batch) {
          const due = state.queuedSince + linger - now
          if (linger > 0 && state.queue.size < this.config.maxPollRecords && due > 0) {
            wakeIn = Math.min(wakeIn, due)
            continue
          }
          const records = state.queue.nextBatch(this.config.maxPollRecords)
          state.queuedSince = Date.now()
          if (records.length > 0) void this.#runBatch(state, records)
        } else {
          const record = state.queue.next()
          if (record) this.#runOne(state, record)
        }
        progressed = true
      }
    }
    // Work left behind by the concurrency limit: the next call to end must look at every partition.
    let starved = false
    if (this.#inFlight >= limit) {
      for (const state of this.#partitions.values()) {
        if (state.queue.eligible) {
          starved = true
          break
        }
      }
    }
    this.#starved = starved
    if (Number.isFinite(wakeIn) && !this.#lingerTimer) {
      this.#lingerTimer = setTimeout(() => {
        this.#lingerTimer = undefined
        this.#pump()
      }, wakeIn)
    }
  }

  /**
   * Runs one record. The common case (it decodes, no rerouting to ask, no breaker) makes the first
   * attempt here and follows it with two callbacks: no async frame, no promise of its own and none for
   * the watchdog (the call it is given is watched directly), which with a no-op handler was most of
   * Kafkit's cost per record (bench/consumer/hot-path.ts). Anything else goes through #runSlow.
   */
  #runOne(state: PartitionState, record: RawRecord): void {
    this.#inFlight++
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
    return message.headers.get(REPLAY_GROUP_HEADER)?.toString() !== this.config.groupId
  }

  /** A first attempt made by #runOne failed: the executor's retries and verdict, then the record's end. */
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
    this.#inFlight++
    try {
      // Messages the handler dead-lettered itself (context.deadLetter), by offset: how each settles, once
      // known (undefined: not acknowledged, so it stays unsettled), awaited even if the handler did not.
      let diverted: Map<bigint, Promise<SettledOutcome | undefined>> | undefined
      const context: BatchExecutionContext<V> = {
        signal: state.controller.signal,
        groupId: this.config.groupId,
        deadLetter: (message, error) => {
          const divert = this.#divertFromBatch(state, message, error)
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
      if (this.config.commitStrategy === 'batch') void this.commit()
    } catch (error) {
      this.#logger.error(
        { topic: state.topic, partition: state.partition, err: String(error) },
        'consumer: unexpected failure handling a batch'
      )
    } finally {
      this.#finish(state, records[0] as RawRecord, records.length)
    }
  }

  /** A batch handler's context.deadLetter: the message diverted now, as a permanent failure. */
  async #divertFromBatch(state: PartitionState, message: ConsumedMessage<V>, error: unknown): Promise<SettledOutcome> {
    if (message.topic !== state.topic || message.partition !== state.partition) {
      throw new ConfigError(
        `consumer: context.deadLetter got ${message.topic}/${message.partition}@${message.offset}, which is not a message of this batch (${state.topic}/${state.partition})`
      )
    }
    const now = new Date()
    const outcome: DeadLetterOutcome = {
      kind: 'dead-letter',
      reason: 'permanent',
      error,
      attempts: 1,
      firstFailureAt: now,
      lastFailureAt: now
    }
    this.#metrics.recordAttempts(outcome)
    return this.#divert(state, message, outcome)
  }

  /** Acts on one verdict; resolves false when the record stays unsettled (aborted, DLQ write failed). */
  async #apply(state: PartitionState, message: ConsumedMessage<V>, outcome: HandlingOutcome): Promise<boolean> {
    this.#metrics.recordAttempts(outcome)
    switch (outcome.kind) {
      case 'done':
        this.#settle(state, message.offset, 'done')
        return true
      case 'business':
        if (this.#route?.business) {
          try {
            await this.#route.business(message, { signal: state.controller.signal, groupId: this.config.groupId })
          } catch (error) {
            this.#logger.warn(
              {
                topic: message.topic,
                partition: message.partition,
                offset: String(message.offset),
                err: String(error)
              },
              'consumer: reporting a business refusal failed; the record stays uncommitted and will be redelivered'
            )
            return false
          }
        }
        this.#settle(state, message.offset, 'business')
        return true
      case 'dead-letter': {
        let settled: SettledOutcome
        try {
          settled = await this.#divert(state, message, outcome)
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

  /**
   * Moves a failed record to its retry tier (failureRoute) or its dead-letter topic; resolves with how
   * it settles once the broker acknowledged the record there. Rejects, leaving it unsettled (redelivered
   * to the partition's next owner), when that did not happen: the write was aborted or gave up, or
   * `onDeadLetter` is 'stop' (the consumer fails).
   */
  async #divert(
    state: PartitionState,
    message: ConsumedMessage<V>,
    outcome: DeadLetterOutcome
  ): Promise<SettledOutcome> {
    const { signal } = state.controller
    const position = { topic: message.topic, partition: message.partition, offset: String(message.offset) }
    if (this.#route) {
      try {
        if ((await this.#route.route(message, outcome, { signal, groupId: this.config.groupId })) === 'rerouted') {
          return 'rerouted'
        }
      } catch (error) {
        this.#logger.warn(
          { ...position, err: String(error) },
          'consumer: rerouting a failed record was not acknowledged; it stays uncommitted and will be redelivered'
        )
        throw error
      }
    }
    if (this.config.onDeadLetter === 'stop') {
      const cause = outcome.error as Error | undefined
      const stopped = new ConsumerStoppedError(
        `consumer stopped at ${message.topic}/${message.partition}@${message.offset}: ${cause?.message ?? String(cause)} (onDeadLetter is 'stop'; set it to 'dlq' to dead-letter such records and go on)`,
        { cause, details: position }
      )
      this.#fail(stopped)
      throw stopped
    }
    const writer = this.#writerFor(message.topic)
    try {
      await writer.write(message, outcome, {
        signal,
        onWriteFailure: (attempt, error) => this.#blocked(state, message, writer.topic, attempt, error)
      })
    } catch (error) {
      this.#logger.warn(
        { ...position, err: String(error) },
        'consumer: dead-letter write not acknowledged; the record stays uncommitted and will be redelivered'
      )
      throw error
    } finally {
      if (state.blocked?.offset === message.offset) state.blocked = undefined
    }
    return 'dead-letter'
  }

  /** A dead-letter write failed: the partition cannot commit past the record until it is acknowledged. */
  #blocked(state: PartitionState, message: ConsumedMessage<V>, dlqTopic: string, attempts: number, error: unknown) {
    const since = state.blocked?.offset === message.offset ? state.blocked.since : new Date()
    const reason = error instanceof Error ? error.message : String(error)
    state.blocked = { offset: message.offset, dlqTopic, attempts, since, error: reason }
    this.emit('blocked', { topic: state.topic, partition: state.partition, ...state.blocked })
  }

  #settle(state: PartitionState, offset: bigint, outcome: SettledOutcome): void {
    state.tracker.settle(offset)
    this.#metrics.recordSettled(outcome)
    this.#sinceCommit++
    if (this.listenerCount('settled') > 0) {
      this.emit('settled', { topic: state.topic, partition: state.partition, offset, outcome })
    }
    if (this.config.commitStrategy === 'message') void this.commit()
    else if (
      this.config.commitStrategy === 'interval' &&
      this.config.commitEveryMessages !== undefined &&
      this.#sinceCommit >= this.config.commitEveryMessages
    ) {
      void this.commit()
    }
  }

  #finish(state: PartitionState, first: RawRecord, count: number): void {
    this.#inFlight--
    this.#buffered -= count
    state.queue.release(first)
    if (state.queue.inFlight === 0) {
      state.onIdle?.()
      if (this.config.commitStrategy === 'batch' && state.queue.size === 0) void this.commit()
    }
    if (this.#inFlight === 0) {
      const waiters = this.#drainWaiters
      this.#drainWaiters = []
      for (const wake of waiters) wake()
    }
    this.#maybeResumeStream()
    this.#next(state)
  }

  // ---- commits -------------------------------------------------------------------------------------

  /** May this partition's position be committed now? Owned, or being given up in this generation. */
  #mayCommit(state: PartitionState): boolean {
    if (state.revokedIn !== undefined) return state.revokedIn === this.#client?.generationId
    return this.#owned.has(state.id) && this.#partitions.get(state.id) === state
  }

  /** One commit request for the settled offsets of `states`, tracked until its event was emitted. */
  #commitOnce(states: Iterable<PartitionState> = this.#partitions.values()): Promise<boolean> {
    const sending = this.#sendCommit(states)
    this.#commitsInFlight.add(sending)
    void sending.finally(() => this.#commitsInFlight.delete(sending))
    return sending
  }

  async #sendCommit(states: Iterable<PartitionState>): Promise<boolean> {
    const client = this.#client
    if (!client) return true
    // Classic protocol: by generation (revoked partitions in the one they were given up in). The
    // consumer protocol commits through the client (it keeps the member epoch to itself).
    const classic = this.config.groupProtocol === 'classic'
    const byIdentity = new Map<CommitIdentity | undefined, CommitEntry[]>()
    for (const state of states) {
      if (!this.#mayCommit(state)) continue
      const pending = state.tracker.pending()
      if (!pending) continue
      const as = classic ? (state.revokedIn !== undefined ? state.revokedAs : this.#commitAs) : undefined
      if (classic && as === undefined) continue
      let entries = byIdentity.get(as)
      if (entries === undefined) byIdentity.set(as, (entries = []))
      entries.push({ state, ...pending })
    }
    if (byIdentity.size === 0) return true
    this.#sinceCommit = 0
    let ok = true
    for (const [as, entries] of byIdentity) {
      if (!(await this.#commitEntries(client, as, entries))) ok = false
    }
    return ok
  }

  /** One commit request; `as` undefined: through the client's commit() (consumer protocol). */
  async #commitEntries(
    client: ClientConsumer<Buffer, Buffer, Buffer, Buffer>,
    as: CommitIdentity | undefined,
    entries: CommitEntry[]
  ): Promise<boolean> {
    const offsets = entries.map(({ state, offset, leaderEpoch }) => ({
      topic: state.topic,
      partition: state.partition,
      offset,
      leaderEpoch
    }))
    const started = performance.now()
    try {
      if (as === undefined) await client.commit({ offsets })
      else await commitInGeneration(client, this.config.groupId, as, offsets)
    } catch (error) {
      this.#metrics.commitFailures++
      // Not fatal: the records stay uncommitted and the next commit carries them (or they are redelivered).
      // While a coordinator moves every commit fails for a few seconds: one warning per COMMIT_WARN_MS,
      // counting the failures not logged since the last one (metrics().commitFailures has them all).
      const now = Date.now()
      if (now - this.#commitWarnedAt < COMMIT_WARN_MS) {
        this.#commitFailuresUnlogged++
        return false
      }
      this.#logger.warn(
        {
          groupId: this.config.groupId,
          partitions: entries.length,
          err: describeKafkaError(error),
          ...(this.#commitFailuresUnlogged > 0 ? { failedSinceLastWarning: this.#commitFailuresUnlogged } : {})
        },
        'consumer: offset commit failed'
      )
      this.#commitWarnedAt = now
      this.#commitFailuresUnlogged = 0
      return false
    }
    const latencyMs = performance.now() - started
    for (const { state, offset } of entries) state.tracker.committed(offset)
    this.#metrics.recordCommit(latencyMs)
    this.emit('commit', {
      offsets: entries.map(({ state, offset }) => ({ topic: state.topic, partition: state.partition, offset })),
      latencyMs
    })
    return true
  }

  // ---- rebalances ----------------------------------------------------------------------------------

  get #eager(): boolean {
    return this.config.groupProtocol === 'classic' && this.config.assignor === 'roundrobin'
  }

  /** A rebalance started. Eager: every partition may go, so drain and commit while the group waits. */
  #onRebalance(): void {
    this.#metrics.rebalances++
    if (!this.#eager) {
      // Cooperative: told after the client took the assignment without the revoked partitions.
      this.#captureIdentity()
      this.#reconcile()
      return
    }
    if (this.#rebalancing || this.#health !== 'running') return
    this.#rebalancing = true
    void this.commit()
    void this.#waitForIdle(this.config.revokeDrainMs).then(() => {
      if (this.#rebalancing) void this.commit()
    })
  }

  /** The client's generation and member id, once its view of the assignment is the one of that generation. */
  #captureIdentity(): void {
    const client = this.#client
    if (client?.memberId) this.#commitAs = { generation: client.generationId, memberId: client.memberId }
  }

  #onJoin(): void {
    this.#captureIdentity()
    this.#reconcile()
    if (this.#rebalancing) {
      this.#rebalancing = false
      this.#pump()
    }
  }

  /** Brings the partitions in line with the client's assignment: let go of what it no longer owns. */
  #reconcile(): void {
    const client = this.#client
    if (!client) return
    const owned = new Set<string>()
    for (const { topic, partitions } of client.assignments ?? []) {
      for (const partition of partitions) owned.add(partitionId(topic, partition))
    }
    const revoked: PartitionState[] = []
    for (const state of this.#partitions.values()) {
      if (state.revokedIn === undefined && !owned.has(state.id)) revoked.push(state)
    }
    const added = [...owned].filter(id => !this.#owned.has(id))
    this.#owned = owned
    const toPartition = (id: string) => {
      const [topic, partition] = id.split('\u0000') as [string, string]
      return { topic, partition: Number(partition) }
    }
    // A partition assigned back while its earlier state is still being let go: its 'assigned' follows
    // that state's 'revoked', so listeners see revoke and assign in the order they happened.
    const now = added.filter(id => !this.#releasing.has(id))
    if (now.length > 0) this.emit('assigned', now.map(toPartition))
    for (const id of added) {
      const prior = this.#releasing.get(id)
      if (prior !== undefined) void prior.then(() => this.emit('assigned', [toPartition(id)]))
    }
    for (const state of revoked) this.#revoke(state)
  }

  /** Gives up a partition: drop its queue, let in-flight work finish (budget), commit if still allowed, abort the rest. */
  #revoke(state: PartitionState): void {
    state.revokedIn = this.#client?.generationId ?? -1
    // Cooperative protocols: in the generation that revoked it the partition belongs to nobody yet, so
    // its last commits go in that generation. Eager: it already belongs to its next owner there; what
    // settled was committed in the old generation while the group waited, and nothing more is sent.
    const memberId = this.#client?.memberId
    state.revokedAs = memberId && !this.#eager ? { generation: state.revokedIn, memberId } : undefined
    // An earlier state of the partition still being let go announces its 'revoked' first.
    const prior = this.#releasing.get(state.id) ?? Promise.resolve()
    const released = Promise.withResolvers<void>()
    this.#releasing.set(state.id, released.promise)
    this.#buffered -= state.queue.clear()
    // Commit what settled at once: the client rejoins right after telling us, and a commit sent after
    // the next generation formed is refused (ILLEGAL_GENERATION). In-flight work gets another try below.
    if (state.tracker.pending()) void this.#commitOnce([state])
    // Always reached (a state held behind this one waits for it), whatever the commits did.
    const announce = () => {
      try {
        this.emit('revoked', [{ topic: state.topic, partition: state.partition }])
      } finally {
        if (this.#releasing.get(state.id) === released.promise) this.#releasing.delete(state.id)
        released.resolve()
      }
    }
    const letGo = () => {
      state.onIdle = undefined
      clearTimeout(timer)
      void this.#commitOnce([state])
        .then(() => {
          // From here on no commit for this partition is sent until it is assigned again; the ones
          // already sent (the revoke's first, the interval's) land before the partition is let go.
          state.revokedIn = Number.NaN
          if (this.#partitions.get(state.id) === state) this.#partitions.delete(state.id)
          return Promise.allSettled(this.#commitsInFlight)
        })
        .finally(() => {
          state.controller.abort(new PartitionRevokedError(`${state.topic}/${state.partition} was revoked`))
          return prior
        })
        .then(announce, announce)
    }
    const timer = setTimeout(letGo, this.config.revokeDrainMs)
    if (state.queue.inFlight === 0) letGo()
    else state.onIdle = letGo
    this.#maybeResumeStream()
  }

  #waitForIdle(budgetMs: number): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve()
    return new Promise<void>(resolve => {
      const timer = setTimeout(resolve, budgetMs)
      this.#drainWaiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  #onBreaker(from: string, to: string): void {
    this.#logger.warn({ groupId: this.config.groupId, from, to }, `consumer circuit breaker ${to}`)
    if (to === 'open') {
      this.#pauseStream()
      if (this.#health === 'running') this.#setHealth('paused')
    } else if (to === 'closed') {
      if (this.#health === 'paused') this.#setHealth('running')
      this.#maybeResumeStream()
      this.#pump()
    } else {
      // half-open: one probe may go.
      this.#pump()
    }
  }

  // ---- shutdown ------------------------------------------------------------------------------------

  async #shutdown(): Promise<void> {
    const failed = this.#failure !== undefined
    this.#setHealth('stopping')
    if (this.config.handleSignals) {
      process.off('SIGTERM', this.#signalHandler)
      process.off('SIGINT', this.#signalHandler)
    }
    clearInterval(this.#commitTimer)
    clearTimeout(this.#restartTimer)
    this.#calls.stop()
    clearTimeout(this.#lingerTimer)
    this.#stream?.pause()
    for (const state of this.#partitions.values()) this.#buffered -= state.queue.clear()
    const started = Date.now()
    const step = (what: string) =>
      this.#logger.debug({ groupId: this.config.groupId, ms: Date.now() - started }, `consumer stop: ${what}`)
    await this.#waitForIdle(this.config.shutdownTimeoutMs)
    step('in-flight work ended')
    if (this.#inFlight > 0) {
      const stopped = new ConsumerStoppedError('the consumer stopped before this record settled')
      for (const state of this.#partitions.values()) state.controller.abort(stopped)
      // Handlers that honour the signal end now; one that ignores it is left behind (its record stays uncommitted).
      await this.#waitForIdle(2_000)
    }
    // The last commit: a rebalance under way (other members leaving too) fails it with a retriable
    // error; the client rejoins meanwhile, so try again for the partitions still owned.
    await this.#commitRunning
    // A closed client (it failed the consumer) never commits again: no point retrying.
    for (let attempt = 1; attempt <= 10 && !(await this.#commitOnce()) && !this.#client?.closed; attempt++) {
      await new Promise(resolve => setTimeout(resolve, Math.min(100 * 2 ** attempt, 1000)))
    }
    step('committed')
    await this.#closeClients()
    step('left the group')
    this.#setHealth(failed ? 'failed' : 'stopped')
    if (this.#failure) this.#done.reject(this.#failure)
    else this.#done.resolve()
  }

  async #closeClients(): Promise<void> {
    await this.#stream?.close().catch(() => undefined)
    if (this.#client) await closeGroupClient(this.#client)
    await this.#producer?.close().catch(() => undefined)
  }
}
