/**
 * A pipeline stage: consumes topics, transforms each record into zero or more output records, produces
 * them, and moves on. It is a Consumer (the same options: key-ordered concurrency, backpressure, error
 * kinds, in-place retries, retry tiers, the dead-letter topic, breaker, metrics and lag) whose handler
 * is the transform, and a Producer of its own (idempotent) for the outputs, which the consumer also
 * uses for its dead-letter and retry records.
 *
 * `at-least-once`: the outputs of an input are produced and acknowledged before the handler resolves,
 * so the consumer commits the input only after them. A crash in between transforms the input again.
 *
 * `exactly-once`: batches of one partition, each in one Kafka transaction with its outputs and the
 * partition's next offset (exactly-once.ts: fencing, takeover); the consumer itself never commits.
 * Guide: docs/stages.md.
 */
import { EventEmitter } from 'node:events'
import { Consumer } from '../consumer/consumer.ts'
import type { ConsumerMetrics } from '../consumer/metrics.ts'
import type { ConsumerEvents, ConsumerInit } from '../consumer/types.ts'
import { ConfigError, isKafkitError } from '../errors/kafkit-error.ts'
import { defaultLogger } from '../handling/logger.ts'
import { pickConnection } from '../kafka/connection.ts'
import { ExactlyOnceRunner } from './exactly-once.ts'
import { PermanentError, TransientError } from '../handling/errors.ts'
import type { BatchHandler, ConsumedMessage, HandlerContext, MessageHandler } from '../handling/types.ts'
import type { MessageBuilder, OutgoingMessage } from '../message/builder.ts'
import type { Serde } from '../message/serde.ts'
import { Producer, type ProducerInit } from '../producer/producer.ts'
import { stageOptions, type StageConfig, type StageOptions } from './options.ts'

/** One output record: a message (or builder) with its topic, or the stage's `outputTopic`. */
export type StageOutput<O> = OutgoingMessage<O> | MessageBuilder<O>

/** Maps one input to its outputs: none (null, undefined, []), one, or several, in order. */
export type StageTransform<I, O> = (
  message: ConsumedMessage<I>,
  context: HandlerContext
) =>
  | StageOutput<O>
  | readonly StageOutput<O>[]
  | null
  | undefined
  | Promise<StageOutput<O> | readonly StageOutput<O>[] | null | undefined>

export interface StageInit<I = unknown, O = unknown>
  extends Omit<ConsumerInit<I>, 'handler' | 'batchHandler' | 'producer' | 'failureRoute'>, StageOptions {
  transform: StageTransform<I, O>
  /** Turns output values into bytes; JSON by default. */
  outputSerde?: Serde<O>
  /** Further options of the stage's producer (always idempotent). */
  producer?: Omit<ProducerInit<O>, 'valueSerde' | 'brokers' | 'env' | 'topic' | 'idempotent' | 'transactionalId'>
}

export class Stage<I = unknown, O = unknown> extends EventEmitter<ConsumerEvents> {
  readonly config: Readonly<StageConfig>
  readonly consumer: Consumer<I>
  readonly producer: Producer<O>
  #exactlyOnce: ExactlyOnceRunner<I, O> | undefined

  constructor(init: StageInit<I, O>) {
    super()
    const { delivery, outputTopic, transaction, transform, outputSerde, producer, ...consumerInit } = init
    this.config = stageOptions.resolve({
      delivery,
      ...(outputTopic === undefined ? {} : { outputTopic }),
      ...(transaction === undefined ? {} : { transaction })
    })
    if (
      this.config.delivery === 'exactly-once' &&
      (consumerInit.groupProtocol === 'consumer' ||
        consumerInit.middleware !== undefined ||
        consumerInit.retry !== undefined)
    ) {
      throw new ConfigError(
        'stage: delivery exactly-once needs the classic group protocol (its offsets go into transactions with the generation of the group), and takes no middleware (wrap the transform instead) and no retry tiers (a tier is a topic of its own, outside the transaction: use in-place retries, maxRetries, or at-least-once)',
        { details: { component: 'stage', key: 'delivery' } }
      )
    }
    const producerInit: ProducerInit<O> = {
      // Every input (or transaction) waits for its outputs' acknowledgement: a linger only adds latency.
      lingerMs: 0,
      ...producer,
      ...(init.brokers ? { brokers: init.brokers } : {}),
      ...(this.config.outputTopic === undefined ? {} : { topic: this.config.outputTopic }),
      ...(outputSerde ? { valueSerde: outputSerde } : {}),
      ...(init.env ? { env: init.env } : {})
    }
    // Outputs (at-least-once) and the consumer's dead-letter and retry records.
    this.producer = new Producer<O>({ ...producerInit, idempotent: true, acks: -1 })
    this.consumer =
      this.config.delivery === 'exactly-once'
        ? this.#exactlyOnceConsumer(consumerInit, transform, producerInit)
        : consumerInit.concurrency?.mode === 'partition'
          ? new Consumer<I>({
              ...consumerInit,
              batchHandler: this.#atLeastOnceBatch(transform),
              producer: this.producer
            })
          : new Consumer<I>({ ...consumerInit, handler: this.#atLeastOnce(transform), producer: this.producer })
    for (const event of ['health', 'assigned', 'revoked', 'commit', 'settled', 'blocked'] as const) {
      this.consumer.on(event, (...args: unknown[]) => this.emit(event, ...(args as [never])))
    }
  }

  /** Transactions committed (exactly-once; 0 otherwise). */
  get transactions(): number {
    return this.#exactlyOnce?.transactions ?? 0
  }

  #exactlyOnceConsumer(
    consumerInit: Omit<StageInit<I, O>, keyof StageOptions | 'transform' | 'outputSerde' | 'producer'>,
    transform: StageTransform<I, O>,
    producerInit: ProducerInit<O>
  ): Consumer<I> {
    const { maxRecords, maxMs, stableWaitMs } = this.config.transaction
    const consumer: Consumer<I> = new Consumer<I>({
      isolationLevel: 'read_committed',
      ...consumerInit,
      concurrency: { mode: 'partition', limit: consumerInit.concurrency?.limit ?? 8 },
      maxPollRecords: maxRecords,
      batchLingerMs: maxMs,
      // Room for a full batch of every partition being worked on, and the next one queued behind it.
      maxBufferedRecords: consumerInit.maxBufferedRecords ?? maxRecords * ((consumerInit.concurrency?.limit ?? 8) + 2),
      commitStrategy: 'external',
      batchHandler: (messages, context) => runner.handler()(messages, context),
      producer: this.producer
    })
    const runner = new ExactlyOnceRunner<I, O>({
      groupId: consumer.config.groupId,
      connection: pickConnection(consumer.config),
      transform,
      producerInit,
      groupMetadata: () => consumer.groupMetadata(),
      stableWaitMs,
      logger: consumerInit.logger ?? defaultLogger()
    })
    consumer.on('revoked', partitions => void runner.revoked(partitions))
    this.#exactlyOnce = runner
    return consumer
  }

  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.consumer.start(options)
  }

  /** Stops consuming (in-flight inputs finish and commit), then closes the producer. */
  async stop(): Promise<void> {
    await this.consumer.stop()
    await this.#exactlyOnce?.close()
    await this.producer.close()
  }

  /** Settles once the stage stopped: resolves after stop(), rejects with what made it fail. */
  done(): Promise<void> {
    return this.consumer.done()
  }

  metrics(): ConsumerMetrics {
    return this.consumer.metrics()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }

  /**
   * Partition mode: a batch of one partition's inputs, transformed in order, their outputs sent with
   * one sendBatch, the batch settled once all are acknowledged. An input whose output Kafka refuses for
   * good is dead-lettered alone. A transform failure or an unacknowledged output fails the batch, which
   * the consumer then runs one input at a time, so each input meets its own error kind.
   */
  #atLeastOnceBatch(transform: StageTransform<I, O>): BatchHandler<I> {
    return async (messages, context) => {
      const outputs: StageOutput<O>[] = []
      const owners: ConsumedMessage<I>[] = []
      for (const message of messages) {
        const result = await transform(message, context)
        const produced = result == null ? [] : Array.isArray(result) ? result : [result as StageOutput<O>]
        for (const output of produced as readonly StageOutput<O>[]) {
          outputs.push(output)
          owners.push(message)
        }
      }
      if (outputs.length === 0) return
      const outcomes = await this.producer.sendBatch(outputs, { signal: context.signal })
      const refused = new Map<ConsumedMessage<I>, Error>()
      for (const [index, outcome] of outcomes.entries()) {
        if (outcome.ok) continue
        const owner = owners[index] as ConsumedMessage<I>
        const failure = outputFailure(owner, outcome.error)
        // Sending again may work: the batch runs again (its acknowledged outputs are produced again).
        if (!(failure instanceof PermanentError)) throw failure
        // Not worth sending again: that input alone is dead-lettered, the others of the batch are done.
        if (!refused.has(owner)) refused.set(owner, failure)
      }
      for (const [owner, failure] of refused) await context.deadLetter(owner, failure)
    }
  }

  #atLeastOnce(transform: StageTransform<I, O>): MessageHandler<I> {
    return async (message, context) => {
      const result = await transform(message, context)
      const outputs = result == null ? [] : Array.isArray(result) ? result : [result as StageOutput<O>]
      if (outputs.length === 0) return
      const outcomes = await this.producer.sendBatch(outputs as readonly StageOutput<O>[], { signal: context.signal })
      for (const outcome of outcomes) if (!outcome.ok) throw outputFailure(message, outcome.error)
    }
  }
}

/** An output Kafka refused: transient when sending it again may work, else permanent (the input is dead-lettered). */
function outputFailure(message: ConsumedMessage<unknown>, error: Error): Error {
  const where = `${message.topic}/${message.partition}@${message.offset}`
  if (isKafkitError(error) && !error.retryable) {
    return new PermanentError(`an output of ${where} was refused: ${error.message}`, { cause: error })
  }
  return new TransientError(`an output of ${where} was not acknowledged: ${error.message}`, { cause: error })
}
