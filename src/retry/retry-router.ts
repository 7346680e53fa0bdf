/**
 * Where failed records go in the retry flow, as the consumer runtime's failure routes:
 *
 * - origin: a transient failure (in-place retries exhausted) is produced to the first tier and, once
 *   acknowledged, the runtime commits past it (`rerouted`); a permanent one goes back to the runtime,
 *   which dead-letters it. With per-key ordering, `intercept` parks records whose key is in retry.
 * - a tier (and the release topic, tier 0): `intercept` holds each record until it is due (the tier's
 *   records come due in order: one fixed delay per topic); a transient failure goes to the next tier;
 *   after the last tier, or on a permanent failure, the router writes the dead-letter record itself, as
 *   of the origin record (origin topic/partition/offset, every handler attempt, the first failure),
 *   and then settles it as `rerouted`. With per-key ordering, a success or dead-letter of a head is
 *   reported to the owner of its key (`KeyOrderGate.resolve`), which releases what was parked.
 */
import { DeadLetterWriter } from '../handling/dead-letter-writer.ts'
import type { DeadLetterOutcome, FailureRecord } from '../handling/handler-executor.ts'
import type { HandlingLogger } from '../handling/logger.ts'
import type { ConsumedMessage, HandlerContext, MessageHandler } from '../handling/types.ts'
import type { FailureRoute } from '../consumer/consumer.ts'
import { sleep } from '../resilience/backoff.ts'
import type { KeyOrderGate } from './key-order-gate.ts'
import {
  readRetryHeaders,
  retryHeaderEntries,
  RetryHeader,
  withoutRetryHeaders,
  type RetryInfo
} from './retry-headers.ts'
import { headerMap, sendAcknowledged, type RetryProducer } from './send-acknowledged.ts'
import type { RetryFlowTopics } from './topic-names.ts'
import { ConfigError } from '../errors/kafkit-error.ts'

export interface RetryRouterInit {
  producer: RetryProducer
  flows: readonly RetryFlowTopics[]
  /** Partition counts of the tier and release topics. */
  partitions: ReadonlyMap<string, number>
  /** The origin consumer group. */
  groupId: string
  onDeadLetter: 'dlq' | 'stop'
  logger: HandlingLogger
  gate?: KeyOrderGate | undefined
  /** Ends the waits of tier records when the retrying consumer stops (writes in flight may finish). */
  stopSignal: AbortSignal
  now?: () => number
}

/** Counters of what the router did (since start). */
export interface RetryRouterCounts {
  /** Records produced to each tier, by 1-based tier number. */
  toTier: Record<number, number>
  /** Dead-letter records written after the last tier or a permanent failure on a tier. */
  deadLettered: number
  /** Heads of per-key trains that succeeded on a tier. */
  resolved: number
}

interface Origin {
  topic: string
  partition: number
  offset: bigint
  timestamp: Date | undefined
}

export class RetryRouter {
  readonly #producer: RetryProducer
  readonly #flows = new Map<string, RetryFlowTopics>()
  /** Tier and release topics → their flow and tier number (0 = release). */
  readonly #tierOf = new Map<string, { flow: RetryFlowTopics; tier: number }>()
  readonly #partitions: ReadonlyMap<string, number>
  readonly #groupId: string
  readonly #onDeadLetter: 'dlq' | 'stop'
  readonly #logger: HandlingLogger
  readonly #gate: KeyOrderGate | undefined
  readonly #stop: AbortSignal
  readonly #now: () => number
  readonly #dlqWriters = new Map<string, DeadLetterWriter>()
  readonly counts: RetryRouterCounts = { toTier: {}, deadLettered: 0, resolved: 0 }

  constructor(init: RetryRouterInit) {
    this.#producer = init.producer
    this.#partitions = init.partitions
    this.#groupId = init.groupId
    this.#onDeadLetter = init.onDeadLetter
    this.#logger = init.logger
    this.#gate = init.gate
    this.#stop = init.stopSignal
    this.#now = init.now ?? Date.now
    for (const flow of init.flows) {
      this.#flows.set(flow.origin, flow)
      this.#tierOf.set(flow.release, { flow, tier: 0 })
      for (const tier of flow.tiers) this.#tierOf.set(tier.topic, { flow, tier: tier.tier })
    }
  }

  /** The failure route of the origin consumer. */
  originRoute<V>(): FailureRoute<V> {
    const gate = this.#gate
    return {
      route: async (message, outcome, context) => {
        const flow = this.#flows.get(message.topic)
        if (outcome.reason === 'permanent' || !flow) return 'dead-letter'
        const keyOrder = gate !== undefined && message.raw.key !== null
        const origin: Origin = {
          topic: message.topic,
          partition: message.partition,
          offset: message.offset,
          timestamp: message.timestamp
        }
        const write = () =>
          this.#toTier(message, flow, 1, origin, outcome, { attempt: 0, handlerAttempts: 0 }, keyOrder, context.signal)
        if (keyOrder) await gate.startTrain(message, context.signal, write)
        else await write()
        return 'rerouted'
      },
      ...(gate ? { intercept: (message, context) => gate.intercept(message, context.signal) } : {})
    }
  }

  /** The failure route of a tier consumer (or the release consumer). */
  tierRoute<V>(): FailureRoute<V> {
    return {
      intercept: async (message, context) => {
        const where = this.#tierOf.get(message.topic)
        // Groups consuming the same origin topic share its tier topics: another group's retry is not ours.
        const group = message.headers.get(RetryHeader.consumerGroup)
        if (group !== undefined && group.toString('utf8') !== this.#groupId) return 'rerouted'
        // Only the due time is needed here (the hot path of a tier): one header, not all of them.
        const due = Date.parse(message.headers.get(RetryHeader.dueAt)?.toString('latin1') ?? '')
        if (!where || Number.isNaN(due)) return 'handle'
        const delayMs = where.tier === 0 ? 0 : (where.flow.tiers[where.tier - 1]?.delayMs ?? 0)
        // Never longer than the tier's delay: a writer whose clock runs ahead must not stall the tier.
        const until = Math.min(due, this.#now() + delayMs)
        // Timers may fire a millisecond before the wall clock says so: wait until it does.
        for (let wait = until - this.#now(); wait > 0; wait = until - this.#now()) {
          await sleep(wait, AbortSignal.any([context.signal, this.#stop]))
        }
        return 'handle'
      },
      route: async (message, outcome, context) => {
        const where = this.#tierOf.get(message.topic)
        if (!where) return 'dead-letter'
        const { flow, tier } = where
        const info = readRetryHeaders(message.headers)
        const origin: Origin = info
          ? {
              topic: info.originTopic,
              partition: info.originPartition,
              offset: info.originOffset,
              timestamp: info.originTimestamp
            }
          : { topic: flow.origin, partition: message.partition, offset: message.offset, timestamp: message.timestamp }
        const keyOrder = info?.keyOrder === true && this.#gate !== undefined && message.raw.key !== null
        if (outcome.reason === 'transient' && tier < flow.tiers.length) {
          await this.#toTier(
            message,
            flow,
            tier + 1,
            origin,
            outcome,
            info ?? { attempt: tier, handlerAttempts: 0 },
            keyOrder,
            context.signal
          )
          return 'rerouted'
        }
        if (this.#onDeadLetter === 'stop') return 'dead-letter'
        await this.#deadLetter(message, flow, origin, outcome, info, context.signal)
        if (keyOrder) await this.#gate?.resolve(origin, message.raw.key as Buffer, 'dead-letter', context.signal)
        return 'rerouted'
      },
      // A BusinessError on a tier is committed like a success: without this the key stayed blocked.
      business: (message, context) => this.#resolveHead(message, context.signal)
    }
  }

  /**
   * The handler of a tier consumer: the user's handler, then (per-key ordering) the report that the
   * head succeeded. The user's handler runs once per record even when the report must be retried.
   */
  tierHandler<V>(user: MessageHandler<V>): MessageHandler<V> {
    const succeeded = new WeakSet<ConsumedMessage<V>>()
    return async (message: ConsumedMessage<V>, context: HandlerContext) => {
      if (!succeeded.has(message)) {
        await user(message, context)
        succeeded.add(message)
      }
      await this.#resolveHead(message, context.signal)
    }
  }

  /**
   * Per-key ordering: a retried record (the head of its key) ended for good without a dead letter
   * (handled, or refused by a business rule): the key's parked records may go.
   */
  async #resolveHead(message: ConsumedMessage<unknown>, signal: AbortSignal): Promise<void> {
    const gate = this.#gate
    if (!gate || message.raw.key === null) return
    const info = readRetryHeaders(message.headers)
    if (!info?.keyOrder) return
    await gate.resolve(
      { topic: info.originTopic, partition: info.originPartition, offset: info.originOffset },
      message.raw.key,
      'done',
      signal
    )
    this.counts.resolved++
  }

  async #toTier(
    message: ConsumedMessage<unknown>,
    flow: RetryFlowTopics,
    tier: number,
    origin: Origin,
    outcome: DeadLetterOutcome,
    before: Pick<RetryInfo, 'attempt' | 'handlerAttempts'> & { firstFailureAt?: Date | undefined },
    keyOrder: boolean,
    signal: AbortSignal
  ): Promise<void> {
    const target = flow.tiers[tier - 1]
    if (!target) throw new ConfigError(`retry: no tier ${tier} for ${flow.origin}`, { details: { tier } })
    const headers = retryHeaderEntries(message, {
      attempt: before.attempt + 1,
      tier,
      delayMs: target.delayMs,
      dueAt: new Date(outcome.lastFailureAt.getTime() + target.delayMs),
      consumerGroup: this.#groupId,
      origin,
      handlerAttempts: before.handlerAttempts + outcome.attempts,
      firstFailureAt: before.firstFailureAt ?? outcome.firstFailureAt,
      lastFailureAt: outcome.lastFailureAt,
      error: outcome.error,
      keyOrder
    })
    await sendAcknowledged(
      this.#producer,
      [
        {
          topic: target.topic,
          // The origin partition: a key's records stay together, and the tier can be read per origin partition.
          partition: origin.partition % (this.#partitions.get(target.topic) ?? 1),
          ...(message.raw.key === null ? {} : { key: message.raw.key }),
          value: message.raw.value as Buffer,
          headers: headerMap(headers)
        }
      ],
      { signal, logger: this.#logger, what: `retry tier ${tier}` }
    )
    this.counts.toTier[tier] = (this.counts.toTier[tier] ?? 0) + 1
    this.#logger.warn(
      {
        topic: message.topic,
        partition: message.partition,
        offset: String(message.offset),
        groupId: this.#groupId,
        reason: outcome.reason,
        attempts: outcome.attempts,
        retryTopic: target.topic,
        err:
          outcome.error instanceof Error
            ? { name: outcome.error.name, message: outcome.error.message }
            : String(outcome.error)
      },
      `message failed: it is in retry topic ${target.topic}`
    )
  }

  async #deadLetter(
    message: ConsumedMessage<unknown>,
    flow: RetryFlowTopics,
    origin: Origin,
    outcome: DeadLetterOutcome,
    info: RetryInfo | undefined,
    signal: AbortSignal
  ): Promise<void> {
    let writer = this.#dlqWriters.get(flow.dlq)
    if (!writer) {
      writer = new DeadLetterWriter({
        producer: this.#producer,
        topic: flow.dlq,
        groupId: this.#groupId,
        logger: this.#logger
      })
      this.#dlqWriters.set(flow.dlq, writer)
    }
    // The dead-letter record describes the origin record: its place, its headers, all its attempts.
    const headerEntries = withoutRetryHeaders(message.headerEntries ?? message.headers)
    const asOrigin: ConsumedMessage<unknown> = {
      ...message,
      topic: origin.topic,
      partition: origin.partition,
      offset: origin.offset,
      timestamp: origin.timestamp ?? message.timestamp,
      headers: new Map(headerEntries),
      headerEntries
    }
    const failure: FailureRecord = {
      reason: outcome.reason,
      error: outcome.error,
      attempts: (info?.handlerAttempts ?? 0) + outcome.attempts,
      firstFailureAt: info?.firstFailureAt ?? outcome.firstFailureAt,
      lastFailureAt: outcome.lastFailureAt
    }
    await writer.write(asOrigin, failure, { signal })
    this.counts.deadLettered++
  }
}
