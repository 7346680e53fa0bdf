/**
 * The consumer runtime: an at-least-once worker on the Kafka client's group consumer. It fetches
 * (one stream, auto-commit off), orders work per partition or per key, runs each record through
 * message handling (src/handling: router, middleware, error kinds, in-place retries, breaker), writes
 * dead-letter records and waits for their acknowledgement, and commits per partition only the offset
 * below which every record is settled (OffsetTracker).
 *
 * `Consumer` is the coordinator: it owns the lifecycle (start, stop, health, signals), the client and
 * the dead-letter producer, takes fetched records in, and composes the parts:
 * - StreamSupervisor: the record stream, its backpressure and its restarts after retriable errors;
 * - Dispatcher: which buffered record starts next (ordering mode, concurrency limit, linger, breaker);
 * - RecordRunner: a record or batch from decoding to its verdict, settled or routed;
 * - FailureRouter: failed records to their retry tier or dead-letter topic, acknowledged before they settle;
 * - CommitCoordinator: which offsets are committable, when, and in which generation;
 * - RebalanceHandler: assignments and revokes (drain, commit, abort); docs/consumer.md says how.
 * A commit is only ever sent for partitions the client owns (or is still giving up in the same
 * generation), so a worker never overwrites the new owner's position.
 */
import { EventEmitter } from 'node:events'
import { ClientConsumer, ClientProducer } from '../kafka/client.ts'
import { describeKafkaError } from '../kafka/errors.ts'
import { toClientOptions } from '../kafka/connection.ts'
import { ConfigError } from '../errors/kafkit-error.ts'
import { ConsumerCircuitBreaker } from '../handling/consumer-breaker.ts'
import { HandlerExecutor } from '../handling/handler-executor.ts'
import { defaultLogger, type HandlingLogger } from '../handling/logger.ts'
import type { BatchHandler, MessageHandler, Middleware } from '../handling/types.ts'
import { jsonSerde } from '../message/serde.ts'
import { REPLAY_GROUP_HEADER } from '../message/wire-format.ts'
import { internalProducerRetries } from '../producer/delivery-policy.ts'
import type { Producer } from '../producer/producer.ts'
import { RetryFlow } from '../retry/retry-flow.ts'
import { clientOptions, isolationLevel } from './client-options.ts'
import { CommitCoordinator, clientCommitTarget } from './commit-coordinator.ts'
import { closeGroupClient } from './consume-stream.ts'
import type { RawRecord } from './decode.ts'
import { Dispatcher } from './dispatcher.ts'
import { ConsumerStateError, ConsumerStoppedError } from './errors.ts'
import { FailureRouter, ensureDeadLetterTopics } from './failure-router.ts'
import type { ConsumerGroupMetadata } from '../kafka/transactional-offsets.ts'
import { withCorrectReadCommitted } from '../kafka/read-committed.ts'
import { ConsumerMetricsRecorder, type ConsumerMetrics, type PartitionLag } from './metrics.ts'
import { consumerOptions, type ConsumerConfig } from './options.ts'
import type { PartitionState } from './partition-state.ts'
import { RebalanceHandler, type RebalanceHost } from './rebalance.ts'
import { RecordRunner } from './record-runner.ts'
import { StreamSupervisor, type StreamHost } from './stream-supervisor.ts'
import type { ConsumerEvents, ConsumerHealth, ConsumerInit, HandlerSource } from './types.ts'
import { CallWatchdog, watchdogMiddleware } from './watchdog.ts'

export { REPLAY_GROUP_HEADER }
export type {
  ConsumerEvents,
  ConsumerHealth,
  ConsumerInit,
  FailureRoute,
  HandlerSource,
  SettledOutcome
} from './types.ts'

function isHandlerSource<V>(value: unknown): value is HandlerSource<V> {
  return typeof value === 'object' && value !== null && typeof (value as HandlerSource<V>).handler === 'function'
}

/** Refuses handler and option combinations that cannot work, naming the key. */
function checkInit<V>(init: ConsumerInit<V>, config: ConsumerConfig): void {
  const { handler, batchHandler, producer } = init
  if ((handler === undefined) === (batchHandler === undefined)) {
    throw new ConfigError('consumer: pass exactly one of `handler` (or an EventRouter) and `batchHandler`', {
      details: { key: 'handler' }
    })
  }
  if (batchHandler && config.concurrency.mode !== 'partition') {
    throw new ConfigError(
      `consumer: a batchHandler gets consecutive records of one partition, so concurrency.mode must be 'partition' (got '${config.concurrency.mode}'); use a per-message handler for key or unordered concurrency`,
      { details: { key: 'concurrency.mode', value: config.concurrency.mode } }
    )
  }
  if (config.breaker && config.breaker.threshold > config.maxRetries + 1) {
    throw new ConfigError(
      `consumer: breaker.threshold ${config.breaker.threshold} is above maxRetries + 1 (${config.maxRetries + 1}); a failing record would be dead-lettered before an outage opens the breaker. Lower the threshold or raise maxRetries`,
      { details: { key: 'breaker.threshold', value: config.breaker.threshold } }
    )
  }
  if (producer?.config.transactionalId !== undefined) {
    // While one of its transactions is open the client refuses every other send.
    throw new ConfigError('consumer: `producer` is transactional; give it a producer without a transactionalId', {
      details: { key: 'producer' }
    })
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error))
}

/** A promise settled from outside; a rejection nobody awaits is not an unhandled one. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void } {
  const done = Promise.withResolvers<void>()
  // Whoever cares awaits done(); a failure nobody awaits must not become an unhandled rejection.
  done.promise.catch(() => undefined)
  return done
}

export class Consumer<V = unknown> extends EventEmitter<ConsumerEvents> {
  readonly config: Readonly<ConsumerConfig>
  readonly breaker: ConsumerCircuitBreaker | undefined
  readonly #logger: HandlingLogger
  /** A batch handler with a linger: a partition's queue remembers since when it holds records. */
  readonly #lingering: boolean
  readonly #metrics = new ConsumerMetricsRecorder()
  readonly #partitions = new Map<string, PartitionState>()
  readonly #calls: CallWatchdog
  readonly #stream: StreamSupervisor
  readonly #dispatcher: Dispatcher
  readonly #commits: CommitCoordinator
  readonly #rebalance: RebalanceHandler
  readonly #failures: FailureRouter<V>
  readonly #runner: RecordRunner<V>
  /** The retry tiers (the `retry` option): their consumers run beside this one, started and stopped with it. */
  readonly #retry: RetryFlow<V> | undefined
  /** A producer the consumer was given for its dead-letter writes: borrowed, never closed here. */
  readonly #sharedProducer: Producer | undefined
  /** The partition of the last record fetched (#accept's shortcut). */
  #lastAccepted: PartitionState | undefined
  #client: ClientConsumer<Buffer, Buffer, Buffer, Buffer> | undefined
  /** The consumer's own dead-letter producer (none when it was given one). */
  #producer: ClientProducer<Buffer, Buffer, Buffer, Buffer> | undefined
  #health: ConsumerHealth = 'idle'
  #stopping: Promise<void> | undefined
  #failure: Error | undefined
  readonly #done = deferred()
  readonly #signalHandler = () => void this.stop()

  constructor(init: ConsumerInit<V>) {
    super()
    const {
      handler,
      batchHandler,
      middleware,
      valueSerde,
      classify,
      logger,
      env,
      failureRoute: givenRoute,
      producer,
      retry,
      ...options
    } = init
    this.config = consumerOptions.resolve(options, { env: env ?? process.env })
    const config = this.config
    checkInit(init, config)
    this.#logger = logger ?? defaultLogger()
    this.#sharedProducer = producer
    this.#retry =
      retry === undefined
        ? undefined
        : new RetryFlow<V>({
            retry,
            init,
            origin: config,
            logger: this.#logger,
            newConsumer: tier => new Consumer<V>(tier)
          })
    this.#retry?.attach(this)
    const failureRoute = givenRoute ?? this.#retry?.originRoute
    const batch = batchHandler !== undefined
    this.#lingering = batch && config.batchLingerMs > 0
    this.#calls = new CallWatchdog(config.maxPollIntervalMs)
    this.breaker = config.breaker ? new ConsumerCircuitBreaker(config.breaker) : undefined
    this.breaker?.on('state', change => this.#onBreaker(change.from, change.to))
    const perMessage = isHandlerSource<V>(handler) ? handler.handler() : handler
    const executor = this.#executor(perMessage, batchHandler, middleware, classify)
    const { limit } = config.concurrency
    const common = { config, partitions: this.#partitions, metrics: this.#metrics, logger: this.#logger }
    this.#stream = new StreamSupervisor({ ...common, host: this.#streamHost() })
    this.#dispatcher = new Dispatcher(
      this.#partitions,
      { limit, batch, lingerMs: config.batchLingerMs, maxPollRecords: config.maxPollRecords },
      () => this.#mayDispatch()
    )
    this.#commits = new CommitCoordinator({
      ...common,
      owns: id => this.#rebalance.owns(id),
      onCommit: event => this.emit('commit', event)
    })
    const parts = { dispatcher: this.#dispatcher, commits: this.#commits, watchdog: this.#calls }
    this.#rebalance = new RebalanceHandler({ ...common, ...parts, host: this.#rebalanceHost() })
    this.#failures = new FailureRouter<V>({
      ...common,
      route: failureRoute,
      host: { fail: error => this.#fail(error), blocked: event => this.emit('blocked', event) }
    })
    this.#runner = new RecordRunner<V>({
      ...common,
      ...parts,
      groupId: config.groupId,
      serde: valueSerde ?? jsonSerde<V>(),
      executor,
      route: failureRoute,
      backpressure: this.#stream,
      failures: this.#failures,
      events: this
    })
    this.#dispatcher.runWith(this.#runner)
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
      await this.#retry?.prepare(() => this.#stopping !== undefined)
      // stop() while the retry tiers were prepared: this consumer does not join the group at all.
      if (this.#stopping) return
      // The tiers' consumers join their groups while this one joins its own.
      const tiers = this.#retry?.startConsumers()
      tiers?.catch(() => undefined)
      if (this.config.ensureTopics && this.config.onDeadLetter === 'dlq') {
        await ensureDeadLetterTopics(this.config, topic => this.#failures.dlqTopicFor(topic))
      }
      const group = this.#openClient()
      if (this.#sharedProducer) this.#failures.attach(this.#sharedProducer.client)
      else {
        this.#producer = new ClientProducer<Buffer, Buffer, Buffer, Buffer>({
          ...client,
          ...internalProducerRetries(),
          acks: -1,
          idempotent: true
        })
        this.#failures.attach(this.#producer)
      }
      await this.#stream.open(group)
      await tiers
    } catch (error) {
      await this.#closeClients()
      await this.#retry?.stopConsumers()
      await this.#retry?.close()
      // stop() during start closed the client under the pending join: that is a stop, not a failure.
      if (this.#stopping) return
      this.#setHealth('failed')
      this.#failure = asError(error)
      this.#done.reject(this.#failure)
      throw error
    }
    if (this.#stopping) {
      // stop() came while joining; it may have closed the clients before the stream existed.
      await this.#closeClients()
      return
    }
    // A retry tier's consumer that fails takes this one down with it, as any failure of its own would.
    for (const tier of this.#retry?.consumers ?? []) tier.done().catch((error: unknown) => this.#fail(asError(error)))
    this.#calls.start()
    this.#stream.listen()
    this.#commits.start()
    this.#rebalance.reconcile()
    this.#setHealth(this.breaker && this.breaker.state !== 'closed' ? 'paused' : 'running')
  }

  /**
   * The group, the generation and member id of the consumer's last completed join, and the group's
   * coordinator: what a producer transaction needs to commit consumed offsets
   * (`transaction.sendOffsets(offsets, consumer.groupMetadata())`). Undefined before the first join,
   * and with the consumer group protocol (KIP-848), whose member epoch the client keeps to itself.
   */
  groupMetadata(): ConsumerGroupMetadata | undefined {
    const client = this.#client
    const identity = this.#commits.identity
    if (client === undefined || identity === undefined || client.coordinatorId === null) return undefined
    return {
      groupId: this.config.groupId,
      generationId: identity.generation,
      memberId: identity.memberId,
      coordinatorId: client.coordinatorId
    }
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
    return this.#commits.commit()
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
    const snapshot = this.#metrics.snapshot({
      health: this.#health,
      inFlight: this.#dispatcher.inFlight,
      buffered: this.#stream.buffered,
      breaker: this.breaker?.state ?? 'closed',
      partitions
    })
    if (this.#retry) snapshot.retry = this.#retry.metrics()
    return snapshot
  }

  /** Lag in records per partition of the subscribed topics: end offset minus the group's committed offset. */
  async lag(): Promise<PartitionLag[]> {
    const client = this.#client
    if (!client) return []
    const ends = await client.listOffsets({
      topics: [...this.config.topics],
      isolationLevel: isolationLevel(this.config)
    })
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

  // ---- set-up --------------------------------------------------------------------------------------

  #executor(
    handler: MessageHandler<V> | undefined,
    batchHandler: BatchHandler<V> | undefined,
    middleware: readonly Middleware<V>[] | undefined,
    classify: ConsumerInit<V>['classify']
  ): HandlerExecutor<V> {
    return new HandlerExecutor<V>({
      ...(handler ? { handler } : {}),
      ...(batchHandler ? { batchHandler } : {}),
      // The max poll interval guards every call, innermost, under the user's middleware.
      middleware: [...(middleware ?? []), watchdogMiddleware<V>(this.#calls)],
      maxRetries: this.config.maxRetries,
      retryBackoff: this.config.retryBackoff,
      ...(classify ? { classify } : {}),
      ...(this.breaker ? { breaker: this.breaker } : {}),
      logger: this.#logger
    })
  }

  #streamHost(): StreamHost {
    return {
      accept: record => this.#accept(record),
      fail: error => this.#fail(error),
      ending: () => this.#failure !== undefined || this.#stopping !== undefined,
      active: () => this.#health === 'running' || this.#health === 'paused',
      running: () => this.#health === 'running'
    }
  }

  #rebalanceHost(): RebalanceHost {
    return {
      group: () => this.#client,
      running: () => this.#health === 'running',
      assigned: partitions => this.emit('assigned', partitions),
      revoked: partitions => this.emit('revoked', partitions),
      dropped: count => (this.#stream.buffered -= count),
      resume: () => this.#stream.maybeResume()
    }
  }

  /** The group client, its events wired to the parts. */
  #openClient(): ClientConsumer<Buffer, Buffer, Buffer, Buffer> {
    const client = withCorrectReadCommitted(
      new ClientConsumer<Buffer, Buffer, Buffer, Buffer>(clientOptions(this.config))
    )
    this.#client = client
    this.#commits.attach(clientCommitTarget(client, this.config.groupId))
    client.on('error', (error: Error) => {
      this.#logger.warn({ groupId: this.config.groupId, err: error.message }, 'consumer group error')
    })
    client.on('consumer:group:rebalance', () => this.#rebalance.onRebalance())
    client.on('consumer:group:join', () => this.#rebalance.onJoin())
    client.on('consumer:heartbeat:end', () => this.#rebalance.reconcile())
    return client
  }

  #setHealth(to: ConsumerHealth): void {
    const from = this.#health
    if (from === to) return
    this.#health = to
    this.emit('health', { from, to })
  }

  /** New work may start: running, no eager rebalance under way, the breaker lets it through. */
  #mayDispatch(): boolean {
    return (
      this.#health === 'running' &&
      !this.#rebalance.rebalancing &&
      (this.breaker === undefined || this.breaker.mayDispatch())
    )
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
      !this.#rebalance.owns(state.id)
    ) {
      state = this.#rebalance.stateFor(record)
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
    const stream = this.#stream
    stream.buffered++
    this.#metrics.consumed++
    if (stream.buffered >= this.config.maxBufferedRecords) stream.pause()
    // A record behind work in flight on its partition (or key) starts nothing now; it is picked up when
    // that work ends. Other partitions' eligible work never waits on a fetch: whatever made it
    // eligible pumped already.
    if (state.queue.eligible) this.#dispatcher.pump()
  }

  #fail(error: Error): void {
    if (this.#failure || this.#stopping) return
    this.#failure = error
    this.#logger.error({ groupId: this.config.groupId, err: describeKafkaError(error) }, 'consumer failed; stopping')
    void this.stop()
  }

  #onBreaker(from: string, to: string): void {
    this.#logger.warn({ groupId: this.config.groupId, from, to }, `consumer circuit breaker ${to}`)
    if (to === 'open') {
      this.#stream.pause()
      if (this.#health === 'running') this.#setHealth('paused')
    } else if (to === 'closed') {
      if (this.#health === 'paused') this.#setHealth('running')
      this.#stream.maybeResume()
      this.#dispatcher.pump()
    } else {
      // half-open: one probe may go.
      this.#dispatcher.pump()
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
    // The tiers stop beside this one: their waits end at once and their records stay uncommitted.
    const tiers = this.#retry?.stopConsumers()
    this.#commits.stop()
    this.#stream.stop()
    this.#calls.stop()
    this.#dispatcher.stop()
    for (const state of this.#partitions.values()) this.#stream.buffered -= state.queue.clear()
    const started = Date.now()
    const step = (what: string) =>
      this.#logger.debug({ groupId: this.config.groupId, ms: Date.now() - started }, `consumer stop: ${what}`)
    await this.#dispatcher.waitForIdle(this.config.shutdownTimeoutMs)
    step('in-flight work ended')
    if (this.#dispatcher.inFlight > 0) {
      const stopped = new ConsumerStoppedError('the consumer stopped before this record settled')
      for (const state of this.#partitions.values()) state.controller.abort(stopped)
      // Handlers that honour the signal end now; one that ignores it is left behind (its record stays uncommitted).
      await this.#dispatcher.waitForIdle(2_000)
    }
    await this.#commits.lastCommit()
    step('committed')
    await this.#closeClients()
    await tiers
    await this.#retry?.close()
    step('left the group')
    this.#setHealth(failed ? 'failed' : 'stopped')
    if (this.#failure) this.#done.reject(this.#failure)
    else this.#done.resolve()
  }

  /** Closes the stream, leaves the group, closes the consumer's own producer (a shared one stays open). */
  async #closeClients(): Promise<void> {
    await this.#stream.close()
    if (this.#client) await closeGroupClient(this.#client)
    await this.#producer?.close().catch(() => undefined)
  }
}
