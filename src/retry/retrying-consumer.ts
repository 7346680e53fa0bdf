/**
 * `RetryingConsumer`: a consumer with delayed retry tiers (by default 5m, 10m, 20m, 40m, then the DLQ)
 * that never block a partition, and optional per-key ordered retries. It runs one consumer runtime per
 * role, all with the same handler:
 *
 * - the origin consumer (the user's group and topics): a transient failure, once its in-place retries
 *   are exhausted, is produced to the first tier topic and the origin partition moves on at once; the
 *   origin offset is committed only after the tier acknowledged the record;
 * - one consumer per tier (`<group>.retry.<delay>` on `<topic>.retry.<delay>`): holds each record
 *   until it is due (one fixed delay per topic, so its records come due in order), then runs the
 *   handler; a transient failure goes to the next tier, after the last tier the DLQ; permanent: the DLQ;
 * - with per-key ordering, a release consumer (`<group>.retry.release`) for parked records handed back
 *   in order (key-order-gate.ts), and a reader of the parked-keys topic.
 *
 * Tier consumers wait in `intercept`, outside the handler's time limit (maxPollIntervalMs), and stop
 * waiting at once on stop(); a waiting record is simply not committed and is waited for again after a
 * restart (its due time travels in its headers).
 */
import { Admin, ClientProducer } from '../kafka/client.ts'
import { toClientOptions } from '../kafka/connection.ts'
import { mentions } from '../kafka/errors.ts'
import { Consumer, type ConsumerInit } from '../consumer/consumer.ts'
import { consumerOptions } from '../consumer/options.ts'
import { ConsumerStateError, ConsumerStoppedError } from '../consumer/errors.ts'
import type { ConsumerMetrics } from '../consumer/metrics.ts'
import { ConfigError } from '../errors/kafkit-error.ts'
import { defaultLogger, type HandlingLogger } from '../handling/logger.ts'
import { PermanentError } from '../handling/errors.ts'
import { internalProducerRetries } from '../producer/delivery-policy.ts'
import type { BatchHandler, MessageHandler } from '../handling/types.ts'
import { ensureTopics, type TopicSpec } from '../topology/topic-plan.ts'
import { KeyOrderGate } from './key-order-gate.ts'
import { retryOptions, type RetryConfig, type RetryOptions } from './options.ts'
import { RetryRouter, type RetryRouterCounts } from './retry-router.ts'
import { CoalescingSender, type RetryProducer } from './send-acknowledged.ts'
import {
  delayMs,
  ensureRetryTopics,
  formatDelay,
  planRetryTopics,
  TopicNotFoundError,
  RetryTopicMisfitError
} from '../topology/retry-topics.ts'
import { retryFlowTopics, type RetryFlowTopics } from './topic-names.ts'

export interface RetryingConsumerInit<V = unknown> extends ConsumerInit<V> {
  /** Delayed retry tiers and per-key ordering (docs/retries.md). */
  retry?: RetryOptions
}

export interface RetryingConsumerMetrics {
  origin: ConsumerMetrics
  tiers: (ConsumerMetrics & { tier: number; delayMs: number; groupId: string })[]
  release: ConsumerMetrics | undefined
  routed: RetryRouterCounts
  /** Per-key ordering: keys held back and records parked (as this worker's reader sees them). */
  keys: { blockedKeys: number; parkedRecords: number } | undefined
}

const DAY = 86_400_000

/**
 * A batch handler run on one message at a time (retry tiers deliver records one by one). Its message
 * can only be dead-lettered once the handler has ended, through the tier's own failure route, so
 * context.deadLetter rejects with a permanent error (the handler should fail with it; if it swallows
 * it, the call fails with it anyway).
 */
function oneMessageBatch<V>(batchHandler: BatchHandler<V>): MessageHandler<V> {
  return async (message, context) => {
    let failed: PermanentError | undefined
    await batchHandler([message], {
      ...context,
      deadLetter: (_message, error) => {
        failed ??= new PermanentError(error instanceof Error ? error.message : String(error), { cause: error })
        return Promise.reject(failed)
      }
    })
    if (failed) throw failed
  }
}

export class RetryingConsumer<V = unknown> {
  readonly retry: Readonly<RetryConfig> & { readonly delaysMs: readonly number[] }
  readonly origin: Consumer<V>
  /** Tier consumers, tier 1 first. */
  readonly tiers: readonly Consumer<V>[]
  /** Per-key ordering only: the consumer of released parked records. */
  readonly release: Consumer<V> | undefined
  readonly flows: readonly RetryFlowTopics[]
  readonly #router: RetryRouter
  readonly #gate: KeyOrderGate | undefined
  readonly #logger: HandlingLogger
  readonly #handleSignals: boolean
  readonly #stop = new AbortController()
  readonly #partitions = new Map<string, number>()
  /** The cluster has more than one broker: retry-flow writes go out one send per partition (see partition-sends.ts). */
  #severalBrokers = false
  #producer: ClientProducer<Buffer, Buffer, Buffer, Buffer> | undefined
  #started = false
  #stopping: Promise<void> | undefined
  #failure: Error | undefined
  #done: { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void }
  readonly #signalHandler = () => void this.stop()

  constructor(init: RetryingConsumerInit<V>) {
    const { retry, failureRoute, handler, batchHandler, handleSignals, logger, ...rest } = init
    if (failureRoute) {
      throw new ConfigError('RetryingConsumer: `failureRoute` is what the retry tiers use; pass `retry` options only', {
        details: { key: 'failureRoute' }
      })
    }
    const config = retryOptions.resolve(retry ?? {})
    const delaysMs = config.tiers.map((delay, i) => delayMs(delay, `retry.tiers[${i}]`))
    this.retry = Object.freeze({ ...config, delaysMs: Object.freeze(delaysMs) })
    this.#logger = logger ?? defaultLogger()
    this.#handleSignals = handleSignals === true
    const producer: RetryProducer = {
      send: options => {
        if (!this.#producer) throw new ConsumerStateError('RetryingConsumer: not started')
        return this.#producer.send(options)
      }
    }
    // The origin's options, resolved as its runtime will: they name the group, topics and DLQ of the tiers.
    const { middleware: _m, valueSerde: _s, classify: _c, env, ...options } = rest
    const originConfig = consumerOptions.resolve(options, { env: env ?? process.env })
    if (config.perKeyOrdering && batchHandler) {
      throw new ConfigError(
        'retry.perKeyOrdering holds records back one by one before their handler runs; use a per-message handler (a batch handler gets whole runs of a partition)',
        { details: { key: 'retry.perKeyOrdering' } }
      )
    }
    if (config.perKeyOrdering && originConfig.concurrency.mode === 'unordered') {
      throw new ConfigError(
        "retry.perKeyOrdering keeps the records of a key in order, so concurrency.mode must be 'partition' or 'key' (got 'unordered')",
        { details: { key: 'retry.perKeyOrdering' } }
      )
    }
    this.flows = originConfig.topics.map(topic =>
      retryFlowTopics(topic, delaysMs, { retryTopic: config.topicTemplate, dlqTopic: originConfig.dlqTopic })
    )
    this.#gate = config.perKeyOrdering
      ? new KeyOrderGate({
          client: toClientOptions(originConfig),
          producer,
          flows: this.flows,
          groupId: originConfig.groupId,
          logger: this.#logger,
          partitions: this.#partitions
        })
      : undefined
    const router = new RetryRouter({
      // Tier records and resolutions only need their acknowledgement: coalesced into fewer requests.
      producer: new CoalescingSender(producer, { perPartition: () => this.#severalBrokers }),
      flows: this.flows,
      partitions: this.#partitions,
      groupId: originConfig.groupId,
      onDeadLetter: originConfig.onDeadLetter,
      logger: this.#logger,
      gate: this.#gate,
      stopSignal: this.#stop.signal
    })
    this.#router = router
    this.origin = new Consumer<V>({
      ...rest,
      ...(handler ? { handler } : {}),
      ...(batchHandler ? { batchHandler } : {}),
      handleSignals: false,
      logger: this.#logger,
      failureRoute: router.originRoute<V>()
    })
    if (this.#gate) {
      const gate = this.#gate
      this.origin.on('assigned', partitions => gate.assigned(partitions))
      this.origin.on('revoked', partitions => gate.revoked(partitions))
    }

    const perMessage: MessageHandler<V> | undefined =
      handler === undefined ? undefined : typeof handler === 'function' ? handler : handler.handler()
    const userHandler: MessageHandler<V> = perMessage ?? oneMessageBatch(batchHandler as BatchHandler<V>)
    const tierInit = (groupId: string, topics: string[]): ConsumerInit<V> => ({
      ...rest,
      groupId,
      topics,
      // A tier group reads its topics from the start: nothing written before it first joined may be skipped.
      startOffset: 'earliest',
      ensureTopics: false,
      handleSignals: false,
      maxRetries: config.maxRetriesPerTier,
      ...(originConfig.breaker
        ? {
            breaker: {
              ...originConfig.breaker,
              threshold: Math.min(originConfig.breaker.threshold, config.maxRetriesPerTier + 1)
            }
          }
        : {}),
      logger: this.#logger,
      handler: router.tierHandler(userHandler),
      failureRoute: router.tierRoute<V>()
    })
    // A tier's group is named by its delay; tiers sharing a delay (a template with `{tier}`) also by
    // their number, so that each has a group of its own.
    const tierGroup = (delayMs: number, i: number) =>
      delaysMs.indexOf(delayMs) === delaysMs.lastIndexOf(delayMs)
        ? `${originConfig.groupId}.retry.${formatDelay(delayMs)}`
        : `${originConfig.groupId}.retry.${formatDelay(delayMs)}.${i + 1}`
    this.tiers = delaysMs.map(
      (delayMs, i) =>
        new Consumer<V>(
          tierInit(
            tierGroup(delayMs, i),
            this.flows.map(flow => (flow.tiers[i] as { topic: string }).topic)
          )
        )
    )
    this.release = config.perKeyOrdering
      ? new Consumer<V>(
          tierInit(
            `${originConfig.groupId}.retry.release`,
            this.flows.map(flow => flow.release)
          )
        )
      : undefined

    let resolve!: () => void
    let reject!: (error: Error) => void
    const promise = new Promise<void>((ok, fail) => {
      resolve = ok
      reject = fail
    })
    promise.catch(() => undefined)
    this.#done = { promise, resolve, reject }
  }

  /** Every consumer runtime of the flow: origin, tiers, release. */
  get consumers(): Consumer<V>[] {
    return [this.origin, ...this.tiers, ...(this.release ? [this.release] : [])]
  }

  /** Creates missing retry topics (when the origin's `ensureTopics` is on), then starts every consumer. */
  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#started) throw new ConsumerStateError('RetryingConsumer: start() called twice')
    this.#started = true
    const { signal } = options
    if (signal?.aborted) {
      this.#done.resolve()
      return
    }
    signal?.addEventListener('abort', () => void this.stop(), { once: true })
    if (this.#handleSignals) {
      process.once('SIGTERM', this.#signalHandler)
      process.once('SIGINT', this.#signalHandler)
    }
    // stop() (a signal, SIGTERM) may come at any step of starting: that is a stop, not a failure, and
    // nothing is started after it (a consumer stopped before it started refuses start()).
    const stopped = () => this.#stopping !== undefined
    try {
      await this.#provision()
      if (stopped()) return
      this.#producer = new ClientProducer<Buffer, Buffer, Buffer, Buffer>({
        ...toClientOptions(this.origin.config),
        clientId: 'kafkit-retry',
        ...internalProducerRetries(),
        acks: -1,
        idempotent: true
      })
      await this.#gate?.start()
      if (stopped()) return
      await Promise.all(this.consumers.map(consumer => consumer.start()))
    } catch (error) {
      if (stopped()) {
        await this.#stopping
        return
      }
      this.#failure = error instanceof Error ? error : new Error(String(error))
      await this.stop()
      throw error
    }
    if (stopped()) return
    for (const consumer of this.consumers) {
      consumer.done().catch((error: unknown) => {
        this.#failure ??= error instanceof Error ? error : new Error(String(error))
        void this.stop()
      })
    }
  }

  /** Settles once every consumer stopped: resolves after stop(), rejects with what made one fail. */
  done(): Promise<void> {
    return this.#done.promise
  }

  /** Stops every consumer (tier waits end at once; their records stay uncommitted), then the rest. */
  async stop(): Promise<void> {
    this.#stopping ??= this.#shutdown()
    await this.#stopping
  }

  async close(): Promise<void> {
    await this.stop()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }

  metrics(): RetryingConsumerMetrics {
    return {
      origin: this.origin.metrics(),
      tiers: this.tiers.map((consumer, i) => ({
        ...consumer.metrics(),
        tier: i + 1,
        delayMs: this.retry.delaysMs[i] as number,
        groupId: consumer.config.groupId
      })),
      release: this.release?.metrics(),
      routed: { ...this.#router.counts, toTier: { ...this.#router.counts.toTier } },
      keys: this.#gate?.counts()
    }
  }

  async #shutdown(): Promise<void> {
    this.#stop.abort(new ConsumerStoppedError('the retrying consumer stopped'))
    if (this.#handleSignals) {
      process.off('SIGTERM', this.#signalHandler)
      process.off('SIGINT', this.#signalHandler)
    }
    await Promise.allSettled(this.consumers.map(consumer => consumer.stop()))
    await this.#gate?.stop()
    await this.#producer?.close().catch(() => undefined)
    if (this.#gate) {
      const admin = new Admin(toClientOptions(this.origin.config))
      await admin.deleteGroups({ groups: [this.#gate.readerGroup] }).catch(() => undefined)
      await admin.close().catch(() => undefined)
    }
    if (this.#failure) this.#done.reject(this.#failure)
    else this.#done.resolve()
  }

  /**
   * Tier topics and the DLQ as topology provisions them (like the origin, retention past the longest
   * delay; existing ones checked); with per-key ordering also the release topic and the compacted
   * parked-keys topic. With `ensureTopics` off, nothing is created and missing or misfit topics fail start().
   */
  async #provision(): Promise<void> {
    // Workers (or groups) starting together race to create the same topics: the loser looks again.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#provisionOnce()
        return
      } catch (error) {
        if (attempt >= 3 || !mentions(error, 'TOPIC_ALREADY_EXISTS')) throw error
        await new Promise(resolve => setTimeout(resolve, 200 * attempt))
      }
    }
  }

  async #provisionOnce(): Promise<void> {
    const config = this.origin.config
    const admin = new Admin(toClientOptions(config))
    try {
      const naming = {
        ...(this.retry.topicTemplate === undefined ? {} : { retryTopic: this.retry.topicTemplate }),
        ...(config.dlqTopic === undefined ? {} : { dlqTopic: config.dlqTopic })
      }
      const specs: TopicSpec[] = []
      const names: string[] = []
      for (const flow of this.flows) {
        const plan = config.ensureTopics
          ? await ensureRetryTopics(admin, flow.origin, this.retry.delaysMs, naming)
          : await planRetryTopics(admin, flow.origin, this.retry.delaysMs, naming)
        for (const topic of plan.topics) {
          if (topic.action === 'misfit')
            throw new RetryTopicMisfitError(topic.problems.join('; '), { details: { topic: topic.topic } })
          if (topic.action === 'create' && !config.ensureTopics) {
            throw new TopicNotFoundError(
              topic.topic,
              'create it like its origin (planRetryTopics says how), or set ensureTopics: true'
            )
          }
        }
        for (const warning of plan.warnings) this.#logger.warn({ origin: flow.origin }, `retry topics: ${warning}`)
        names.push(...flow.tiers.map(tier => tier.topic))
        if (this.#gate) {
          const partitions = plan.origin.partitions
          const retention = Math.max(7 * DAY, 4 * Math.max(...this.retry.delaysMs))
          specs.push(
            {
              name: flow.release,
              partitions,
              configs: { 'cleanup.policy': 'delete' },
              atLeast: { 'retention.ms': retention }
            },
            {
              name: flow.parked,
              partitions,
              configs: {
                'cleanup.policy': 'compact',
                'min.cleanable.dirty.ratio': '0.1',
                'segment.ms': String(3_600_000)
              }
            }
          )
          names.push(flow.release, flow.parked)
        }
      }
      if (config.ensureTopics && specs.length > 0) await ensureTopics(admin, specs)
      const existing = new Set(await admin.listTopics({ includeInternals: false }))
      const missing = specs.map(spec => spec.name).filter(name => !existing.has(name))
      if (missing.length > 0) {
        throw new TopicNotFoundError(
          missing.join(', '),
          'per-key ordering needs it; set ensureTopics: true or create it'
        )
      }
      const derived = await admin.metadata({ topics: names, forceUpdate: true })
      for (const name of names) this.#partitions.set(name, derived.topics.get(name)?.partitionsCount ?? 1)
      this.#severalBrokers = derived.brokers.size > 1
    } finally {
      await admin.close().catch(() => undefined)
    }
  }
}
