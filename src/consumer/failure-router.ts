/**
 * Failure routing: where a record whose handling failed for good goes before it may settle. The
 * failure route (retry tiers) first, else its dead-letter topic, or with `onDeadLetter: 'stop'` the
 * consumer fails; the record settles only once the broker acknowledged it there. A dead-letter write
 * that keeps failing blocks its partition's commits past the record ('blocked') until acknowledged.
 * Business refusals are told to the failure route before they settle.
 */
import { Admin } from '../kafka/client.ts'
import { toClientOptions } from '../kafka/connection.ts'
import { ConfigError } from '../errors/kafkit-error.ts'
import { DeadLetterWriter, type DeadLetterProducer } from '../handling/dead-letter-writer.ts'
import type { DeadLetterOutcome } from '../handling/handler-executor.ts'
import type { HandlingLogger } from '../handling/logger.ts'
import type { ConsumedMessage } from '../handling/types.ts'
import { ensureTopics } from '../topology/topic-plan.ts'
import { ConsumerStoppedError } from './errors.ts'
import type { ConsumerMetricsRecorder, DeadLetterBlock } from './metrics.ts'
import type { ConsumerConfig } from './options.ts'
import type { PartitionState, TopicPartition } from './partition-state.ts'
import type { FailureRoute, SettledOutcome } from './types.ts'

export interface FailureHost {
  /** `onDeadLetter: 'stop'` met a record: the consumer fails with this error. */
  fail(error: Error): void
  /** A dead-letter write failed and is being retried. */
  blocked(event: TopicPartition & DeadLetterBlock): void
}

export interface FailureRouterInit<V> {
  config: Pick<ConsumerConfig, 'groupId' | 'dlqTopic' | 'onDeadLetter'>
  route: FailureRoute<V> | undefined
  metrics: ConsumerMetricsRecorder
  logger: HandlingLogger
  host: FailureHost
}

export class FailureRouter<V> {
  readonly #config: FailureRouterInit<V>['config']
  readonly #route: FailureRoute<V> | undefined
  readonly #metrics: ConsumerMetricsRecorder
  readonly #logger: HandlingLogger
  readonly #host: FailureHost
  readonly #writers = new Map<string, DeadLetterWriter>()
  #producer: DeadLetterProducer | undefined

  constructor(init: FailureRouterInit<V>) {
    this.#config = init.config
    this.#route = init.route
    this.#metrics = init.metrics
    this.#logger = init.logger
    this.#host = init.host
  }

  /** Dead-letter records are produced with `producer` from now on. */
  attach(producer: DeadLetterProducer): void {
    this.#producer = producer
  }

  dlqTopicFor(topic: string): string {
    return this.#config.dlqTopic ?? `${topic}.dlq`
  }

  /**
   * A business refusal, told to the failure route before it settles: undefined when there is none to
   * tell, else resolves false when telling it failed (the record stays unsettled and is redelivered).
   */
  business(state: PartitionState, message: ConsumedMessage<V>): Promise<boolean> | undefined {
    return this.#route?.business ? this.#tellBusiness(this.#route, state, message) : undefined
  }

  /**
   * Moves a failed record to its retry tier (failure route) or its dead-letter topic; resolves with how
   * it settles once the broker acknowledged the record there. Rejects, leaving it unsettled (redelivered
   * to the partition's next owner), when that did not happen: the write was aborted or gave up, or
   * `onDeadLetter` is 'stop' (the consumer fails).
   */
  async divert(
    state: PartitionState,
    message: ConsumedMessage<V>,
    outcome: DeadLetterOutcome
  ): Promise<SettledOutcome> {
    const { signal } = state.controller
    const position = { topic: message.topic, partition: message.partition, offset: String(message.offset) }
    if (this.#route) {
      try {
        if ((await this.#route.route(message, outcome, { signal, groupId: this.#config.groupId })) === 'rerouted') {
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
    if (this.#config.onDeadLetter === 'stop') {
      const cause = outcome.error as Error | undefined
      const stopped = new ConsumerStoppedError(
        `consumer stopped at ${message.topic}/${message.partition}@${message.offset}: ${cause?.message ?? String(cause)} (onDeadLetter is 'stop'; set it to 'dlq' to dead-letter such records and go on)`,
        { cause, details: position }
      )
      this.#host.fail(stopped)
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

  /** A batch handler's context.deadLetter: the message diverted now, as a permanent failure. */
  async divertFromBatch(state: PartitionState, message: ConsumedMessage<V>, error: unknown): Promise<SettledOutcome> {
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
    return this.divert(state, message, outcome)
  }

  async #tellBusiness(route: FailureRoute<V>, state: PartitionState, message: ConsumedMessage<V>): Promise<boolean> {
    try {
      await route.business?.(message, { signal: state.controller.signal, groupId: this.#config.groupId })
      return true
    } catch (error) {
      this.#logger.warn(
        { topic: message.topic, partition: message.partition, offset: String(message.offset), err: String(error) },
        'consumer: reporting a business refusal failed; the record stays uncommitted and will be redelivered'
      )
      return false
    }
  }

  #writerFor(topic: string): DeadLetterWriter {
    const dlq = this.dlqTopicFor(topic)
    let writer = this.#writers.get(dlq)
    if (!writer) {
      writer = new DeadLetterWriter({
        producer: this.#producer as DeadLetterProducer,
        topic: dlq,
        groupId: this.#config.groupId,
        logger: this.#logger
      })
      this.#writers.set(dlq, writer)
    }
    return writer
  }

  /** A dead-letter write failed: the partition cannot commit past the record until it is acknowledged. */
  #blocked(state: PartitionState, message: ConsumedMessage<V>, dlqTopic: string, attempts: number, error: unknown) {
    const since = state.blocked?.offset === message.offset ? state.blocked.since : new Date()
    const reason = error instanceof Error ? error.message : String(error)
    state.blocked = { offset: message.offset, dlqTopic, attempts, since, error: reason }
    this.#host.blocked({ topic: state.topic, partition: state.partition, ...state.blocked })
  }
}

/**
 * Creates missing dead-letter topics: the origin's partition count (a shared DLQ: the largest). An
 * existing dead-letter topic is left as it is (never grown).
 */
export async function ensureDeadLetterTopics(
  config: ConsumerConfig,
  dlqTopicFor: (topic: string) => string
): Promise<void> {
  const admin = new Admin(toClientOptions(config))
  try {
    const metadata = await admin.metadata({ topics: [...config.topics] })
    const partitions = new Map<string, number>()
    for (const topic of config.topics) {
      const count = metadata.topics.get(topic)?.partitionsCount ?? 1
      const dlq = dlqTopicFor(topic)
      partitions.set(dlq, Math.max(partitions.get(dlq) ?? 1, count))
    }
    const existing = new Set(await admin.listTopics({ includeInternals: false }))
    const missing = [...partitions].filter(([name]) => !existing.has(name))
    if (missing.length > 0)
      await ensureTopics(
        admin,
        missing.map(([name, count]) => ({ name, partitions: count }))
      )
  } finally {
    await admin.close().catch(() => undefined)
  }
}
