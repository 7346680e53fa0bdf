/**
 * The retry tiers of a consumer (`new Consumer({ retry })`): delayed retries that never block a
 * partition (by default 5m, 10m, 20m, 40m, then the DLQ), and optional per-key ordered retries. The
 * consumer the user created stays the origin; this part adds one consumer runtime per tier, all with
 * the same handler:
 *
 * - the origin (the user's group and topics): a transient failure, once its in-place retries are
 *   exhausted, is produced to the first tier topic and the partition moves on at once; the origin
 *   offset is committed only after the tier acknowledged the record (`originRoute`);
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
import type { Consumer } from '../consumer/consumer.ts'
import type { ConsumerInit, FailureRoute } from '../consumer/types.ts'
import type { ConsumerConfig } from '../consumer/options.ts'
import { ConsumerStateError, ConsumerStoppedError } from '../consumer/errors.ts'
import type { ConsumerMetrics } from '../consumer/metrics.ts'
import { ConfigError } from '../errors/kafkit-error.ts'
import type { HandlingLogger } from '../handling/logger.ts'
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

/** What `consumer.metrics().retry` holds. */
export interface RetryMetrics {
  tiers: (ConsumerMetrics & { tier: number; delayMs: number; groupId: string })[]
  release: ConsumerMetrics | undefined
  routed: RetryRouterCounts
  /** Per-key ordering: keys held back and records parked (as this worker's reader sees them). */
  keys: { blockedKeys: number; parkedRecords: number } | undefined
}

export interface RetryFlowInit<V> {
  retry: RetryOptions
  /** The origin consumer's init: tier consumers share its handler and options (not `retry`). */
  init: ConsumerInit<V>
  /** The origin consumer's resolved options: they name the group, topics and DLQ of the tiers. */
  origin: Readonly<ConsumerConfig>
  logger: HandlingLogger
  /** Builds a consumer runtime for a tier (the origin's class, without retry tiers). */
  newConsumer: (init: ConsumerInit<V>) => Consumer<V>
}

type ClientRetryProducer = ClientProducer<Buffer, Buffer, Buffer, Buffer>

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

/** Refuses retry options that cannot work with the origin's handler or ordering. */
function checkRetryFits<V>(config: RetryConfig, init: ConsumerInit<V>, origin: Readonly<ConsumerConfig>): void {
  if (init.failureRoute) {
    throw new ConfigError('`failureRoute` is what the retry tiers use; pass either `retry` or `failureRoute`', {
      details: { key: 'failureRoute' }
    })
  }
  if (config.perKeyOrdering && init.batchHandler) {
    throw new ConfigError(
      'retry.perKeyOrdering holds records back one by one before their handler runs; use a per-message handler (a batch handler gets whole runs of a partition)',
      { details: { key: 'retry.perKeyOrdering' } }
    )
  }
  if (config.perKeyOrdering && origin.concurrency.mode === 'unordered') {
    throw new ConfigError(
      "retry.perKeyOrdering keeps the records of a key in order, so concurrency.mode must be 'partition' or 'key' (got 'unordered')",
      { details: { key: 'retry.perKeyOrdering' } }
    )
  }
}

export class RetryFlow<V = unknown> {
  readonly retry: Readonly<RetryConfig> & { readonly delaysMs: readonly number[] }
  /** Tier consumers, tier 1 first. */
  readonly tiers: readonly Consumer<V>[]
  /** Per-key ordering only: the consumer of released parked records. */
  readonly release: Consumer<V> | undefined
  readonly flows: readonly RetryFlowTopics[]
  /** The origin's failure route: transient failures go to tier 1. */
  readonly originRoute: FailureRoute<V>
  readonly #origin: Readonly<ConsumerConfig>
  readonly #router: RetryRouter
  readonly #gate: KeyOrderGate | undefined
  readonly #logger: HandlingLogger
  readonly #stop = new AbortController()
  readonly #partitions = new Map<string, number>()
  /** A Kafkit producer the user gave the consumer: its client carries the retry writes, and it is not closed. */
  readonly #shared: ClientRetryProducer | undefined
  /** The cluster has more than one broker: retry-flow writes go out one send per partition (see partition-sends.ts). */
  #severalBrokers = false
  #producer: ClientRetryProducer | undefined
  #closing: Promise<void> | undefined

  constructor(init: RetryFlowInit<V>) {
    const config = retryOptions.resolve(init.retry)
    checkRetryFits(config, init.init, init.origin)
    const delaysMs = config.tiers.map((delay, i) => delayMs(delay, `retry.tiers[${i}]`))
    this.retry = Object.freeze({ ...config, delaysMs: Object.freeze(delaysMs) })
    this.#origin = init.origin
    this.#logger = init.logger
    this.#shared = init.init.producer?.client
    const producer: RetryProducer = {
      send: options => {
        if (!this.#producer) throw new ConsumerStateError('the retry tiers are not started')
        return this.#producer.send(options)
      }
    }
    const origin = init.origin
    this.flows = origin.topics.map(topic =>
      retryFlowTopics(topic, delaysMs, { retryTopic: config.topicTemplate, dlqTopic: origin.dlqTopic })
    )
    this.#gate = config.perKeyOrdering
      ? new KeyOrderGate({
          client: toClientOptions(origin),
          producer,
          flows: this.flows,
          groupId: origin.groupId,
          logger: this.#logger,
          partitions: this.#partitions
        })
      : undefined
    this.#router = new RetryRouter({
      // Tier records and resolutions only need their acknowledgement: coalesced into fewer requests.
      producer: new CoalescingSender(producer, { perPartition: () => this.#severalBrokers }),
      flows: this.flows,
      partitions: this.#partitions,
      groupId: origin.groupId,
      onDeadLetter: origin.onDeadLetter,
      logger: this.#logger,
      gate: this.#gate,
      stopSignal: this.#stop.signal
    })
    this.originRoute = this.#router.originRoute<V>()
    this.tiers = delaysMs.map((delay, i) =>
      init.newConsumer(
        this.#tierInit(
          init.init,
          this.#tierGroup(delay, i),
          this.flows.map(f => f.tiers[i]?.topic ?? '')
        )
      )
    )
    this.release = config.perKeyOrdering
      ? init.newConsumer(
          this.#tierInit(
            init.init,
            `${origin.groupId}.retry.release`,
            this.flows.map(flow => flow.release)
          )
        )
      : undefined
  }

  /** Tier and release consumers. */
  get consumers(): Consumer<V>[] {
    return [...this.tiers, ...(this.release ? [this.release] : [])]
  }

  /** Keeps per-key ordering's view of the origin's partitions current. */
  attach(origin: Consumer<V>): void {
    const gate = this.#gate
    if (!gate) return
    origin.on('assigned', partitions => gate.assigned(partitions))
    origin.on('revoked', partitions => gate.revoked(partitions))
  }

  /**
   * Creates missing retry topics (when the origin's `ensureTopics` is on), opens the retry producer and
   * starts per-key ordering's reader. `stopped()` is asked between the steps: a stop meanwhile ends it.
   * The tier consumers start after it, together with the origin (`startConsumers`).
   */
  async prepare(stopped: () => boolean): Promise<void> {
    await this.#provision()
    if (stopped()) return
    this.#producer =
      this.#shared ??
      new ClientProducer<Buffer, Buffer, Buffer, Buffer>({
        ...toClientOptions(this.#origin),
        clientId: 'kafkit-retry',
        ...internalProducerRetries(),
        acks: -1,
        idempotent: true
      })
    await this.#gate?.start()
  }

  /** Starts the tier consumers (and the release consumer): called as the origin joins its group. */
  async startConsumers(): Promise<void> {
    await Promise.all(this.consumers.map(consumer => consumer.start()))
  }

  /** Ends tier waits at once (their records stay uncommitted) and stops the tier consumers. */
  async stopConsumers(): Promise<void> {
    this.#stop.abort(new ConsumerStoppedError('the consumer stopped'))
    await Promise.allSettled(this.consumers.map(consumer => consumer.stop()))
  }

  /** After the origin stopped too: per-key ordering's reader, the retry producer (unless shared), its group. */
  close(): Promise<void> {
    // A stop during start may reach here twice (the failed start and the stop): close once.
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    await this.#gate?.stop()
    if (this.#producer !== this.#shared) await this.#producer?.close().catch(() => undefined)
    if (this.#gate) {
      const admin = new Admin(toClientOptions(this.#origin))
      await admin.deleteGroups({ groups: [this.#gate.readerGroup] }).catch(() => undefined)
      await admin.close().catch(() => undefined)
    }
  }

  metrics(): RetryMetrics {
    return {
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

  #tierInit(init: ConsumerInit<V>, groupId: string, topics: string[]): ConsumerInit<V> {
    const { handler, batchHandler, failureRoute: _f, retry: _r, ...rest } = init
    const perMessage: MessageHandler<V> | undefined =
      handler === undefined ? undefined : typeof handler === 'function' ? handler : handler.handler()
    const userHandler: MessageHandler<V> = perMessage ?? oneMessageBatch(batchHandler as BatchHandler<V>)
    const breaker = this.#origin.breaker
    return {
      ...rest,
      groupId,
      topics,
      // A tier group reads its topics from the start: nothing written before it first joined may be skipped.
      startOffset: 'earliest',
      ensureTopics: false,
      handleSignals: false,
      maxRetries: this.retry.maxRetriesPerTier,
      ...(breaker
        ? { breaker: { ...breaker, threshold: Math.min(breaker.threshold, this.retry.maxRetriesPerTier + 1) } }
        : {}),
      logger: this.#logger,
      handler: this.#router.tierHandler(userHandler),
      failureRoute: this.#router.tierRoute<V>()
    }
  }

  /**
   * A tier's group is named by its delay; tiers sharing a delay (a template with `{tier}`) also by
   * their number, so that each has a group of its own.
   */
  #tierGroup(delay: number, i: number): string {
    const { delaysMs } = this.retry
    const base = `${this.#origin.groupId}.retry.${formatDelay(delay)}`
    return delaysMs.indexOf(delay) === delaysMs.lastIndexOf(delay) ? base : `${base}.${i + 1}`
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
    const config = this.#origin
    const admin = new Admin(toClientOptions(config))
    try {
      const specs: TopicSpec[] = []
      const names: string[] = []
      for (const flow of this.flows) {
        const partitions = await this.#provisionTiers(admin, flow)
        names.push(...flow.tiers.map(tier => tier.topic))
        if (this.#gate) {
          specs.push(...this.#keyOrderSpecs(flow, partitions))
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

  /** Ensures (or with ensureTopics off, checks) the tier and DLQ topics of one origin; its partitions. */
  async #provisionTiers(admin: Admin, flow: RetryFlowTopics): Promise<number> {
    const config = this.#origin
    const naming = {
      ...(this.retry.topicTemplate === undefined ? {} : { retryTopic: this.retry.topicTemplate }),
      ...(config.dlqTopic === undefined ? {} : { dlqTopic: config.dlqTopic })
    }
    const plan = config.ensureTopics
      ? await ensureRetryTopics(admin, flow.origin, this.retry.delaysMs, naming)
      : await planRetryTopics(admin, flow.origin, this.retry.delaysMs, naming)
    for (const topic of plan.topics) {
      if (topic.action === 'misfit') {
        throw new RetryTopicMisfitError(topic.problems.join('; '), { details: { topic: topic.topic } })
      }
      if (topic.action === 'create' && !config.ensureTopics) {
        throw new TopicNotFoundError(
          topic.topic,
          'create it like its origin (planRetryTopics says how), or set ensureTopics: true'
        )
      }
    }
    for (const warning of plan.warnings) this.#logger.warn({ origin: flow.origin }, `retry topics: ${warning}`)
    return plan.origin.partitions
  }

  #keyOrderSpecs(flow: RetryFlowTopics, partitions: number): TopicSpec[] {
    const retention = Math.max(7 * DAY, 4 * Math.max(...this.retry.delaysMs))
    return [
      {
        name: flow.release,
        partitions,
        configs: { 'cleanup.policy': 'delete' },
        atLeast: { 'retention.ms': retention }
      },
      {
        name: flow.parked,
        partitions,
        configs: { 'cleanup.policy': 'compact', 'min.cleanable.dirty.ratio': '0.1', 'segment.ms': String(3_600_000) }
      }
    ]
  }
}
