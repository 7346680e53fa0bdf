/**
 * The exactly-once mode of a stage: each batch of one input partition is transformed inside one Kafka
 * transaction that holds its outputs and the partition's next offset; a `read_committed` reader sees
 * each input's outputs once, however often the stage crashes, aborts or rebalances.
 *
 * Fencing: one transactional producer per input partition, with the id `<group>.<topic>.<partition>`.
 * The first transaction of a new owner initializes that id, which fences every earlier producer with
 * it (a crashed or paused former owner can no longer write or commit) and ends the transaction it left
 * open. Only then does the new owner read the partition's committed offset (waiting while it is
 * unstable) and skip the inputs below it. The offsets also go to the group coordinator with the
 * generation and member id of the consumer's last join, which refuses them from a member whose
 * partitions moved on. Both are needed here: the client reads committed offsets at assignment without
 * waiting for pending transactions, so the per-partition id, not the group generation alone (KIP-447),
 * is what ends the former owner's transaction before the offset is read.
 *
 * The consumer never commits in this mode (`commitStrategy: 'external'`): the transactions do.
 */
import { withAdmin } from '../kafka/admin.ts'
import type { ConnectionOptions } from '../kafka/connection.ts'
import { stableCommittedOffset } from '../kafka/transactional-offsets.ts'
import { TransientError } from '../handling/errors.ts'
import type { HandlingLogger } from '../handling/logger.ts'
import type { BatchContext, BatchHandler, ConsumedMessage } from '../handling/types.ts'
import { Producer, type ProducerInit } from '../producer/producer.ts'
import type { ConsumerGroupMetadata } from '../kafka/transactional-offsets.ts'
import type { ProducerTransaction } from '../producer/transaction.ts'
import type { StageOutput, StageTransform } from './stage.ts'

interface PartitionWork<O> {
  producer: Producer<O>
  /** The partition's committed offset as this owner knows it: inputs below it are done. */
  from: bigint | undefined
}

export interface ExactlyOnceInit<I, O> {
  groupId: string
  connection: ConnectionOptions
  transform: StageTransform<I, O>
  producerInit: ProducerInit<O>
  groupMetadata: () => ConsumerGroupMetadata | undefined
  /** How long a new owner waits for the former owner's transaction to end. */
  stableWaitMs: number
  logger: HandlingLogger
}

export class ExactlyOnceRunner<I, O> {
  readonly #init: ExactlyOnceInit<I, O>
  readonly #partitions = new Map<string, PartitionWork<O>>()
  #transactions = 0

  constructor(init: ExactlyOnceInit<I, O>) {
    this.#init = init
  }

  /** Transactions committed so far. */
  get transactions(): number {
    return this.#transactions
  }

  handler(): BatchHandler<I> {
    return (messages, context) => this.#batch(messages, context)
  }

  /** Partitions let go of: their producers close (an open transaction is aborted by then). */
  async revoked(partitions: readonly { topic: string; partition: number }[]): Promise<void> {
    await Promise.all(
      partitions.map(async ({ topic, partition }) => {
        const work = this.#partitions.get(`${topic}:${partition}`)
        this.#partitions.delete(`${topic}:${partition}`)
        await work?.producer.close({ timeoutMs: 5000 }).catch(() => undefined)
      })
    )
  }

  async close(): Promise<void> {
    await this.revoked([...this.#partitions.keys()].map(key => splitKey(key)))
  }

  async #batch(messages: ConsumedMessage<I>[], context: BatchContext<I>): Promise<void> {
    const first = messages[0]
    const last = messages.at(-1)
    if (first === undefined || last === undefined) return
    const group = this.#init.groupMetadata()
    if (group === undefined) throw new TransientError('the stage has not joined its group yet')
    const work = this.#work(first.topic, first.partition)
    const tx = await work.producer.beginTransaction()
    try {
      // The first transaction of this owner fenced the former owner's producer and ended its open
      // transaction: the committed offset is final now.
      work.from ??= await this.#committed(first.topic, first.partition, context.signal)
      const from = work.from
      const todo = messages.filter(message => message.offset >= from)
      if (todo.length === 0) {
        await tx.abort()
        return
      }
      await this.#transform(todo, tx, context)
      await tx.sendOffsets([{ topic: first.topic, partition: first.partition, offset: last.offset + 1n }], group)
      context.signal.throwIfAborted()
      await tx.commit()
      work.from = last.offset + 1n
      this.#transactions++
    } catch (error) {
      await tx.abort().catch(() => undefined)
      if (isFenced(error)) await this.#discard(first.topic, first.partition, work)
      throw error
    }
  }

  /**
   * A producer Kafka fenced (a newer one took its id, or the coordinator aborted a transaction that
   * ran past the timeout and bumped its epoch) cannot be used again: the next batch starts a new one,
   * which reads the committed offset afresh.
   */
  async #discard(topic: string, partition: number, work: PartitionWork<O>): Promise<void> {
    if (this.#partitions.get(`${topic}:${partition}`) === work) this.#partitions.delete(`${topic}:${partition}`)
    this.#init.logger.warn(
      { topic, partition },
      "stage: the partition's transactional producer was fenced; a new one takes over"
    )
    await work.producer.close({ timeoutMs: 1000 }).catch(() => undefined)
  }

  async #transform(messages: ConsumedMessage<I>[], tx: ProducerTransaction<O>, context: BatchContext<I>) {
    const sends: Promise<unknown>[] = []
    for (const message of messages) {
      context.signal.throwIfAborted()
      const result = await this.#init.transform(message, context)
      const outputs = result == null ? [] : Array.isArray(result) ? result : [result as StageOutput<O>]
      if (outputs.length > 0) sends.push(tx.sendBatch(outputs as readonly StageOutput<O>[]))
    }
    // Failures of single outputs fail the commit (the transaction reports them); only a send that
    // could not even start rejects here.
    await Promise.all(sends)
  }

  #work(topic: string, partition: number): PartitionWork<O> {
    const key = `${topic}:${partition}`
    let work = this.#partitions.get(key)
    if (work === undefined) {
      work = {
        producer: new Producer<O>({
          ...this.#init.producerInit,
          transactionalId: `${this.#init.groupId}.${topic}.${partition}`,
          idempotent: true,
          acks: -1
        }),
        from: undefined
      }
      this.#partitions.set(key, work)
    }
    return work
  }

  async #committed(topic: string, partition: number, signal: AbortSignal): Promise<bigint> {
    const { connection, groupId, stableWaitMs } = this.#init
    return withAdmin(connection, 'kafkit-stage', admin =>
      stableCommittedOffset(admin, groupId, topic, partition, stableWaitMs, signal)
    )
  }
}

function splitKey(key: string): { topic: string; partition: number } {
  const at = key.lastIndexOf(':')
  return { topic: key.slice(0, at), partition: Number(key.slice(at + 1)) }
}

const FENCED = /PRODUCER_FENCED|INVALID_PRODUCER_EPOCH|fence[ds]|INVALID_TXN_STATE/i

/** Does the error (or one of its causes) say the producer's epoch is over? */
function isFenced(error: unknown, depth = 0): boolean {
  if (depth > 6 || error === null || typeof error !== 'object') return false
  const { message, code, errors, cause } = error as {
    message?: unknown
    code?: unknown
    errors?: unknown
    cause?: unknown
  }
  if (FENCED.test(`${String(message)} ${String(code)}`)) return true
  if (Array.isArray(errors) && errors.some(inner => isFenced(inner, depth + 1))) return true
  return isFenced(cause, depth + 1)
}
